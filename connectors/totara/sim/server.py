"""The Totara simulator: OAuth 2.0 token endpoint, external GraphQL API and legacy REST.

- ``POST /totara/oauth2/token.php`` — client-credentials grant; errors in the JSON body.
- ``POST /api/graphql.php`` — the external API, executed by graphql-core against the schema of
  the chosen release (:mod:`connectors.totara.sim.schema`). Introspection is refused unless
  enabled, like Totara's ``enable_introspection`` default. Every answer is charged Totara's
  query complexity (5 per query, 10 per mutation, 1 per field of every record returned); a
  query above ``max_query_complexity`` is refused, and a client that spends more than its
  per-minute budget gets HTTP 429.
- ``/webservice/rest/server.php`` — the legacy web services, served by the Moodle simulator's
  implementation over the same site state, limited to the functions Totara ships.
- ``/_simulator/...`` — control endpoints for tests and the demo (Moodle's, plus ``certify``,
  ``expire-tokens`` and ``limits``).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from graphql import (
    GraphQLError,
    NoSchemaIntrospectionCustomRule,
    graphql_sync,
    parse,
    specified_rules,
    validate,
)

from connectors.moodle.sim.server import Running, Simulator, make_handler, start
from connectors.moodle.sim.state import SimCohort, SiteState
from connectors.simulation.org import Organisation
from connectors.totara.graphql import ENDPOINT as GRAPHQL_PATH
from connectors.totara.oauth import TOKEN_PATH
from connectors.totara.sim.learning import PROGRAMS, Replica, TotaraLearning
from connectors.totara.sim.schema import schema_for

EXPIRED = "Missing, expired or invalid access token. Ensure the Authorization header is set to a valid Bearer token."
MISSING_HEADER = (
    "The request did not contain the required Authorization header. Ensure you set the header in your "
    "request and that it is not being stripped by your server or proxy configuration."
)
# Legacy functions Moodle has and Totara does not ship (Report Builder API, Moodle's competencies).
NOT_IN_TOTARA = {
    "core_reportbuilder_list_reports",
    "core_reportbuilder_retrieve_report",
    "core_competency_list_competency_frameworks",
    "core_competency_list_competencies",
    "core_competency_read_competency",
    "core_competency_list_user_plans",
    "core_competency_list_plan_competencies",
    "core_competency_create_plan",
    "core_competency_add_competency_to_plan",
    "core_competency_list_course_competencies",
}


@dataclass
class Limits:
    max_query_complexity: int = 6000
    client_rate_limit: int = 250_000  # points per minute
    introspection: bool = False
    token_lifetime: int = 3600


@dataclass
class ApiLedger:
    """What the API answered: operations called, points charged, refusals."""

    operations: dict[str, int] = field(default_factory=dict)
    points: deque[tuple[float, int]] = field(default_factory=deque)
    total_points: int = 0
    refused_429: int = 0
    tokens_issued: int = 0

    def spent_last_minute(self, now: float) -> int:
        while self.points and now - self.points[0][0] >= 60:
            self.points.popleft()
        return sum(p for _, p in self.points)


def _cursor(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.b64decode(cursor))["offset"])
    except (ValueError, KeyError, TypeError):
        raise GraphQLError("Invalid pagination cursor") from None


def _page(items: list[dict[str, Any]], query: dict[str, Any] | None) -> dict[str, Any]:
    pagination = (query or {}).get("pagination") or {}
    limit = int(pagination.get("limit") or 20)
    if limit < 1 or limit > 1000:
        raise GraphQLError("Pagination limit must be between 1 and 1000")
    start = _offset(pagination.get("cursor"))
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return {"items": chunk, "total": len(items), "next_cursor": _cursor(start + limit) if more else ""}


def _leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(_leaves(v) for v in value)
    return 1


class Resolvers:
    """Root resolvers: graphql-core calls ``resolver(info, **arguments)`` for each root field."""

    def __init__(self, sim: TotaraSimulator) -> None:
        self.sim = sim

    def totara_webapi_status(self, _info: Any) -> dict[str, Any]:
        return {"status": "ok", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def core_user_users(self, _info: Any, query: dict[str, Any] | None = None) -> dict[str, Any]:
        state = self.sim.state
        with state.lock:
            users = [
                {
                    "id": u.id,
                    "username": u.username,
                    "idnumber": u.idnumber,
                    "email": u.email,
                    "firstname": u.firstname,
                    "lastname": u.lastname,
                    "fullname": f"{u.firstname} {u.lastname}",
                    "suspended": u.suspended,
                }
                for u in sorted(state.users.values(), key=lambda u: u.id)
                if not u.deleted
            ]
        return _page(users, query)

    def core_course_courses(self, _info: Any, query: dict[str, Any] | None = None) -> dict[str, Any]:
        state = self.sim.state
        courses = [
            {
                "id": c.id,
                "shortname": c.shortname,
                "fullname": c.fullname,
                "idnumber": "",
                "url": f"{state.url}/course/view.php?id={c.id}",
            }
            for c in sorted(state.courses.values(), key=lambda c: c.id)
        ]
        return _page(courses, query)

    def totara_job_job_assignments(self, _info: Any, query: dict[str, Any] | None = None) -> dict[str, Any]:
        items = [
            {"id": uid, "idnumber": f"JA-{uid}", "fullname": "", "managerjaid": manager, "user": {"id": uid}}
            for uid, manager in sorted(self.sim.learning.managers.items())
        ]
        return _page(items, query)

    def enrol_manual_enrol_user(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        state = self.sim.state
        user_id = int(input["user"].get("id") or 0)
        course_id = int(input["course"].get("id") or 0)
        with state.lock:
            if state.live_user(user_id) is None:
                raise GraphQLError(
                    "Invalid parameter value detected", extensions={"category": "invalid_parameter"}
                )
            course = state.courses.get(course_id)
            if course is None or not course.manual_enrolment:
                raise GraphQLError(
                    "Manual enrolment is not enabled for this course", extensions={"category": "enrol_manual"}
                )
            already = course_id in state.enrolments.get(user_id, {})
            if not already:
                state.enrolments.setdefault(user_id, {})[course_id] = int(time.time())
                state.participants[course_id].add(user_id)
                state.enrolled.append(
                    {
                        "userid": user_id,
                        "courseid": course_id,
                        "roleid": 5,
                        "time": int(time.time()),
                        "via": "graphql",
                    }
                )
        return {
            "user": {"id": user_id},
            "course": {"id": course_id},
            "role": {"id": 5},
            "enrolment": {"id": user_id * 10_000 + course_id},
            "success": True,
            "was_already_enrolled": already,
        }

    def core_user_delete_user(self, _info: Any, target_user: dict[str, Any]) -> bool:
        raise GraphQLError("The simulator does not delete users")


class TotaraSimulator:
    def __init__(
        self,
        state: SiteState,
        org: Organisation,
        *,
        client_id: str,
        client_secret: str,
        token: str | None = None,
        release: str = "19.0",
        replica: Path | None = None,
        limits: Limits | None = None,
    ) -> None:
        state.sitename = "Simulated Totara"
        state.release = "3.11"  # the Moodle code base legacy functions behave as
        state.removed_functions |= NOT_IN_TOTARA
        for program in PROGRAMS:
            if program.audience_id is not None:
                state.cohorts[program.audience_id] = SimCohort(
                    program.audience_id, f"AUD-{program.idnumber}", f"Assigned to {program.fullname}"
                )
        self.state = state
        self.org = org
        self.release = release
        self.client_id = client_id
        self._secret = client_secret
        self.legacy = Simulator(state, token or secrets.token_hex(16))
        self.schema = schema_for(release)
        self.limits = limits or Limits()
        self.learning = TotaraLearning.build(org)
        self.replica = Replica(replica) if replica is not None else None
        self.tokens: dict[str, float] = {}
        self.ledger = ApiLedger()
        self.lock = threading.Lock()
        self.resolvers = Resolvers(self)
        self.sync_replica()

    # ------------------------------------------------------------------ OAuth

    def issue_token(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "client_credentials":
            return {
                "error": "unsupported_grant_type",
                "error_description": "The authorization grant type is not supported by the authorization server.",
                "message": "The authorization grant type is not supported by the authorization server.",
            }
        if form.get("client_id") != self.client_id or not secrets.compare_digest(
            form.get("client_secret", ""), self._secret
        ):
            return {
                "error": "invalid_client",
                "error_description": "Client authentication failed",
                "message": "Client authentication failed",
            }
        token = secrets.token_hex(20)
        with self.lock:
            self.tokens[token] = time.time() + self.limits.token_lifetime
            self.ledger.tokens_issued += 1
        return {"token_type": "Bearer", "expires_in": self.limits.token_lifetime, "access_token": token}

    def _authorised(self, header: str | None) -> str | None:
        """None when the bearer token is good, else the message Totara answers with."""
        if not header:
            return MISSING_HEADER
        token = header.removeprefix("Bearer ").strip()
        with self.lock:
            expiry = self.tokens.get(token)
        return None if expiry is not None and expiry > time.time() else EXPIRED

    # ------------------------------------------------------------------ GraphQL

    def graphql(self, header: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        problem = self._authorised(header)
        if problem is not None:
            return 401, {"errors": [self._error(problem, "authentication")]}
        try:
            request = json.loads(body or b"{}")
            source = str(request["query"])
        except (ValueError, KeyError, TypeError):
            return 400, {
                "errors": [self._error("Invalid request: a JSON body with a query is required", "request")]
            }
        now = time.monotonic()
        with self.lock:
            name = str(request.get("operationName") or "anonymous")
            self.ledger.operations[name] = self.ledger.operations.get(name, 0) + 1
            if self.ledger.spent_last_minute(now) >= self.limits.client_rate_limit:
                self.ledger.refused_429 += 1
                return 429, {"errors": [self._error("Too many requests", "rate_limit")]}
        try:
            document = parse(source)
        except GraphQLError as exc:
            return 200, {"errors": [self._error(exc.message, "graphql")]}
        rules = list(specified_rules) + (
            [] if self.limits.introspection else [NoSchemaIntrospectionCustomRule]
        )
        problems = validate(self.schema, document, rules)
        if problems:
            return 200, {"errors": [self._error(p.message, "graphql") for p in problems]}
        result = graphql_sync(
            self.schema,
            source,
            root_value=self.resolvers,
            variable_values=request.get("variables") or {},
            operation_name=request.get("operationName"),
        )
        mutation = source.lstrip().startswith("mutation")
        cost = (10 if mutation else 5) + _leaves(result.data or {})
        with self.lock:
            if cost > self.limits.max_query_complexity:
                return 200, {
                    "errors": [
                        self._error(
                            f"Query complexity exceeded maximum allowed complexity of {self.limits.max_query_complexity}",
                            "query_complexity",
                        )
                    ]
                }
            self.ledger.points.append((now, cost))
            self.ledger.total_points += cost
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [
                self._error(e.message, (e.extensions or {}).get("category", "graphql")) for e in result.errors
            ]
        return 200, answer

    def _error(self, message: str, category: str) -> dict[str, Any]:
        """Totara 19 moved ``debugMessage`` under ``extensions``; 17 and 18 have it at the top."""
        error: dict[str, Any] = {"message": message, "extensions": {"category": category}}
        if self.release.startswith(("17", "18")):
            error["debugMessage"] = message
        else:
            error["extensions"]["debugMessage"] = message
        return error

    # ------------------------------------------------------------------ replica and control

    def close(self) -> None:
        if self.replica is not None:
            self.replica.close()

    def sync_replica(self) -> None:
        if self.replica is not None:
            with self.state.lock:
                completions = dict(self.state.completions)
            self.replica.write(self.learning, completions, int(time.time()))

    def control(self, path: str, body: dict[str, Any]) -> Any:
        if path == "certify":
            self.learning.certify(
                int(body["userid"]),
                int(body.get("certifid", 1)),
                int(body.get("timecompleted") or time.time()),
            )
            self.sync_replica()
            return {"ok": True}
        if path == "complete":
            answer = self.legacy.control(path, body)
            self.sync_replica()
            return answer
        if path == "manager":
            self.learning.managers[int(body["userid"])] = body.get("manager")
            self.sync_replica()
            return {"ok": True}
        if path == "expire-tokens":
            with self.lock:
                self.tokens.clear()
            return {"ok": True}
        if path == "limits":
            for key, value in body.items():
                if not hasattr(self.limits, key):
                    raise KeyError(key)
                setattr(self.limits, key, type(getattr(self.limits, key))(value))
            return {"ok": True}
        if path == "state":
            answer = self.legacy.control("state", body)
            with self.lock:
                answer["graphql"] = {
                    "operations": dict(self.ledger.operations),
                    "total_points": self.ledger.total_points,
                    "refused_429": self.ledger.refused_429,
                    "tokens_issued": self.ledger.tokens_issued,
                }
            answer["audiences"] = {c.idnumber: sorted(c.members) for c in self.state.cohorts.values()}
            return answer
        return self.legacy.control(path, body)


def make_totara_handler(sim: TotaraSimulator) -> type[BaseHTTPRequestHandler]:
    base = make_handler(sim.legacy)

    class Handler(base):  # type: ignore[valid-type,misc]
        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            if path == TOKEN_PATH:
                form = dict(parse_qsl(self._body().decode("utf-8", "replace")))
                self._send(200, json.dumps(sim.issue_token(form)).encode(), "application/json")
            elif path == GRAPHQL_PATH:
                status, answer = sim.graphql(self.headers.get("Authorization"), self._body())
                self._send(status, json.dumps(answer).encode(), "application/json")
            elif path.startswith("/_simulator/"):
                raw = self._body()
                try:
                    answer = sim.control(path.removeprefix("/_simulator/"), json.loads(raw or b"{}"))
                except (KeyError, ValueError) as exc:
                    self._send(400, json.dumps({"error": str(exc)}).encode(), "application/json")
                    return
                self._send(200, json.dumps(answer).encode(), "application/json")
            else:
                super().do_POST()

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/_simulator/state":
                self._send(200, json.dumps(sim.control("state", {})).encode(), "application/json")
            else:
                super().do_GET()

    return Handler


RunningTotara = Running[TotaraSimulator]


def serve(simulator: TotaraSimulator, port: int = 0, host: str = "127.0.0.1") -> RunningTotara:
    return start(simulator, make_totara_handler(simulator), "totara-simulator", port, host)
