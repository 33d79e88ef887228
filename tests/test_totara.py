"""The Totara connector against the Totara simulator over real HTTP on 127.0.0.1: OAuth 2.0,
GraphQL queries and mutations, paging, complexity limits and budgets, errors, discovery, the
replica feeds, the sink's routes, doctor, and a full sync through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from sqlalchemy import Engine

from bridge import clock
from bridge.errors import Remedy
from bridge.ports import ActionKind, OutcomeStatus, OutgoingAction, PullContext, PullScope
from bridge.records import (
    CompetencyRating,
    Completion,
    ItemKind,
    LearningItem,
    LmsManager,
    LmsUser,
    Person,
    Target,
)
from connectors.moodle.client import MoodleClient
from connectors.totara import errors
from connectors.totara.graphql import ComplexityBudget, GraphQLClient, operation
from connectors.totara.oauth import TokenSource
from connectors.totara.replica import ReplicaReader
from connectors.totara.sim.server import RunningTotara
from connectors.totara.simulator import start_in_thread
from connectors.totara.sink import TotaraSink
from connectors.totara.source import TotaraSource

ROOT = Path(__file__).resolve().parents[1]
CLIENT_ID = "lmsbridge-test"
SECRET = "client-secret-do-not-log-4711"
TOKEN = "legacy-token-0123456789abcdef"
NOW = datetime(2026, 11, 3, 10, tzinfo=UTC)


def start_site(**options: Any) -> RunningTotara:
    """A simulated Totara site in this process, its clock pinned to ``NOW``: the daemon runs in a
    subprocess with ``LMSBRIDGE_NOW`` at ``NOW`` (see :func:`run`), and a real site's clock agrees
    with the daemon's, so the site stamps its data (replica state, changes, enrolments) at ``NOW``."""
    clock.set_now(NOW)
    return start_in_thread(CLIENT_ID, SECRET, token=TOKEN, **options)


@pytest.fixture
def totara(tmp_path: Path) -> Iterator[RunningTotara]:
    handle = start_site(replica=tmp_path / "replica.db")
    yield handle
    handle.stop()


def api(site: RunningTotara, secret: str = SECRET, **kw: Any) -> GraphQLClient:
    session = requests.Session()
    return GraphQLClient(
        "totara", site.url, TokenSource("totara", site.url, CLIENT_ID, secret, session), session, **kw
    )


def control(site: RunningTotara, path: str, body: dict[str, Any] | None = None) -> Any:
    response = requests.post(f"{site.url}/_simulator/{path}", json=body or {}, timeout=5)
    response.raise_for_status()
    return response.json()


def state(site: RunningTotara) -> dict[str, Any]:
    return requests.get(f"{site.url}/_simulator/state", timeout=5).json()  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- OAuth 2.0


def test_token_is_cached_until_near_expiry_and_refreshed(totara: RunningTotara) -> None:
    client = api(totara)
    for _ in range(3):
        assert client.execute("status")["status"] == "ok"
    assert client.tokens.fetched == 1
    control(totara, "limits", {"token_lifetime": 2})
    client.tokens.invalidate(client.tokens.token())
    client.execute("status")  # a 2-second token: cached for 1 s (half its life at most)
    time.sleep(1.2)
    client.execute("status")
    assert client.tokens.fetched == 3


def test_a_token_revoked_mid_run_is_replaced_once_and_the_call_succeeds(totara: RunningTotara) -> None:
    client = api(totara)
    client.execute("status")
    control(totara, "expire-tokens")
    assert client.execute("status")["status"] == "ok"
    assert client.tokens.fetched == 2
    assert client.calls["lmsbridge_status"] == 3  # the refused call, then the retry


def test_a_bad_secret_is_one_clear_error_without_the_secret(totara: RunningTotara) -> None:
    client = api(totara, secret="wrong-secret-1234")
    with pytest.raises(errors.ClientRejected) as caught:
        client.execute("status")
    text = str(caught.value)
    assert "rejected the API client" in text and "invalid_client" in text
    assert "wrong-secret-1234" not in text and "\n" not in text
    assert caught.value.remedy is Remedy.FIX_CONFIG


@responses.activate
def test_token_errors_are_read_from_the_body_whatever_the_status() -> None:
    responses.post(
        "https://learn.example.org/totara/oauth2/token.php",
        json={"error": "invalid_client", "error_description": "Client authentication failed"},
        status=200,
    )
    tokens = TokenSource("t", "https://learn.example.org", "id", "s3cr3t", requests.Session())
    with pytest.raises(errors.ClientRejected, match="Client authentication failed"):
        tokens.token()
    assert "client_secret=s3cr3t" in str(responses.calls[0].request.body)  # form body, never the URL
    assert "s3cr3t" not in responses.calls[0].request.url


# ---------------------------------------------------------------------- queries, paging, mutations


def test_users_are_paged_by_cursor_to_the_end(totara: RunningTotara) -> None:
    client = api(totara, max_page=25)
    pages = list(client.pages("users"))
    users = [u for page in pages for u in page]
    assert len(pages) == 4 and len(users) == 84
    assert len({u["id"] for u in users}) == 84  # no page repeated or skipped
    assert client.calls["lmsbridge_users"] == 4


def test_page_size_keeps_each_query_under_the_sites_complexity_limit(totara: RunningTotara) -> None:
    control(totara, "limits", {"max_query_complexity": 120})
    client = api(totara, max_query_complexity=120)
    size = client.page_size("users")
    assert size == (int(120 * 0.9) - 5 - 3) // operation("users").item_fields
    users = [u for page in client.pages("users") for u in page]
    assert len(users) == 84


def test_a_query_above_the_complexity_limit_is_a_clear_error(totara: RunningTotara) -> None:
    control(totara, "limits", {"max_query_complexity": 50})
    client = api(totara, max_query_complexity=6000)  # the client was told the wrong limit
    with pytest.raises(errors.QueryTooComplex, match="maximum allowed complexity of 50"):
        next(client.pages("users"))


def test_the_budget_paces_calls_before_the_site_refuses() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    budget = ComplexityBudget(1000, headroom=0.8, now=lambda: clock[0], sleep=sleep)
    for _ in range(4):
        budget.take(300)  # two fit under 80% of 1000; the third waits for the first minute to pass
    assert len(slept) == 1 and 59 < slept[0] <= 60.1
    assert budget.in_window() == 600


def test_a_spent_site_budget_answers_429_which_is_retried(totara: RunningTotara) -> None:
    control(totara, "limits", {"client_rate_limit": 100})
    client = api(totara, attempts=1)
    client.execute("status")
    with pytest.raises(errors.RateLimited) as caught:
        for _ in range(20):
            client.execute("users", {"query": {"pagination": {"cursor": "", "limit": 20}}}, items=20)
    assert caught.value.remedy is Remedy.RETRY
    assert state(totara)["graphql"]["refused_429"] >= 1


def test_enrol_mutation_and_its_idempotent_answer(totara: RunningTotara) -> None:
    client = api(totara)
    course = next(c for c in totara.state.courses.values() if c.manual_enrolment)
    user = next(
        u
        for u in sorted(totara.state.users)
        if u >= 100 and course.id not in totara.state.enrolments.get(u, {})
    )
    first = client.execute("enrol", {"input": {"user": {"id": user}, "course": {"id": course.id}}})
    second = client.execute("enrol", {"input": {"user": {"id": user}, "course": {"id": course.id}}})
    assert first["success"] and not first["was_already_enrolled"]
    assert second["was_already_enrolled"]


def test_graphql_errors_become_typed_errors_with_the_detail_from_either_place() -> None:
    old = {"message": "Invalid parameter value detected", "debugMessage": "course 9 not found"}
    new = {
        "message": "Invalid parameter value detected",
        "extensions": {"debugMessage": "course 9 not found"},
    }
    for body in (old, new):
        assert errors.error_message(body) == "Invalid parameter value detected (course 9 not found)"
    expired = errors.from_errors("t", "op", [{"message": errors.EXPIRED_TOKEN + ". Ensure..."}])
    assert isinstance(expired, errors.TokenExpired) and expired.remedy is Remedy.RETRY
    header = errors.from_errors(
        "t", "op", [{"message": "The request did not contain the required Authorization header."}]
    )
    assert "strips the Authorization header" in str(header)


def test_a_query_error_from_the_site_names_the_operation(totara: RunningTotara) -> None:
    client = api(totara)
    # Totara hides a resolver's exception behind "Internal server error", the detail in debugMessage
    with pytest.raises(
        errors.TotaraError,
        match=r"lmsbridge_enrol: Internal server error \(Manual enrolment plugin is not enabled\.\)",
    ):
        course = next(c for c in totara.state.courses.values() if not c.manual_enrolment)
        client.execute("enrol", {"input": {"user": {"id": 100}, "course": {"id": course.id}}})


# ---------------------------------------------------------------------- discovery


@pytest.mark.parametrize(("release", "has_enrol"), [("17.3", False), ("18", True), ("19", True)])
def test_operations_are_discovered_by_probing_when_introspection_is_off(
    tmp_path: Path, release: str, has_enrol: bool
) -> None:
    handle = start_site(release=release)
    try:
        client = api(handle)
        assert client.available("users") and client.available("enrol") is has_enrol
        assert client.has("core_course_courses") is has_enrol  # not invented where the site lacks it
        assert client.discovery == "probing"
        assert client.version() == release.split(".", maxsplit=1)[0]
    finally:
        handle.stop()


def test_operations_come_from_introspection_where_the_site_allows_it(totara: RunningTotara) -> None:
    control(totara, "limits", {"introspection": True})
    client = api(totara)
    assert client.available("courses") and client.discovery == "introspection"
    assert not any(name.startswith("lmsbridge_probe") for name in client.calls)


# ---------------------------------------------------------------------- replica, source and sink


def test_replica_streams_programs_certifications_and_achievements_incrementally(
    totara: RunningTotara, tmp_path: Path
) -> None:
    reader = ReplicaReader("totara", f"sqlite:///{tmp_path / 'replica.db'}", site_url=totara.url)
    assert reader.check() == []
    programs = reader.programs()
    assert {(p.kind, p.idnumber) for p in programs} == {
        (ItemKind.PROGRAM, "PROG-CX"),
        (ItemKind.CERTIFICATION, "CERT-SAFETY"),
    }
    certs = [r for records, _ in reader.certification_completions(0) for r in records]
    assert certs and all(isinstance(c, Completion) and c.expires_at for c in certs)
    lapsed = [c for c in certs if isinstance(c, Completion) and c.expires_at and c.expires_at <= NOW]
    assert lapsed and all(isinstance(c, Completion) and c.window_opens_at is None for c in lapsed)
    assert len(certs) == len(
        totara.simulator.learning.certifications
    )  # never-certified rows are not completions
    newest = max(high for _, high in reader.certification_completions(0))
    assert [r for records, _ in reader.certification_completions(newest) for r in records] == []
    when = int(NOW.timestamp())
    control(totara, "certify", {"userid": 101, "certifid": 1, "timecompleted": when})
    fresh = [r for records, _ in reader.certification_completions(newest) for r in records]
    assert [(c.user_id, c.completed_at) for c in fresh if isinstance(c, Completion)] == [(101, NOW)]
    ratings = [r for records, _ in reader.achievements(0) for r in records]
    assert ratings and all(isinstance(r, CompetencyRating) for r in ratings)


def test_a_missing_replica_table_is_named(tmp_path: Path) -> None:
    reader = ReplicaReader("totara", f"sqlite:///{tmp_path / 'empty.db'}")
    assert "ttr_prog_completion" in reader.check()


class View:
    def __init__(self) -> None:
        self.linked: dict[int, str] = {}

    def linked_users(self) -> dict[int, str]:
        return self.linked

    def known_completions(self) -> set[tuple[int, int]]:
        return set()

    def course_ids(self, refs: Any) -> set[int]:
        return set()

    def index(self) -> Any:
        return None


def test_source_reads_users_and_courses_by_api_and_the_rest_from_the_replica(
    totara: RunningTotara, tmp_path: Path
) -> None:
    source = TotaraSource(
        "totara",
        api=api(totara),
        legacy=None,
        replica=ReplicaReader("totara", f"sqlite:///{tmp_path / 'replica.db'}"),
        lookback=timedelta(0),  # the default re-reads a day behind the cursor for late writes
    )
    ctx = PullContext(cursors={}, scope=PullScope(competencies=True), now=NOW, view=View())  # type: ignore[arg-type]
    batches = list(source.pull(ctx))
    kinds = {type(r) for b in batches for r in b.records}
    assert {LmsUser, LearningItem, Completion, CompetencyRating} <= kinds
    cursors = {b.stream: b.cursor for b in batches if b.cursor is not None}
    assert set(cursors) >= {
        "users",
        "courses",
        "completions",
        "programs",
        "program_completions",
        "certification_completions",
        "ratings",
    }
    again = list(
        source.pull(PullContext(cursors=cursors, scope=PullScope(competencies=True), now=NOW, view=View()))
    )  # type: ignore[arg-type]
    assert sum(len(b.records) for b in again) == 0  # nothing changed, nothing re-read


def outgoing(kind: ActionKind, target: Target, user: int = 140) -> OutgoingAction:
    return OutgoingAction(
        key=f"k/{kind}/{target.key}",
        kind=kind,
        site="totara",
        recipient_user_id=user,
        recipient_email=None,
        subject="s",
        body_html="<p>hello</p>",
        body_text="hello",
        target=target,
    )


def test_sink_routes_messages_enrolments_audiences_and_refuses_plans_with_reasons(
    totara: RunningTotara, tmp_path: Path
) -> None:
    reader = ReplicaReader("totara", f"sqlite:///{tmp_path / 'replica.db'}")
    sink = TotaraSink(
        "totara",
        api=api(totara),
        legacy=MoodleClient("totara", totara.url, TOKEN),
        audiences={"program:PROG-CX": "AUD-PROG-CX"},
        idnumbers=lambda: {(p.kind.value, p.item_id): p.idnumber or "" for p in reader.programs()},
    )
    course = next(c for c in totara.state.courses.values() if c.manual_enrolment)
    outcomes = sink.deliver(
        [
            outgoing(ActionKind.MESSAGE, Target("totara", "course", course.id)),
            outgoing(ActionKind.ENROL, Target("totara", "course", course.id)),
            outgoing(ActionKind.ENROL, Target("totara", "program", 1, "Customer Experience Programme")),
            outgoing(
                ActionKind.ENROL, Target("totara", "certification", 2, "Warehouse Safety Certification")
            ),
            outgoing(ActionKind.PLAN, Target("totara", "competency", 1)),
        ]
    )
    by_kind = [(o.status, o.error or "") for o in outcomes]
    assert [s for s, _ in by_kind[:3]] == [OutcomeStatus.SENT] * 3
    assert by_kind[3][0] is OutcomeStatus.DEAD and "sites.totara.audiences" in by_kind[3][1]
    assert by_kind[4][0] is OutcomeStatus.DEAD and "learning plans" in by_kind[4][1]
    seen = state(totara)
    assert seen["audiences"]["AUD-PROG-CX"] == [140]
    assert len(seen["messages"]) == 1 and seen["graphql"]["operations"].get("lmsbridge_enrol") == 1


# ---------------------------------------------------------------------- CLI: doctor and sync


def config(
    tmp_path: Path, site: RunningTotara, mappings: Path, *, replica: bool = True, audiences: bool = True
) -> Path:
    path = tmp_path / "lmsbridge.toml"
    replica_line = f'replica_url = "sqlite:///{tmp_path / "replica.db"}"' if replica else ""
    path.write_text(
        f"""
[store]
url = "sqlite:///{tmp_path / "state.db"}"
[mappings]
dir = "{mappings}"
[metrics.safety_incidents]
direction = "lower"
[sites.totara]
type = "totara"
url = "{site.url}"
client_id = "{CLIENT_ID}"
{replica_line}
{'audiences = { "certification:CERT-SAFETY" = "AUD-CERT-SAFETY" }' if audiences else ""}
[feeds.hr]
type = "csv"
people = "{ROOT / "examples/hr/people.csv"}"
measurements = "{ROOT / "examples/hr/kpis.csv"}"
"""
    )
    return path


def run(cfg: Path, *args: str, secret: str = SECRET) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "LMSBRIDGE_NOW": NOW.isoformat(),
        "LMSBRIDGE_SITES__TOTARA__CLIENT_SECRET": secret,
        "LMSBRIDGE_SITES__TOTARA__TOKEN": TOKEN,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "bridge", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


@pytest.fixture
def certification_mapping(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (ROOT / "examples/mixed/mappings/warehouse-safety-certification.yaml").read_text()
    (rules / "cert.yaml").write_text(text)
    return rules


def test_sync_recommends_recertification_and_assigns_through_the_audience(
    totara: RunningTotara, tmp_path: Path, certification_mapping: Path
) -> None:
    cfg = config(tmp_path, totara, certification_mapping)
    assert run(cfg, "db", "upgrade").returncode == 0
    result = run(cfg, "sync", "--once")
    assert result.returncode == 0, result.stderr
    assert "expired on" in result.stdout and "recertification window open since" in result.stdout
    assert "never certified" in result.stdout
    members = state(totara)["audiences"]["AUD-CERT-SAFETY"]
    assert members, "certifications are assigned through the audience"
    again = run(cfg, "sync", "--once")
    assert again.returncode == 0 and state(totara)["audiences"]["AUD-CERT-SAFETY"] == members
    assert SECRET not in result.stdout + result.stderr + again.stdout + again.stderr


def test_a_channel_totara_cannot_take_falls_back_to_a_message_never_silently(
    totara: RunningTotara, tmp_path: Path, certification_mapping: Path
) -> None:
    cert = certification_mapping / "cert.yaml"
    cert.write_text(cert.read_text().replace("channels: [message, enrol]", "channels: [enrol]"))
    cfg = config(tmp_path, totara, certification_mapping, audiences=False)
    assert run(cfg, "db", "upgrade").returncode == 0
    assert run(cfg, "sync", "--once").returncode == 0
    import sqlite3

    with sqlite3.connect(tmp_path / "state.db") as db:
        states = dict(
            db.execute("select kind, state from actions where purpose = 'recommend' group by kind").fetchall()
        )
        (reason,) = {r for (r,) in db.execute("select last_error from actions where kind = 'enrol'")}
    assert states["enrol"] == "suppressed" and "no audience is configured" in reason
    assert "told by message instead" in reason
    assert states["message"] in ("sent", "pending")  # the learner hears about it all the same
    assert state(totara)["messages"] or states["message"] == "pending"


def test_doctor_reports_routes_and_what_is_missing(
    totara: RunningTotara, tmp_path: Path, certification_mapping: Path
) -> None:
    good = run(config(tmp_path, totara, certification_mapping), "doctor")
    assert good.returncode == 0, good.stdout
    assert "19 or later" in good.stdout and "program assignment by audience" in good.stdout
    no_replica = run(config(tmp_path, totara, certification_mapping, replica=False), "doctor")
    assert no_replica.returncode == 1
    assert "no Totara API returns other learners' program" in no_replica.stdout
    bad = run(config(tmp_path, totara, certification_mapping), "doctor", secret="not-the-secret-42")
    assert bad.returncode == 1 and "rejected the API client" in bad.stdout
    assert "not-the-secret-42" not in bad.stdout + bad.stderr


def test_mixed_site_demo_gives_one_person_one_set_of_recommendations(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples/mixed_demo.py")],
        env={**os.environ, "COLUMNS": "200", "LMSBRIDGE_DEMO_RUN": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "has an account on both sites" in result.stdout
    why = result.stdout.split("has an account on both sites")[1]
    assert "csat-customer-conversations" in why and "customer-experience-programme" in why
    assert "│ moodle │" in why and "│ totara │" in why
    assert json.dumps(SECRET) not in result.stdout


# ---------------------------------------------------------------------- webhooks (Totara 19.1+)


def test_a_signed_webhook_makes_the_daemon_pull_the_site_now(
    totara: RunningTotara, tmp_path: Path, certification_mapping: Path
) -> None:
    import hashlib
    import hmac

    from connectors.simulation.loopback import free_port
    from tests.test_daemon import Service, get, wait_for

    port = free_port()
    cfg = config(tmp_path, totara, certification_mapping)
    cfg.write_text(
        cfg.read_text().replace('client_id = "', 'webhook_secret = "hook-secret-123"\nclient_id = "')
        + f'\n[daemon]\nlisten = "127.0.0.1:{port}"\npull_every_seconds = 3600\ndecide_every_seconds = 3600\n'
    )
    assert run(cfg, "db", "upgrade").returncode == 0
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LMSBRIDGE_")},
        "LMSBRIDGE_NOW": NOW.isoformat(),
        "LMSBRIDGE_LOG__FORMAT": "json",
        "LMSBRIDGE_SITES__TOTARA__CLIENT_SECRET": SECRET,
        "LMSBRIDGE_SITES__TOTARA__TOKEN": TOKEN,
    }
    service = Service(cfg, environment)
    try:
        wait_for(lambda: service.log_path.read_text().count('"source": "totara"') >= 1)
        body = json.dumps({"event": "certification_completed", "userid": 105}).encode()

        def post(signature: str) -> int:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/webhooks/totara",
                data=body,
                headers={"X-Totara-Signature": signature},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return int(response.status)
            except urllib.error.HTTPError as exc:
                return int(exc.code)

        assert post("0" * 64) == 401
        assert get(port, "/healthz")[0] == 200
        good = hmac.new(b"hook-secret-123", body, hashlib.sha256).hexdigest()
        assert post(good) == 202
        wait_for(lambda: service.log_path.read_text().count('"source": "totara"') >= 2)
        # The same signed event replayed 20 times: accepted, but no second early pull.
        assert all(post(good) == 202 for _ in range(20))
        time.sleep(2)
        pulls = service.log_path.read_text().count('"source": "totara"')
    finally:
        code, log = service.stop()
    assert code == 0
    assert pulls == 2, "a replayed webhook costs the site at most one early pull per 30 s"
    assert "webhook refused: bad or missing signature" in log and "hook-secret-123" not in log


# ---------------------------------------------------------------------- Totara's manager relation


def test_job_assignments_give_each_user_their_manager_by_api_or_replica(
    totara: RunningTotara, tmp_path: Path
) -> None:
    control(totara, "manager", {"userid": 130, "manager": 101})
    reader = ReplicaReader("totara", f"sqlite:///{tmp_path / 'replica.db'}")
    ctx = PullContext(cursors={}, scope=PullScope(), now=NOW, view=View())  # type: ignore[arg-type]
    found = {}
    for source in (
        TotaraSource("totara", api=api(totara), legacy=None, replica=None, managers=True),
        TotaraSource("totara", api=None, legacy=None, replica=reader, managers=True),
    ):
        (batch,) = [b for b in source.pull_managers(ctx)]
        found[bool(source.api)] = {
            r.user_id: r.manager_user_id for r in batch.records if isinstance(r, LmsManager)
        }
    assert found[True] == found[False] and found[True][130] == 101
    assert list(TotaraSource("totara", api=api(totara), legacy=None, replica=None).pull(ctx)) != []
    assert not any(
        isinstance(r, LmsManager)
        for b in TotaraSource("totara", api=api(totara), legacy=None, replica=None).pull(ctx)
        for r in b.records
    )


def test_an_lms_manager_relation_takes_precedence_over_the_hr_manager(engine: Engine) -> None:
    from bridge.facts import load_people
    from tests.seed import link, store

    store(
        engine,
        Person("P1", manager_id="P9"),
        Person("P2"),
        Person("P3", manager_id="P9"),
        Person("P9"),
        LmsManager("totara", 101, 102),
    )
    link(engine, "P1", 101, site="totara")
    link(engine, "P2", 102, site="totara")
    link(engine, "P3", 103, site="totara")
    with engine.connect() as conn:
        people = load_people(conn, ["P1", "P3"])
    assert people["P1"].manager_id == "P2"  # Totara says so
    assert people["P3"].manager_id == "P9"  # no job assignment: the HR feed's manager stands
