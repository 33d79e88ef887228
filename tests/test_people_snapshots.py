"""A bad people export is refused whole; it never retires the people it fails to list.

Each bad export below once retired everyone: recommendations closed, actions cancelled as "left
the organisation". Now the snapshot is refused with one error naming the file and the numbers,
nothing from it is stored, and the cursor stays where it was so the next good file is read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from bridge.cycle import PullReport, pull_source
from bridge.mapping.loader import MappingSet
from bridge.settings import Settings
from bridge.store import schema as t
from connectors.hris.csv_connector import CsvOptions, CsvSource

ROOT = Path(__file__).parents[1]
GOOD = (ROOT / "examples/hr/people.csv").read_text()
HEADER, *BODY = GOOD.splitlines(keepends=True)


def active(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(t.people.c.active)).scalar_one())


def cursor(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(t.cursors.c.value).where(t.cursors.c.stream == "people")).scalar()


def pull(engine: Engine, folder: Path, data: bytes | str, **options: Any) -> PullReport:
    path = folder / "people.csv"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    source = CsvSource("hr", CsvOptions(people=str(path), **options), folder)
    return pull_source(engine, Settings(), MappingSet(), source)


BAD = {
    "empty": (b"", "1 of 1 rows were rejected (first: people.csv:1: the file is empty)"),
    "header only": (HEADER, "it would retire 79 of 79 active people (100%)"),
    "renamed id column": (
        GOOD.replace("Employee ID", "Worker ID", 1),
        "80 of 80 rows were rejected (first: people.csv:2: person id is empty)",
    ),
    "unclosed quote": (HEADER + BODY[0] + '"' + "".join(BODY[1:]), "it would retire 78 of 79 active people"),
    "cut to 10%": (HEADER + "".join(BODY[:8]) + BODY[8][:20], "it would retire 71 of 79 active people (90%)"),
    "utf-16 without a byte-order mark": (
        GOOD.encode("utf-16-le"),
        "81 of 81 rows were rejected",
    ),
}


@pytest.mark.parametrize("name", BAD)
def test_a_bad_export_is_refused_and_the_next_good_one_is_read(
    engine: Engine, tmp_path: Path, name: str
) -> None:
    assert pull(engine, tmp_path, GOOD).error is None and active(engine) == 79
    good_cursor = cursor(engine)
    data, numbers = BAD[name]
    report = pull(engine, tmp_path, data)
    assert report.error is not None
    assert report.error.startswith("feed 'hr': refused the people snapshot people.csv: "), report.error
    assert numbers in report.error and "nothing from it was stored" in report.error
    assert active(engine) == 79 and cursor(engine) == good_cursor
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.rejects)).scalar_one() == 0
    # Refused again while the file stays bad; the good file is read as soon as it is back.
    assert pull(engine, tmp_path, data).error == report.error
    fixed = pull(engine, tmp_path, GOOD.replace("Ana,Garcia", "Ana,García"))
    assert fixed.error is None and fixed.result.leavers == 0 and active(engine) == 79


@pytest.mark.parametrize(
    "data",
    [
        GOOD.replace(HEADER, HEADER.upper(), 1),
        GOOD.replace(HEADER, " " + HEADER.replace(",", " , "), 1),
        GOOD.encode("utf-16"),
        GOOD.encode("utf-8-sig"),
    ],
    ids=[
        "header case",
        "padded header names",
        "utf-16 with a byte-order mark",
        "utf-8 with a byte-order mark",
    ],
)
def test_the_same_export_written_differently_loads_everyone(
    engine: Engine, tmp_path: Path, data: Any
) -> None:
    assert pull(engine, tmp_path, GOOD).error is None
    report = pull(engine, tmp_path, data)
    assert report.error is None and report.result.rejected == 0 and report.result.leavers == 0
    assert active(engine) == 79


def test_real_leavers_within_the_limit_are_retired(engine: Engine, tmp_path: Path) -> None:
    assert pull(engine, tmp_path, GOOD).error is None
    report = pull(engine, tmp_path, HEADER + "".join(BODY[:73]))  # 7 of 79 leave (10 %: 7.9)
    assert report.error is None and report.result.leavers == 7 and active(engine) == 72
    # Over the limit (10 % of 72 is 7.2): refused; raised for one sync, it goes through.
    assert "it would retire 9 of 72" in (pull(engine, tmp_path, HEADER + "".join(BODY[:64])).error or "")
    report = pull(engine, tmp_path, HEADER + "".join(BODY[:64]), max_retire_percent=15)
    assert report.error is None and report.result.leavers == 9


def test_one_person_may_always_leave(engine: Engine, tmp_path: Path) -> None:
    assert pull(engine, tmp_path, HEADER + "".join(BODY[:3]), max_retire_percent=0).error is None
    assert pull(engine, tmp_path, HEADER + "".join(BODY[:2]), max_retire_percent=0).error is None
    assert "would retire 2 of 2" in (pull(engine, tmp_path, HEADER, max_retire_percent=0).error or "")


def test_a_person_whose_row_is_rejected_is_not_retired(engine: Engine, tmp_path: Path) -> None:
    """A listed person whose row cannot be read this time is still there: rejected, not retired."""
    assert pull(engine, tmp_path, GOOD).error is None
    bad_date = re.sub(r",(\d{4})-(\d\d)-(\d\d),", r",\3/\2/\1,", BODY[3])
    fields = BODY[4].split(",")
    twice = ",".join([fields[0], BODY[0].split(",")[1], *fields[2:]])  # P000005 with P000001's number
    report = pull(engine, tmp_path, HEADER + "".join([*BODY[:3], bad_date, twice, *BODY[5:]]))
    assert report.error is None and report.result.leavers == 0 and active(engine) == 79
    with engine.connect() as conn:
        where = set(conn.execute(select(t.rejects.c.location)).scalars())
    assert {"people.csv:5", "people.csv:6"} <= where


def test_a_refused_export_does_not_rest_the_feed(engine: Engine, tmp_path: Path) -> None:
    """Refusals are the data's fault, not a site that is down: the fixed file is read at once,
    however often the bad one was refused (a resting feed would wait up to an hour)."""
    from bridge import health

    assert pull(engine, tmp_path, GOOD).error is None
    for _ in range(health.BREAKER_AFTER + 3):
        assert pull(engine, tmp_path, HEADER).error is not None
    state = health.get(engine, "hr")
    assert state is not None and state.consecutive_failures == health.BREAKER_AFTER + 3
    assert state.open_until() is None
    fixed = pull(engine, tmp_path, GOOD)
    assert fixed.skipped is None and fixed.error is None and active(engine) == 79
