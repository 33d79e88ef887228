"""Issue 17: `validate` checks files, not connections — no token, a fresh state — says "not
checked" where nothing was pulled to check a reference against (never a false error), names
file:line and the closest name for a reference error, and `sync` refuses the set as
`validate` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import MappingError
from bridge.mapping.loader import load_file
from connectors.moodle.sim.server import Running
from tests.test_cli_e2e import ROOT, config, run

CSAT = "csat-customer-conversations.yaml"
LISTENING = """id: listening
title: Listening
when:
  kpi: {{metric: csat, below: target}}
recommend:
  - site: moodle
    competency: {competency}
    channels: [plan]
"""


def rules(tmp_path: Path, *extra: tuple[str, str]) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir(exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    (directory / CSAT).write_text((ROOT / "mappings" / CSAT).read_text())
    for name, text in extra:
        (directory / name).write_text(text)
    return directory


def test_validate_needs_no_token_and_no_state(tmp_path: Path, moodle: Running) -> None:
    cfg = config(tmp_path, moodle.url)
    result = run(cfg, "validate", str(rules(tmp_path)), env={"LMSBRIDGE_SITES__MOODLE__TOKEN": ""})
    assert result.returncode == 0, result.stderr
    assert "not checked: courses, competencies and metrics the mappings name" in result.stdout
    assert "1 mapping(s) valid" in result.stdout
    assert not (tmp_path / "state.db").exists()  # checking files creates no state database


def test_validate_without_a_token_on_a_migrated_state_says_not_checked(
    tmp_path: Path, moodle: Running
) -> None:
    cfg = config(tmp_path, moodle.url)
    assert run(cfg, "db", "upgrade").returncode == 0
    directory = rules(tmp_path)
    result = run(cfg, "validate", str(directory), env={"LMSBRIDGE_SITES__MOODLE__TOKEN": ""})
    assert result.returncode == 0, result.stderr
    assert (
        f"{directory / CSAT}:25:5: recommend.0.course: not checked: course 'CS-101': "
        "no courses pulled from site 'moodle' yet (run `lmsbridge sync`)"
    ) in result.stdout


@pytest.fixture
def synced(tmp_path: Path, moodle: Running) -> Path:
    """A state after one sync of the CSAT mapping alone: courses pulled, competencies not."""
    cfg = config(tmp_path, moodle.url)
    cfg.write_text(cfg.read_text().replace(f'dir = "{ROOT / "mappings"}"', f'dir = "{rules(tmp_path)}"'))
    assert run(cfg, "db", "upgrade").returncode == 0
    result = run(cfg, "sync", "--once")
    assert result.returncode == 0, result.stderr
    return cfg


def test_a_competency_not_pulled_yet_is_not_checked_rather_than_missing(tmp_path: Path, synced: Path) -> None:
    directory = rules(tmp_path, ("listening.yaml", LISTENING.format(competency="CS-LISTEN")))
    result = run(synced, "validate", str(directory), env={"LMSBRIDGE_SITES__MOODLE__TOKEN": ""})
    assert result.returncode == 0, result.stderr
    assert (
        f"{directory / 'listening.yaml'}:7:5: recommend.0.competency: not checked: competency 'CS-LISTEN': "
        "no competencies pulled from site 'moodle' yet"
    ) in result.stdout
    assert "does not exist" not in result.stdout + result.stderr


def test_a_missing_course_names_file_line_and_the_closest_course(tmp_path: Path, synced: Path) -> None:
    typo = (ROOT / "mappings" / CSAT).read_text().replace("course: CS-101", "course: CS-10")
    directory = rules(tmp_path, ("typo.yaml", typo.replace("id: csat-customer-conversations", "id: typo")))
    result = run(synced, "validate", str(directory))
    assert result.returncode == 1
    assert (
        f"{directory / 'typo.yaml'}:25:5: recommend.0.course: course 'CS-10' does not exist on site 'moodle' "
        "(did you mean 'CS-101'?)"
    ) in result.stderr


def test_sync_refuses_a_set_with_a_reference_error_and_sends_nothing(
    tmp_path: Path, synced: Path, moodle: Running
) -> None:
    directory = rules(tmp_path, ("listening.yaml", LISTENING.format(competency="CS-LISTN")))
    sent = len(moodle.state.messages)
    result = run(synced, "sync", "--once", "--full", "--mappings", str(directory))
    # The pull read the competencies the new mapping needs; then the set was refused.
    assert result.returncode == 1
    line = (
        f"{directory / 'listening.yaml'}:7:5: recommend.0.competency: competency 'CS-LISTN' does not exist "
        "on site 'moodle' (did you mean 'CS-LISTEN'?)"
    )
    assert line in result.stderr
    assert "nothing was decided or sent; fix these (`lmsbridge validate`)" in result.stderr
    assert len(moodle.state.messages) == sent
    validated = run(synced, "validate", str(directory))
    assert validated.returncode == 1 and line in validated.stderr


def test_a_site_that_is_not_configured_is_named_with_the_closest_one(tmp_path: Path, synced: Path) -> None:
    other = LISTENING.format(competency="CS-LISTEN").replace("site: moodle", "site: modle")
    directory = rules(tmp_path, ("listening.yaml", other))
    result = run(synced, "validate", str(directory))
    assert result.returncode == 1
    assert (
        f"{directory / 'listening.yaml'}:6:5: recommend.0.site: site 'modle' is not configured (did you mean 'moodle'?)"
    ) in result.stderr


def test_a_union_field_is_one_problem_without_internal_names(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "id: x\ntitle: t\nwhen:\n  kpi: {metric: csat, below: low}\nrecommend:\n  - site: moodle\n    course: C\n"
    )
    with pytest.raises(MappingError) as info:
        load_file(path)
    assert info.value.problems == [
        f"{path}:4:23: when.kpi.below: Input should be a valid number, unable to parse string as a number; "
        "or Input should be 'target'"
    ]
