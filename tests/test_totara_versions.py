"""Totara 17.3, 18 and 19 as each really behaves: the operations against Totara 17.3's own schema,
discovery that an endpoint without field validation cannot fool, the error shapes per release
(on the wire and in the client), Totara's legacy parameter lists, expired certifications, and
the real client through the CLI against a simulator of each release."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from graphql import build_schema, parse, validate

from bridge.errors import Remedy
from bridge.ports import ActionKind, OutcomeStatus, PullContext, PullScope
from bridge.records import Completion, Enrolment, ItemKind, Target
from connectors.moodle import errors as moodle_errors
from connectors.moodle.client import MoodleClient
from connectors.moodle.source import MoodleSource
from connectors.totara import errors
from connectors.totara.graphql import SINCE, GraphQLClient
from connectors.totara.legacy import TotaraLearnerFeed
from connectors.totara.oauth import TokenSource
from connectors.totara.replica import ReplicaReader
from connectors.totara.sim.learning import CERTIFICATION_VALID
from connectors.totara.sim.schema import REFERENCE_17_3, RELEASES, reference_sdl, release
from connectors.totara.sim.server import RunningTotara
from connectors.totara.sink import TotaraSink
from tests.test_totara import (
    CLIENT_ID,
    NOW,
    ROOT,
    SECRET,
    TOKEN,
    View,
    api,
    control,
    outgoing,
    run,
    start_site,
    state,
)

REFERENCE = ROOT.parent / "shared" / "reference" / "totara" / "17.3" / "external.graphqls"
OPERATIONS = sorted(p.stem for p in resources.files("connectors.totara").joinpath("operations").iterdir())
VERSIONS = ("17.3", "18", "19")


@pytest.fixture(params=("18", "19"))
def modern_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningTotara]:
    handle = start_site(release=request.param, replica=tmp_path / "replica.db")
    yield handle
    handle.stop()


@pytest.fixture(params=VERSIONS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningTotara]:
    handle = start_site(release=request.param, replica=tmp_path / "replica.db")
    yield handle
    handle.stop()


def post(site: RunningTotara, query: str, variables: dict[str, Any] | None = None) -> requests.Response:
    token = requests.post(
        f"{site.url}/totara/oauth2/token.php",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET},
        timeout=5,
    ).json()["access_token"]
    return requests.post(
        f"{site.url}/api/graphql.php",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


# ---------------------------------------------------------------------- the 17.3 reference schema


def test_the_simulators_17_3_schema_is_the_reference_file_itself() -> None:
    if not REFERENCE.exists():
        pytest.skip(f"the reference schema is not at {REFERENCE}")
    assert reference_sdl() == REFERENCE.read_text(encoding="utf-8"), (
        f"{REFERENCE_17_3} differs from the reference"
    )
    fields = set(release("17.3").schema().query_type.fields)  # type: ignore[union-attr]
    assert "totara_job_job_assignments" in fields and "core_course_courses" not in fields


def test_every_operation_sent_to_a_17_site_validates_against_the_17_3_schema() -> None:
    schema = build_schema(reference_sdl())
    assert set(OPERATIONS) == set(SINCE), "every operation declares the release that has it"
    for name in OPERATIONS:
        text = resources.files("connectors.totara").joinpath("operations", f"{name}.graphql").read_text()
        problems = [e.message for e in validate(schema, parse(text))]
        if SINCE[name] <= 17:
            assert problems == [], f"{name}.graphql does not validate against Totara 17.3: {problems}"
        else:  # meant for 18+: it must not be sent to 17, and indeed 17.3 has no such field
            assert any("Cannot query field" in p for p in problems), name


@pytest.mark.parametrize("name", ["18.0", "19.0"])
def test_operations_for_18_and_later_validate_against_the_simulated_releases(name: str) -> None:
    for op in OPERATIONS:
        text = resources.files("connectors.totara").joinpath("operations", f"{op}.graphql").read_text()
        assert validate(RELEASES[name].schema(), parse(text)) == [], (name, op)


# ---------------------------------------------------------------------- Totara's endpoint on the wire


def test_an_unknown_root_field_is_answered_with_empty_data_and_no_error(site: RunningTotara) -> None:
    answer = post(site, "query { no_such_field { id } }")
    assert answer.status_code == 200 and answer.json() == {"data": []}
    mixed = post(site, "query { totara_webapi_status { status } no_such_field }").json()
    assert mixed == {"data": {"totara_webapi_status": {"status": "ok"}}}


def test_an_unknown_variable_type_fails_the_request_like_totara_per_release(site: RunningTotara) -> None:
    body = post(site, "query q($x: core_course_courses_query_typo) { __typename }").json()
    (error,) = body["errors"]
    assert error["message"] == "Internal server error" and "data" not in body
    detail = 'Type "core_course_courses_query_typo" not found in document.'
    if site.simulator.release.startswith("19"):
        assert error["extensions"]["debugMessage"] == detail and "debugMessage" not in error
    else:
        assert error["debugMessage"] == detail
    assert body["error"] == "Internal server error"  # Totara's string for old AJAX callers


def test_the_none_error_level_hides_the_detail(site: RunningTotara) -> None:
    control(site, "limits", {"response_debug": "none"})
    (error,) = post(site, "query q($x: nope) { __typename }").json()["errors"]
    assert error["message"] == "Internal server error"
    assert "debugMessage" not in error and "debugMessage" not in error.get("extensions", {})


def test_api_switched_off_and_rate_limit_answers_are_totaras(site: RunningTotara) -> None:
    control(site, "limits", {"client_rate_limit": 1})
    post(site, "query { totara_webapi_status { status } }")
    limited = post(site, "query { totara_webapi_status { status } }")
    assert limited.status_code == 429 and "Retry-After" not in limited.headers
    assert limited.json() == {"errors": [{"message": "Too many requests"}], "error": "Too many requests"}
    control(site, "limits", {"client_rate_limit": 250000, "api_enabled": False})
    off = requests.post(f"{site.url}/api/graphql.php", json={"query": "{ x }"}, timeout=5)
    assert off.status_code == 200
    assert off.json() == {
        "errors": [{"message": "Feature api is not available."}],
        "error": "Feature api is not available.",
    }
    token = requests.post(
        f"{site.url}/totara/oauth2/token.php",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET},
        timeout=5,
    )
    assert token.status_code == 200 and token.json()["error"] == "access_denied"


def test_a_bad_client_secret_is_http_200_invalid_client(site: RunningTotara) -> None:
    answer = requests.post(
        f"{site.url}/totara/oauth2/token.php",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "nope"},
        timeout=5,
    )
    assert answer.status_code == 200 and answer.json()["error"] == "invalid_client"


# ---------------------------------------------------------------------- discovery and version


EXPECTED = {
    "17.3": {"totara_webapi_status", "core_user_users", "totara_job_job_assignments"},
    "18": {"totara_webapi_status", "core_user_users", "totara_job_job_assignments", "core_course_courses"}
    | {"enrol_manual_enrol_user"},
}
EXPECTED["19"] = EXPECTED["18"] | {"totara_job_job_assignment"}


def test_discovery_finds_exactly_the_roots_each_release_answers(site: RunningTotara) -> None:
    client = api(site)
    version = next(v for v in VERSIONS if site.simulator.release.startswith(v.split(".")[0]))
    enrolments = len(site.state.enrolled)
    assert client.operations() == EXPECTED[version]
    assert client.version() == version.split(".")[0]
    assert client.available("job_assignments")  # 17.3 has it (the old README said 18+)
    assert client.available("courses") is (version != "17.3")
    assert len(site.state.enrolled) == enrolments  # probing the mutation ran nothing


@responses.activate
def test_an_endpoint_that_answers_empty_data_to_everything_is_not_taken_for_any_release() -> None:
    url = "https://learn.example.org"
    responses.post(f"{url}/totara/oauth2/token.php", json={"access_token": "t", "expires_in": 3600})
    responses.post(f"{url}/api/graphql.php", json={"data": []})
    session = requests.Session()
    client = GraphQLClient("t", url, TokenSource("t", url, "id", "s", session), session)
    assert client.operations() == set() and client.version() is None
    with pytest.raises(errors.OperationMissing, match="does not answer core_user_users"):
        client.execute("users", {"query": {}})


@responses.activate
def test_discovery_stops_at_an_api_switched_off_instead_of_guessing() -> None:
    url = "https://learn.example.org"
    responses.post(f"{url}/totara/oauth2/token.php", json={"access_token": "t", "expires_in": 3600})
    off = {"errors": [{"message": "Feature api is not available."}], "error": "Feature api is not available."}
    responses.post(f"{url}/api/graphql.php", json=off)
    session = requests.Session()
    client = GraphQLClient("t", url, TokenSource("t", url, "id", "s", session), session)
    with pytest.raises(errors.ApiDisabled, match="Enable API") as caught:
        client.operations()
    assert caught.value.remedy is Remedy.FIX_CONFIG


def test_a_root_whose_input_type_the_site_lacks_is_not_used(modern_site: RunningTotara) -> None:
    site = modern_site
    schema = site.simulator.schema
    renamed = schema.type_map.pop("core_course_courses_query")  # a release that named the input otherwise
    try:
        client = api(site)
        assert client.has("core_course_courses") and not client.available("courses")
        assert client.missing_types("courses") == ["core_course_courses_query"]
    finally:
        schema.type_map["core_course_courses_query"] = renamed


# ---------------------------------------------------------------------- error handling in the client


def test_internal_errors_read_the_detail_where_each_release_puts_it(modern_site: RunningTotara) -> None:
    site = modern_site
    course = next(c for c in site.state.courses.values() if not c.manual_enrolment)
    with pytest.raises(
        errors.TotaraError, match=r"Internal server error \(Manual enrolment plugin is not enabled\.\)"
    ):
        api(site).execute("enrol", {"input": {"user": {"id": 100}, "course": {"id": course.id}}})


def test_429_without_retry_after_waits_a_budget_window_share_then_succeeds(site: RunningTotara) -> None:
    slept: list[float] = []
    client = api(site, sleep=slept.append, attempts=3)
    client.execute("status")
    control(site, "limits", {"client_rate_limit": 1})

    def relent(seconds: float) -> None:
        slept.append(seconds)
        control(site, "limits", {"client_rate_limit": 250000})

    client.sleep = relent
    assert client.execute("status")["status"] == "ok"
    assert slept and slept[0] >= 15  # not the sub-second backoff meant for a flaky connection


def test_the_api_switched_off_is_one_clear_error(site: RunningTotara) -> None:
    client = api(site)
    client.execute("status")
    control(site, "limits", {"api_enabled": False})
    with pytest.raises(errors.ApiDisabled) as caught:
        client.execute("status")
    assert "Shared services > Enable API" in str(caught.value) and caught.value.remedy is Remedy.FIX_CONFIG


# ---------------------------------------------------------------------- the legacy web services


def test_totaras_users_courses_takes_only_userid_and_has_no_completed_field(site: RunningTotara) -> None:
    client = MoodleClient("totara", site.url, TOKEN)
    user = next(u for u in sorted(site.state.enrolments) if site.state.enrolments[u])
    with pytest.raises(moodle_errors.InvalidParameter):
        client.call("core_enrol_get_users_courses", {"userid": user, "returnusercount": 0})
    courses = client.call("core_enrol_get_users_courses", {"userid": user})
    assert courses and all("completed" not in c and "progress" not in c for c in courses)


def test_moodles_per_learner_feed_fails_on_totara_and_totaras_reads_completions(site: RunningTotara) -> None:
    client = MoodleClient("totara", site.url, TOKEN)
    linked = {u: f"P{u}" for u in sorted(site.state.users) if u >= 100}
    view = View()
    view.linked = linked
    ctx = PullContext(cursors={}, scope=PullScope(), now=NOW, view=view)  # type: ignore[arg-type]
    with pytest.raises(moodle_errors.InvalidParameter):  # what the unmodified connector did on 17.3
        list(MoodleSource("totara", client).pull_completions(ctx))
    records = [r for b in TotaraLearnerFeed("totara", client).pull(ctx, None) for r in b.records]
    done = {(r.user_id, r.item_id) for r in records if isinstance(r, Completion)}
    reachable = {
        (u, c)
        for u, c in site.state.completions
        if u in linked
        and site.state.live_user(u) is not None
        and c in site.state.enrolments.get(u, {})
        and site.state.courses[c].enablecompletion  # no completion tracking: no status to ask for
    }
    assert done == reachable and done
    assert any(isinstance(r, Enrolment) for r in records)


def test_enrolment_reconcile_asks_totara_only_what_it_accepts(site: RunningTotara) -> None:
    legacy = MoodleClient("totara", site.url, TOKEN)
    sink = TotaraSink("totara", api=None, legacy=legacy, audiences={})
    user = next(u for u in sorted(site.state.enrolments) if site.state.enrolments[u])
    course = next(iter(site.state.enrolments[user]))
    found = sink.reconcile(outgoing(ActionKind.ENROL, Target("totara", "course", course), user=user))
    assert found is not None and found.status is OutcomeStatus.SENT
    other = next(c for c in site.state.courses if c not in site.state.enrolments[user] and c != 1)
    assert sink.reconcile(outgoing(ActionKind.ENROL, Target("totara", "course", other), user=user)) is None


# ---------------------------------------------------------------------- expired certifications


def test_an_expired_certification_is_reported_with_the_date_it_lapsed(
    site: RunningTotara, tmp_path: Path
) -> None:
    lapsed = datetime(2026, 10, 1, tzinfo=UTC)
    control(site, "expire", {"userid": 120, "certifid": 1, "when": int(lapsed.timestamp())})
    reader = ReplicaReader("totara", f"sqlite:///{tmp_path / 'replica.db'}")
    with sqlite3.connect(tmp_path / "replica.db") as db:
        row = db.execute(
            "select status, renewalstatus, timecompleted, timewindowopens, timeexpires from ttr_certif_completion"
            " where userid = 120"
        ).fetchone()
    assert row == (4, 2, 0, 0, 0)  # Totara's expired state: no dates of its own
    certs = {
        r.user_id: r
        for records, _ in reader.certification_completions(0)
        for r in records
        if isinstance(r, Completion)
    }
    assert certs[120].expires_at == lapsed and certs[120].kind is ItemKind.CERTIFICATION
    assert certs[120].completed_at == lapsed - CERTIFICATION_VALID  # the completion that lapsed, from history
    assert certs[120].window_opens_at is None


# ---------------------------------------------------------------------- the CLI against each release


def contract_config(tmp_path: Path, site: RunningTotara, *, replica: bool = True) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    for path in (ROOT / "examples/mixed/mappings").glob("*.yaml"):
        text = path.read_text()
        if path.stem == "csat-customer-conversations":
            text = text.replace("site: moodle", "site: totara").replace(
                "channels: [message]", "channels: [message, enrol]"
            )
        (rules / path.name).write_text(text)
    cfg = tmp_path / "lmsbridge.toml"
    cfg.write_text(
        f"""
[store]
url = "sqlite:///{tmp_path / "state.db"}"
[mappings]
dir = "{rules}"
[metrics.csat]
direction = "higher"
target = 4.2
[metrics.safety_incidents]
direction = "lower"
target = 1
[sites.totara]
type = "totara"
url = "{site.url}"
client_id = "{CLIENT_ID}"
manager_relation = true
{f'replica_url = "sqlite:///{tmp_path / "replica.db"}"' if replica else ""}
audiences = {{ "program:PROG-CX" = "AUD-PROG-CX", "certification:CERT-SAFETY" = "AUD-CERT-SAFETY" }}
[feeds.hr]
type = "csv"
people = "{ROOT / "examples/hr/people.csv"}"
measurements = "{ROOT / "examples/hr/kpis.csv"}"
"""
    )
    return cfg


def test_doctor_and_sync_use_the_routes_each_release_has(site: RunningTotara, tmp_path: Path) -> None:
    major = site.simulator.release.split(".")[0]
    control(
        site, "expire", {"userid": 102, "certifid": 1, "when": int((NOW - timedelta(days=20)).timestamp())}
    )
    cfg = contract_config(tmp_path, site)
    doctor = run(cfg, "doctor")
    assert "Totara version" in doctor.stdout and f"{major}" in doctor.stdout.split("Totara version")[1][:80]
    routes = doctor.stdout.split("routes")[-1]
    enrol_route = "API enrol_manual_enrol_user" if major != "17" else "legacy enrol_manual_enrol_users"
    courses_route = "API core_course_courses" if major != "17" else "legacy core_course_get_courses_by_field"
    flat = " ".join(routes.split())
    assert enrol_route in flat and courses_route in flat and "API totara_job_job_assignments" in flat
    if major == "17":
        assert "core_course_courses" not in doctor.stdout.split("operations available")[1].split("\n")[0]
    assert run(cfg, "db", "upgrade").returncode == 0
    result = run(cfg, "sync", "--once")
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(tmp_path / "state.db") as db:
        kinds = dict(db.execute("select kind, count(*) from completions group by kind").fetchall())
        expired = db.execute(
            "select count(*) from completions where kind = 'certification' and user_id = 102 and expires_at is not null"
        ).fetchone()[0]
        managers = db.execute("select count(*) from lms_managers where site = 'totara'").fetchone()[0]
    assert kinds.get("course") and kinds.get("program") and kinds.get("certification"), kinds
    assert expired == 1 and managers
    seen = state(site)
    assert seen["audiences"]["AUD-CERT-SAFETY"] and seen["audiences"]["AUD-PROG-CX"]
    by_api = seen["graphql"]["operations"].get("lmsbridge_enrol", 0)
    # The legacy route first asks who the course already has (enrol_manual_enrol_users would
    # reset an existing enrolment); the learners it names are left as the site keeps them.
    by_legacy = seen["calls"].get("core_enrol_get_enrolled_users", 0) + seen["calls"].get(
        "enrol_manual_enrol_users", 0
    )
    assert (by_api > 0, by_legacy > 0) == ((True, False) if major != "17" else (False, True)), (
        by_api,
        by_legacy,
    )
    assert "lmsbridge_probe_enrol_manual_enrol_user" in seen["graphql"]["operations"]
    assert "invalid_parameter" not in result.stdout + result.stderr


def test_a_17_3_site_without_a_replica_reads_course_completions_through_the_legacy_route(
    tmp_path: Path,
) -> None:
    handle = start_site(release="17.3")
    try:
        cfg = contract_config(tmp_path, handle, replica=False)
        for path in (tmp_path / "rules").glob("*.yaml"):
            if "csat" not in path.name:
                path.unlink()  # programs and certifications need the replica
        assert run(cfg, "db", "upgrade").returncode == 0
        result = run(cfg, "sync", "--once")
        assert result.returncode == 0, result.stdout + result.stderr
        calls = state(handle)["calls"]
        assert calls.get("core_enrol_get_users_courses") and calls.get(
            "core_completion_get_course_completion_status"
        )
        with sqlite3.connect(tmp_path / "state.db") as db:
            (count,) = db.execute("select count(*) from completions where kind = 'course'").fetchone()
        assert count > 0
    finally:
        handle.stop()


def test_the_simulator_command_takes_a_version(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "bridge", "simulator", "totara", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert "--version" in result.stdout and "17.3" in result.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "simulator",
            "totara",
            "--client-id",
            "a",
            "--client-secret",
            "b",
            "--version",
            "16",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert bad.returncode != 0 and "no external GraphQL API" in bad.stdout + bad.stderr
