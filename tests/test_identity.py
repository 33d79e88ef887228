"""Linking HR people to LMS accounts: ordered keys, uniqueness, never by name."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, delete

from bridge import clock
from bridge.delivery import deliver
from bridge.identity import match_identities
from bridge.outbox import NewAction, enqueue
from bridge.ports import ActionKind
from bridge.records import LmsUser, Person
from bridge.settings import Settings
from bridge.store import schema as t
from tests.seed import link, rows, store
from tests.test_delivery import FakeSink

NOW = datetime(2026, 11, 3, 9, tzinfo=UTC)


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


def test_two_accounts_swapping_employee_numbers_relink_in_one_go(engine: Engine) -> None:
    store(
        engine,
        Person("P1", employee_number="e1"),
        Person("P2", employee_number="e2"),
        Person("P3", employee_number="e3"),
        LmsUser("moodle", 11, idnumber="e1"),
        LmsUser("moodle", 12, idnumber="e2"),
        LmsUser("moodle", 13, idnumber="e3"),
    )
    match(engine)
    # 11 and 12 exchange numbers; 11, 12 and 13 then rotate: each account's new person still
    # holds it when the other link is written.
    store(engine, LmsUser("moodle", 11, idnumber="e2"), LmsUser("moodle", 12, idnumber="e1"))
    assert match(engine) == "3 matched, 0 unmatched, 0 ambiguous"
    assert {p: u for p, (u, _) in links(engine).items()} == {"P1": 12, "P2": 11, "P3": 13}
    store(
        engine,
        LmsUser("moodle", 11, idnumber="e3"),
        LmsUser("moodle", 12, idnumber="e2"),
        LmsUser("moodle", 13, idnumber="e1"),
    )
    match(engine)
    assert {p: u for p, (u, _) in links(engine).items()} == {"P1": 13, "P2": 12, "P3": 11}


def queue(engine: Engine, person_id: str, user_id: int) -> None:
    with engine.begin() as conn:
        enqueue(
            conn,
            [
                NewAction(
                    key=f"m/{person_id}",
                    purpose="recommend",
                    kind=ActionKind.MESSAGE,
                    site="moodle",
                    due_at=NOW,
                    person_id=person_id,
                    recipient_person_id=person_id,
                    recipient_user_id=user_id,
                )
            ],
            NOW,
        )


def addressed(engine: Engine) -> dict[str, tuple[str, int | None]]:
    return {r.person_id: (r.state, r.recipient_user_id) for r in rows(engine, t.actions)}


def test_queued_actions_follow_their_person_to_the_new_account_or_wait(engine: Engine) -> None:
    store(
        engine,
        Person("P1", employee_number="e1"),
        Person("P2", employee_number="e2"),
        Person("P3", employee_number="e3"),
        LmsUser("moodle", 11, idnumber="e1"),
        LmsUser("moodle", 12, idnumber="e2"),
        LmsUser("moodle", 13, idnumber="e3"),
    )
    match(engine)
    for person, user in (("P1", 11), ("P2", 12), ("P3", 13)):
        queue(engine, person, user)
    # 11 and 12 swap numbers; 13 now carries a number nobody in HR has.
    store(
        engine,
        LmsUser("moodle", 11, idnumber="e2"),
        LmsUser("moodle", 12, idnumber="e1"),
        LmsUser("moodle", 13, idnumber="x9"),
    )
    match(engine)
    assert addressed(engine) == {"P1": ("pending", 12), "P2": ("pending", 11), "P3": ("waiting", None)}
    # The held action goes to P3's account once it is linked again.
    store(engine, LmsUser("moodle", 14, idnumber="e3"))
    assert "1 waiting action(s) released" in match(engine)
    assert addressed(engine)["P3"] == ("pending", 14)


def test_an_action_still_addressed_to_an_account_that_changed_hands_is_held_then_sent_to_the_new_one(
    engine: Engine,
) -> None:
    store(
        engine,
        Person("P1", employee_number="e1", timezone="UTC"),
        Person("P2", employee_number="e2", timezone="UTC"),
        LmsUser("moodle", 11, idnumber="e1"),
        LmsUser("moodle", 12, idnumber="e2"),
    )
    match(engine)
    queue(engine, "P1", 11)
    queue(engine, "P2", 12)
    # Relinked by another replica while these rows were claimed: the rows keep the old accounts.
    with engine.begin() as conn:
        conn.execute(delete(t.identities))
    link(engine, "P1", 12)
    link(engine, "P2", 11)
    sink = FakeSink()
    clock.set_now(NOW)
    deliver(engine, {"moodle": sink}, Settings())
    assert sink.sent == []
    reasons = {r.person_id: (r.state, r.last_error) for r in rows(engine, t.actions)}
    assert reasons["P1"][0] == "waiting" and "no longer linked to this person" in reasons["P1"][1]
    deliver(engine, {"moodle": sink}, Settings())  # addressed again to each person's account of now
    sent = {r.person_id: (r.state, r.recipient_user_id) for r in rows(engine, t.actions)}
    assert sent == {"P1": ("sent", 12), "P2": ("sent", 11)} and len(sink.sent) == 2
