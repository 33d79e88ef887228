"""The CSV HR feed with deliberately dirty files: good rows load, bad rows are reported by line."""

from __future__ import annotations

import codecs
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.ports import Batch, PullContext, PullScope
from bridge.records import Measurement, Person, ReviewRating
from connectors.hris import csv_connector
from connectors.hris.csv_connector import CsvOptions, CsvSource
from connectors.simulation.export_hr import export
from connectors.simulation.org import generate

NOW = datetime(2026, 11, 3, tzinfo=UTC)
PEOPLE = (
    "Employee ID,Employee Number,First Name,Last Name,Work Email,Manager Employee Number,Department,Job Title,"
    "Location,Time Zone,Locale,Start Date,Active\n"
)


def pull(tmp_path: Path, cursors: dict[str, str | None] | None = None, **options: Any) -> list[Batch]:
    source = CsvSource("hr", CsvOptions(**options), tmp_path)
    return list(source.pull(PullContext(cursors=cursors or {}, scope=PullScope(), now=NOW)))


def records(batches: list[Batch], kind: type) -> list[Any]:
    return [r for b in batches for r in b.records if isinstance(r, kind)]


def rejects(batches: list[Batch]) -> dict[str, str]:
    return {r.location: r.reason for b in batches for r in b.rejected}


def test_dirty_people_file(tmp_path: Path) -> None:
    text = (
        "\ufeff"
        + PEOPLE
        + "P1,00123,Ana,Lopez,Ana.Lopez@Example.org,00456,Customer Service,Agent,London,Europe/London,en_GB,2024-01-15,yes\n"
        + "\n"
        + 'P2,00456,"Ben, Jr.","O""Neil",ben@example.org,,Customer Service,"Team\nLeader",London,,,2020-03-01,yes\n'
        + "P3,00789,Cy,Unknown,cy@example.org,99999,Sales,AE,Berlin,,,15/03/2023,yes\n"
        + "P4,00790,Di,Left,di@example.org,00456,Sales,AE,Berlin,,,2019-01-01,terminated\n"
        + "P1,00123,Ana,Duplicate,x@example.org,,Sales,AE,London,,,2024-01-15,yes\n"
        + "P5,00791,Eve,Short,eve@example.org\n"
    )
    (tmp_path / "people.csv").write_text(text, encoding="utf-8")
    batches = pull(tmp_path, people="people.csv")
    people = {p.person_id: p for p in records(batches, Person)}
    assert set(people) == {"P1", "P2", "P4"}
    assert people["P1"].employee_number == "00123"  # leading zeros kept
    assert people["P1"].email == "ana.lopez@example.org"
    assert people["P1"].manager_id == "P2"  # resolved in a second pass, manager listed later
    assert people["P2"].first_name == "Ben, Jr." and people["P2"].last_name == 'O"Neil'
    assert people["P2"].job_title == "Team\nLeader"
    assert people["P4"].active is False
    problems = rejects(batches)
    assert (
        "date" in problems["people.csv:6"] and "YYYY-MM-DD" in problems["people.csv:6"]
    )  # P3, after a quoted newline
    assert "has 5 fields" in problems["people.csv:9"]
    assert problems["people.csv:8"] == "HR id 'P1' was already read at people.csv:2"
    assert batches[0].snapshot_of == "people"


def test_unknown_manager_loads_the_person_and_reports_it(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(PEOPLE + "P1,1,A,B,a@x.org,77,Sales,AE,,,,2020-01-01,yes\n")
    batches = pull(tmp_path, people="people.csv")
    (person,) = records(batches, Person)
    assert person.manager_id is None
    assert "unknown manager '77'" in rejects(batches)["person P1"]


def test_semicolon_comma_decimal_cp1252_and_configured_dates(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_bytes(
        "Employee ID;Employee Number;First Name;Last Name;Work Email;Manager Employee Number;Department;Job Title;Location;Time Zone;Locale;Start Date;Active\n"
        "P1;0042;Jürgen;Groß;j@x.de;;Vertrieb;AE;Berlin;Europe/Berlin;de_DE;01.02.2021;ja\n".replace(
            "ja", "1"
        ).encode("cp1252")
    )
    (tmp_path / "kpis.csv").write_text(
        "Employee Number;Metric;Period Start;Period End;Value\n0042;Win_Rate;01.10.2026;31.10.2026;31,5\n0042;win_rate;01.09.2026;30.09.2026;hoch\n",
        encoding="cp1252",
    )
    batches = pull(
        tmp_path,
        people="people.csv",
        measurements="kpis.csv",
        encoding="cp1252",
        date_format="%d.%m.%Y",
        decimal=",",
    )
    (person,) = records(batches, Person)
    assert person.first_name == "Jürgen" and person.start_date == date(2021, 2, 1)
    (kpi,) = records(batches, Measurement)
    assert (kpi.person_id, kpi.metric, kpi.value) == ("P1", "win_rate", 31.5)
    assert rejects(batches)["kpis.csv:3"] == "value 'hoch' is not a number"


def test_wrong_encoding_rejects_the_row_and_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_bytes(
        (
            PEOPLE
            + "P1,1,J\xfcrgen,B,a@x.org,,S,A,,,,2020-01-01,yes\nP2,2,Ok,B,b@x.org,,S,A,,,,2020-01-01,yes\n"
        ).encode("latin-1")
    )
    batches = pull(tmp_path, people="people.csv")
    assert [p.person_id for p in records(batches, Person)] == ["P2"]
    assert "encoding" in rejects(batches)["people.csv:2"]


def test_reviews_unrated_markers_and_labels(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(PEOPLE + "P1,1,A,B,a@x.org,,S,A,,,,2020-01-01,yes\n")
    (tmp_path / "reviews.csv").write_text(
        "Employee Number,Competency,Rater,Period Start,Period End,Rating\n"
        "1,overall,official,2026-01-01,2026-06-30,Exceeds\n"
        "1,Coaching,manager,2026-01-01,2026-06-30,Too new to rate\n"
        "1,Listening,official,2026-01-01,2026-06-30,-1972\n"
        "1,Writing,official,2026-01-01,2026-06-30,9\n"
    )
    batches = pull(tmp_path, people="people.csv", reviews="reviews.csv")
    ratings = {r.competency: r for r in records(batches, ReviewRating)}
    assert ratings["overall"].value == 4 and ratings["overall"].normalised == 0.75
    assert ratings["Coaching"].value is None and ratings["Coaching"].label == "Too new to rate"
    assert ratings["Listening"].value is None
    assert "outside the scale" in rejects(batches)["reviews.csv:5"]


def test_truncated_file_keeps_the_rows_before(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(
        PEOPLE + "P1,1,A,B,a@x.org,,S,A,,,,2020-01-01,yes\n" + 'P2,2,"Unclosed,B,b@x.org'
    )
    batches = pull(tmp_path, people="people.csv")
    assert [p.person_id for p in records(batches, Person)] == ["P1"]
    assert "truncated" in rejects(batches)["people.csv:3"]


def test_files_are_read_once_and_again_when_changed(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(PEOPLE + "P1,1,A,B,a@x.org,,S,A,,,,2020-01-01,yes\n")
    drop = tmp_path / "kpis"
    drop.mkdir()
    (drop / "2026-09.csv").write_text(
        "Employee Number,Metric,Period Start,Period End,Value\n1,csat,2026-09-01,2026-09-30,4.1\n"
    )
    first = pull(tmp_path, people="people.csv", measurements="kpis")
    cursors = {b.stream: b.cursor for b in first if b.cursor}
    assert len(records(first, Measurement)) == 1
    (drop / "2026-10.csv").write_text(
        "Employee Number,Metric,Period Start,Period End,Value\n1,csat,2026-10-01,2026-10-31,3.9\n"
    )
    second = pull(tmp_path, cursors, people="people.csv", measurements="kpis")
    assert [m.period_start.month for m in records(second, Measurement)] == [10]
    assert not any(b.stream == "people" for b in second)  # unchanged people file not re-read
    cursors = {**cursors, **{b.stream: b.cursor for b in second if b.cursor}}
    (drop / "2026-09.csv").write_text(
        "Employee Number,Metric,Period Start,Period End,Value\n1,csat,2026-09-01,2026-09-30,4.4\n"
    )
    third = pull(tmp_path, cursors, people="people.csv", measurements="kpis")
    assert [m.value for m in records(third, Measurement)] == [4.4]
    assert set(json.loads(cursors["measurements"] or "{}")) == {
        str(drop / "2026-09.csv"),
        str(drop / "2026-10.csv"),
    }


def test_a_cycle_with_no_changed_file_parses_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A steady cycle costs what changed: unchanged files are fingerprinted, never parsed."""
    (tmp_path / "people.csv").write_text(PEOPLE + "P1,1,A,B,a@x.org,,S,A,,,,2020-01-01,yes\n")
    (tmp_path / "kpis.csv").write_text(
        "Employee Number,Metric,Period Start,Period End,Value\n1,csat,2026-09-01,2026-09-30,4.1\n"
    )
    first = pull(tmp_path, people="people.csv", measurements="kpis.csv")
    cursors = {b.stream: b.cursor for b in first if b.cursor}
    parsed: list[Path] = []
    real = csv_connector.read_records

    def spy(paths: list[Path], *args: Any) -> Any:
        parsed.extend(paths)
        return real(paths, *args)

    monkeypatch.setattr(csv_connector, "read_records", spy)
    assert pull(tmp_path, cursors, people="people.csv", measurements="kpis.csv") == []
    assert parsed == []
    (tmp_path / "kpis.csv").write_text(
        "Employee Number,Metric,Period Start,Period End,Value\n1,csat,2026-09-01,2026-09-30,4.4\n"
    )
    changed = pull(tmp_path, cursors, people="people.csv", measurements="kpis.csv")
    assert [m.value for m in records(changed, Measurement)] == [4.4]
    assert [m.person_id for m in records(changed, Measurement)] == ["P1"]  # people read to resolve "1"
    assert [p.name for p in parsed] == ["people.csv", "kpis.csv"]


def test_committed_sample_files_match_the_generator(tmp_path: Path) -> None:
    export(generate(1), tmp_path)
    shipped = Path(__file__).parents[1] / "examples" / "hr"
    for name in ("people.csv", "kpis.csv", "reviews.csv"):
        assert (tmp_path / name).read_text() == (shipped / name).read_text(), f"regenerate examples/hr/{name}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_reader_never_raises_on_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "people.csv").write_bytes(PEOPLE.encode() + data)
    (tmp_path / "kpis.csv").write_bytes(b"Employee Number,Metric,Period Start,Period End,Value\n" + data)
    batches = pull(tmp_path, people="people.csv", measurements="kpis.csv")
    for batch in batches:
        for reject in batch.rejected:
            assert reject.reason and reject.location


def test_an_employee_number_given_twice_rejects_the_second_row_by_line(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(
        PEOPLE
        + "P1,007,A,B,a@x.org,,S,A,,,,2020-01-01,yes\n"
        + "P2,008,C,D,c@x.org,,S,A,,,,2020-01-01,yes\n"
        + "P3,007,E,F,e@x.org,,S,A,,,,2020-01-01,yes\n"
    )
    batches = pull(tmp_path, people="people.csv")
    assert [p.person_id for p in records(batches, Person)] == ["P1", "P2"]
    assert rejects(batches) == {"people.csv:4": "employee number '007' already belongs to P1 (people.csv:2)"}


def test_an_unknown_time_zone_is_rejected_with_its_line_and_the_person_loads(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(
        PEOPLE
        + "P1,1,A,B,a@x.org,,S,A,,Europe/Lodnon,,2020-01-01,yes\n"
        + "P2,2,C,D,c@x.org,,S,A,,America/New_York,,2020-01-01,yes\n"
    )
    batches = pull(tmp_path, people="people.csv")
    zones = {p.person_id: p.timezone for p in records(batches, Person)}
    assert zones == {"P1": None, "P2": "America/New_York"}
    assert "time zone 'Europe/Lodnon' is not an IANA name" in rejects(batches)["people.csv:2"]


def test_header_names_match_ignoring_case_and_spaces(tmp_path: Path) -> None:
    header = " EMPLOYEE ID ,employee number,first name,Last Name,WORK EMAIL,Manager Employee Number,Department,Job Title,Location,Time Zone,Locale,Start Date,ACTIVE\n"
    (tmp_path / "people.csv").write_text(header + "P1,1,Ana,B,a@x.org,,S,A,,,,2020-01-01,no\n")
    (person,) = records(pull(tmp_path, people="people.csv"), Person)
    assert (person.person_id, person.employee_number, person.first_name, person.active) == (
        "P1",
        "1",
        "Ana",
        False,
    )


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_a_byte_order_mark_decides_the_encoding(tmp_path: Path, encoding: str) -> None:
    text = PEOPLE + "P1,1,Jürgen,Groß,j@x.de,,S,A,,,,2020-01-01,yes\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    (tmp_path / "people.csv").write_bytes(data)
    batches = pull(tmp_path, people="people.csv")
    (person,) = records(batches, Person)
    assert (person.first_name, person.last_name) == ("Jürgen", "Groß") and not rejects(batches)


def test_a_people_batch_says_what_was_read_for_the_store_to_judge(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(
        PEOPLE + "P1,1,A,B,a@x.org,,S,A,,,,2020-01-01,yes\nP2,2,C,D,c@x.org,,S,A,,,,nope,yes\n"
    )
    (batch,) = pull(tmp_path, people="people.csv", max_retire_percent=25)
    assert (batch.origin, batch.rows_read, batch.max_retire_percent) == ("people.csv", 2, 25)
    (batch,) = pull(tmp_path, people="people.csv", people_snapshot=False)
    assert batch.max_retire_percent is None


def test_dated_people_drops_list_the_same_people_without_rejects(tmp_path: Path) -> None:
    drops = tmp_path / "people"
    drops.mkdir()
    (drops / "2026-10.csv").write_text(PEOPLE + "P1,1,Ana,Old,a@x.org,,S,A,,,,2020-01-01,yes\n")
    (drops / "2026-11.csv").write_text(PEOPLE + "P1,1,Ana,New,a@x.org,,S,A,,,,2020-01-01,yes\n")
    (batch,) = pull(tmp_path, people="people")
    assert not batch.rejected and batch.origin == "2026-10.csv, 2026-11.csv"
    assert [p.last_name for p in records([batch], Person)][-1] == "New"  # the newest is stored last
