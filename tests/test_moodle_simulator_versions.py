"""The Moodle simulator enforces what Moodle enforces, at every supported release.

Field visibility by capability on user look-ups, require_capability refusals, role-assign
permission, the enrolment rewrite, suspended enrolments, Force timezone, messaging privacy and
ratings outside a plan — and the README's lmsbridge role is exactly the simulator's default.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.moodle.client import MoodleClient
from connectors.moodle.doctor_probes import enrol_role_check
from connectors.moodle.sim.capabilities import README_ROLE, load
from connectors.moodle.sim.server import Running
from connectors.moodle.sim.versions import SUPPORTED
from connectors.moodle.simulator import start_in_thread
from connectors.simulation.loopback import free_port
from tests import moodle_checks as checks
from tests.conftest import SIM_TOKEN

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "moodle" / "5.0"  # real Moodle 5.0 answers
LEARNER, COURSE = 102, 2


def readme_role() -> set[str]:
    """The capabilities README > Moodle's role table lists."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Moodle\n", 1)[1].split("\n## ", 1)[0]
    table = section.split("| capability |", 1)[1].split("\n\n", 1)[0]
    names: set[str] = set()
    for line in table.splitlines()[2:]:
        first = line.split("|")[1]
        names.update(re.findall(r"`([a-z]+/[a-z_]+:[a-z_]+)`", first))
    return names


def test_readme_role_is_exactly_the_simulator_default() -> None:
    assert readme_role() == set(README_ROLE)
    handle = start_in_thread(SIM_TOKEN)
    try:
        assert handle.state.capabilities == set(README_ROLE)
        assert handle.state.release == "5.0"
    finally:
        handle.stop()


@pytest.fixture(params=SUPPORTED)
def site(request: pytest.FixtureRequest) -> Iterator[Running]:
    handle = start_in_thread(SIM_TOKEN, release=request.param)
    yield handle
    handle.stop()


def raw(site: Running) -> checks.Raw:
    return checks.raw_caller(site.url, SIM_TOKEN)


def learner(site: Running) -> Any:
    return site.state.users[LEARNER]


def test_lookups_need_the_identity_capabilities(site: Running) -> None:
    call, user = raw(site), learner(site)
    checks.check_full_lookup(call, user.idnumber, user.email)
    site.state.capabilities -= {"moodle/user:viewalldetails"}
    assert checks.user_by(call, "idnumber", user.idnumber) == []
    limited = checks.user_by(call, "email", user.email)
    assert len(limited) == 1 and "username" not in limited[0] and "idnumber" not in limited[0]
    assert set(limited[0]) >= checks.LIMITED_EMAIL_KEYS
    site.state.show_identity.add("idnumber")  # "Show user identity" with ID number: found again
    assert checks.user_by(call, "idnumber", user.idnumber)[0]["idnumber"] == user.idnumber
    site.state.capabilities -= {"moodle/site:viewuseridentity"}
    assert checks.user_by(call, "email", user.email) == []
    assert checks.user_by(call, "idnumber", user.idnumber) == []
    assert call("core_user_get_users", {"criteria": [{"key": "email", "value": user.email}]})["users"] == []
    site.state.capabilities -= {"moodle/user:viewdetails"}
    assert checks.user_by(call, "id", str(user.id)) == []


def test_answer_shapes_are_the_real_ones(site: Running) -> None:
    if site.state.release != "5.0":
        pytest.skip("reference answers are from Moodle 5.0")
    call, user = raw(site), learner(site)
    full = json.loads((REFERENCE / "core_user_get_users_by_field__with_viewalldetails.json").read_text())
    assert set(checks.user_by(call, "idnumber", user.idnumber)[0]) == set(full[0])
    site.state.capabilities -= {"moodle/user:viewalldetails"}
    limited = json.loads(
        (REFERENCE / "core_user_get_users_by_field__email_with_viewuseridentity_only.json").read_text()
    )
    assert set(checks.user_by(call, "email", user.email)[0]) == set(limited[0])


def test_enrolment_needs_role_assign_and_an_allowed_role(site: Running) -> None:
    call = raw(site)
    other = next(
        c
        for c, course in site.state.courses.items()
        if course.manual_enrolment and c not in site.state.enrolments.get(LEARNER, {})
    )
    item = {"roleid": 5, "userid": LEARNER, "courseid": other}
    site.state.capabilities -= {"moodle/role:assign"}
    answer = call("enrol_manual_enrol_users", {"enrolments": [item]})
    message = checks.refusal(answer, "wsusercannotassign")
    assert (
        message
        == f"You don't have the permission to assign this role (5) to this user ({LEARNER}) in this course ({other})."
    )
    if site.state.release == "5.0":
        real = json.loads((REFERENCE / "error_enrol_without_role_assign.json").read_text())
        assert answer["exception"] == real["exception"] and set(answer) == set(real)
    site.state.capabilities.add("moodle/role:assign")
    checks.refusal(
        call("enrol_manual_enrol_users", {"enrolments": [{**item, "roleid": 3}]}), "wsusercannotassign"
    )
    site.state.capabilities -= {"enrol/manual:enrol"}
    assert "Enrol users" in checks.refusal(
        call("enrol_manual_enrol_users", {"enrolments": [item]}), "nopermissions"
    )
    site.state.capabilities.add("enrol/manual:enrol")
    assert call("enrol_manual_enrol_users", {"enrolments": [item]}) is None
    assert other in site.state.enrolments[LEARNER]


def test_the_front_page_probe_never_enrols(site: Running) -> None:
    call = raw(site)
    probe = {"roleid": 5, "userid": 3}
    checks.past_the_role_check(call, probe, site.state.spec.noinstance_is_fatal)
    site.state.capabilities -= {"moodle/role:assign"}
    checks.refusal(
        call("enrol_manual_enrol_users", {"enrolments": [{**probe, "courseid": 1}]}), "wsusercannotassign"
    )
    assert site.state.enrolled == []


def test_doctor_reads_the_front_page_refusal_of_each_release(site: Running) -> None:
    """Past the role check, Moodle 4.1 on PHP 8 crashes (HTTP 500) where the others refuse the
    front page: doctor's probe says what that means (a note, not a missing role), asks once, and
    enrols no one."""
    client = MoodleClient("moodle", site.url, SIM_TOKEN, max_wait=0.01)
    check = enrol_role_check(client, 3, 5)
    if site.state.spec.noinstance_is_fatal:
        assert (check.ok, check.required) == (False, False)
        assert "Moodle 4.1 on PHP 8 crashes there, after checking the role" in check.detail
    else:
        assert check.ok and "checked without enrolling anyone" in check.detail
    assert client.calls["enrol_manual_enrol_users"] == 1 and site.state.enrolled == []


def test_re_enrolling_rewrites_a_suspended_enrolment(site: Running) -> None:
    call = raw(site)
    course = next(iter(site.state.enrolments[LEARNER]))
    site.state.suspend_enrolment(LEARNER, course, timeend=2_000_000_000)
    suspended = call(
        "core_enrol_get_enrolled_users",
        {"courseid": course, "options": [{"name": "onlysuspended", "value": 1}]},
    )
    assert LEARNER in [u["id"] for u in suspended]
    active = call(
        "core_enrol_get_enrolled_users", {"courseid": course, "options": [{"name": "onlyactive", "value": 1}]}
    )
    assert LEARNER not in [u["id"] for u in active]
    assert course not in [
        c["id"] for c in call("core_enrol_get_users_courses", {"userid": LEARNER, "returnusercount": 0})
    ]
    everyone = call("core_enrol_get_enrolled_users", {"courseid": course})
    assert LEARNER in [u["id"] for u in everyone]  # no option: suspended enrolments are listed too
    assert (
        call(
            "enrol_manual_enrol_users",
            {
                "enrolments": [
                    {"roleid": 5, "userid": LEARNER, "courseid": course, "timestart": 1_800_000_000}
                ]
            },
        )
        is None
    )
    assert site.state.enrolment_active(LEARNER, course, now=1_900_000_000)  # re-activated
    assert (LEARNER, course) not in site.state.enrolment_ends  # end date removed
    assert site.state.enrolments[LEARNER][course] == 1_800_000_000  # start reset
    site.state.capabilities -= {"moodle/course:enrolreview"}
    refused = call(
        "core_enrol_get_enrolled_users", {"courseid": course, "options": [{"name": "onlyactive", "value": 1}]}
    )
    assert "Review course enrolments" in checks.refusal(refused, "nopermissions")


def test_forced_time_zone_wins_over_the_callers_utc(site: Running) -> None:
    call = raw(site)
    site.state.completions = {(LEARNER, COURSE): 1_796_186_100}  # Wednesday 2 December 2026, 04:35 UTC
    assert checks.check_report_utc(call, 1)[0][-1] == "Wednesday, 2 December 2026, 4:35 AM"
    site.state.forcetimezone = "Europe/Berlin"
    assert checks.check_report_utc(call, 1)[0][-1] == "Wednesday, 2 December 2026, 5:35 AM"
    real = json.loads(
        (REFERENCE / "core_reportbuilder_retrieve_report__forcetimezone_berlin.json").read_text()
    )
    utc = json.loads((REFERENCE / "core_reportbuilder_retrieve_report__utc.json").read_text())
    shifts = {
        checks.report_time(b["columns"][-1]) - checks.report_time(u["columns"][-1])
        for b, u in zip(real["data"]["rows"], utc["data"]["rows"], strict=True)
    }
    assert [s.total_seconds() for s in shifts] == [3600]  # what the simulator does, the real site did


def test_report_and_competency_reads_need_their_capabilities(site: Running) -> None:
    call = raw(site)
    site.state.capabilities -= {"moodle/reportbuilder:view", "moodle/competency:planview"}
    assert call("core_reportbuilder_list_reports", {})["reports"] == []
    assert "View custom reports" in checks.refusal(
        call("core_reportbuilder_retrieve_report", {"reportid": 1}), "nopermissions"
    )
    assert "View all learning plans" in checks.refusal(
        call("core_competency_list_user_plans", {"userid": LEARNER}), "nopermissions"
    )
    site.state.capabilities -= {"webservice/rest:use"}
    checks.refusal(call("core_webservice_get_site_info"), "accessexception")


def test_messaging_privacy_refuses_without_messageanyuser(site: Running) -> None:
    call, user = raw(site), learner(site)
    message = {"messages": [{"touserid": LEARNER, "text": "Hello", "textformat": 2}]}
    assert call("core_message_send_instant_messages", message)[0]["msgid"] > 0
    site.state.capabilities -= {"moodle/site:messageanyuser"}
    refused = call("core_message_send_instant_messages", message)[0]
    assert refused["msgid"] == -1
    assert refused["errormessage"] == (
        f"You can't message {user.firstname} {user.lastname} due to their message preferences. Try adding them as a contact."
    )
    site.state.messagingallusers, site.state.message_privacy[LEARNER] = True, 2  # "anyone on the site"
    assert call("core_message_send_instant_messages", message)[0]["msgid"] > 0


def test_ratings_outside_a_plan_are_read_by_the_summary(site: Running) -> None:
    call = raw(site)
    competency = site.state.competencies()[-1][0]
    unplanned = next(
        u for u in site.state.users if u >= 100 and not any(p.userid == u for p in site.state.plans.values())
    )
    summary = call(
        "tool_lp_data_for_user_competency_summary", {"userid": unplanned, "competencyid": competency}
    )
    assert summary["usercompetency"]["grade"] is None and summary["evidence"] == []
    site.state.rate(unplanned, competency, 2, 1_796_000_000)
    summary = call(
        "tool_lp_data_for_user_competency_summary", {"userid": unplanned, "competencyid": competency}
    )
    real = json.loads((REFERENCE / "tool_lp_data_for_user_competency_summary.json").read_text())
    assert set(summary) == set(real) and set(summary["usercompetency"]) == set(real["usercompetency"])
    assert (
        summary["usercompetency"]["proficiency"] is True
        and summary["usercompetency"]["gradename"] == "Competent"
    )
    assert call("core_competency_list_user_plans", {"userid": unplanned}) == []  # no plan holds it


def test_capabilities_file_formats(tmp_path: Path) -> None:
    text = tmp_path / "caps.txt"
    text.write_text("# the lmsbridge role\nwebservice/rest:use\n\nmoodle/user:viewdetails  # look-ups\n")
    as_json = tmp_path / "caps.json"
    as_json.write_text('["webservice/rest:use", "moodle/user:viewdetails"]')
    assert load(text) == load(as_json) == {"webservice/rest:use", "moodle/user:viewdetails"}


def test_command_line_version_and_capabilities(tmp_path: Path) -> None:
    caps = tmp_path / "caps.txt"
    caps.write_text("webservice/rest:use\nmoodle/user:viewdetails\n")
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "lmsbridge"),
        "simulator",
        "moodle",
        "--token",
        SIM_TOKEN,
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        [*command, "--version", "4.1", "--capabilities", str(caps)], cwd=ROOT, stderr=subprocess.PIPE
    )
    try:
        call = checks.raw_caller(f"http://127.0.0.1:{port}", SIM_TOKEN)
        deadline = time.monotonic() + 20
        while True:
            try:
                info = call("core_webservice_get_site_info")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert info["release"].startswith("4.1.")
        checks.refusal(call("core_reportbuilder_retrieve_report", {"reportid": 1}), "nopermissions")
    finally:
        process.terminate()
        process.wait(10)


def test_draft_plans_need_the_draft_capabilities(site: Running) -> None:
    call = raw(site)
    created = call("core_competency_create_plan", {"plan": {"name": "Draft", "userid": LEARNER}})
    assert created["status"] == 0
    competency = site.state.competencies()[0][0]
    site.state.capabilities -= {"moodle/competency:planviewdraft", "moodle/competency:planmanagedraft"}
    assert created["id"] not in [
        p["id"] for p in call("core_competency_list_user_plans", {"userid": LEARNER})
    ]
    refused = call(
        "core_competency_add_competency_to_plan", {"planid": created["id"], "competencyid": competency}
    )
    assert "View all learning plans" in checks.refusal(refused, "nopermissions")
    draft = call("core_competency_create_plan", {"plan": {"name": "Draft", "userid": LEARNER}})
    assert "Manage learning plans" in checks.refusal(draft, "nopermissions")
    active = call("core_competency_create_plan", {"plan": {"name": "Active", "userid": LEARNER, "status": 1}})
    assert active["status"] == 1


def test_names_need_viewfullnames_before_5_0(site: Running) -> None:
    call, user = raw(site), learner(site)
    site.state.capabilities -= {"moodle/site:viewfullnames"}
    answer = checks.user_by(call, "idnumber", user.idnumber)[0]
    assert answer["fullname"] == f"{user.firstname} {user.lastname}"
    assert ("firstname" in answer) == (site.state.release == "5.0")


def test_the_report_order_is_sorted_once_per_change_not_per_page(site: Running) -> None:
    """The completion report is read in pages: sorting every completion per page made the
    simulator quadratic, and the benchmark measured it instead of lmsbridge."""
    state = site.state
    first = state.completions_newest_first()
    assert first == sorted(state.completions.items(), key=lambda item: (-item[1], item[0]))
    assert state.completions_newest_first() is first  # the next page reuses the order
    newest = max(when for _key, when in first) + 60
    user_id, course_id = next(iter(state.completions))
    state.complete(user_id, course_id + 1000, newest)
    assert state.completions_newest_first()[0] == ((user_id, course_id + 1000), newest)
    state.completions = {(user_id, course_id): 1}
    assert state.completions_newest_first() == [((user_id, course_id), 1)]
