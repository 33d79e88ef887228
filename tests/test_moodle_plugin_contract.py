"""The real client and source against the simulator with the companion plugin, over real HTTP."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from bridge.compose import reason_of
from bridge.errors import SourceError
from bridge.ports import PullContext, PullScope, Webhook
from bridge.records import CompetencyRating, Completion, Enrolment, LmsUser
from bridge.store import schema as t
from bridge.webhooks import signature_ok
from connectors.moodle import doctor, errors
from connectors.moodle.changes import SIGNATURE_HEADER
from connectors.moodle.client import MoodleClient
from connectors.moodle.sim.server import Running
from connectors.moodle.simulator import start_in_thread
from connectors.moodle.source import MoodleSource
from tests import moodle_checks as checks
from tests.conftest import SIM_TOKEN
from tests.test_cli_e2e import config, run
from tests.test_moodle_connector import View

NOW = datetime(2026, 11, 3, 10, tzinfo=UTC)


@pytest.fixture
def site() -> Iterator[Running]:
    handle = start_in_thread(SIM_TOKEN, plugin=True)
    yield handle
    handle.stop()


def client(site: Running) -> MoodleClient:
    return MoodleClient("moodle", site.url, SIM_TOKEN, max_wait=0.01)


def control(site: Running, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(f"{site.url}/_simulator/{path}", data=json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def pull(
    source: MoodleSource, cursors: dict[str, str | None], scope: PullScope | None = None
) -> tuple[list[Any], dict[str, str | None]]:
    ctx = PullContext(cursors=cursors, scope=scope or PullScope(), now=NOW, view=View({}))
    batches = list(source.pull(ctx))
    return [r for b in batches for r in b.records], {
        **cursors,
        **{b.stream: b.cursor for b in batches if b.cursor},
    }


def test_the_first_sync_is_the_backfill_and_a_steady_poll_is_one_call(site: Running) -> None:
    c = client(site)
    source = MoodleSource("moodle", c)
    assert source.feed().name == "plugin"
    found, cursors = pull(source, {})
    completions = {(r.user_id, r.item_id): r.completed_at for r in found if isinstance(r, Completion)}
    assert completions == {k: datetime.fromtimestamp(v, UTC) for k, v in site.state.completions.items()}
    enrolments = {(r.user_id, r.item_id) for r in found if isinstance(r, Enrolment)}
    assert enrolments == {
        (u, cid)
        for u, courses in site.state.enrolments.items()
        for cid in courses
        if site.state.live_user(u) is not None
    }
    assert site.state.plugin is not None and cursors["changes"] == str(site.state.plugin.last_id())
    c.calls.clear()
    found, _ = pull(source, cursors)
    assert dict(c.calls) == {"local_lmsbridge_get_changes": 1}  # whatever the size of the site
    assert not [r for r in found if isinstance(r, LmsUser)]


def test_changes_after_the_cursor_arrive_with_exact_times(site: Running) -> None:
    source = MoodleSource("moodle", client(site))
    scope = PullScope(competencies=True)
    _found, cursors = pull(source, {}, scope)
    learner = 105
    course = next(
        cid for cid in site.state.courses if (learner, cid) not in site.state.completions and cid != 1
    )
    control(site, "complete", {"userid": learner, "courseid": course, "timecompleted": 1793700007})
    enrolled = next(iter(site.state.enrolments[106]))
    control(site, "suspend-enrolment", {"userid": 106, "courseid": enrolled})
    control(site, "update-user", {"userid": 107, "idnumber": "E-NEW-107"})
    competency = site.state.competencies()[0][0]
    control(site, "rate", {"userid": learner, "competencyid": competency, "grade": 2, "time": 1793700009})
    found, _ = pull(source, cursors, scope)
    assert Completion("moodle", learner, course, datetime.fromtimestamp(1793700007, UTC)) in found
    assert Enrolment("moodle", 106, enrolled, active=False) in found
    assert [u.idnumber for u in found if isinstance(u, LmsUser) and u.user_id == 107] == ["E-NEW-107"]
    rating = next(r for r in found if isinstance(r, CompetencyRating) and r.user_id == learner)
    assert (rating.competency_id, rating.proficient, rating.grade_name) == (competency, True, "Competent")
    assert rating.rated_at == datetime.fromtimestamp(1793700009, UTC)


def test_the_site_refuses_the_log_without_the_plugins_capability(site: Running) -> None:
    site.state.capabilities.discard("local/lmsbridge:readchanges")
    with pytest.raises(errors.MoodleError) as refused:
        pull(MoodleSource("moodle", client(site)), {})
    assert refused.value.errorcode == "nopermissions"


def test_a_site_without_the_plugin_keeps_its_feeds() -> None:
    handle = start_in_thread(SIM_TOKEN)
    try:
        c = client(handle)
        assert MoodleSource("moodle", c).feed().name != "plugin"
        assert not c.has_function("local_lmsbridge_get_changes")
        with pytest.raises(SourceError, match="install the companion plugin"):
            MoodleSource("moodle", c, feed="plugin").feed()
    finally:
        handle.stop()


class Catcher(BaseHTTPRequestHandler):
    received: list[tuple[bytes, str | None]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Catcher.received.append((body, self.headers.get(SIGNATURE_HEADER)))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def test_each_change_is_pushed_signed_to_the_webhook(site: Running) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Catcher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Catcher.received = []
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/moodle"
        control(site, "plugin-webhook", {"url": url, "secret": "plugin-secret", "enabled": True})
        control(site, "complete", {"userid": 105, "courseid": 2, "timecompleted": 1793700007})
        assert site.state.plugin is not None
        last = site.state.plugin.last_id()  # an enrolment, then the completion

        def announced() -> list[int]:
            return [json.loads(body)["lastid"] for body, _signature in Catcher.received]

        deadline = time.monotonic() + 10
        while last not in announced() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
        server.server_close()
    assert last in announced()  # changes logged while a notification was being sent are announced too
    assert len(announced()) <= 2  # coalesced: never one per change
    for body, signature in Catcher.received:
        assert signature_ok(Webhook(SIGNATURE_HEADER, "plugin-secret"), body, signature)
        assert not signature_ok(Webhook(SIGNATURE_HEADER, "another-secret"), body, signature)
    assert site.state.plugin.webhook.last_status == "HTTP 202"


def test_doctor_reports_the_plugin_its_version_and_its_webhook(site: Running) -> None:
    def plugin_check(secret_set: bool) -> Any:
        found = doctor.checks(MoodleSource("moodle", client(site)), [], webhook_secret_set=secret_set)
        return next(c for c in found if c.name == "companion plugin local_lmsbridge")

    check = plugin_check(False)
    assert check.ok and "version 2026120301" in check.detail and "webhook off" in check.detail
    control(
        site, "plugin-webhook", {"url": "http://127.0.0.1:9/webhooks/moodle", "secret": "s", "enabled": True}
    )
    check = plugin_check(False)
    assert not check.ok and "webhook_secret" in check.fix
    assert plugin_check(True).ok
    found = doctor.checks(MoodleSource("moodle", client(site)), ["competencies"])
    names = {c.name for c in found}
    assert "function local_lmsbridge_get_changes" in names
    assert "function tool_lp_data_for_user_competency_summary" not in names  # the log has the ratings


def test_open_recommendations_are_shown_and_closed_ones_disappear(tmp_path: Path, site: Running) -> None:
    cfg = config(tmp_path, site.url)
    assert run(cfg, "db", "upgrade").returncode == 0
    assert run(cfg, "sync", "--once").returncode == 0
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    r, i = t.recommendations, t.identities
    with engine.connect() as conn:
        expected = {
            (row.user_id, f"rec-{row.id}")
            for row in conn.execute(
                select(r.c.id, i.c.user_id)
                .join(i, i.c.person_id == r.c.person_id)
                .where(r.c.state == "open", r.c.holdout.is_(False), i.c.site == "moodle")
            )
        }
    assert site.state.plugin is not None
    shown = {(uid, ref) for uid, items in site.state.plugin.recommendations.items() for ref in items}
    assert expected and shown == expected
    user_id, reference = sorted(shown)[0]
    item = site.state.plugin.recommendations[user_id][reference]
    assert item["title"] and item["reason"] and item["url"].startswith(site.url)
    # The reason in the learner's words, as their messages say it: no metric ids or operators.
    with engine.connect() as conn:
        explanations = {
            f"rec-{row.id}": row.explanation for row in conn.execute(select(r.c.id, r.c.explanation))
        }
    for items in site.state.plugin.recommendations.values():
        for ref, shown_item in items.items():
            assert shown_item["reason"] == reason_of(explanations[ref])
            assert shown_item["managerreason"] == reason_of(explanations[ref], to_manager=True)
            assert not any(op in shown_item["reason"] for op in ("<=", ">=", " < ", " > ")), shown_item[
                "reason"
            ]

    writes = site.state.calls["local_lmsbridge_set_recommendations"]
    assert run(cfg, "sync", "--once").returncode == 0
    assert site.state.calls["local_lmsbridge_set_recommendations"] == writes  # nothing changed: no write

    course = int(item["url"].rsplit("=", 1)[1])
    site.state.complete(user_id, course)
    assert run(cfg, "sync", "--once").returncode == 0
    assert reference not in site.state.plugin.recommendations.get(user_id, {})


def test_the_simulated_plugin_passes_the_live_suites_checks(site: Running) -> None:
    raw = checks.raw_caller(site.url, SIM_TOKEN)
    assert checks.check_plugin_changes(raw) == 5
    assert checks.check_plugin_info(raw)["webhook"]["secretset"] is False
