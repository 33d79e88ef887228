"""The Totara contract checks against a real Totara 17+ site (pytest marker ``live``).

Set ``LMSBRIDGE_TEST_TOTARA_URL`` and, for each part, its credentials:
``LMSBRIDGE_TEST_TOTARA_CLIENT_ID`` / ``_CLIENT_SECRET`` (external API client),
``LMSBRIDGE_TEST_TOTARA_TOKEN`` (legacy web-service token), ``LMSBRIDGE_TEST_TOTARA_REPLICA_URL``
(SQLAlchemy URL of a read-only replica) and optionally ``LMSBRIDGE_TEST_TOTARA_PREFIX``
(table prefix, default ``ttr_``) and ``LMSBRIDGE_TEST_TOTARA_VERSION`` (the major you expect,
e.g. ``17``). Nothing here writes to the site: the enrolment mutation is only probed through
argument coercion, as lmsbridge's discovery does. Run: ``pytest -m live tests/live``.
"""

from __future__ import annotations

import os

import pytest
import requests

from connectors.moodle.client import MoodleClient
from connectors.totara.graphql import SINCE, GraphQLClient, operation
from connectors.totara.legacy import users_courses
from connectors.totara.oauth import TokenSource
from connectors.totara.replica import ReplicaReader

URL = os.environ.get("LMSBRIDGE_TEST_TOTARA_URL", "")
CLIENT_ID = os.environ.get("LMSBRIDGE_TEST_TOTARA_CLIENT_ID", "")
CLIENT_SECRET = os.environ.get("LMSBRIDGE_TEST_TOTARA_CLIENT_SECRET", "")
TOKEN = os.environ.get("LMSBRIDGE_TEST_TOTARA_TOKEN", "")
REPLICA_URL = os.environ.get("LMSBRIDGE_TEST_TOTARA_REPLICA_URL", "")
PREFIX = os.environ.get("LMSBRIDGE_TEST_TOTARA_PREFIX", "ttr_")
VERSION = os.environ.get("LMSBRIDGE_TEST_TOTARA_VERSION", "")

pytestmark = pytest.mark.live
if not URL:
    pytest.skip(
        "no real Totara site: set LMSBRIDGE_TEST_TOTARA_URL (and its credentials) to run the live suite",
        allow_module_level=True,
    )
needs_api = pytest.mark.skipif(
    not (CLIENT_ID and CLIENT_SECRET),
    reason="no API client: set LMSBRIDGE_TEST_TOTARA_CLIENT_ID and LMSBRIDGE_TEST_TOTARA_CLIENT_SECRET",
)
needs_token = pytest.mark.skipif(not TOKEN, reason="no legacy token: set LMSBRIDGE_TEST_TOTARA_TOKEN")
needs_replica = pytest.mark.skipif(
    not REPLICA_URL, reason="no replica: set LMSBRIDGE_TEST_TOTARA_REPLICA_URL"
)


@pytest.fixture(scope="module")
def client() -> GraphQLClient:
    session = requests.Session()
    return GraphQLClient("live", URL, TokenSource("live", URL, CLIENT_ID, CLIENT_SECRET, session), session)


@needs_api
def test_the_status_query_answers(client: GraphQLClient) -> None:
    assert client.execute("status")["status"] == "ok"


@needs_api
def test_an_unknown_root_field_is_not_an_error_so_discovery_must_not_trust_silence(
    client: GraphQLClient,
) -> None:
    """The premise of discovery: Totara's external endpoint does not validate field names."""
    payload = client._exchange(
        "lmsbridge_live_unknown", "query lmsbridge_live_unknown { lmsbridge_no_such_root }", {}
    )
    assert not payload.get("errors") and payload.get("data") in ([], {}, None)
    assert "lmsbridge_no_such_root" not in (payload.get("data") or {})


@needs_api
def test_discovery_names_the_version_and_every_root_it_reports_runs(client: GraphQLClient) -> None:
    found = client.operations()
    assert "totara_webapi_status" in found, found
    version = client.version()
    assert version is not None
    if VERSION:
        assert version == VERSION.split(".", maxsplit=1)[0], (version, sorted(found))
    for name, since in SINCE.items():
        op = operation(name)
        if int(version) < since:
            assert not client.available(name), f"{op.root} reported on a Totara {version} site"
        if op.mutation or not client.available(name):
            continue
        if name == "status":
            continue
        page = client.execute(name, {"query": {"pagination": {"cursor": "", "limit": 2}}}, items=2)
        assert "items" in page and "next_cursor" in page, (name, page)


@needs_api
def test_an_unknown_variable_type_is_refused_before_anything_runs(client: GraphQLClient) -> None:
    assert not client._types_exist(("lmsbridge_no_such_type",))
    assert client._types_exist(("core_user_users_query",))


@needs_token
def test_the_legacy_route_for_course_completions_takes_only_userid() -> None:
    legacy = MoodleClient("live", URL, TOKEN)
    info = legacy.site_info()
    courses = users_courses(legacy, int(info["userid"]))
    assert isinstance(courses, list)
    if courses:
        status = legacy.call(
            "core_completion_get_course_completion_status",
            {"courseid": int(courses[0]["id"]), "userid": int(info["userid"])},
        )
        assert "completionstatus" in status


@needs_replica
def test_the_replica_has_every_table_lmsbridge_reads_and_its_streams_run() -> None:
    reader = ReplicaReader("live", REPLICA_URL, PREFIX)
    assert reader.check() == []
    next(iter(reader.certification_completions(0)), None)
    next(iter(reader.program_completions(0)), None)
    next(iter(reader.course_completions(0)), None)
    next(iter(reader.job_assignments()), None)
