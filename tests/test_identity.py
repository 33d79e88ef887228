"""Linking HR people to LMS accounts: ordered keys, uniqueness, never by name."""

from __future__ import annotations

from sqlalchemy import Engine

from bridge.identity import match_identities
from bridge.records import LmsUser, Person
from bridge.store import schema as t
from tests.seed import rows, store


def links(engine: Engine) -> dict[str, tuple[int, str]]:
    return {r.person_id: (r.user_id, r.matched_by) for r in rows(engine, t.identities)}


def match(engine: Engine, order: list[str] | None = None) -> str:
    with engine.begin() as conn:
        return str(match_identities(conn, "moodle", order or ["employee_number", "email"]))


def test_keys_in_order_and_uniqueness(engine: Engine) -> None:
    store(
        engine,
        Person("P1", employee_number=" 00123 ", email="ana@example.org", first_name="Ana"),
        Person("P2", employee_number="00456", email="Ben@Example.org", first_name="Ben"),
        Person("P3", employee_number="00789", email="shared@example.org"),
        Person("P4", employee_number="00790", email="shared@example.org"),
        Person(
            "P5", employee_number="00999", email="nobody@example.org", first_name="Same", last_name="Name"
        ),
        LmsUser("moodle", 11, idnumber="00123", email="other@example.org"),
        LmsUser("moodle", 12, idnumber="", email="ben@example.org"),
        LmsUser("moodle", 13, email="shared@example.org"),
        LmsUser("moodle", 14, first_name="Same", last_name="Name"),
    )
    assert match(engine) == "2 matched, 3 unmatched, 0 ambiguous"
    assert links(engine) == {"P1": (11, "employee_number"), "P2": (12, "email")}


def test_duplicate_idnumbers_are_ambiguous_not_guessed(engine: Engine) -> None:
    store(
        engine,
        Person("P1", employee_number="7"),
        LmsUser("moodle", 11, idnumber="7"),
        LmsUser("moodle", 12, idnumber="7"),
    )
    assert match(engine) == "0 matched, 0 unmatched, 1 ambiguous"
    assert links(engine) == {}


def test_username_key_and_relinking_after_changes(engine: Engine) -> None:
    store(
        engine, Person("P1", employee_number="e1", email="a@x.org"), LmsUser("moodle", 11, username="A@X.org")
    )
    assert match(engine, ["employee_number", "username"]) == "1 matched, 0 unmatched, 0 ambiguous"
    assert links(engine) == {"P1": (11, "username")}
    store(
        engine, LmsUser("moodle", 11, username="A@X.org", deleted=True), LmsUser("moodle", 12, idnumber="e1")
    )
    match(engine, ["employee_number", "username"])
    assert links(engine) == {"P1": (12, "employee_number")}
    assert {r.person_id for r in rows(engine, t.dirty_people)} == {"P1"}
