"""An MCS level ``s0:cX,cY``: two distinct categories out of 1024, written smaller first."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import NamedTuple

CATEGORIES = 1024
_LEVEL = re.compile(r"s0:c([0-9]{1,4}),c([0-9]{1,4})")


class Level(NamedTuple):
    low: int
    high: int

    def __str__(self) -> str:
        return f"s0:c{self.low},c{self.high}"


def parse(text: str) -> Level:
    """The level ``text`` names, in canonical order; ValueError when it is not a two-category level."""
    match = _LEVEL.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not an MCS level of the form s0:cX,cY")
    first, second = int(match[1]), int(match[2])
    if first == second or max(first, second) >= CATEGORIES:
        raise ValueError(f"{text!r} needs two distinct categories below c{CATEGORIES}")
    return Level(min(first, second), max(first, second))


def random_level() -> Level:
    first = secrets.randbelow(CATEGORIES)
    second = secrets.randbelow(CATEGORIES - 1)
    second += second >= first
    return Level(min(first, second), max(first, second))


@dataclass(frozen=True)
class Allocation:
    """A tenant's level as the store holds it: hand-set or drawn, and whether its tenant is gone."""

    level: Level
    hand_set: bool
    released: bool
