"""``lmsbridge doctor`` on Moodle tells the truth by behaviour, against the simulator.

Each broken set-up the real site had (issue 13) is made on the simulator, and doctor must name
it with the fix: HR people not found for want of an identity capability, a role that may not
assign the enrolment role, a forced time zone, a report the user cannot see; and the function
that is only missing from the service is not called missing from Moodle.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bridge.cli import app
from connectors.moodle.sim.server import Running
from connectors.moodle.simulator import start_in_thread
from tests.conftest import SIM_TOKEN
from tests.test_cli_e2e import NOW, config


def doctor(tmp_path: Path, site: Running, monkeypatch: pytest.MonkeyPatch) -> Result:
    monkeypatch.setenv("LMSBRIDGE_SITES__MOODLE__TOKEN", SIM_TOKEN)
    monkeypatch.setenv("LMSBRIDGE_NOW", NOW)
    monkeypatch.setenv("COLUMNS", "240")
    return CliRunner().invoke(app, ["--config", str(config(tmp_path, site.url)), "doctor"])


def line(output: str, name: str) -> str:
    found = [row for row in output.splitlines() if f" {name} -" in row or row.rstrip().endswith(f" {name}")]
    assert found, f"{name!r} not in:\n{output}"
    return " ".join(found[0].split())


def test_a_site_set_up_as_the_readme_says_passes_and_nothing_is_written(
    tmp_path: Path, moodle: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = doctor(tmp_path, moodle, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "MISSING" not in result.output
    found = re.search(
        r"(\d+) of 30 HR people found by idnumber", line(result.output, "HR people found by idnumber")
    )
    assert found and int(found[1]) >= 25  # the synthetic HR file has a few people without an account
    assert "role 5 (checked without enrolling anyone)" in line(result.output, "enrolment role assignable")
    assert "agree with their exact completion times (UTC)" in line(result.output, "report times are UTC")
    assert moodle.state.enrolled == [] and moodle.state.messages == []


def test_people_not_found_name_the_missing_capability(
    tmp_path: Path, moodle: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    moodle.state.capabilities -= {"moodle/user:viewalldetails", "moodle/site:viewuseridentity"}
    result = doctor(tmp_path, moodle, monkeypatch)
    assert result.exit_code == 1
    assert "0 of 30 HR people found by idnumber" in line(result.output, "HR people found by idnumber")
    assert "0 of 30 HR people found by email" in line(result.output, "HR people found by email")
    assert "moodle/user:viewalldetails" in result.output and "moodle/site:viewuseridentity" in result.output


def test_email_found_without_idnumber_says_what_the_answers_lack(
    tmp_path: Path, moodle: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    moodle.state.capabilities -= {"moodle/user:viewalldetails"}
    result = doctor(tmp_path, moodle, monkeypatch)
    assert "0 of 30 HR people found by idnumber" in line(result.output, "HR people found by idnumber")
    email = line(result.output, "HR people found by email")
    assert "of 30 HR people found by email" in email and "no username or idnumber" in email


def test_a_role_that_may_not_assign_students_is_reported_without_enrolling(
    tmp_path: Path, moodle: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    moodle.state.assignable_roles.clear()
    result = doctor(tmp_path, moodle, monkeypatch)
    assert result.exit_code == 1
    assert "MISSING enrolment role assignable" in line(result.output, "enrolment role assignable")
    assert "Moodle refuses role 5: You don't have the permission to assign this role (5)" in result.output
    assert "Allow role assignments" in result.output and "moodle/role:assign" in result.output
    assert moodle.state.enrolled == []


def test_a_forced_time_zone_is_reported(
    tmp_path: Path, moodle: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    moodle.state.forcetimezone = "Europe/Berlin"
    result = doctor(tmp_path, moodle, monkeypatch)
    report = line(result.output, "report times are UTC")
    assert "MISSING" in report and re.search(r"\+[12] h", report) and "Force timezone" in report  # CET/CEST
    assert "report_timezone" in result.output


def test_auto_says_why_it_left_the_report_feed(
    tmp_path: Path, moodle: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    moodle.state.capabilities -= {"moodle/reportbuilder:view"}
    feed = line(doctor(tmp_path, moodle, monkeypatch).output, "completion feed")
    assert "not the report feed" in feed and "moodle/reportbuilder:view" in feed and "audience" in feed


def test_missing_from_the_service_is_not_missing_from_moodle(
    tmp_path: Path, moodle: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    moodle.state.removed_functions |= {"core_reportbuilder_retrieve_report", "enrol_manual_enrol_users"}
    output = doctor(tmp_path, moodle, monkeypatch).output
    assert "core_reportbuilder_retrieve_report is not in the token's service (Moodle 5.0" in line(
        output, "completion feed"
    )
    assert "not in the token's service (Moodle 5.0" in line(output, "function enrol_manual_enrol_users")
    assert "4.1+" not in output


def test_an_old_release_is_told_it_needs_4_1_for_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = start_in_thread(SIM_TOKEN, release="3.11")
    try:
        feed = line(doctor(tmp_path, old, monkeypatch).output, "completion feed")
    finally:
        old.stop()
    assert "this site is Moodle 3.11" in feed and "custom reports need Moodle 4.1+" in feed
