"""How pvctl prints: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Piped output is not cut to 80 columns: scripts and logs get whole lines.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True, soft_wrap=True)


class Format(StrEnum):
    table = "table"
    json = "json"


def emit(rows: list[dict[str, Any]], *, fmt: Format, title: str | None = None) -> None:
    if fmt is Format.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return
    table = Table(title=title)
    for column in rows[0] if rows else []:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    console.print(table)


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print ``message`` as an error and leave with ``code``: what went wrong, never a traceback."""
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)
