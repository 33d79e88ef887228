"""What every HR feed does the same way, whatever the transport (SQL, JSON over HTTP).

A feed reads its people first — all of them, so managers resolve in a second pass and a complete
snapshot can retire leavers; they are held on disk, not in memory (connectors.hris.roster), and
stored a chunk at a time — then streams measurements, reviews and goals in bounded batches, each
row either a record or a rejected row naming where it came from.

A people snapshot carries what the store needs to refuse a broken one (bridge.store.ingest):
how many rows were read, where from, and the feed's ``max_retire_percent``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from bridge.ports import Batch, PullContext
from bridge.records import Record, Rejected
from connectors.hris.csv_reader import RowError
from connectors.hris.fields import Builder, Getter
from connectors.hris.roster import Roster

BATCH = 5000
KINDS = ("measurements", "reviews", "goals")
MAX_RETIRE_PERCENT = 10.0
MAX_RETIRE_HELP = (
    "Refuse a people snapshot that would retire more than this share of the feed's active people "
    "(one person may always leave): a cut, empty or misread export is not a mass departure."
)


def people_batch(
    roster: Roster,
    rejected: list[Rejected],
    *,
    cursor: str | None,
    snapshot: bool,
    origin: str,
    max_retire_percent: float,
) -> Batch:
    """The people stream as one batch; ``rejected`` are the rows that did not load.

    Its records are the roster's :class:`~connectors.hris.roster.People`: read a chunk at a time
    (``chunks``), with the HR ids the snapshot lists (``listed``), so the store writes the whole
    snapshot in one transaction without ever holding it.
    """
    people, unknown_managers = roster.finish()
    roster.builder.know(people.numbers)
    return Batch(
        "people",
        people,
        rejected=[*rejected, *roster.notes, *unknown_managers],
        cursor=cursor,
        snapshot_of="people" if snapshot else None,
        origin=origin,
        rows_read=len(people) + len(rejected),
        max_retire_percent=max_retire_percent if snapshot else None,
    )


Rows = Iterator[tuple[str, Getter]]  # (location for a reject, value getter)


class HrFeed:
    """Subclasses provide ``rows(kind, ctx)`` and ``cursor(kind)``; this class does the rest."""

    name: str
    builder: Builder
    people_snapshot: bool = True
    max_retire_percent: float = MAX_RETIRE_PERCENT
    people_origin: str = "people"

    def rows(self, kind: str, ctx: PullContext) -> Rows | None:
        """Rows of one record kind, or None when the feed has no source for it."""
        raise NotImplementedError

    def cursor(self, kind: str) -> str | None:
        """The cursor valid once every row of ``kind`` read so far is stored."""
        return None

    def pull(self, ctx: PullContext) -> Iterator[Batch]:
        rows = self.rows("people", ctx)
        if rows is not None:
            roster = Roster(self.name, self.builder)
            rejected: list[Rejected] = []
            for location, get in rows:
                try:
                    roster.read(get, location)
                except RowError as exc:
                    rejected.append(Rejected(self.name, location, str(exc)))
            yield people_batch(
                roster,
                rejected,
                cursor=self.cursor("people"),
                snapshot=self.people_snapshot,
                origin=self.people_origin,
                max_retire_percent=self.max_retire_percent,
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
        self.builder.forget()  # the people read stay with their batch only

    def _build(self, rows: Rows, build: Callable[[Getter], Any], rejected: list[Rejected]) -> Iterator[Any]:
        for location, get in rows:
            try:
                yield build(get)
            except RowError as exc:
                rejected.append(Rejected(self.name, location, str(exc)))
