"""The dashboard's people view, person page and manager view, over real HTTP on a seeded store:
filters, search, paging, CSV export, escalations, and the same history `lmsbridge why` shows."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import Engine

from bridge.dashboard import people
from bridge.facts import load_people
from bridge.ops import OpsServer
from bridge.store import schema as t
from tests.browser.store import CSAT, ESCALATED, MANAGER_A, MANAGER_B, NOW, mapping_set
from tests.seed import link
from tests.test_dashboard import fetch, page


def total(html: str) -> int:
    found = re.search(r'data-figure="people-total"><strong>(\d+)</strong>', html)
    assert found is not None, html[:2000]
    return int(found.group(1))


def rows(html: str) -> list[str]:
    """The HR ids of the people in the table, in order."""
    return re.findall(r'<th scope="row"><a href="/dashboard/person\?id=([^"]+)"', html)


def test_every_recommendation_is_listed_newest_first(local: OpsServer) -> None:
    html = page(local, "/dashboard/people")
    # 26 csat recommendations, 4 win-rate ones, 2 onboarding ones, 1 of a removed mapping.
    assert total(html) == 33
    assert rows(html)[:5] == ["cs30", "cs27", "cs28", "cs29", "cs30"]  # opened 5, then 10 to 13 days ago


def test_filters_narrow_by_mapping_state_department_manager_and_search(local: OpsServer) -> None:
    # Open csat recommendations: 7 contacted + 4 holdout, the mappings list's "7, +4 holdout".
    assert total(page(local, f"/dashboard/people?mapping={CSAT}&state=open")) == 11
    mappings_list = page(local, "/dashboard/mappings")
    assert (
        '<td data-label="Open" class="num">7<br><small class="muted">+4 holdout</small></td>' in mappings_list
    )
    # All of them were opened in June with 30 days to finish: every one is overdue by now.
    assert total(page(local, f"/dashboard/people?mapping={CSAT}&state=overdue")) == 11
    # The win-rate ones are due later this month.
    assert total(page(local, "/dashboard/people?mapping=sales-win-rate&state=overdue")) == 0
    assert total(page(local, f"/dashboard/people?mapping={CSAT}&state=completed")) == 13
    assert total(page(local, f"/dashboard/people?mapping={CSAT}&state=holdout")) == 4
    assert total(page(local, f"/dashboard/people?mapping={CSAT}&state=lapsed")) == 2
    sales = rows(page(local, "/dashboard/people?department=Sales&mapping=sales-win-rate"))
    assert sorted(sales) == ["cs27", "cs28", "cs29", "cs30"]
    # cs01-cs15 report to the first lead: their 15 csat recommendations and cs01's old one.
    team = page(local, f"/dashboard/people?manager={MANAGER_A}")
    assert total(team) == 16 and "Team of" in team and "Dana Lead" in team
    assert rows(page(local, "/dashboard/people?q=AGENT+17")) == ["cs17"]
    assert rows(page(local, "/dashboard/people?q=cs2_")) == [], "_ is a character, not a wildcard"
    assert total(page(local, f"/dashboard/people?manager={MANAGER_B}&state=overdue&q=agent+1")) == 4


def test_a_row_says_who_was_messaged_reminded_and_escalated_to_which_manager(local: OpsServer) -> None:
    html = page(local, f"/dashboard/people?q={ESCALATED}")
    (row,) = re.findall(r"<tr>.*?</tr>", html.split("<tbody>")[1], re.S)
    assert "overdue" in row
    assert '<td data-label="Messaged" class="day">2026-06-08</td>' in row
    assert '<td data-label="Reminders" class="num">2</td>' in row
    assert f'href="/dashboard/manager?id={MANAGER_B}">Sam Lead</a>' in row and "digest sent" in row


def test_pages_hold_page_size_rows_and_link_to_each_other(
    local: OpsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(people, "PAGE_SIZE", 10)
    first = page(local, f"/dashboard/people?mapping={CSAT}")
    assert total(first) == 26 and len(rows(first)) == 10 and "page 1 of 3" in first
    assert f'href="/dashboard/people?mapping={CSAT}&amp;page=2"' in first
    last = page(local, f"/dashboard/people?mapping={CSAT}&page=3")
    assert len(rows(last)) == 6 and 'rel="prev"' in last and 'rel="next"' not in last
    seen = rows(first) + rows(page(local, f"/dashboard/people?mapping={CSAT}&page=2")) + rows(last)
    assert len(set(seen)) == 26


def test_csv_export_has_every_matching_row(local: OpsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(people, "EXPORT_CHUNK", 4)  # several chunks, as with a large store
    status, headers, body = fetch(local.port, f"/dashboard/people.csv?mapping={CSAT}&state=overdue")
    assert status == 200 and headers["Content-Type"] == "text/csv; charset=utf-8"
    exported = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(exported) == 11 and {r["state"] for r in exported} == {"overdue"}
    escalated = next(r for r in exported if r["person_id"] == ESCALATED)
    assert escalated["escalated_to"] == MANAGER_B and escalated["manager"] == "Sam Lead"
    assert escalated["reminders_sent"] == "2" and escalated["messaged_at"].startswith("2026-06-08")
    assert f'href="/dashboard/people.csv?mapping={CSAT}&amp;state=overdue"' in page(
        local, f"/dashboard/people?mapping={CSAT}&state=overdue&page=1"
    )


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("state=maybe", "state: 'maybe'"),
        ("page=0", "page: '0'"),
        ("page=two", "page: 'two'"),
        ("q=" + "x" * 101, "q:"),
    ],
)
def test_a_bad_filter_is_a_400_naming_the_parameter(local: OpsServer, query: str, named: str) -> None:
    status, _, body = fetch(local.port, f"/dashboard/people?{query}")
    assert status == 400 and named.replace("'", "&#39;") in body.decode()
    status, _, body = fetch(local.port, f"/dashboard/people.csv?{query}")
    assert status == 400 and named in body.decode()


def test_person_page_shows_what_why_shows(local: OpsServer) -> None:
    html = page(local, f"/dashboard/person?id={ESCALATED}")
    assert "Agent 17" in html and f'href="/dashboard/manager?id={MANAGER_B}">Sam Lead</a>' in html
    assert "Customer satisfaction below target" in html
    for text in ("recommend", "reminder", "pending", "HTTP 503 from the Moodle site"):
        assert text in html
    assert html.count('<td data-label="Purpose">') == 4
    manager = page(local, f"/dashboard/person?id={MANAGER_B}")
    assert f'href="/dashboard/manager?id={MANAGER_B}">15</a>' in manager
    assert "Nothing was ever recommended to Sam Lead." in manager


def test_person_page_escapes_what_it_shows(local: OpsServer) -> None:
    html = page(local, "/dashboard/person?id=cs15")
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html


def test_unknown_person_or_manager_is_not_found(local: OpsServer) -> None:
    for path in ("/dashboard/person?id=nobody", "/dashboard/person", "/dashboard/manager?id=%3Cb%3E"):
        status, _, body = fetch(local.port, path)
        assert status == 404 and b"<b>" not in body


def test_manager_view_lists_the_reports_and_what_is_open_for_each(local: OpsServer) -> None:
    html = page(local, f"/dashboard/manager?id={MANAGER_B}")
    assert "<h1>Sam Lead's team</h1>" in html
    assert '<strong data-figure="reports">15</strong>' in html
    # cs16-cs22 open and overdue (cs21, cs22 lapsed), cs23-cs26 holdout, all overdue; cs27-30 open.
    # cs29 and cs30 are new starters too, one of them overdue.
    assert '<span data-figure="open">15</span>' in html and '<span data-figure="overdue">10</span>' in html
    assert html.count("nothing open") == 2  # cs21 and cs22
    assert f'href="/dashboard/people?manager={MANAGER_B}"' in html


def test_reports_follow_the_manager_the_lms_names(seeded: Engine) -> None:
    """A manager an LMS names (Totara job assignments) takes precedence over the HR feed's."""
    link(seeded, MANAGER_A, 900)
    with seeded.begin() as conn:  # the site says cs17 (user 116) reports to the first lead
        conn.execute(
            t.lms_managers.insert().values(site="moodle", user_id=116, manager_user_id=900, updated_at=NOW)
        )
    with seeded.connect() as conn:
        a, _ = people.manager_reports(conn, MANAGER_A, mapping_set().mappings, NOW)
        b, _ = people.manager_reports(conn, MANAGER_B, mapping_set().mappings, NOW)
        assert people.report_count(conn, MANAGER_A) == 16
    assert ESCALATED in {r.person_id for r in a} and ESCALATED not in {r.person_id for r in b}
    assert len(a) == 16 and len(b) == 14


def test_reports_agree_with_the_facts_when_two_sites_name_different_managers(seeded: Engine) -> None:
    """The dashboard's teams are the managers the decisions use (bridge.facts.load_people): where
    two sites name different managers, the first site's, by name, on both."""
    link(seeded, MANAGER_A, 900)
    link(seeded, MANAGER_B, 901, site="totara")
    link(seeded, ESCALATED, 116, site="totara")
    with seeded.begin() as conn:
        conn.execute(
            t.lms_managers.insert(),
            [
                {"site": "moodle", "user_id": 116, "manager_user_id": 900, "updated_at": NOW},
                {"site": "totara", "user_id": 116, "manager_user_id": 901, "updated_at": NOW},
            ],
        )
    with seeded.connect() as conn:
        decided = load_people(conn, [ESCALATED])[ESCALATED].manager_id
        a, _ = people.manager_reports(conn, MANAGER_A, mapping_set().mappings, NOW)
        b, _ = people.manager_reports(conn, MANAGER_B, mapping_set().mappings, NOW)
        counts = people.report_count(conn, MANAGER_A), people.report_count(conn, MANAGER_B)
    assert decided == MANAGER_A
    assert ESCALATED in {r.person_id for r in a} and ESCALATED not in {r.person_id for r in b}
    assert counts == (len(a), len(b)) == (16, 14)
