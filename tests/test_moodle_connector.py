"""The Moodle source and sink against the simulator over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge import clock
from bridge.errors import SourceError
from bridge.ports import (
    ActionKind,
    OutcomeStatus,
    OutgoingAction,
    PeopleKeys,
    PersonKeys,
    PullContext,
    PullScope,
    SiteIndex,
)
from bridge.records import Competency, CompetencyRating, Completion, Enrolment, LearningItem, LmsUser, Target
from connectors.moodle import sink as sink_module
from connectors.moodle.client import MoodleClient
from connectors.moodle.sim.server import Running
from connectors.moodle.simulator import start_in_thread
from connectors.moodle.sink import MoodleSink, reference
from connectors.moodle.source import LIKE_FALLBACK_LIMIT, MoodleSource
from connectors.simulation.org import generate
from tests.conftest import SIM_TOKEN

NOW = datetime(2026, 11, 3, 10, tzinfo=UTC)


class View:
    def __init__(
        self,
        linked: dict[int, str],
        known: set[tuple[int, int]] | None = None,
        courses: set[int] | None = None,
    ) -> None:
        self._linked, self._known, self._courses = linked, known or set(), courses or set()

    def linked_users(self) -> dict[int, str]:
        return self._linked

    def known_completions(self) -> set[tuple[int, int]]:
        return self._known

    def course_ids(self, refs: frozenset[str]) -> set[int]:
        return self._courses

    def index(self) -> SiteIndex:
        org = generate(1)
        return SiteIndex(
            users_by_idnumber={p.lms_idnumber: p.user_id for p in org.people if p.lms_idnumber},
            users_by_email={p.lms_email.lower(): p.user_id for p in org.people},
            courses_by_shortname={c.shortname: c.id for c in org.courses},
        )


def client(moodle: Running) -> MoodleClient:
    return MoodleClient("moodle", moodle.url, SIM_TOKEN, max_wait=0.01)


def test_users_found_by_idnumber_then_email_then_case_insensitive_email(moodle: Running) -> None:
    org = generate(1)
    people = [PersonKeys(p.person_id, p.employee_number, p.email) for p in org.people]
    source = MoodleSource("moodle", client(moodle))
    ctx = PullContext(cursors={}, scope=PullScope(), now=NOW, people=PeopleKeys(people), view=View({}))
    users = [r for b in source.pull_users(ctx) for r in b.records if isinstance(r, LmsUser)]
    found = {u.user_id for u in users}
    expected = {p.user_id for p in org.people if p.lms_idnumber or p.lms_email.lower() == p.email}
    assert expected <= found
    no_idnumber = [p for p in org.people if not p.lms_idnumber]
    assert no_idnumber and all(p.user_id in found for p in no_idnumber)


def test_the_case_insensitive_email_search_is_not_repeated_by_the_next_process(moodle: Running) -> None:
    """Each `sync --once` from cron is a new process: what the previous one tried is in the cursors."""
    org = generate(1)
    changed = datetime(2026, 10, 1, tzinfo=UTC)
    # People with no idnumber on the site, whose HR email differs in letter case: only the
    # case-insensitive search (a call per person) finds them.
    shouted = {p.person_id for p in org.people if not p.lms_idnumber}

    def keys(when: datetime) -> list[PersonKeys]:
        return [
            PersonKeys(
                p.person_id, p.employee_number, p.email.upper() if p.person_id in shouted else p.email, when
            )
            for p in org.people
        ]

    people = keys(changed)
    first = PullContext(cursors={}, scope=PullScope(), now=NOW, people=PeopleKeys(people), view=View({}))
    c = client(moodle)
    batches = list(MoodleSource("moodle", c).pull_users(first))
    assert c.calls["core_user_get_users"] >= len(shouted)
    cursors = {b.stream: b.cursor for b in batches if b.cursor is not None}
    assert shouted and "like_tried" in cursors
    c = client(moodle)
    later = PullContext(cursors=cursors, scope=PullScope(), now=NOW, people=PeopleKeys(people), view=View({}))
    list(MoodleSource("moodle", c).pull_users(later))
    assert c.calls["core_user_get_users"] == 0
    newer = keys(NOW)
    c = client(moodle)
    again = PullContext(cursors=cursors, scope=PullScope(), now=NOW, people=PeopleKeys(newer), view=View({}))
    list(MoodleSource("moodle", c).pull_users(again))
    assert c.calls["core_user_get_users"] > 0  # a new HR version of them is tried once more


def test_more_case_insensitive_searches_than_a_poll_allows_go_on_at_the_next_poll() -> None:
    """At most LIKE_FALLBACK_LIMIT searches a poll: the people not asked yet are asked at the next
    hourly retry of the unlinked (even by another process), so every one is found, instead of only
    the first ones for ever."""
    site = start_in_thread(SIM_TOKEN, people=1200)
    try:
        org = generate(1, people=1200)
        changed = datetime(2026, 10, 1, tzinfo=UTC)
        shouted = {p.person_id for p in org.people if not p.lms_idnumber}
        assert len(shouted) > LIKE_FALLBACK_LIMIT
        people = [
            PersonKeys(
                p.person_id,
                p.employee_number,
                p.email.upper() if p.person_id in shouted else p.email,
                changed,
            )
            for p in org.people
        ]
        by_user = {p.user_id: p.person_id for p in org.people}
        cursors: dict[str, str] = {}
        found: set[str] = set()
        asked = []
        for hour in range(3):  # each poll a new process (sync --once from cron), an hour apart
            c = client(site)
            now = NOW + timedelta(hours=hour)
            ctx = PullContext(
                cursors=cursors, scope=PullScope(), now=now, people=PeopleKeys(people), view=View({})
            )
            batches = list(MoodleSource("moodle", c).pull_users(ctx))
            cursors.update({b.stream: b.cursor for b in batches if b.cursor is not None})
            found |= {by_user[r.user_id] for b in batches for r in b.records if isinstance(r, LmsUser)}
            asked.append(c.calls["core_user_get_users"])
    finally:
        site.stop()
    assert shouted <= found  # those and the HR people with no account at all were asked
    assert asked[0] == LIKE_FALLBACK_LIMIT and 0 < asked[1] <= LIKE_FALLBACK_LIMIT and asked[2] == 0


def test_incremental_users_only_looks_up_unlinked_people(moodle: Running) -> None:
    org = generate(1)
    people = [PersonKeys(p.person_id, p.employee_number, p.email) for p in org.people]
    linked = {p.user_id: p.person_id for p in org.people[1:]}
    ctx = PullContext(
        cursors={"users": NOW.isoformat()},
        scope=PullScope(),
        now=NOW,
        people=PeopleKeys(people),
        view=View(linked),
    )
    c = client(moodle)
    users = [r for b in MoodleSource("moodle", c).pull_users(ctx) for r in b.records]
    assert [u.user_id for u in users] == [org.people[0].user_id]  # type: ignore[union-attr]
    assert c.total_calls() == 1


def test_courses_and_per_learner_completions(moodle: Running) -> None:
    c = client(moodle)
    source = MoodleSource("moodle", c, feed="per_learner")
    ctx = PullContext(
        cursors={},
        scope=PullScope(course_refs=frozenset({"CS-101", "ONB-101"})),
        now=NOW,
        view=View({100: "P000001", 101: "P000002"}, courses={2, 5}),
    )
    courses = [r for b in source.pull_courses(ctx) for r in b.records]
    assert all(isinstance(x, LearningItem) for x in courses) and len(courses) == 18
    cs101 = next(x for x in courses if x.shortname == "CS-101")  # type: ignore[union-attr]
    assert cs101.url == f"{moodle.url}/course/view.php?id=2"  # type: ignore[union-attr]
    records = [r for b in source.pull_completions(ctx) for r in b.records]
    enrolments = {(r.user_id, r.item_id) for r in records if isinstance(r, Enrolment)}
    completions = [r for r in records if isinstance(r, Completion)]
    assert enrolments <= {(u, cid) for u in (100, 101) for cid in (2, 5)}
    expected = {(u, cid) for (u, cid) in moodle.state.completions if u in (100, 101) and cid in (2, 5)}
    assert {(x.user_id, x.item_id) for x in completions} == expected
    # Completions already known are not asked for again.
    calls = c.calls["core_completion_get_course_completion_status"]
    ctx2 = PullContext(
        cursors={},
        scope=ctx.scope,
        now=NOW,
        view=View({100: "P000001", 101: "P000002"}, known=expected, courses={2, 5}),
    )
    list(source.pull_completions(ctx2))
    assert c.calls["core_completion_get_course_completion_status"] == calls


def message(key: str, user: int | None, body: str = "<p>Hello</p>") -> OutgoingAction:
    return OutgoingAction(
        key=key,
        kind=ActionKind.MESSAGE,
        site="moodle",
        recipient_user_id=user,
        recipient_email=None,
        subject="s",
        body_html=body,
        body_text="Hello",
    )


def test_sink_batches_messages_and_reports_each(moodle: Running) -> None:
    c = client(moodle)
    sink = MoodleSink("moodle", c, message_batch=50)
    actions = [message(f"k{i}", 100 + i) for i in range(60)] + [
        message("bad", 99999),
        message("long", 100, "x" * 5000),
    ]
    outcomes = {o.key: o for o in sink.deliver(actions)}
    assert c.calls["core_message_send_instant_messages"] == 2  # 62 messages, 2 calls
    assert all(outcomes[f"k{i}"].status is OutcomeStatus.SENT for i in range(60))
    assert outcomes["bad"].status is OutcomeStatus.DEAD and "doesn't exist" in (outcomes["bad"].error or "")
    assert outcomes["long"].status is OutcomeStatus.DEAD
    texts = [m["text"] for m in moodle.state.messages]
    assert reference("k0") in texts[0]


def test_reconcile_finds_a_sent_message_and_not_an_unsent_one(moodle: Running) -> None:
    sink = MoodleSink("moodle", client(moodle))
    sink.deliver([message("sent-before-crash", 105)])
    found = sink.reconcile(message("sent-before-crash", 105))
    assert found is not None and found.status is OutcomeStatus.SENT and found.external_id == "1"
    assert sink.reconcile(message("never-sent", 105)) is None


def test_enrolment_and_no_manual_instance(moodle: Running) -> None:
    sink = MoodleSink("moodle", client(moodle))
    no_manual = next(c for c in moodle.state.courses.values() if not c.manual_enrolment)

    def enrol(key: str, course: int) -> OutgoingAction:
        return OutgoingAction(
            key=key,
            kind=ActionKind.ENROL,
            site="moodle",
            recipient_user_id=101,
            recipient_email=None,
            subject="",
            body_html="",
            body_text="",
            target=Target("moodle", "course", course, "C"),
        )

    outcomes = {o.key: o for o in sink.deliver([enrol("ok", 2), enrol("no", no_manual.id)])}
    assert outcomes["ok"].status is OutcomeStatus.SENT
    assert outcomes["no"].status is OutcomeStatus.DEAD and "no enabled manual enrolment" in (
        outcomes["no"].error or ""
    )
    assert sink.reconcile(enrol("ok", 2)) is not None
    assert sink.reconcile(enrol("no", no_manual.id)) is None


def test_enrolment_with_a_role_and_an_end_date(moodle: Running) -> None:
    moodle.state.assignable_roles.add(4)  # the site allows the lmsbridge role to assign role 4 too
    sink = MoodleSink("moodle", client(moodle))
    action = OutgoingAction(
        key="dated",
        kind=ActionKind.ENROL,
        site="moodle",
        recipient_user_id=102,
        recipient_email=None,
        subject="",
        body_html="",
        body_text="",
        target=Target("moodle", "course", 2, "C"),
        options={"roleid": 4, "days": 30},
    )
    clock.set_now(datetime(2026, 11, 3, 10, tzinfo=UTC))
    try:
        (outcome,) = sink.deliver([action])
    finally:
        clock.set_now(None)
    assert outcome.status is OutcomeStatus.SENT
    (written,) = [e for e in moodle.state.enrolled if e["userid"] == 102]
    start = int(datetime(2026, 11, 3, 10, tzinfo=UTC).timestamp())
    assert (written["roleid"], written["timestart"], written["timeend"]) == (4, start, start + 30 * 86400)


def test_report_feed_reads_newest_first_and_stops_at_the_cursor(moodle: Running) -> None:
    c = client(moodle)
    source = MoodleSource("moodle", c)
    assert source.feed().name == "report"
    linked = {p.user_id: p.person_id for p in generate(1).people}
    ctx = PullContext(cursors={}, scope=PullScope(), now=NOW, view=View(linked))
    first = list(source.pull_completions(ctx))
    completions = {
        (r.user_id, r.item_id): r.completed_at for b in first for r in b.records if isinstance(r, Completion)
    }
    people = {p.user_id for p in generate(1).people if p.lms_idnumber or p.lms_email}
    expected = {k: v for k, v in moodle.state.completions.items() if k[0] in people}
    assert set(completions) == set(expected)
    assert all(
        completions[k] == datetime.fromtimestamp(v - v % 60, UTC) for k, v in expected.items()
    )  # minute precision
    cursor = first[-1].cursor
    assert cursor == max(completions.values()).isoformat()
    # Steady state: one new completion since the cursor costs one call.
    moodle.state.complete(100, 4, int(NOW.timestamp()))
    before = c.calls["core_reportbuilder_retrieve_report"]
    again = list(
        source.pull_completions(
            PullContext(cursors={"completions": cursor}, scope=PullScope(), now=NOW, view=View(linked))
        )
    )
    new = [r for b in again for r in b.records if isinstance(r, Completion)]
    assert c.calls["core_reportbuilder_retrieve_report"] - before == 1
    assert (100, 4) in {(r.user_id, r.item_id) for r in new}


def test_report_with_wrong_columns_is_a_clear_configuration_error(moodle: Running) -> None:
    from connectors.moodle.feeds import ReportColumns

    source = MoodleSource(
        "moodle",
        client(moodle),
        report_columns=ReportColumns("Employee", "Email address", "Course short name", "Time completed"),
    )
    with pytest.raises(SourceError, match="has no column 'Employee'"):
        list(source.pull_completions(PullContext(cursors={}, scope=PullScope(), now=NOW, view=View({}))))


def test_per_course_feed_reads_only_the_courses_in_scope(moodle: Running) -> None:
    c = client(moodle)
    source = MoodleSource("moodle", c, feed="per_course")
    linked = {p.user_id: p.person_id for p in generate(1).people}
    ctx = PullContext(
        cursors={},
        scope=PullScope(course_refs=frozenset({"CS-101"})),
        now=NOW,
        view=View(linked, courses={2}),
    )
    records = [r for b in source.pull_completions(ctx) for r in b.records]
    assert {r.item_id for r in records} == {2}
    assert c.calls["core_enrol_get_enrolled_users"] == 1


def test_older_sites_fall_back_to_the_per_learner_feed() -> None:
    from connectors.moodle.simulator import start_in_thread

    handle = start_in_thread(SIM_TOKEN, release="3.11")
    try:
        assert MoodleSource("moodle", MoodleClient("m", handle.url, SIM_TOKEN)).feed().name == "per_learner"
    finally:
        handle.stop()


def test_competency_ratings_from_learning_plans(moodle: Running) -> None:
    source = MoodleSource("moodle", client(moodle))
    cs_agent = next(p for p in generate(1).people if p.department == "Customer Service")
    ctx = PullContext(
        cursors={},
        scope=PullScope(competencies=True),
        now=NOW,
        view=View({cs_agent.user_id: cs_agent.person_id}),
    )
    records = [r for b in source.pull_competencies(ctx) for r in b.records]
    competencies = [r for r in records if isinstance(r, Competency)]
    assert len(competencies) == 6
    # Where the learner works on it: their own learning plans page (a real page on Moodle).
    assert {c.url for c in competencies} == {f"{moodle.url}/admin/tool/lp/plans.php"}
    ratings = {r.competency_id: r for r in records if isinstance(r, CompetencyRating)}
    assert len(ratings) == 6
    expected = dict(generate(1).plan_ratings[cs_agent.user_id])
    assert {cid: r.proficient for cid, r in ratings.items()} == {
        cid: (None if g is None else g == 2) for cid, g in expected.items()
    }


class PartialIndexView(View):
    """A view whose stored users lack some people (their accounts were not found yet)."""

    def __init__(self, hidden: set[int]) -> None:
        super().__init__({})
        self.hidden = hidden

    def index(self) -> SiteIndex:
        full = super().index()
        return SiteIndex(
            users_by_idnumber={k: v for k, v in full.users_by_idnumber.items() if v not in self.hidden},
            users_by_email={k: v for k, v in full.users_by_email.items() if v not in self.hidden},
            courses_by_shortname=full.courses_by_shortname,
        )


def test_report_rows_of_hr_people_not_linked_yet_are_read_again_not_lost(moodle: Running) -> None:
    """Issue 13: the cursor never passes a completion it could not attach to an HR person."""
    org = generate(1)
    people = [PersonKeys(p.person_id, p.employee_number, p.email) for p in org.people]
    done = sorted(moodle.state.completions.items(), key=lambda kv: kv[1])
    (old_user, old_course), old_time = done[0]  # the oldest completion on the site
    source = MoodleSource("moodle", client(moodle))
    hidden = PartialIndexView({old_user})
    first = list(
        source.pull_completions(PullContext({}, PullScope(), NOW, people=PeopleKeys(people), view=hidden))
    )
    stored = {(r.user_id, r.item_id) for b in first for r in b.records if isinstance(r, Completion)}
    assert (old_user, old_course) not in stored
    cursor = first[-1].cursor
    assert cursor is not None and datetime.fromisoformat(cursor) <= datetime.fromtimestamp(old_time, UTC)
    # The account is found later: the next poll, from the held cursor, stores the old completion.
    again = list(
        source.pull_completions(
            PullContext({"completions": cursor}, PullScope(), NOW, people=PeopleKeys(people), view=View({}))
        )
    )
    assert (old_user, old_course) in {(r.user_id, r.item_id) for b in again for r in b.records}
    assert datetime.fromisoformat(again[-1].cursor or "") > datetime.fromisoformat(cursor)


def enrol(user: int, key: str = "") -> OutgoingAction:
    """An enrolment of ``user`` in course 2 (key ``enrol-USER`` unless given)."""
    return OutgoingAction(
        key=key or f"enrol-{user}",
        kind=ActionKind.ENROL,
        site="moodle",
        recipient_user_id=user,
        recipient_email=None,
        subject="",
        body_html="",
        body_text="",
        target=Target("moodle", "course", 2, "C"),
    )


def test_enrolments_the_site_already_has_are_left_as_the_site_keeps_them(moodle: Running) -> None:
    """Issue 13: re-enrolling rewrites an enrolment (re-activated, end date removed): never send it."""
    sink = MoodleSink("moodle", client(moodle))
    active, suspended, new = 103, 104, 105
    for user in (active, suspended):
        moodle.state.enrolments.setdefault(user, {})[2] = 1_700_000_000
        moodle.state.participants[2].add(user)
    moodle.state.suspended_enrolments.add((suspended, 2))
    for user in (new,):
        moodle.state.enrolments.get(user, {}).pop(2, None)
        moodle.state.participants[2].discard(user)

    outcomes = {o.key: o for o in sink.deliver([enrol(active), enrol(suspended), enrol(new)])}
    assert outcomes[f"enrol-{new}"].status is OutcomeStatus.SENT
    assert outcomes[f"enrol-{active}"].status is OutcomeStatus.SKIPPED
    assert outcomes[f"enrol-{active}"].error == "already enrolled on the site"
    assert outcomes[f"enrol-{suspended}"].status is OutcomeStatus.SKIPPED
    assert "suspended on the site" in (outcomes[f"enrol-{suspended}"].error or "")
    assert (suspended, 2) in moodle.state.suspended_enrolments  # not re-activated
    assert [e["userid"] for e in moodle.state.enrolled] == [new]


def test_a_course_listing_is_read_once_a_minute_and_keeps_the_sinks_own_enrolments(
    moodle: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch's already-enrolled check lists the whole course: the listing is kept for
    PARTICIPANTS_FRESH_SECONDS (with the enrolments this sink made), then read again."""
    c = client(moodle)
    sink = MoodleSink("moodle", c)
    now = [1000.0]
    monkeypatch.setattr(sink_module.time, "monotonic", lambda: now[0])
    first, second, third = 105, 106, 107
    for user in (first, second, third):
        moodle.state.enrolments.get(user, {}).pop(2, None)
        moodle.state.participants[2].discard(user)

    listings = lambda: c.calls["core_enrol_get_enrolled_users"]  # noqa: E731
    assert sink.deliver([enrol(first)])[0].status is OutcomeStatus.SENT and listings() == 2
    again = sink.deliver([enrol(first, "again"), enrol(second)])  # within the minute: no listing
    assert [o.status for o in again] == [OutcomeStatus.SKIPPED, OutcomeStatus.SENT] and listings() == 2
    moodle.state.suspended_enrolments.add((third, 2))  # changed on the site meanwhile
    moodle.state.participants[2].add(third)
    now[0] += sink_module.PARTICIPANTS_FRESH_SECONDS
    (late,) = sink.deliver([enrol(third)])
    assert late.status is OutcomeStatus.SKIPPED and "suspended" in (late.error or "") and listings() == 4


class EnrolmentView(View):
    def __init__(self, stored: set[tuple[int, int]]) -> None:
        super().__init__({}, courses={2})
        self.stored = stored

    def active_enrolments(self, course_ids: set[int]) -> set[tuple[int, int]]:
        return {pair for pair in self.stored if pair[1] in course_ids}


def test_report_feed_reads_enrolment_state_hourly_so_reminders_can_stop(moodle: Running) -> None:
    """Issue 13, item 9: the report has no enrolment state; unenrolled and suspended are seen."""
    c = client(moodle)
    source = MoodleSource("moodle", c)
    participants = set(moodle.state.participants[2])
    gone, paused = sorted(participants)[:2]
    moodle.state.participants[2].discard(gone)
    moodle.state.enrolments[gone].pop(2, None)
    moodle.state.suspended_enrolments.add((paused, 2))
    view = EnrolmentView({(gone, 2), (paused, 2)})
    ctx = PullContext({}, PullScope(course_refs=frozenset({"x"})), NOW, view=view)
    (batch,) = list(source.pull_enrolments(ctx))
    states = {(r.user_id, r.item_id): r.active for r in batch.records if isinstance(r, Enrolment)}
    assert states[(gone, 2)] is False and states[(paused, 2)] is False
    assert sum(states.values()) == len(participants) - 2
    calls = c.calls["core_enrol_get_enrolled_users"]
    assert calls == 2  # everyone, and those suspended: two calls per course in scope
    later = PullContext({"enrolments": batch.cursor}, PullScope(course_refs=frozenset({"x"})), NOW, view=view)
    assert list(source.pull_enrolments(later)) == []  # within the hour: no call at all
    assert c.calls["core_enrol_get_enrolled_users"] == calls


def test_a_rating_outside_any_plan_is_read_for_the_competencies_the_mappings_name(moodle: Running) -> None:
    """Issue 13, items 11 and 12: direct ratings count; one call per learner and named competency."""
    c = client(moodle)
    source = MoodleSource("moodle", c)
    org = generate(1)
    agent = next(p for p in org.people if p.department == "Customer Service")
    other = next(p for p in org.people if p.department != "Customer Service" and p.user_id != agent.user_id)
    in_plans = {cid for cid, _g in org.plan_ratings.get(other.user_id, [])}
    competencies = [
        r
        for b in source.pull_competencies(
            PullContext({}, PullScope(competencies=True, competency_refs=frozenset()), NOW, view=View({}))
        )
        for r in b.records
        if isinstance(r, Competency)
    ]
    direct = next(x for x in competencies if x.competency_id not in in_plans)
    moodle.state.user_competency[(other.user_id, direct.competency_id)] = 2  # rated outside a plan
    scope = PullScope(
        competencies=True,
        competency_refs=frozenset({direct.shortname}),
        competency_people=lambda: frozenset({other.person_id}),
    )
    linked = {agent.user_id: agent.person_id, other.user_id: other.person_id}
    before = c.calls["tool_lp_data_for_user_competency_summary"]
    records = [
        r for b in source.pull_competencies(PullContext({}, scope, NOW, view=View(linked))) for r in b.records
    ]
    ratings = [r for r in records if isinstance(r, CompetencyRating)]
    assert [(r.user_id, r.competency_id, r.proficient) for r in ratings] == [
        (other.user_id, direct.competency_id, True)
    ]
    assert c.calls["tool_lp_data_for_user_competency_summary"] - before == 1
    assert c.calls["core_competency_list_user_plans"] == 0
