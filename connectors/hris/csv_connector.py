"""The CSV HR feed: people, KPI measurements, review ratings and goals from export files.

Each record kind is read from a file, a glob of dated drop files, or a directory of them
(processed once each, in name order; a file changed since it was processed is read again — the
cursor remembers each file's SHA-256 in the same transaction as its records). Column names are
mapped per feed, so a BambooHR or Workday export is configured rather than coded. Measurements,
reviews and goals name people by employee number or HR id; employee numbers are resolved
through the people file of the same feed.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bridge.errors import SourceError
from bridge.ports import Batch, Connector, DoctorCheck, PullContext, Source
from bridge.records import Goal, Measurement, Record, Rejected, ReviewRating
from bridge.settings import Settings
from connectors.hris.csv_reader import (
    Dialect,
    Row,
    fold,
    open_text,
    read_records,
    sniff,
)
from connectors.hris.feed import MAX_RETIRE_HELP, MAX_RETIRE_PERCENT, people_batch
from connectors.hris.fields import Builder, Getter, Scale
from connectors.hris.roster import Roster

BATCH = 5000
STREAMS = ("measurements", "reviews", "goals")  # read after the people, who resolve their rows


class PeopleColumns(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: str = "Employee ID"
    employee_number: str | None = "Employee Number"
    first_name: str | None = "First Name"
    last_name: str | None = "Last Name"
    email: str | None = "Work Email"
    manager: str | None = Field(
        default="Manager Employee Number", description="The manager's employee number or HR id."
    )
    department: str | None = "Department"
    job_title: str | None = "Job Title"
    location: str | None = "Location"
    timezone: str | None = "Time Zone"
    locale: str | None = "Locale"
    start_date: str | None = "Start Date"
    active: str | None = "Active"


class MeasurementColumns(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person: str = Field(default="Employee Number", description="Employee number or HR id of the person.")
    metric: str = "Metric"
    period_start: str = "Period Start"
    period_end: str = "Period End"
    value: str = "Value"


class ReviewColumns(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person: str = "Employee Number"
    competency: str = "Competency"
    rater: str = "Rater"
    period_start: str = "Period Start"
    period_end: str = "Period End"
    rating: str = "Rating"


class GoalColumns(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person: str = "Employee Number"
    goal_id: str = "Goal ID"
    title: str = "Title"
    progress: str | None = "Progress"
    due_date: str | None = "Due Date"


class Columns(BaseModel):
    model_config = ConfigDict(extra="forbid")
    people: PeopleColumns = Field(default_factory=PeopleColumns)
    measurements: MeasurementColumns = Field(default_factory=MeasurementColumns)
    reviews: ReviewColumns = Field(default_factory=ReviewColumns)
    goals: GoalColumns = Field(default_factory=GoalColumns)


class RatingScale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: list[str] = Field(
        default_factory=lambda: ["Does not meet", "Partially meets", "Meets", "Exceeds", "Far exceeds"],
        description="Labels from lowest to highest; a label's position (from 1) is its value.",
    )
    min: float = 1
    max: float = 5
    unrated: list[str] = Field(
        default_factory=lambda: ["Unrated", "Too new to rate", "N/A", "-1972", "-1971"],
        description="Markers stored as unrated, never averaged (SuccessFactors uses -1972 and -1971).",
    )


class CsvOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    people: str | None = Field(default=None, description="People file, glob or directory of drop files.")
    measurements: str | None = None
    reviews: str | None = None
    goals: str | None = None
    delimiter: Literal["auto", ",", ";", "\t", "|"] = "auto"
    encoding: str = Field(default="utf-8", description="utf-8 (with or without BOM), or e.g. cp1252.")
    date_format: str | None = Field(
        default=None, description="strptime format, e.g. %d/%m/%Y; default ISO YYYY-MM-DD only."
    )
    decimal: Literal[".", ","] = "."
    people_snapshot: bool = Field(
        default=True, description="Each people file lists everyone: people missing from it have left."
    )
    max_retire_percent: float = Field(default=MAX_RETIRE_PERCENT, ge=0, le=100, description=MAX_RETIRE_HELP)
    columns: Columns = Field(default_factory=Columns)
    rating_scale: RatingScale = Field(default_factory=RatingScale)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, cp1252, latin-1)") from None
        return value


def resolve_files(pattern: str, base: Path) -> list[Path]:
    path = Path(pattern).expanduser()
    path = path if path.is_absolute() else base / path
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".txt"))
    if any(ch in pattern for ch in "*?["):
        return sorted(p for p in path.parent.glob(path.name) if p.is_file())
    return [path]


def fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class CsvSource:
    def __init__(self, name: str, options: CsvOptions, base: Path) -> None:
        self.name = name
        self.options = options
        self.base = base
        self.dialect = Dialect(
            delimiter=None if options.delimiter == "auto" else options.delimiter,
            encoding=options.encoding,
            date_format=options.date_format,
            decimal=options.decimal,
        )
        # Per record kind: field name -> the header it is read from, folded as rows are keyed.
        self._headers = {
            kind: {
                name: fold(header or "")
                for name, header in getattr(options.columns, kind).model_dump().items()
            }
            for kind in ("people", *STREAMS)
        }
        scale = options.rating_scale
        self.builder = Builder(
            name,
            options.date_format,
            options.decimal,
            Scale(tuple(scale.labels), scale.min, scale.max, tuple(scale.unrated)),
        )

    # ------------------------------------------------------------------ files

    def _files(self, kind: str) -> list[Path]:
        pattern = getattr(self.options, kind)
        if pattern is None:
            return []
        files = resolve_files(pattern, self.base)
        missing = [f for f in files if not f.exists()]
        if missing:
            raise SourceError(f"feed '{self.name}': {kind} file {missing[0]} does not exist")
        return files

    def _new_files(self, kind: str, files: list[Path], ctx: PullContext) -> tuple[list[Path], dict[str, str]]:
        """Those of ``kind``'s ``files`` that changed since the cursor, and the cursor once they are read."""
        seen: dict[str, str] = {} if ctx.full else json.loads(ctx.cursors.get(kind) or "{}")
        current = {str(f): fingerprint(f) for f in files}
        todo = [Path(f) for f, sha in current.items() if seen.get(f) != sha]
        return todo, {**seen, **current}

    # ------------------------------------------------------------------ pull

    def pull(self, ctx: PullContext) -> Iterator[Batch]:
        all_people = self._files("people")  # all parsed whenever a file changed: they resolve rows
        people_files, people_cursor = self._new_files("people", all_people, ctx)
        streams = {kind: self._new_files(kind, self._files(kind), ctx) for kind in STREAMS}
        if not people_files and not any(files for files, _cursor in streams.values()):
            return  # nothing changed since the cursor: no file is parsed
        roster = Roster(self.name, self.builder)
        rejected: list[Rejected] = []
        for path in all_people:
            roster.new_file()
            for _none in read_records(
                [path], self.dialect, self.name, lambda row: self._person(roster, row), rejected
            ):
                pass  # the roster keeps each person
        # The people stream is one batch, so a snapshot can retire leavers; the roster holds it
        # on disk and it is stored a chunk at a time.
        batch = people_batch(
            roster,
            rejected,
            cursor=json.dumps(people_cursor, sort_keys=True),
            snapshot=self.options.people_snapshot,
            origin=_names(all_people),
            max_retire_percent=self.options.max_retire_percent,
        )
        if people_files:
            yield batch
        builds = {"measurements": self._measurement, "reviews": self._review, "goals": self._goal}
        for kind, (files, cursor) in streams.items():
            yield from self._stream(kind, files, cursor, builds[kind])
        self.builder.forget()  # the people read stay with their batch only

    def _stream(self, kind: str, files: list[Path], cursor: dict[str, str], build: Any) -> Iterator[Batch]:
        """The records of the new ``files`` of ``kind``, in batches; the last carries ``cursor``."""
        if not files:
            return
        rejected: list[Rejected] = []
        records: list[Record] = []
        for record in read_records(files, self.dialect, self.name, build, rejected):
            records.append(record)
            if len(records) >= BATCH:
                yield Batch(kind, records, rejected=rejected)
                records, rejected = [], []
        yield Batch(kind, records, rejected=rejected, cursor=json.dumps(cursor, sort_keys=True))

    # ------------------------------------------------------------------ rows to records

    def _getter(self, row: Row, kind: str) -> Getter:
        headers = self._headers[kind]
        values = row.values
        return lambda name: values.get(headers.get(name, ""))

    def _person(self, roster: Roster, row: Row) -> None:
        roster.read(self._getter(row, "people"), f"{row.file}:{row.line}")

    def _measurement(self, row: Row) -> Measurement:
        return self.builder.measurement(self._getter(row, "measurements"))

    def _review(self, row: Row) -> ReviewRating:
        return self.builder.review(self._getter(row, "reviews"))

    def _goal(self, row: Row) -> Goal:
        return self.builder.goal(self._getter(row, "goals"))


def _names(files: list[Path], shown: int = 3) -> str:
    names = ", ".join(f.name for f in files[:shown])
    return names + (f" and {len(files) - shown} more" if len(files) > shown else "")


def build_source(name: str, options: Any, settings: Settings) -> Source:
    return CsvSource(name, options, settings.base_dir)


def doctor(name: str, options: Any, settings: Settings, needs: Any) -> list[DoctorCheck]:
    """Each configured file exists and its header has the mapped columns."""
    source = CsvSource(name, options, settings.base_dir)
    results = []
    for kind in ("people", "measurements", "reviews", "goals"):
        pattern = getattr(options, kind)
        if pattern is None:
            continue
        files = resolve_files(pattern, settings.base_dir)
        existing = [f for f in files if f.exists()]
        if not existing:
            results.append(
                DoctorCheck(
                    f"{kind} file",
                    False,
                    f"{pattern}: not found",
                    "check the path (relative to the configuration file)",
                )
            )
            continue
        wanted = {v for v in getattr(options.columns, kind).model_dump().values() if v}
        with open_text(existing[-1], options.encoding) as handle:
            sample = handle.read(64 * 1024)
        delimiter = source.dialect.delimiter or sniff(sample)
        header = {fold(h) for h in next(csv.reader(io.StringIO(sample), delimiter=delimiter), [])}
        missing = sorted(w for w in wanted if fold(w) not in header)
        results.append(
            DoctorCheck(
                f"{kind} file",
                not missing,
                f"{existing[-1].name}: "
                + (
                    f"no column {', '.join(repr(m) for m in missing)}"
                    if missing
                    else f"{len(existing)} file(s), columns present"
                ),
                f"map the columns under [feeds.{name}.columns.{kind}]" if missing else "",
            )
        )
    return results


connector = Connector(
    name="csv", kind="hris", options_model=CsvOptions, build_source=build_source, doctor=doctor
)
