"""The client side of the companion plugin against mocked HTTP (responses): the changes feed's
pages, cursor and overlap, the records it makes, and the recommendations it writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from sqlalchemy import Engine

from bridge import board
from bridge.ports import Batch, PullContext, PullScope, ShownRecommendation
from bridge.records import CompetencyRating, Completion, Enrolment, LmsUser
from connectors.moodle.board import MoodleBoard
from connectors.moodle.changes import ChangesFeed
from connectors.moodle.client import MoodleClient
from connectors.moodle.sink import MoodleSink
from connectors.moodle.source import MoodleSource

URL = "https://lms.example.org"
ENDPOINT = URL + "/webservice/rest/server.php"
NOW = datetime(2026, 11, 3, 10, tzinfo=UTC)


def row(id_: int, kind: str, userid: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "kind": kind,
        "userid": userid,
        "courseid": 0,
        "competencyid": 0,
        "planid": 0,
        "grade": None,
        "gradename": "",
        "proficiency": None,
        "status": "",
        "idnumber": "",
        "email": "",
        "suspended": False,
        "deleted": False,
        "timechanged": 1793700000 + id_,
        "timecreated": 1793700000 + id_,
        **fields,
    }


def form(request: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.body).items()}


def serve(answer: Callable[[dict[str, str]], Any]) -> list[dict[str, str]]:
    """Answer every call with ``answer(form)``; returns the forms received."""
    seen: list[dict[str, str]] = []

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        body = form(request)
        seen.append(body)
        return 200, {}, json.dumps(answer(body))

    responses.add_callback(responses.POST, ENDPOINT, callback=reply)
    return seen


def feed(competencies: set[int] | None = None) -> tuple[ChangesFeed, MoodleClient]:
    client = MoodleClient("moodle", URL, "token", max_wait=0.01)
    source = MoodleSource("moodle", client)
    return ChangesFeed("moodle", client, lambda _ctx: competencies, source._users_by_id), client


def ctx(cursors: dict[str, str | None] | None = None) -> PullContext:
    return PullContext(cursors=cursors or {}, scope=PullScope(), now=NOW)


def records(batches: list[Batch]) -> list[Any]:
    return [r for b in batches for r in b.records]


@responses.activate
def test_the_first_sync_reads_every_page_and_stores_a_cursor_with_each() -> None:
    pages = {
        "0": {
            "changes": [
                row(1, "completion", 5, courseid=3),
                row(2, "enrolment", 5, courseid=3, status="active"),
            ],
            "lastid": 2,
            "more": True,
            "warnings": [],
        },
        "2": {
            "changes": [row(3, "enrolment", 6, courseid=3, status="suspended")],
            "lastid": 3,
            "more": False,
            "warnings": [],
        },
    }
    seen = serve(lambda body: pages[body["since_id"]])
    source, client = feed()
    batches = list(source.pull(ctx(), in_scope=None))
    assert [b.cursor for b in batches] == ["2", "3"]
    assert [(f["wsfunction"], f["since_id"], f["limit"]) for f in seen] == [
        ("local_lmsbridge_get_changes", "0", "1000"),
        ("local_lmsbridge_get_changes", "2", "1000"),
    ]
    assert records(batches) == [
        Completion("moodle", 5, 3, datetime.fromtimestamp(1793700001, UTC)),  # exact to the second
        Enrolment("moodle", 5, 3, active=True),
        Enrolment("moodle", 6, 3, active=False),
    ]
    assert client.total_calls() == 2


@responses.activate
def test_a_poll_reads_again_from_before_the_cursor_and_refreshes_only_new_user_changes() -> None:
    def answer(body: dict[str, str]) -> Any:
        if body["wsfunction"] == "core_user_get_users_by_field":
            assert body["field"] == "id"
            return [
                {
                    "id": int(body["values[0]"]),
                    "username": "u",
                    "idnumber": "E9",
                    "email": "e9@example.org",
                    "firstname": "Ann",
                    "lastname": "Lee",
                    "suspended": True,
                }
            ]
        assert body["since_id"] == "400"  # OVERLAP ids before the cursor: rows committed late
        return {
            "changes": [
                row(450, "user", 8, suspended=True),
                row(501, "user", 9, suspended=True),
                row(502, "user", 10, deleted=True),
            ],
            "lastid": 502,
            "more": False,
            "warnings": [],
        }

    seen = serve(answer)
    source, _client = feed()
    batches = list(source.pull(ctx({"changes": "500"}), in_scope=None))
    users = [r for r in records(batches) if isinstance(r, LmsUser)]
    assert [(u.user_id, u.suspended, u.deleted) for u in users] == [(10, True, True), (9, True, False)]
    assert [f["wsfunction"] for f in seen] == ["local_lmsbridge_get_changes", "core_user_get_users_by_field"]
    assert batches[-1].cursor == "502"


@responses.activate
def test_ratings_are_the_learners_own_for_the_competencies_the_mappings_need() -> None:
    serve(
        lambda _body: {
            "changes": [
                row(1, "rating", 5, competencyid=7, grade=2, gradename="Competent", proficiency=1, planid=4),
                row(2, "rating", 5, competencyid=7, grade=1, proficiency=0, courseid=3),  # a course's rating
                row(3, "rating", 5, competencyid=8, grade=2, proficiency=1),  # no mapping needs it
                row(4, "completion", 5, courseid=99),  # a course no mapping uses
            ],
            "lastid": 4,
            "more": False,
            "warnings": [],
        }
    )
    source, _client = feed(competencies={7})
    found = records(list(source.pull(ctx(), in_scope={3})))
    assert found == [
        CompetencyRating(
            "moodle",
            5,
            7,
            proficient=True,
            grade=2,
            grade_name="Competent",
            rated_at=datetime.fromtimestamp(1793700001, UTC),
            in_plan=True,
        )
    ]


@responses.activate
def test_without_needed_competencies_no_rating_is_kept() -> None:
    serve(
        lambda _body: {
            "changes": [row(1, "rating", 5, competencyid=7, grade=2, proficiency=1)],
            "lastid": 1,
            "more": False,
            "warnings": [],
        }
    )
    source, _client = feed(competencies=None)
    assert records(list(source.pull(ctx(), in_scope=None))) == []


@responses.activate
def test_recommendations_are_written_whole_per_user_in_one_call() -> None:
    seen = serve(lambda _body: {"users": 2, "stored": 1, "removed": 1, "warnings": []})
    client = MoodleClient("moodle", URL, "token", max_wait=0.01)
    due = datetime(2026, 11, 17, tzinfo=UTC)
    MoodleBoard(client).show(
        {
            5: [
                ShownRecommendation(
                    "rec-12",
                    "Customer conversations",
                    "CSAT 3.1 is below 4.0",
                    f"{URL}/course/view.php?id=3",
                    due,
                    9,
                    "their CSAT 3.1 is below 4.0",
                )
            ],
            6: [],  # every recommendation of this learner closed: the set is cleared
        }
    )
    assert seen == [
        {
            "wstoken": "token",
            "wsfunction": "local_lmsbridge_set_recommendations",
            "moodlewsrestformat": "json",
            "recommendations[0][userid]": "5",
            "recommendations[0][items][0][reference]": "rec-12",
            "recommendations[0][items][0][title]": "Customer conversations",
            "recommendations[0][items][0][reason]": "CSAT 3.1 is below 4.0",
            "recommendations[0][items][0][managerreason]": "their CSAT 3.1 is below 4.0",
            "recommendations[0][items][0][url]": f"{URL}/course/view.php?id=3",
            "recommendations[0][items][0][duedate]": str(int(due.timestamp())),
            "recommendations[0][items][0][managerid]": "9",
            "recommendations[1][userid]": "6",
        }
    ]


@responses.activate
def test_a_log_that_ends_before_the_cursor_is_read_again_from_the_start() -> None:
    """The plugin reinstalled: its ids start again, and a cursor past its end would see nothing."""

    def answer(body: dict[str, str]) -> Any:
        if body["since_id"] == "0":
            return {
                "changes": [row(1, "completion", 5, courseid=3)],
                "lastid": 1,
                "more": False,
                "latestid": 1,
            }
        return {"changes": [], "lastid": int(body["since_id"]), "more": False, "latestid": 1}

    seen = serve(answer)
    source, _client = feed()
    batches = list(source.pull(ctx({"changes": "500"}), in_scope=None))
    assert [f["since_id"] for f in seen] == ["400", "0"]
    assert [type(r) for r in records(batches)] == [Completion]
    assert batches[-1].cursor == "1"


@responses.activate
def test_sets_too_large_for_one_request_are_split_between_calls() -> None:
    seen = serve(lambda _body: {"users": 1, "stored": 1, "removed": 0, "warnings": []})
    client = MoodleClient("moodle", URL, "token", max_wait=0.01)
    many = [ShownRecommendation(f"rec-{n}", f"Course {n}", "why", None, None, None) for n in range(60)]
    MoodleBoard(client).show({uid: many for uid in range(1, 21)})  # 20 x (1 + 6 x 60) = 7,220 fields
    assert len(seen) == 3 and all(len(f) - 3 <= 3000 for f in seen)  # less wstoken, wsfunction, format
    users = {v for f in seen for k, v in f.items() if k.endswith("[userid]")}
    assert users == {str(uid) for uid in range(1, 21)}


@responses.activate
def test_a_site_known_to_have_no_board_costs_a_delivery_run_no_store_read(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the companion plugin (site info already asked, no set_recommendations), the
    open recommendations are not read from the store at every delivery run; before the site was
    asked, they are (the board is looked for only once something would be written)."""
    reads: list[str] = []
    monkeypatch.setattr(
        board, "open_recommendations", lambda conn, site, people=None: reads.append(site) or {}
    )
    seen = serve(lambda _form: {"userid": 2, "functions": [{"name": "core_webservice_get_site_info"}]})
    client = MoodleClient("moodle", URL, "token", max_wait=0.01)
    sink = MoodleSink("moodle", client)
    assert board.publish(engine, {"moodle": sink}, NOW).written == 0
    assert reads == ["moodle"] and seen == []  # not known yet: the store is read, the site not asked
    client.site_info()  # as the pull asks it
    assert board.publish(engine, {"moodle": sink}, NOW).written == 0
    assert reads == ["moodle"] and len(seen) == 1
