"""`preview MAPPING --person ID`: the person's real facts through the send-time renderer, or why not."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from bridge.compose import context_values
from bridge.mapping import templates
from bridge.records import Person, Target
from connectors.moodle.sim.server import Running
from tests.test_cli_e2e import ROOT, config, run


def _preview(cfg: Path, *args: str) -> str:
    result = run(cfg, "preview", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _latest_kpi(employee: str, metric: str) -> str:
    with (ROOT / "examples/hr/kpis.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["Employee Number"] == employee and r["Metric"] == metric]
    return max(rows, key=lambda r: r["Period Start"])["Value"]


def test_preview_shows_real_facts_or_why_nothing_would_be_sent(tmp_path: Path, moodle: Running) -> None:
    cfg = config(tmp_path, moodle.url)
    assert run(cfg, "db", "upgrade").returncode == 0
    assert run(cfg, "sync", "--once").returncode == 0
    outputs = []

    # A matching person (CSAT below target): their name, their figure, the real course, every kind.
    liam = _preview(cfg, "csat-customer-conversations", "--person", "000028")
    outputs.append(liam)
    assert "Hello Liam," in liam and _latest_kpi("000028", "csat") in liam
    assert "Customer Conversations that Resolve" in liam and "/course/view.php?id=" in liam
    for kind in (
        "recommend (to Liam Jensen)",
        "reminder (to Liam Jensen",
        "escalation (to ",
        "reinforcement (",
    ):
        assert kind in liam
    assert "the facts that triggered it" not in liam

    # No manager: the learner's messages render, the escalation says it would not go and why.
    maya = _preview(cfg, "safety-refresher", "--person", "000002")
    outputs.append(maya)
    assert "Hello Maya," in maya
    assert "escalation: not sent: Maya Quinn has no manager" in maya
    outputs.append(_preview(cfg, "safety-refresher", "--person", "000002", "--kind", "escalation"))
    assert "not sent: Maya Quinn has no manager" in outputs[-1] and "Subject" not in outputs[-1]

    # Not matching: the evaluation's reason, and nothing rendered.
    ana = _preview(cfg, "safety-refresher", "--person", "000001")
    outputs.append(ana)
    assert ana.startswith("nothing would be sent: Ana Garcia does not match: department Customer Service")

    # Opted out, and the measurement holdout.
    assert run(cfg, "optout", "add", "000028").returncode == 0
    outputs.append(_preview(cfg, "csat-customer-conversations", "--person", "000028"))
    assert outputs[-1].startswith("nothing would be sent: Liam Jensen opted out")
    outputs.append(_preview(cfg, "csat-customer-conversations", "--person", "000074"))
    assert "measurement holdout" in outputs[-1]

    for output in outputs:
        assert "Hello ," not in output and "Hello  " not in output and "(to )" not in output


def _escalation(**overrides: object) -> templates.Rendered:
    values = context_values(
        person=Person("P1", "Ana", "Garcia"),
        manager=overrides.pop("manager", Person("P2", "Sam", "Lee")),  # type: ignore[arg-type]
        target=Target("moodle", "course", 2, "Customer Conversations", "https://lms/course/view.php?id=2"),
        mapping_id="m",
        mapping_title="M",
        due_in_days=30,
        reason="csat 3.5 < target 4.2 in 2026-10",
        opened=datetime(2026, 10, 1, tzinfo=UTC),
        now=overrides.pop("now", datetime(2026, 10, 22, tzinfo=UTC)),  # type: ignore[arg-type]
        tz="UTC",
    )
    return templates.render(templates.DEFAULTS["escalation"], values)


def test_escalation_subject_and_body_agree() -> None:
    before_due = _escalation()
    overdue = _escalation(now=datetime(2026, 11, 5, tzinfo=UTC))
    for rendered in (before_due, overdue):
        for part in (rendered.subject, rendered.text):
            assert "Ana Garcia" in part and "Customer Conversations" in part and "not completed" in part
        assert rendered.text.startswith("Hello Sam,")
    assert "overdue" not in before_due.subject and "overdue" not in before_due.text
    assert "due by 2026-10-31" in before_due.text
    assert "5 days overdue" in overdue.subject and "5 days overdue" in overdue.text
    assert "due on 2026-10-31" in overdue.text


def test_a_person_without_a_first_name_is_greeted_by_name() -> None:
    from bridge.compose import names, render_digest

    nameless = Person("P9", "", "", employee_number="000009")
    assert names(nameless)["first_name"] == "P9"
    assert "Hello ," not in render_digest(nameless, ["x"]).text
    assert "Hello ," not in _escalation(manager=Person("P8", "", "Okafor")).text
