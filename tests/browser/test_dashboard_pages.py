"""Every dashboard page in a real browser, on a laptop and a phone screen: it loads through the
token check, logs no console error, fits the screen, draws its charts; screenshots are kept
under test-artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, Response
from playwright.sync_api import Error as PlaywrightError

from tests.browser.conftest import TOKEN
from tests.browser.store import CSAT, ESCALATED, MANAGER_B

PAGES = {
    "overview": "/dashboard",
    "mappings": "/dashboard/mappings",
    "mapping": f"/dashboard/mapping?id={CSAT}",
    "outbox": "/dashboard/outbox",
    "people": "/dashboard/people",
    "people-filtered": f"/dashboard/people?mapping={CSAT}&state=overdue",
    "person": f"/dashboard/person?id={ESCALATED}",
    "manager": f"/dashboard/manager?id={MANAGER_B}",
    "mapping-unmeasured": "/dashboard/mapping?id=onboarding-essentials",
}
VIEWPORTS = {"laptop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}

# For each chart canvas: the Chart.js instance's type, dataset labels and point count, and how
# many of the canvas's pixels were painted.
CHARTS_JS = """() => Array.from(document.querySelectorAll("canvas[data-chart]")).map((canvas) => {
  const chart = Chart.getChart(canvas);
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) { painted += 1; } }
  return {
    name: canvas.dataset.chart,
    type: chart ? chart.config.type : null,
    labels: chart ? chart.data.datasets.map((d) => d.label) : [],
    points: chart ? chart.data.datasets[0].data.length : 0,
    painted: painted,
    area: canvas.width * canvas.height,
  };
})"""


def signed_in(browser: Browser, viewport: str) -> BrowserContext:
    return browser.new_context(
        viewport=VIEWPORTS[viewport],  # type: ignore[arg-type]
        http_credentials={"username": "admin", "password": TOKEN},
    )


def watch(page: Page) -> list[str]:
    """Collect console errors, uncaught exceptions and failed or refused requests."""
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    def response(resp: Response) -> None:
        if resp.status >= 400:
            problems.append(f"{resp.status} {resp.url}")

    def failed(request: Request) -> None:
        problems.append(f"failed {request.url}: {request.failure}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.on("response", response)
    page.on("requestfailed", failed)
    return problems


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_page_loads_cleanly_and_fits_the_screen(
    browser: Browser, base_url: str, screenshots: Path, viewport: str
) -> None:
    context = signed_in(browser, viewport)
    page = context.new_page()
    problems = watch(page)
    try:
        for name, path in PAGES.items():
            response = page.goto(base_url + path)
            assert response is not None and response.status == 200, name
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert page.locator("h1").count() == 1
            # Wide tables scroll inside their own box; the page itself never scrolls sideways.
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} is {overflow}px wider than the {viewport} screen"
            page.screenshot(path=screenshots / f"{viewport}-{name}.png", full_page=True)
    finally:
        context.close()
    assert problems == []


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_mapping_page_draws_the_impact_charts(browser: Browser, base_url: str, viewport: str) -> None:
    context = signed_in(browser, viewport)
    page = context.new_page()
    problems = watch(page)
    try:
        page.goto(base_url + PAGES["mapping"])
        page.wait_for_function("() => typeof Chart !== 'undefined'")
        drawn: list[dict[str, Any]] = page.evaluate(CHARTS_JS)
    finally:
        context.close()
    assert problems == []
    by_name = {chart["name"]: chart for chart in drawn}
    assert set(by_name) == {"before-after", "time-to-competency"}
    for chart in drawn:
        assert chart["type"] == "line"
        assert chart["painted"] > 0.02 * chart["area"], f"{chart['name']} is (nearly) blank"
    labels = by_name["before-after"]["labels"]
    assert any(label.startswith("Completed (n=") for label in labels)
    assert any(label.startswith("Contacted, not completed (n=") for label in labels)
    assert "Target" in labels
    assert by_name["before-after"]["points"] == 2
    assert by_name["time-to-competency"]["points"] > 2


def test_navigation_between_pages(browser: Browser, base_url: str) -> None:
    context = signed_in(browser, "laptop")
    page = context.new_page()
    problems = watch(page)
    try:
        page.goto(base_url + "/dashboard")
        nav = page.get_by_role("navigation", name="Dashboard")
        nav.get_by_role("link", name="Mappings").click()
        page.wait_for_url("**/dashboard/mappings")
        page.get_by_role("link", name="Customer satisfaction below target").click()
        page.wait_for_url(f"**/dashboard/mapping?id={CSAT}")
        assert page.locator("canvas[data-chart]").count() == 2
        nav.get_by_role("link", name="Outbox").click()
        page.wait_for_url("**/dashboard/outbox")
        assert page.get_by_text("Moodle said invalidtoken").is_visible()
    finally:
        context.close()
    assert problems == []


@pytest.mark.parametrize("credentials", [None, {"username": "admin", "password": "not-the-token"}])
def test_without_the_token_the_browser_is_refused(
    browser: Browser, base_url: str, credentials: dict[str, str] | None
) -> None:
    context = browser.new_context(http_credentials=credentials)  # type: ignore[arg-type]
    statuses: list[int] = []
    try:
        page = context.new_page()
        page.on("response", lambda response: statuses.append(response.status))
        for path in [*PAGES.values(), "/dashboard/static/chart.umd.js"]:
            statuses.clear()
            try:
                response = page.goto(base_url + path)
            except PlaywrightError as exc:
                # With no credentials at all Chromium abandons the 401 challenge.
                assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc), path
            else:
                assert response is not None and response.status == 401, path
                assert "authentication required" in page.content()
            assert statuses and set(statuses) == {401}, path
    finally:
        context.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_people_are_found_with_the_filters_and_followed_to_their_manager(
    browser: Browser, base_url: str, viewport: str
) -> None:
    context = signed_in(browser, viewport)
    page = context.new_page()
    problems = watch(page)
    try:
        page.goto(base_url + "/dashboard")
        page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="People").click()
        page.wait_for_url("**/dashboard/people")
        form = page.get_by_role("search", name="Filter people")
        form.get_by_label("Mapping").select_option(label="Customer satisfaction below target")
        form.get_by_label("State").select_option("overdue")
        form.get_by_label("Search").fill("agent 17")
        form.get_by_role("button", name="Show").click()
        page.wait_for_url("**/dashboard/people?*state=overdue*")
        assert page.locator('[data-figure="people-total"] strong').inner_text() == "1"
        row = page.locator("table.people tbody tr")
        assert row.count() == 1 and row.get_by_text("digest sent").is_visible()
        with page.expect_download() as download:
            page.get_by_role("link", name="Export CSV").click()
        exported = Path(download.value.path()).read_text()
        assert exported.count("\n") == 2 and ESCALATED in exported
        row.get_by_role("link", name="Agent 17").click()
        page.wait_for_url(f"**/dashboard/person?id={ESCALATED}")
        assert page.get_by_text("HTTP 503 from the Moodle site").is_visible()
        page.locator("dl.facts").get_by_role("link", name="Sam Lead").click()
        page.wait_for_url(f"**/dashboard/manager?id={MANAGER_B}")
        assert page.locator('[data-figure="reports"]').inner_text() == "15"
    finally:
        context.close()
    assert problems == []


def test_a_page_past_the_end_shows_the_last_one(browser: Browser, base_url: str) -> None:
    context = signed_in(browser, "phone")
    page = context.new_page()
    problems = watch(page)
    try:
        # Every row fits one page of 50 here; the pager is checked on the server side.
        page.goto(base_url + "/dashboard/people?page=9")
        assert page.locator("nav.pager").count() == 0
        assert page.locator("table.people tbody tr").count() == 33
    finally:
        context.close()
    assert problems == []
