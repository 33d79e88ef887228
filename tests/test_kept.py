"""What a steady poll reads of the store (bridge.kept): every HR person's keys, a site's account
index and its account links are read once and kept while the versions they are made of stand, and
read again as soon as one of them moves, whoever moved it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event

from bridge import clock
from bridge.cycle import StoreSiteView, person_keys
from bridge.identity import match_identities
from bridge.kept import Kept, versions
from bridge.ports import PeopleKeys, PersonKeys
from bridge.records import LearningItem, LmsUser, Person
from bridge.store.ingest import bump_version
from tests.seed import store

NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)


def test_a_value_is_built_once_per_key_and_the_oldest_is_dropped() -> None:
    built: list[str] = []
    kept: Kept[str] = Kept(size=2)

    def get(key: str | None, version: int | None = 1) -> str:
        return kept.get(key, version, lambda: built.append(f"{key}@{version}") or f"value of {key}")

    assert get("a") == get("a") == "value of a" and built == ["a@1"]
    get("b"), get("c")  # "a" is the least recently used of three
    get("b")
    assert built == ["a@1", "b@1", "c@1"]
    get("a")
    assert built == ["a@1", "b@1", "c@1", "a@1"]
    get("x", None), get("x", None)  # no version: built every time, nothing kept
    assert built[-2:] == ["x@None", "x@None"]


def test_a_subjects_value_is_replaced_when_its_version_moves() -> None:
    """One value per subject: the one built at an older version is not kept beside the new."""
    kept: Kept[str] = Kept(size=2)
    assert kept.get("links", 1, lambda: "old") == "old"
    assert kept.get("links", 2, lambda: "new") == "new" and kept.get("links", 2, lambda: "built") == "new"
    assert kept.get("other", 1, lambda: "o") == "o" and kept.get("links", 2, lambda: "built") == "new"


def test_a_version_is_started_when_first_asked_and_moves_when_bumped(engine: Engine) -> None:
    first = versions(engine, ["users:moodle"])
    assert versions(engine, ["users:moodle"]) == first
    with engine.begin() as conn:
        bump_version(conn, "users:moodle", NOW)
    assert versions(engine, ["users:moodle"]) != first


@pytest.fixture
def reads(engine: Engine) -> Iterator[dict[str, int]]:
    """How many statements read each table of interest."""
    counted = {"people": 0, "lms_users": 0, "identities": 0}

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            for table in counted:
                if f"FROM {table}" in statement:
                    counted[table] += 1

    event.listen(engine, "before_cursor_execute", count)
    clock.set_now(NOW)
    yield counted
    event.remove(engine, "before_cursor_execute", count)


def changed(reads: dict[str, int]) -> dict[str, int]:
    """The tables read since the last call (writes read some too: only what follows counts)."""
    seen = {k: v for k, v in reads.items() if v}
    reads.update(dict.fromkeys(reads, 0))
    return seen


def test_person_keys_are_read_again_only_after_the_people_changed(
    engine: Engine, reads: dict[str, int]
) -> None:
    store(engine, Person("P1", employee_number="E1", email="p1@example.org"))
    changed(reads)
    assert [k.person_id for k in person_keys(engine)] == ["P1"] and changed(reads) == {"people": 1}
    person_keys(engine)
    assert changed(reads) == {}
    store(engine, Person("P1", employee_number="E1", email="p1@example.org"))  # the same: unchanged
    changed(reads)
    assert [k.person_id for k in person_keys(engine)] == ["P1"] and changed(reads) == {}
    store(engine, Person("P2", employee_number="E2"))
    changed(reads)
    assert [k.person_id for k in person_keys(engine)] == ["P1", "P2"] and changed(reads) == {"people": 1}


def test_the_index_and_links_are_read_again_only_after_accounts_courses_or_links_changed(
    engine: Engine, reads: dict[str, int]
) -> None:
    store(
        engine,
        Person("P1", employee_number="E1"),
        LmsUser("moodle", 11, idnumber="E1"),
        LearningItem("moodle", 5, shortname="CS-101"),
    )
    changed(reads)
    view = StoreSiteView(engine, "moodle")
    assert view.index().users_by_idnumber == {"E1": 11} and view.linked_users() == {}
    assert changed(reads) == {"lms_users": 1, "identities": 1}
    view.index(), view.linked_users(), StoreSiteView(engine, "moodle").index()
    assert changed(reads) == {}
    with engine.begin() as conn:
        match_identities(conn, "moodle", ["employee_number"])
    changed(reads)
    assert view.linked_users() == {11: "P1"} and changed(reads) == {"identities": 1}
    store(engine, LmsUser("moodle", 12, idnumber="E2"))
    changed(reads)
    assert view.index().users_by_idnumber == {"E1": 11, "E2": 12} and changed(reads) == {"lms_users": 1}
    store(engine, LearningItem("moodle", 6, shortname="CS-102"))
    assert "CS-102" in view.index().courses_by_shortname
    assert StoreSiteView(engine, "elsewhere").linked_users() == {}  # per site


def test_people_keys_give_who_changed_after_a_time_and_the_newest_change() -> None:
    at = [NOW + timedelta(minutes=m) for m in range(4)]
    people = PeopleKeys(
        [
            PersonKeys("P1", " E1 ", "A@Example.org", at[2]),
            PersonKeys("P2", None, None, None),
            PersonKeys("P3", "E3", None, at[0]),
            PersonKeys("P4", "E4", "d@example.org", at[3]),
        ]
    )
    assert [p.person_id for p in people.changed_after(at[2])] == ["P4", "P2"]  # after, and undated
    assert [p.person_id for p in people.changed_after(at[0] - timedelta(seconds=1))] == [
        "P3",
        "P1",
        "P4",
        "P2",
    ]
    assert people.newest_change == at[3] and PeopleKeys([]).newest_change is None
    assert people.employee_numbers == {"E1", "E3", "E4"} and people.emails == {
        "a@example.org",
        "d@example.org",
    }
