"""What every HR feed does the same way, whatever the transport (SQL, JSON over HTTP).

A feed reads its people first — all of them, so managers resolve in a second pass and a complete
snapshot can retire leavers — then streams measurements, reviews and goals in bounded batches,
each row either a record or a rejected row naming where it came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from bridge.ports import Batch, PullContext
from bridge.records import Person, Record, Rejected
from connectors.hris.csv_reader import RowError
from connectors.hris.fields import Builder, Getter, resolve_managers

BATCH = 5000
KINDS = ("measurements", "reviews", "goals")

Rows = Iterator[tuple[str, Getter]]  # (location for a reject, value getter)


class HrFeed:
    """Subclasses provide ``rows(kind, ctx)`` and ``cursor(kind)``; this class does the rest."""

    name: str
    builder: Builder
    people_snapshot: bool = True

    def rows(self, kind: str, ctx: PullContext) -> Rows | None:
        """Rows of one record kind, or None when the feed has no source for it."""
        raise NotImplementedError

    def cursor(self, kind: str) -> str | None:
        """The cursor valid once every row of ``kind`` read so far is stored."""
        return None

    def pull(self, ctx: PullContext) -> Iterator[Batch]:
        rows = self.rows("people", ctx)
        if rows is not None:
            rejected: list[Rejected] = []
            people = [p for p in self._build(rows, self.builder.person, rejected) if isinstance(p, Person)]
            people, notes = resolve_managers(people, self.name)
            rejected.extend(Rejected(self.name, f"person {pid}", problem) for pid, problem in notes)
            self.builder.know(people)
            yield Batch(
                "people",
                people,
                rejected=rejected,
                cursor=self.cursor("people"),
                snapshot_of="people" if self.people_snapshot else None,
            )
        builders: dict[str, Callable[[Getter], Record]] = {
            "measurements": self.builder.measurement,
            "reviews": self.builder.review,
            "goals": self.builder.goal,
        }
        for kind in KINDS:
            kind_rows = self.rows(kind, ctx)
            if kind_rows is None:
                continue
            rejected = []
            records: list[Record] = []
            for record in self._build(kind_rows, builders[kind], rejected):
                records.append(record)
                if len(records) >= BATCH:
                    yield Batch(kind, records, rejected=rejected)
                    records, rejected = [], []
            yield Batch(kind, records, rejected=rejected, cursor=self.cursor(kind))

    def _build(self, rows: Rows, build: Callable[[Getter], Any], rejected: list[Rejected]) -> Iterator[Any]:
        for location, get in rows:
            try:
                yield build(get)
            except RowError as exc:
                rejected.append(Rejected(self.name, location, str(exc)))
