"""People are streamed (issue 16 item 11): a people read is held on disk, not in memory, and
stored a chunk at a time within its one transaction.

The other people tests read files of a few rows, which fit in one chunk. Here the chunk is made
tiny, so repeated ids, managers and dated drops cross chunk boundaries, and a file larger than
a chunk is stored in chunks with the memory of about one.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from bridge.cycle import pull_source
from bridge.mapping.loader import MappingSet
from bridge.ports import Batch, Chunked, PullContext, PullScope
from bridge.records import Person
from bridge.settings import Settings
from bridge.store import ingest
from bridge.store import schema as t
from connectors.hris import roster
from connectors.hris.csv_connector import CsvOptions, CsvSource
from tests.test_hris_csv import NOW, PEOPLE

ROWS = [
    "P1,001,A,One,a@x.org,003,S,A,,,,2020-01-01,yes",  # manager by employee number, listed later
    "P2,002,B,Two,b@x.org,P1,S,A,,Mars/Base,,2020-01-01,yes",  # by HR id; no such time zone
    "P3,003,C,Three,c@x.org,003,S,A,,,,2020-01-01,yes",  # their own number: no manager
    "P1,009,D,Again,d@x.org,,S,A,,,,2020-01-01,yes",  # an HR id given twice
    "P4,002,E,Again,e@x.org,,S,A,,,,2020-01-01,yes",  # an employee number given twice
    "P4,004,F,Four,f@x.org,77,S,A,,,,2020-01-01,yes",  # P4's earlier row was rejected; unknown manager
    "P5,005,G,Five,g@x.org,P5,S,A,,,,nope,yes",  # rejected, yet listed
]


def read(folder: Path, **options: Any) -> Batch:
    source = CsvSource("hr", CsvOptions(**options), folder)
    (batch,) = source.pull(PullContext(cursors={}, scope=PullScope(), now=NOW))
    return batch


@pytest.fixture(params=[1, 2, 3, roster.CHUNK])
def chunk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(roster, "CHUNK", request.param)
    return int(request.param)


def test_a_read_is_the_same_whatever_the_chunk(tmp_path: Path, chunk: int) -> None:
    (tmp_path / "people.csv").write_text(PEOPLE + "\n".join(ROWS) + "\n")
    batch = read(tmp_path, people="people.csv")
    people = list(batch.records)
    assert [(p.person_id, p.last_name, p.manager_id) for p in people if isinstance(p, Person)] == [
        ("P1", "One", "P3"),
        ("P2", "Two", "P1"),
        ("P3", "Three", None),
        ("P4", "Four", None),
    ]
    assert [(r.location, r.reason) for r in batch.rejected] == [
        ("people.csv:5", "HR id 'P1' was already read at people.csv:2"),
        ("people.csv:6", "employee number '002' already belongs to P2 (people.csv:3)"),
        (
            "people.csv:8",
            "start date 'nope' is not a YYYY-MM-DD date (set date_format for this feed if it uses another format)",
        ),
        (
            "people.csv:3",
            "time zone 'Mars/Base' is not an IANA name such as Europe/London (the person was loaded "
            "with the default time zone)",
        ),
        ("person P4", "unknown manager '77' (the person was loaded without a manager)"),
    ]
    assert (batch.rows_read, len(batch.records)) == (7, 4)
    assert isinstance(batch.records, Chunked)
    assert sorted(i for ids in batch.records.listed(2) for i in ids) == ["P1", "P2", "P3", "P4", "P5"]
    assert [len(c) for c in batch.records.chunks(3)] == [3, 1]
    assert ingest.listed(batch) == {"P1", "P2", "P3", "P4", "P5"}


def test_dated_drops_store_the_last_row_of_each_person_once(tmp_path: Path, chunk: int) -> None:
    drops = tmp_path / "people"
    drops.mkdir()
    (drops / "2026-10.csv").write_text(
        PEOPLE
        + "P1,1,Ana,Old,a@x.org,2,S,A,,,,2020-01-01,yes\n"
        + "P2,2,Ben,Old,b@x.org,,S,A,,,,2020-01-01,yes\n"
    )
    (drops / "2026-11.csv").write_text(
        PEOPLE
        + "P2,2,Ben,New,b@x.org,,S,A,,,,2020-01-01,yes\n"
        + "P1,1,Ana,New,a@x.org,P2,S,A,,,,2020-01-01,yes\n"
    )
    batch = read(tmp_path, people="people")
    assert not batch.rejected
    assert [(p.person_id, p.last_name) for p in batch.records if isinstance(p, Person)] == [
        ("P1", "Old"),
        ("P2", "Old"),
        ("P2", "New"),
        ("P1", "New"),
    ]
    assert isinstance(batch.records, Chunked)
    stored = [p for c in batch.records.chunks(1) for p in c if isinstance(p, Person)]
    assert [(p.person_id, p.last_name, p.manager_id) for p in stored] == [
        ("P1", "New", "P2"),
        ("P2", "New", None),
    ]


def test_a_snapshot_stored_in_chunks_retires_marks_and_refuses_as_one(
    engine: Engine, tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "WRITE_CHUNK", 2)
    path = tmp_path / "people.csv"
    source = CsvSource("hr", CsvOptions(people=str(path), max_retire_percent=25), tmp_path)

    def pull(rows: list[str]) -> Any:
        path.write_text(PEOPLE + "".join(f"{r}\n" for r in rows))
        return pull_source(engine, Settings(), MappingSet(), source, full=True)

    def active() -> list[str]:
        with engine.connect() as conn:
            ids = conn.execute(select(t.people.c.person_id).where(t.people.c.active))
            return sorted(ids.scalars())

    first = pull(ROWS)
    assert first.error is None and first.result.written["Person"] == 4 and first.result.dirty_people == 4
    with engine.connect() as conn:
        managers = dict(conn.execute(select(t.people.c.person_id, t.people.c.manager_id)).all())
    assert managers == {"P1": "P3", "P2": "P1", "P3": None, "P4": None}
    again = pull(ROWS)
    assert again.error is None and (again.result.changed, again.result.dirty_people) == (0, 0)
    refused = pull(ROWS[:1])  # would retire 3 of 4
    assert refused.error is not None and "it would retire 3 of 4 active people (75%)" in refused.error
    assert active() == ["P1", "P2", "P3", "P4"]
    with engine.connect() as conn:
        assert (
            conn.execute(select(t.people.c.manager_id).where(t.people.c.person_id == "P1")).scalar() == "P3"
        )
    left = pull(ROWS[:3])  # P4 leaves
    assert left.error is None and left.result.leavers == 1 and left.result.changed == 0
    assert active() == ["P1", "P2", "P3"]
    back = pull(ROWS)  # and comes back
    assert back.error is None and (back.result.changed, back.result.dirty_people, back.result.leavers) == (
        1,
        1,
        0,
    )
    assert active() == ["P1", "P2", "P3", "P4"]


def test_a_people_file_larger_than_a_chunk_is_stored_in_chunks_in_bounded_memory(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """6,000 people, chunks of 500: read and stored holding about one chunk at a time (the whole
    file held as one list of people, as it once was, peaked over 12 MB here)."""
    rows = 6_000
    monkeypatch.setattr(roster, "CHUNK", 500)
    monkeypatch.setattr(ingest, "WRITE_CHUNK", 500)
    with (tmp_path / "people.csv").open("w") as people:
        people.write(PEOPLE)
        for i in range(rows):
            boss = f"{i // 8:06d}" if i else ""
            people.write(f"P{i:06d},{i:06d},F{i},L{i},p{i}@example.org,{boss},S,A,London,,,2020-01-01,yes\n")
    sizes: list[int] = []
    real = ingest.write_records

    def spy(conn: Any, records: Any, now: Any) -> Any:
        sizes.append(len(records))
        return real(conn, records, now)

    monkeypatch.setattr(ingest, "write_records", spy)
    source = CsvSource("hr", CsvOptions(people="people.csv"), tmp_path)
    tracemalloc.start()
    try:
        report = pull_source(sqlite_engine, Settings(), MappingSet(), source)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.error is None and report.result.written["Person"] == rows
    assert max(sizes) <= 500 and sum(sizes) == rows
    assert peak < 5 * 2**20, f"peak {peak / 2**20:.1f} MB"
