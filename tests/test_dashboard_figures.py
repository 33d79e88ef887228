"""The dashboard's figures and words: one figure, one computation, wherever it is shown.

`lmsbridge impact --format json` and `lmsbridge status --json` run on the same seeded store as
the pages, and every figure the pages show must be the CLI's; effects are words and intervals,
never a point estimate the interval does not support; holdout comparisons only where a holdout
is configured; waiting actions with their reasons; paused delivery and rejected mapping files
in a banner.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from bridge import clock, impact
from bridge.cli import app
from bridge.dashboard.wording import effect_in_words
from bridge.impact_stats import Estimate
from bridge.operational_state import record_mappings_accepted, record_mappings_rejected, set_paused
from bridge.ops import OpsServer
from tests.browser.store import CSAT, NOW, seed, serve
from tests.test_cli_e2e import ROOT
from tests.test_dashboard import page


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    """The seeded store as a file, and a configuration for the CLI pointing at it."""
    from bridge.store.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    upgrade(engine)
    seed(engine)
    clock.set_now(NOW)
    cfg = tmp_path / "lmsbridge.toml"
    cfg.write_text(
        f"""
[store]
url = "sqlite:///state.db"
[mappings]
dir = "{ROOT / "mappings"}"
[metrics.csat]
direction = "higher"
target = 4.2
title = "Customer satisfaction"
unit = "1-5"
[metrics.win_rate]
direction = "higher"
target = 30
unit = "%"
"""
    )
    yield engine, cfg
    engine.dispose()


@pytest.fixture
def local(store: tuple[Engine, Path]) -> Iterator[OpsServer]:
    ops = serve(store[0], "127.0.0.1:0", None)
    yield ops
    ops.stop()


def cli_json(cfg: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("LMSBRIDGE_NOW", NOW.isoformat())
    result = CliRunner().invoke(app, ["--config", str(cfg), *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def figure(html: str, name: str) -> str:
    """The text of the element marked data-figure=NAME (its first number-like run)."""
    found = re.search(rf'data-figure="{name}"[^>]*>(?:<[^>]+>)*\s*([^<]+)', html)
    assert found is not None, f"no figure {name}"
    return found.group(1).strip()


def fact(html: str, name: str) -> str:
    """The value of the <dt>/<dd> pair marked data-figure=NAME."""
    found = re.search(rf'data-figure="{name}"><dt>[^<]*</dt><dd>([^<]*)</dd>', html)
    assert found is not None, f"no fact {name}"
    return found.group(1).strip()


def test_the_pages_show_the_cli_s_figures(
    local: OpsServer, store: tuple[Engine, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    results = {r["mapping_id"]: r for r in cli_json(store[1], monkeypatch, "impact", "--format", "json")}
    listing = page(local, "/dashboard/mappings")
    rows = {
        mapping_id: row
        for mapping_id, row in re.findall(r'mapping\?id=([^"]+)">.*?(<td.*?)</tr>', listing, re.S)
    }
    for mapping_id in results:
        reach, effort = results[mapping_id]["reach"], results[mapping_id]["effort"]
        html = page(local, f"/dashboard/mapping?id={mapping_id}")
        assert figure(html, "recommended") == str(reach["recommended"]) == str(effort["recommendations"])
        assert figure(html, "contacted") == str(reach["contacted"])
        assert figure(html, "holdout") == str(reach["holdout"])
        assert figure(html, "completed") == str(reach["completed"])
        assert figure(html, "messages-sent") == str(effort["messages_sent"])
        rate = effort["completion_rate"]
        shown = "—" if rate is None else f"{100 * rate:.0f}%"
        assert figure(html, "completion-rate") == shown
        if "<h3>Effort</h3>" in html:
            assert fact(html, "effort-recommendations") == str(effort["recommendations"])
            assert fact(html, "effort-completions") == str(effort["completions"]) == str(reach["completed"])
            assert fact(html, "effort-completion-rate") == shown
            assert fact(html, "effort-messages-sent") == str(effort["messages_sent"])
        row = rows[mapping_id]
        assert f'data-figure="contacted">{reach["contacted"]}<' in row
        assert f">{effort['messages_sent']}</td>" in row
        assert results[mapping_id]["verdict"] in row
    # The seeded csat figures, so a change in both places at once is still noticed.
    csat = results[CSAT]
    assert (csat["reach"]["recommended"], csat["effort"]["messages_sent"], csat["verdict"]) == (
        20,
        38,
        "works",
    )


def test_the_overview_shows_the_queue_status_shows(
    local: OpsServer, store: tuple[Engine, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = cli_json(store[1], monkeypatch, "status", "--json")["queue"]
    html = page(local, "/dashboard")
    shown = dict(
        (state, int(n))
        for n, state in re.findall(
            r'<span class="figure">(\d+)</span>\s*<span class="caption">actions (\w+)', html
        )
    )
    assert shown == queue and queue["pending"] == 4


def test_open_figures_agree_with_the_people_view(local: OpsServer) -> None:
    html = page(local, f"/dashboard/mapping?id={CSAT}")
    assert figure(html, "open") == "7" and figure(html, "overdue") == "11"
    listing = page(local, f"/dashboard/people?mapping={CSAT}&state=overdue")
    assert "<strong>11</strong> recommendations" in listing


def test_mappings_list_shows_each_verdict(local: OpsServer) -> None:
    html = page(local, "/dashboard/mappings")
    verdicts = dict(re.findall(r'mapping\?id=([^"]+)">.*?data-figure="verdict">(.*?)</td>', html, re.S))
    assert ">works<" in verdicts[CSAT] and "0.32 higher: better" in verdicts[CSAT]
    assert ">insufficient data<" in verdicts["sales-win-rate"]
    assert "not measured" in verdicts["onboarding-essentials"]


def _no_effect(result: impact.MappingImpact) -> impact.MappingImpact:
    """The csat result as if its comparison had found nothing, on a lower-is-better metric."""
    covering = Estimate(effect=-0.79, low=-2.1, high=0.52, df=12.0, n_treated=13, n_control=7)
    return dataclasses.replace(
        result, completers_vs_non=covering, verdict="no detectable effect", direction="lower"
    )


def test_no_detectable_effect_shows_no_point_estimate(
    local: OpsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    measure = impact.measure
    monkeypatch.setattr(impact, "measure", lambda *a, **kw: [_no_effect(r) for r in measure(*a, **kw)])
    html = page(local, f"/dashboard/mapping?id={CSAT}")
    headline = html.split('<p class="headline">')[1].split("</p>")[0]
    assert "no detectable effect on Customer satisfaction (1-5)" in headline
    assert "-0.79" not in html and "includes 0" in headline
    assert "-2.10 to +0.52" in html  # the interval stays
    listing = page(local, "/dashboard/mappings")
    assert "-0.79" not in listing and "no detectable effect" in listing


def test_signed_effects_read_as_better_or_worse() -> None:
    better = Estimate(effect=0.45, low=0.2, high=0.7, df=10, n_treated=9, n_control=9)
    worse = Estimate(effect=-0.45, low=-0.7, high=-0.2, df=10, n_treated=9, n_control=9)
    assert effect_in_words(better, "higher") == "0.45 higher: better"
    assert effect_in_words(better, "lower") == "0.45 lower: better"  # fewer incidents
    assert effect_in_words(worse, "lower") == "0.45 higher: worse"
    assert effect_in_words(worse, "higher") == "0.45 lower: worse"
    nothing = Estimate(effect=-0.79, low=-2.0, high=0.4, df=10, n_treated=9, n_control=9)
    assert effect_in_words(nothing, "lower") == "no detectable effect"


def test_holdout_comparisons_only_where_a_holdout_is_configured(local: OpsServer) -> None:
    without = page(local, "/dashboard/mapping?id=sales-win-rate")  # measure: without holdout_percent
    # Completers vs not and the pre-trend lack people; the two holdout rows are not there at all.
    assert without.count("not enough people to compare") == 2
    assert "Recommended vs holdout" not in without and "Holdout (not contacted)" not in without
    assert "This mapping has no holdout" in without
    with_holdout = page(local, f"/dashboard/mapping?id={CSAT}")  # holdout_percent: 20
    assert "Recommended vs holdout (intention to treat)" in with_holdout
    assert "This mapping has no holdout" not in with_holdout


def test_a_mapping_without_measure_shows_who_is_open_and_overdue(local: OpsServer) -> None:
    html = page(local, "/dashboard/mapping?id=onboarding-essentials")
    assert figure(html, "open") == "2" and figure(html, "overdue") == "1"
    open_now = html.split("<h2>Open now</h2>")[1]
    assert "Agent 29" in open_now and "Agent 30" in open_now and "overdue" in open_now


def test_outbox_lists_waiting_actions_with_reasons_grouped_without_dates(local: OpsServer) -> None:
    html = page(local, "/dashboard/outbox")
    waiting = html.split("<h2>Waiting to be sent</h2>")[1].split("<h2>")[0]
    assert "<strong>2</strong> action(s) deferred" in waiting
    assert "deferred: outside the recipient&#39;s sending hours" in waiting
    assert "deferred: weekly cap of 3 messages reached" in waiting
    assert waiting.count('<th scope="row">#') == 5  # 4 pending, 1 waiting
    not_sent = html.split("<h2>Not sent, and why</h2>")[1]
    assert "dropped unsent: queued (date), older than the 14-day limit" in not_sent
    assert re.search(r"queued \(date\).*?<td class=\"num\">2</td>", not_sent, re.S)
    assert "2026-06-08" not in not_sent


def test_paused_delivery_is_a_banner_on_every_page(local: OpsServer, store: tuple[Engine, Path]) -> None:
    assert 'data-banner="paused"' not in page(local, "/dashboard")
    with store[0].begin() as conn:
        set_paused(conn, True, NOW)
    for path in ("/dashboard", "/dashboard/mappings", "/dashboard/people", "/dashboard/outbox"):
        html = page(local, path)
        assert 'data-banner="paused"' in html and "lmsbridge resume" in html


def test_rejected_mapping_files_are_a_banner(local: OpsServer, store: tuple[Engine, Path]) -> None:
    """As `status` and /readyz show it: the daemon keeps the verdict in the store, so the pages
    of every replica show it, whichever replica read the broken files."""
    assert 'data-banner="mappings-rejected"' not in page(local, "/dashboard/people")
    with store[0].begin() as conn:
        record_mappings_rejected(conn, ["mappings/broken.yaml:3:1: when.kpi.below: field required <b>"], NOW)
    html = page(local, "/dashboard/people")
    assert 'data-banner="mappings-rejected"' in html
    assert "mappings/broken.yaml:3:1: when.kpi.below: field required &lt;b&gt;" in html
    with store[0].begin() as conn:
        record_mappings_accepted(conn)
    assert 'data-banner="mappings-rejected"' not in page(local, "/dashboard/people")
