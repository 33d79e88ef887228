"""Printing rows as a Rich table, JSON or CSV — the three formats every listing command offers."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from rich.markup import escape
from rich.table import Table

from bridge.cli.common import console


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def emit(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: Format = Format.table
) -> None:
    if fmt is Format.json:
        keys = [c.lower().replace(" ", "_") for c in columns]
        sys.stdout.write(
            json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=2, default=str) + "\n"
        )
        return
    if fmt is Format.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in r] for r in rows])
        return
    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else escape(str(v)) for v in row])  # data, never markup
    console.print(table)
