"""Reading HR exports in CSV, row by row, without ever losing a row silently.

Every row either becomes a record or a :class:`~bridge.records.Rejected` naming the file, the
physical line and the reason. The reader streams (memory does not grow with the file), sniffs
the delimiter among ``, ; tab |`` unless told, reads UTF-8 with or without a BOM, UTF-16 with a
BOM (what Excel's "Unicode text" writes) or a configured legacy encoding, matches header names
ignoring case and surrounding spaces (``employee id `` is ``Employee ID``), keeps identifiers exactly as written (``00123`` stays ``00123``), parses dates
with the feed's own format and refuses ambiguous ones instead of guessing, and reads
comma-decimal numbers when the feed says so.
"""

from __future__ import annotations

import codecs
import csv
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from bridge.records import Rejected

DELIMITERS = ",;\t|"
SNIFF_CHARS = 4096
SNIFF_LINES = 20
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TRUE = {"1", "true", "yes", "y", "active", "employed", "current"}
FALSE = {"0", "false", "no", "n", "inactive", "terminated", "left", "leaver"}


class RowError(ValueError):
    """A value that cannot be read; the message becomes the reject reason."""


@dataclass(frozen=True)
class Dialect:
    delimiter: str | None = None  # None: sniff
    encoding: str = "utf-8"
    date_format: str | None = None  # None: ISO 8601 (YYYY-MM-DD) only
    decimal: str = "."


def fold(header: str) -> str:
    """A header name as compared: exports change case and pad names between versions."""
    return header.strip().casefold()


@dataclass(frozen=True)
class Row:
    line: int
    values: Mapping[str, str]  # by folded header name
    raw: str
    file: str = ""

    def get(self, column: str) -> str | None:
        return self.values.get(fold(column))

    def text(self, column: str | None, required: bool = False, label: str | None = None) -> str | None:
        value = (self.get(column) or "").strip() if column else ""
        if not value:
            if required:
                raise RowError(f"{label or column} is empty")
            return None
        return value


BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM it starts with
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def open_text(path: Path, encoding: str) -> IO[str]:
    """The file as text: a byte-order mark decides the encoding, else the configured one.

    A BOM is unambiguous, so a UTF-16 export read as the configured UTF-8 (every header name
    unrecognisable, every row rejected) is never the outcome. utf-8-sig reads UTF-8 with and
    without a BOM; surrogateescape keeps undecodable bytes visible so the row can be rejected
    with a reason instead of failing the whole file. It cannot escape a damaged UTF-16/32 code
    unit (a file cut mid-character), which is read as U+FFFD instead.
    """
    with path.open("rb") as handle:
        head = handle.read(4)
    name = next((codec for bom, codec in BOMS if head.startswith(bom)), None)
    if name is None:
        name = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    errors = "replace" if name.startswith("utf-16") or name.startswith("utf-32") else "surrogateescape"
    return open(path, encoding=name, errors=errors, newline="")


def sniff(sample: str) -> str:
    # csv.Sniffer's quote regexes take quadratic time: on 64 kB of lines starting with a quote
    # it runs for minutes. The header and the first rows are enough to tell the delimiter.
    sample = "".join(sample[:SNIFF_CHARS].splitlines(keepends=True)[:SNIFF_LINES])
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        counts = {d: sample.splitlines()[0].count(d) if sample else 0 for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def rows(path: Path, dialect: Dialect, source: str, rejected: list[Rejected]) -> Iterator[Row]:
    """Data rows of one file as header -> value, with the physical line each starts on."""
    name = path.name
    with open_text(path, dialect.encoding) as handle:
        sample = handle.read(64 * 1024)
        handle.seek(0)
        delimiter = dialect.delimiter or sniff(sample)
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            rejected.append(Rejected(source, f"{name}:1", "the file is empty"))
            return
        except csv.Error as exc:
            rejected.append(Rejected(source, f"{name}:1", f"the header cannot be read: {exc}"))
            return
        header = [fold(h) for h in header]
        if len(set(header)) != len(header):
            rejected.append(Rejected(source, f"{name}:1", f"the header repeats a column: {header}"))
            return
        line = reader.line_num
        while True:
            start = line + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                rejected.append(
                    Rejected(
                        source,
                        f"{name}:{start}",
                        f"unreadable from here on (truncated file or unclosed quote?): {exc}",
                    )
                )
                return
            line = reader.line_num
            raw = delimiter.join(fields)
            if not fields or all(not f.strip() for f in fields):
                continue  # blank line
            if _undecodable(raw):
                rejected.append(
                    Rejected(
                        source,
                        f"{name}:{start}",
                        f"not valid {dialect.encoding} text (set this feed's encoding, e.g. cp1252)",
                        _printable(raw),
                    )
                )
                continue
            if len(fields) != len(header):
                rejected.append(
                    Rejected(
                        source,
                        f"{name}:{start}",
                        f"has {len(fields)} fields, the header has {len(header)} (truncated or misquoted row?)",
                        raw,
                    )
                )
                continue
            yield Row(start, dict(zip(header, fields, strict=True)), raw, name)


# What surrogateescape makes of a byte that is not valid text (see open_text).
ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _undecodable(text: str) -> bool:
    """Whether ``text`` (a whole row: its fields joined) holds a byte the encoding could not read."""
    return ESCAPED_BYTE.search(text) is not None


def _printable(text: str) -> str:
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def parse_date(value: str | None, fmt: str | None, label: str) -> date | None:
    if value is None:
        return None
    if fmt is None:
        if not ISO_DATE.match(value):
            raise RowError(
                f"{label} '{value}' is not a YYYY-MM-DD date (set date_format for this feed if it uses another format)"
            )
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise RowError(f"{label} '{value}' is not a real date") from None
    try:
        return datetime.strptime(value, fmt).date()
    except ValueError:
        raise RowError(f"{label} '{value}' does not match the date format {fmt}") from None


def parse_number(value: str | None, decimal: str, label: str) -> float | None:
    if value is None:
        return None
    text = value.replace(" ", "").replace("\u00a0", "")
    # Thousands separators go; the decimal separator becomes a point.
    text = text.replace(".", "").replace(",", ".") if decimal == "," else text.replace(",", "")
    try:
        number = float(text)
    except ValueError:
        raise RowError(f"{label} '{value}' is not a number") from None
    if not math.isfinite(number):
        raise RowError(f"{label} '{value}' is not a finite number")
    return number


def parse_bool(value: str | None, label: str, default: bool = True) -> bool:
    if value is None:
        return default
    folded = value.strip().casefold()
    if folded in TRUE:
        return True
    if folded in FALSE:
        return False
    raise RowError(f"{label} '{value}' is not yes/no")


def read_records(
    paths: Sequence[Path],
    dialect: Dialect,
    source: str,
    build: Callable[[Row], Any],
    rejected: list[Rejected],
) -> Iterator[Any]:
    """Apply ``build`` to every row of every file; a RowError rejects just that row."""
    for path in paths:
        for row in rows(path, dialect, source, rejected):
            try:
                record = build(row)
            except RowError as exc:
                rejected.append(Rejected(source, f"{path.name}:{row.line}", str(exc), row.raw))
                continue
            if record is not None:
                yield record
