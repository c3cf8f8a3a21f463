"""SELinux MCS levels for tenants: unique, collision-free under concurrency, never reused."""

from privatevault.mcs.level import CATEGORIES, Level, parse
from privatevault.mcs.store import Allocation, LevelStore

__all__ = ["CATEGORIES", "Allocation", "Level", "LevelStore", "parse"]
