"""The admin dashboard over real HTTP: pages from a seeded store, escaping, the token check,
static files from a fixed list only, and the pages served by the real `lmsbridge run`."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from bridge.dashboard import charts
from bridge.dashboard.views import STATIC_FILES, ago, pct
from bridge.impact_stats import kaplan_meier
from bridge.ops import SECURITY_HEADERS, OpsServer
from connectors.moodle.sim.server import Running
from tests.browser.store import CSAT, HOSTILE_ERROR, mapping_set, serve
from tests.test_daemon import daemon_config, get, migrate, start, wait_for

TOKEN = "dashboard-token-0123456789"
PAGES = ["/dashboard", "/dashboard/mappings", f"/dashboard/mapping?id={CSAT}", "/dashboard/outbox"]
STATIC = [f"/dashboard/static/{name}" for name in STATIC_FILES]
STATIC_DIR = Path(__file__).parents[1] / "bridge" / "dashboard" / "static"
CHART_JS_SHA256 = "338399fb5bafe598d21cfc471b0590b61ceb321a985fade4f68499b151f67fbf"


def fetch(port: int, path: str, authorization: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET with the path sent exactly as given (no client-side normalisation of '..')."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": authorization} if authorization else {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()


def page(ops: OpsServer, path: str) -> str:
    status, headers, body = fetch(ops.port, path)
    assert status == 200, body[:500]
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    return body.decode()


def test_overview_shows_sources_stages_jobs_and_the_outbox(local: OpsServer) -> None:
    html = page(local, "/dashboard")
    for text in (
        "hr",
        "moodle",
        "resting",
        "HTTP 503 from the Moodle site",
        "decide",
        "pull:moodle",
        "30.1 s",
    ):
        assert text in html
    assert "actions dead" in html and "open recommendations" in html
    assert page(local, "/dashboard/") == html


def test_mappings_page_lists_open_recommendations_and_completion_rates(local: OpsServer) -> None:
    html = page(local, "/dashboard/mappings")
    # 20 recommendations acted on (2 lapsed ones never were), all contacted, 13 completed (65%),
    # 7 still open; 4 in the holdout, none completed. The counts are those of `lmsbridge impact`.
    assert f'href="/dashboard/mapping?id={CSAT}"' in html
    assert "65%" in html and "+4 holdout" in html
    assert '<td data-label="Contacted" class="num" data-figure="contacted">20</td>' in html
    assert "retired-mapping" in html and "file removed" in html
    for m in mapping_set().mappings:
        assert m.title in html


def test_mapping_page_has_both_charts_and_their_data(local: OpsServer) -> None:
    html = page(local, f"/dashboard/mapping?id={CSAT}")
    assert 'data-chart="before-after"' in html and 'data-chart="time-to-competency"' in html
    assert '<script type="application/json" id="chart-data">' in html
    assert '<script src="/dashboard/static/chart.umd.js" defer></script>' in html
    assert "<script>" not in html, "inline scripts would be blocked by the Content-Security-Policy"
    assert "Completed" in html and "Holdout (not contacted)" in html


def test_mapping_page_for_a_mapping_without_impact_data(local: OpsServer) -> None:
    assert "file removed" in page(local, "/dashboard/mapping?id=retired-mapping")
    assert "has no <code>measure:</code> block" in page(local, "/dashboard/mapping?id=onboarding-essentials")


def test_mapping_page_without_kpi_data_draws_no_empty_chart(local: OpsServer) -> None:
    html = page(local, "/dashboard/mapping?id=sales-win-rate")
    assert "insufficient data" in html and "Nobody has win_rate values both before and after yet." in html
    assert 'data-chart="before-after"' not in html and 'data-chart="time-to-competency"' not in html


def test_unknown_mapping_is_not_found(local: OpsServer) -> None:
    for path in ("/dashboard/mapping?id=nothing-here", "/dashboard/mapping", "/dashboard/mapping?id=%3Cb%3E"):
        status, headers, body = fetch(local.port, path)
        assert status == 404 and headers["Content-Type"].startswith("text/html")
        assert b"<b>" not in body


def test_outbox_lists_failures_with_reasons_and_escapes_them(local: OpsServer) -> None:
    html = page(local, "/dashboard/outbox")
    assert "Moodle said invalidtoken" in html
    assert "HTTP 503 from the Moodle site" in html and "retrying" in html
    assert "measurement holdout: deliberately not contacted" in html
    assert HOSTILE_ERROR not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_every_response_carries_the_security_headers(local: OpsServer) -> None:
    for path in [*PAGES, *STATIC, "/dashboard/mapping?id=nope", "/dashboard/nothing"]:
        _, headers, _ = fetch(local.port, path)
        for key, value in SECURITY_HEADERS.items():
            assert headers[key] == value, (path, key)


def test_static_files_come_from_the_fixed_list_with_their_types(local: OpsServer) -> None:
    for name, content_type in STATIC_FILES.items():
        status, headers, body = fetch(local.port, f"/dashboard/static/{name}")
        assert status == 200 and headers["Content-Type"] == content_type
        assert body == (STATIC_DIR / name).read_bytes()


TRAVERSALS = [
    "/dashboard/static/../views.py",
    "/dashboard/static/../../settings.py",
    "/dashboard/static/%2e%2e/views.py",
    "/dashboard/static/..%2f..%2fsettings.py",
    "/dashboard/static/%2e%2e%2f%2e%2e%2fsettings.py",
    "/dashboard/static/..\\views.py",
    "/dashboard/static//etc/passwd",
    "/dashboard/static/%2fetc%2fpasswd",
    "/dashboard/static/",
    "/dashboard/static",
    "/dashboard/static/chart.umd.js.map",
    "/dashboard/static/chart.umd.js/",
    "/dashboard/static/CHART.UMD.JS",
    "/dashboard/static/./dashboard.css",
    "/dashboard/templates/base.html",
    "/dashboard/../bridge/settings.py",
    "/../../etc/passwd",
]


def test_no_path_outside_the_list_is_served(local: OpsServer) -> None:
    for path in TRAVERSALS:
        status, _, body = fetch(local.port, path)
        assert status == 404, (path, body[:200])


def test_pages_refuse_without_a_token_off_loopback(seeded: Engine) -> None:
    ops = serve(seeded, "0.0.0.0:0", None)
    try:
        for path in [*PAGES, *STATIC]:
            status, _, body = fetch(ops.port, path)
            assert status == 403 and b"configure daemon.token" in body, path
        assert fetch(ops.port, "/healthz")[0] == 200
    finally:
        ops.stop()


def test_pages_need_the_token_when_one_is_configured(seeded: Engine) -> None:
    ops = serve(seeded, "0.0.0.0:0", TOKEN)
    try:
        for path in [*PAGES, *STATIC]:
            status, headers, _ = fetch(ops.port, path)
            assert status == 401 and headers["WWW-Authenticate"].startswith("Basic"), path
            assert fetch(ops.port, path, f"Bearer {TOKEN}x")[0] == 401
            assert fetch(ops.port, path, basic("wrong"))[0] == 401
            assert fetch(ops.port, path, f"Bearer {TOKEN}")[0] == 200
            assert fetch(ops.port, path, basic(TOKEN))[0] == 200
    finally:
        ops.stop()


def test_vendored_chart_js_is_the_pinned_release_with_its_licence() -> None:
    data = (STATIC_DIR / "chart.umd.js").read_bytes()
    assert data.startswith(b"/*!\n * Chart.js v4.6.1\n")
    assert b"Released under the MIT License" in data[:200]
    assert hashlib.sha256(data).hexdigest() == CHART_JS_SHA256


def test_time_to_competency_chart_steps_up_from_zero() -> None:
    survival = kaplan_meier([2, 4, 4, 10], [True, True, False, True])
    spec = charts.time_to_competency(survival, until_days=10)
    assert spec["points"] == [
        {"x": 0.0, "y": 0.0},
        {"x": 2.0, "y": 25.0},
        {"x": 4.0, "y": 50.0},
        {"x": 10.0, "y": 100.0},
    ]
    assert spec["median"] == 4.0


def test_time_to_competency_chart_runs_to_today_for_people_still_in_progress() -> None:
    # Two completed on days 2 and 4; the third is 30 days in and still going: censored, and the
    # curve runs flat to day 30 instead of stopping at the last completion.
    survival = kaplan_meier([2, 4, 30], [True, True, False])
    spec = charts.time_to_competency(survival, until_days=30)
    assert spec["points"][-2:] == [{"x": 4.0, "y": 66.67}, {"x": 30, "y": 66.67}]


def test_mapping_page_curve_runs_to_the_oldest_recommendation_s_age(local: OpsServer) -> None:
    html = page(local, f"/dashboard/mapping?id={CSAT}")
    data = json.loads(html.split('id="chart-data">')[1].split("</script>")[0])
    last = data["time-to-competency"]["points"][-1]
    # The oldest csat recommendation opened 2026-06-01 09:00, 155 days and 1 hour before NOW.
    assert last["x"] == round(155 + 1 / 24, 2) and last["x"] > 70  # the last completion was day 70


def test_relative_times_and_percentages() -> None:
    now = datetime(2026, 11, 3, 10, tzinfo=UTC)
    assert ago(now - timedelta(seconds=40), now) == "40 s ago"
    assert ago(now + timedelta(minutes=5), now) == "in 5 min"
    assert ago(now - timedelta(days=3), now) == "3 d ago"
    assert ago(None, now) == ""
    assert pct(13 / 22) == "59%" and pct(None) == "—"


def test_the_service_serves_the_dashboard(tmp_path: Path, moodle: Running) -> None:
    """The real `lmsbridge run` wires the pages into its listener and they show its live state."""
    cfg, port = daemon_config(tmp_path, moodle.url)
    migrate(cfg)
    service = start(cfg)
    try:
        wait_for(lambda: len(moodle.state.messages) > 0)
        wait_for(lambda: "actions sent" in get(port, "/dashboard")[1])
        status, html = get(port, "/dashboard")
        assert status == 200 and "moodle" in html and "pull:moodle" in html
        status, html = get(port, "/dashboard/mappings")
        assert status == 200 and CSAT in html
        status, html = get(port, f"/dashboard/mapping?id={CSAT}")
        assert status == 200 and "Impact" in html
        assert get(port, "/dashboard/outbox")[0] == 200
        assert get(port, "/dashboard/static/chart.umd.js")[0] == 200
    finally:
        code, log = service.stop()
    assert code == 0, log[-2000:]
