"""Messages to the learner's manager: the opt-in copy of a new recommendation, and a mapping's own
escalation (or copy) template, which is sent as written instead of being silently ignored."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from bridge.records import LmsUser, Person
from bridge.store import schema as t
from tests.seed import (
    CS101,
    CSAT_MAPPING,
    agent,
    agent_and_manager,
    completion,
    link,
    rows,
    settings,
    store,
    write_mapping,
)
from tests.test_followups import facts_loaded
from tests.test_send_time import T0, RecordingSink, cycle, decide, p1_actions, send


@pytest.fixture
def team(engine: Engine) -> Engine:
    return agent_and_manager(engine)


HOUR = timedelta(hours=1)
COPY = (
    CSAT_MAPPING
    + """\
follow_up:
  due_in_days: 10
  remind_after_days: []
  escalate_to_manager_after_days: null
  copy_manager_on_recommend: true
"""
)
OWN_COPY = (
    COPY
    + """\
messages:
  manager_copy:
    subject: "New for {{ person.full_name }}: {{ learning.name }}"
    body: "Hello {{ manager.first_name }}, {{ person.first_name }} was asked to finish {{ learning.name }} by {{ due_date }}."
"""
)
OWN_ESCALATION = (
    CSAT_MAPPING
    + """\
follow_up:
  due_in_days: 10
  remind_after_days: []
  escalate_to_manager_after_days: 5
messages:
  escalation:
    subject: "Please talk to {{ person.first_name }} about {{ learning.name }}"
    body: "Hello {{ manager.first_name }}, {{ person.full_name }} has {% if overdue %}been overdue since {{ due_date }}{% else %}until {{ due_date }}{% endif %}."
"""
)


def _digests(sink: RecordingSink) -> list[str]:
    return [a.body_text for a in sink.actions if a.key.startswith("digest/")]


def _to_manager(sink: RecordingSink, purpose: str) -> list[tuple[int | None, str, str]]:
    return [(a.recipient_user_id, a.subject, a.body_text) for a in sink.actions if f"/{purpose}/" in a.key]


def test_manager_copy_is_one_digest_line_once_the_learner_was_sent_it(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", COPY)
    sink = RecordingSink()
    decide(team, mappings, T0)  # the copy waits for the learner's own message to go
    assert _digests(sink) == [] and not rows(team, t.digest_items)
    send(team, sink, T0)
    for hours in (1, 2, 26):  # cycles go on: the copy is made once
        cycle(team, mappings, T0 + hours * HOUR, sink)
    (digest,) = _digests(sink)
    assert (
        "- P1 was recommended Customer Conversations on 2026-11-02, due 2026-11-12. "
        "Why: their csat was 3.6 in 2026-10, below the 4.2 target." in digest
    )
    assert "has not completed" not in digest


@pytest.mark.parametrize("text", [COPY, OWN_COPY], ids=["digest line", "own template"])
def test_a_recommendation_is_read_for_its_copy_only_until_the_copy_is_made(
    team: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """The copy has no day of its own: once it is made (a digest line or a message), a
    recommendation with no other step due costs the follow-ups nothing (its facts are not loaded)."""
    mappings = write_mapping(tmp_path, "csat", text)
    sink = RecordingSink()
    decide(team, mappings, T0)
    send(team, sink, T0)
    loaded = facts_loaded(monkeypatch)
    for hours in (1, 2, 26):
        cycle(team, mappings, T0 + hours * HOUR, sink)
    assert loaded == [{"P1"}]
    assert [a[0] for a in p1_actions(team)].count("manager_copy") == (text is OWN_COPY)


def test_without_the_opt_in_the_manager_hears_nothing_on_day_one(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", COPY.replace("copy_manager_on_recommend: true", ""))
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    cycle(team, mappings, T0 + HOUR, sink)
    assert _digests(sink) == [] and [a for a in p1_actions(team) if a[0] == "manager_copy"] == []


def test_manager_copy_is_not_sent_once_the_learner_completed(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", COPY)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    decide(team, mappings, T0 + HOUR)  # the copy is queued in the manager's digest...
    store(team, completion(11, T0 + 2 * HOUR))
    cycle(team, mappings, T0 + 3 * HOUR, sink)  # ...and the learner completes before it goes
    assert _digests(sink) == []
    (digest,) = [a for a in rows(team, t.actions) if a.purpose == "digest"]
    assert (digest.state, digest.last_error) == (
        "cancelled",
        "nothing left to report: every item in this digest was closed or is no longer true",
    )


def test_no_manager_means_no_copy_recorded_with_the_reason(engine: Engine, tmp_path: Path) -> None:
    store(engine, CS101, *agent("P1", 3.6, user_id=11))
    link(engine, "P1", 11)
    mappings = write_mapping(tmp_path, "csat", COPY)
    sink = RecordingSink()
    cycle(engine, mappings, T0, sink)
    cycle(engine, mappings, T0 + HOUR, sink)
    assert ("manager_copy", "0", "suppressed", "no manager copy: P1 has no manager in the HR record") in (
        p1_actions(engine)
    )
    assert [a.key for a in sink.actions if "/recommend/" not in a.key] == []


def test_a_mappings_own_copy_template_is_its_own_message(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", OWN_COPY)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    cycle(team, mappings, T0 + HOUR, sink)
    assert _to_manager(sink, "manager_copy") == [
        (
            90,
            "New for P1: Customer Conversations",
            "Hello Mia, P1 was asked to finish Customer Conversations by 2026-11-12.",
        )
    ]
    assert _digests(sink) == []


def test_a_mappings_own_escalation_template_is_sent_rendered_when_it_goes(
    team: Engine, tmp_path: Path
) -> None:
    mappings = write_mapping(tmp_path, "csat", OWN_ESCALATION)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    decide(team, mappings, T0 + timedelta(days=5))  # escalation due; held until after the due date
    send(team, sink, T0 + timedelta(days=11))
    assert _to_manager(sink, "escalation") == [
        (
            90,
            "Please talk to P1 about Customer Conversations",
            "Hello Mia, P1 has been overdue since 2026-11-12.",
        )
    ]
    assert _digests(sink) == []  # not also a digest line
    cycle(team, mappings, T0 + timedelta(days=13), sink)
    assert len(_to_manager(sink, "escalation")) == 1


def test_own_escalation_is_checked_at_send_time(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", OWN_ESCALATION)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    decide(team, mappings, T0 + timedelta(days=5))
    store(team, completion(11, T0 + timedelta(days=5, hours=1)))  # pulled, not decided yet
    send(team, sink, T0 + timedelta(days=5, hours=2))
    assert (
        "escalation",
        "5",
        "cancelled",
        "Customer Conversations was completed on 2026-11-07, after it was recommended",
    ) in p1_actions(team)
    assert _to_manager(sink, "escalation") == []


def test_own_escalation_not_sent_to_someone_no_longer_the_manager(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", OWN_ESCALATION)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    decide(team, mappings, T0 + timedelta(days=5))
    store(team, Person("M2", first_name="Noor", department="Customer Service", timezone="UTC"))
    with team.begin() as conn:  # the HR feed moved P1 to another team
        conn.execute(update(t.people).where(t.people.c.person_id == "P1").values(manager_id="M2"))
    send(team, sink, T0 + timedelta(days=5, hours=1))
    assert ("escalation", "5", "cancelled", "the recipient is no longer P1's manager") in p1_actions(team)


def test_own_escalation_too_old_is_dropped_under_the_digest_limit(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", OWN_ESCALATION)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    decide(team, mappings, T0 + timedelta(days=5))
    send(team, sink, T0 + timedelta(days=12))  # delivery was down a week
    assert (
        "escalation",
        "5",
        "cancelled",
        "dropped unsent: queued 2026-11-07, older than the 7-day limit for escalation messages "
        "(delivery.max_age_days, digest)",
    ) in p1_actions(team)
    assert _to_manager(sink, "escalation") == []


def test_preview_shows_the_manager_messages_as_delivery_sends_them(team: Engine, tmp_path: Path) -> None:
    from bridge import preview
    from bridge.facts import iter_facts
    from bridge.mapping.context import build_context

    both = OWN_ESCALATION.replace("after_days: 5", "after_days: 5\n  copy_manager_on_recommend: true")
    own = write_mapping(tmp_path / "own", "csat", both + OWN_COPY[OWN_COPY.index("  manager_copy:") :])
    digest = write_mapping(tmp_path / "digest", "csat", COPY)
    decide(team, own, T0)
    now = T0 + timedelta(days=11)
    found = {}
    with team.connect() as conn:
        (facts,) = iter_facts(conn, ["P1"])
        for name, mapping_set in (("own", own), ("digest", digest)):
            (mapping,) = mapping_set.mappings
            ctx = build_context(conn, [mapping], settings(), now)
            for p in preview.preview(conn, mapping, facts, ctx, now, ("escalation", "manager_copy")):
                found[(name, p.kind)] = p
    escalation, copy = found[("own", "escalation")], found[("own", "manager_copy")]
    assert escalation.recipient == "Mia Boss" and escalation.rendered is not None
    assert escalation.rendered.subject == "Please talk to P1 about Customer Conversations"
    assert escalation.rendered.text == "Hello Mia, P1 has been overdue since 2026-11-12."
    assert copy.rendered is not None and copy.rendered.subject == "New for P1: Customer Conversations"
    assert found[("digest", "escalation")].not_sent == "the mapping does not escalate to the manager"
    in_digest = found[("digest", "manager_copy")]
    assert in_digest.rendered is not None and "in the manager's daily digest" in in_digest.note
    assert "- P1 was recommended Customer Conversations on 2026-11-02" in in_digest.rendered.text


def test_validate_warns_of_a_template_its_settings_never_send(tmp_path: Path) -> None:
    from bridge.mapping.checks import check_configuration
    from bridge.mapping.loader import load_dir

    silent = OWN_COPY.replace("copy_manager_on_recommend: true", "copy_manager_on_recommend: false")
    mappings = write_mapping(tmp_path, "csat", silent)
    warnings = [str(f) for f in check_configuration(mappings, settings()) if f.severity == "warning"]
    assert warnings == [
        "warning: mapping csat: messages.manager_copy is never sent: follow_up.copy_manager_on_recommend is false"
    ]
    sent = write_mapping(tmp_path / "sent", "csat", OWN_COPY)
    shipped = load_dir(Path(__file__).parents[1] / "mappings")
    for mapping_set in (sent, shipped):
        assert [f for f in check_configuration(mapping_set, settings()) if "never sent" in f.message] == []


def test_one_manager_message_whichever_channel_it_takes(engine: Engine, tmp_path: Path) -> None:
    store(
        engine,
        CS101,
        Person(
            "M1", first_name="Mia", department="Customer Service", email="mia@example.org", timezone="UTC"
        ),
        *agent("P1", 3.6, user_id=11, manager_id="M1"),
    )
    link(engine, "P1", 11)
    mappings = write_mapping(tmp_path, "csat", OWN_COPY)
    sink = RecordingSink()
    cycle(engine, mappings, T0, sink)
    decide(engine, mappings, T0 + HOUR)  # no LMS account for the manager: the copy is an email
    store(engine, LmsUser("moodle", 90, username="mia"))
    link(engine, "M1", 90)  # the manager's account appears before the next cycle
    decide(engine, mappings, T0 + 2 * HOUR)
    copies = [a for a in rows(engine, t.actions) if a.purpose == "manager_copy"]
    assert [(a.kind, a.recipient_email) for a in copies] == [("email", "mia@example.org")]
