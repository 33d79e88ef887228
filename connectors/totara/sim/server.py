"""The Totara simulator: OAuth 2.0 token endpoint, external GraphQL API and legacy REST, per release.

- ``POST /totara/oauth2/token.php`` — client-credentials grant; errors in an HTTP-200 JSON body
  (``{"error": "invalid_client", ...}``), and ``access_denied`` while the API feature is off.
- ``POST /api/graphql.php`` — the external API as Totara runs it, against the schema of the
  chosen release (:mod:`connectors.totara.sim.schema`; 17.3 is the reference schema itself):
  only the query-depth and introspection rules are checked before execution, so an unknown
  root field is skipped and ``{"data": []}`` comes back without an error; an unknown variable
  type fails with ``Type "X" not found in document.``. Errors are HTTP 200 in graphql-php's
  shape for the release: a resolver's failure is ``"Internal server error"`` with the detail in
  ``debugMessage`` (top level on 17 and 18, under ``extensions`` on 19; absent at the "none"
  response level); every error body also carries Totara's ``"error"`` string. The API switched
  off answers ``{"errors":[{"message":"Feature api is not available."}]}``. Every answer is
  charged Totara's query complexity (5 per query, 10 per mutation, 1 per field of every record
  returned); a query above ``max_query_complexity`` is refused, and a client that spends more
  than its per-minute budget gets HTTP 429 ``Too many requests`` without ``Retry-After``.
- ``/webservice/rest/server.php`` — the legacy web services: the Moodle simulator's functions over
  the same site state, limited to those Totara ships and with Totara's parameter lists
  (:mod:`connectors.totara.sim.legacy`).
- ``/_simulator/...`` — control endpoints for tests and the demo (Moodle's, plus ``certify``,
  ``expire``, ``manager``, ``expire-tokens`` and ``limits``).
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
    ASTValidationRule,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    NamedTypeNode,
    OperationDefinitionNode,
    OperationType,
    ValidationContext,
    execute,
    parse,
    validate,
)
from graphql.language import ListTypeNode, NonNullTypeNode, TypeNode

from bridge import clock
from connectors.moodle.sim.server import Running, make_handler, start
from connectors.moodle.sim.state import SimCohort, SiteState
from connectors.simulation.org import Organisation
from connectors.totara.graphql import ENDPOINT as GRAPHQL_PATH
from connectors.totara.oauth import TOKEN_PATH
from connectors.totara.sim.learning import PROGRAMS, Replica, TotaraLearning
from connectors.totara.sim.learning import now as site_now
from connectors.totara.sim.legacy import TotaraLegacySimulator
from connectors.totara.sim.schema import Release, release

EXPIRED = "Missing, expired or invalid access token. Ensure the Authorization header is set to a valid Bearer token."
MISSING_HEADER = (
    "The request did not contain the required Authorization header. Ensure you set the header in your "
    "request and that it is not being stripped by your server or proxy configuration."
)
FEATURE_OFF = "Feature api is not available."
INTROSPECTION_OFF = "GraphQL introspection is not enabled."
TOO_MANY = "Too many requests"
INTERNAL = "Internal server error"
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
RESPONSE_LEVELS = ("none", "normal", "developer")


@dataclass
class Limits:
    max_query_complexity: int = 6000
    client_rate_limit: int = 250_000  # points per minute
    introspection: bool = False
    token_lifetime: int = 3600
    api_enabled: bool = True  # Shared services > Enable API
    response_debug: str = "normal"  # the client's error response: none | normal | developer


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


class Internal(Exception):
    """A resolver's failure that graphql-php does not show the client: "Internal server error",
    with this text as ``debugMessage`` (Totara's moodle exceptions)."""


class ClientAware(Exception):
    """A failure Totara shows as it is (its client_aware_exception), with a category."""

    def __init__(self, message: str, category: str) -> None:
        super().__init__(message)
        self.category = category


def _cursor(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.b64decode(cursor))["offset"])
    except (ValueError, KeyError, TypeError):
        raise Internal("Invalid pagination cursor") from None


def _page(items: list[dict[str, Any]], query: dict[str, Any] | None) -> dict[str, Any]:
    pagination = (query or {}).get("pagination") or {}
    limit = int(pagination.get("limit") or 20)
    if limit < 1 or limit > 1000:
        raise Internal("Pagination limit must be between 1 and 1000")
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


def _depth(node: Any, fragments: dict[str, Any], seen: frozenset[str] = frozenset()) -> int:
    selection_set = getattr(node, "selection_set", None)
    if selection_set is None:
        return 0
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            deepest = max(deepest, 1 + _depth(selection, fragments, seen))
        elif hasattr(selection, "type_condition") and hasattr(selection, "selection_set"):
            deepest = max(deepest, _depth(selection, fragments, seen))  # inline fragment
        else:  # fragment spread
            name = selection.name.value
            if name in fragments and name not in seen:
                deepest = max(deepest, _depth(fragments[name], fragments, seen | {name}))
    return deepest


def query_depth_rule(limit: int) -> type[ASTValidationRule]:
    """graphql-php's ``QueryDepth``: the one structural rule Totara's external endpoint keeps."""

    class QueryDepth(ASTValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
            fragments = {
                d.name.value: d
                for d in self.context.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            depth = _depth(node, fragments) - 1
            if depth > limit:
                self.report_error(GraphQLError(f"Max query depth should be {limit} but got {depth}.", node))

    return QueryDepth


class DisableIntrospection(ASTValidationRule):
    """graphql-php's ``DisableIntrospection`` with Totara's message: ``__schema`` and ``__type``
    are refused; ``__typename`` is not introspection."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        if node.name.value in ("__schema", "__type"):
            self.report_error(GraphQLError(INTROSPECTION_OFF, node))


def _named(node: TypeNode) -> str:
    while isinstance(node, NonNullTypeNode | ListTypeNode):
        node = node.type
    assert isinstance(node, NamedTypeNode)
    return node.name.value


class Resolvers:
    """Root resolvers: graphql-core calls ``resolver(info, **arguments)`` for each root field.

    A root field the release's schema has and the simulator does not implement fails the way a
    Totara resolver does (internal error), never silently."""

    def __init__(self, sim: TotaraSimulator) -> None:
        self.sim = sim

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def unimplemented(_info: Any, **_kwargs: Any) -> Any:
            raise Internal(f"{name} is not implemented by the simulator")

        return unimplemented

    def totara_webapi_status(self, _info: Any) -> dict[str, Any]:
        return {"status": "ok", "timestamp": clock.now().strftime("%Y-%m-%dT%H:%M:%S%z")}

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
        filters = (query or {}).get("filters") or {}
        since = max(int(filters.get("since_timecreated") or 0), int(filters.get("since_timemodified") or 0))
        courses = [
            {
                "id": c.id,
                "shortname": c.shortname,
                "fullname": c.fullname,
                "idnumber": "",
                "url": f"{state.url}/course/view.php?id={c.id}",
            }
            for c in sorted(state.courses.values(), key=lambda c: c.id)
            if c.startdate >= since
        ]
        return _page(courses, query)

    def _job_assignment(self, uid: int, manager: int | None) -> dict[str, Any]:
        return {
            "id": uid,
            "userid": uid,
            "idnumber": f"JA-{uid}",
            "fullname": "",
            "managerjaid": manager,
            "user": {"id": uid},
            "staffcount": sum(1 for m in self.sim.learning.managers.values() if m == uid),
            "tempstaffcount": 0,
        }

    def totara_job_job_assignments(self, _info: Any, query: dict[str, Any] | None = None) -> dict[str, Any]:
        items = [self._job_assignment(uid, m) for uid, m in sorted(self.sim.learning.managers.items())]
        return _page(items, query)

    def totara_job_job_assignment(self, _info: Any, target_job: dict[str, Any]) -> dict[str, Any]:
        managers = self.sim.learning.managers
        wanted = int(target_job.get("id") or (target_job.get("user") or {}).get("id") or 0)
        if wanted not in managers:
            return {"found": False, "job_assignment": None}
        return {"found": True, "job_assignment": self._job_assignment(wanted, managers[wanted])}

    def enrol_manual_enrol_user(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        state = self.sim.state
        user_id = int(input["user"].get("id") or 0)
        course_id = int(input["course"].get("id") or 0)
        role_id = int((input.get("role") or {}).get("id") or 5)
        now = site_now()
        with state.lock:
            if state.live_user(user_id) is None:
                raise Internal(
                    "There was a problem finding a single user record match or you do not have sufficient capabilities."
                )
            course = state.courses.get(course_id)
            if course is None:
                raise Internal("Can not manual enrol a target user into a target course.")
            if not course.manual_enrolment:
                raise Internal("Manual enrolment plugin is not enabled.")
            if role_id not in (3, 4, 5):
                raise Internal("This role can not be assigned to the target user on this course.")
            if input.get("timestart") and input.get("timeend") and input["timeend"] < input["timestart"]:
                raise Internal("Enrolment end date can not be before the start date.")
            already = course_id in state.enrolments.get(user_id, {})
            if not already:
                state.enrolments.setdefault(user_id, {})[course_id] = int(input.get("timestart") or now)
                state.participants[course_id].add(user_id)
                state.enrolled.append(
                    {
                        "userid": user_id,
                        "courseid": course_id,
                        "roleid": role_id,
                        "time": now,
                        "via": "graphql",
                    }
                )
        return {
            "user": {"id": user_id},
            "course": {"id": course_id, "shortname": course.shortname, "fullname": course.fullname},
            "role": {"id": role_id},
            "enrolment": {"id": user_id * 10_000 + course_id},
            "success": True,
            "was_already_enrolled": already,
        }


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
        state.release = "3.11"  # the Moodle code base legacy functions behave as (see sim.legacy)
        state.removed_functions |= NOT_IN_TOTARA
        for program in PROGRAMS:
            if program.audience_id is not None:
                state.cohorts[program.audience_id] = SimCohort(
                    program.audience_id, f"AUD-{program.idnumber}", f"Assigned to {program.fullname}"
                )
        self.state = state
        self.org = org
        self.spec: Release = _release(release)
        self.release = self.spec.name
        self.client_id = client_id
        self._secret = client_secret
        self.legacy = TotaraLegacySimulator(state, token or secrets.token_hex(16))
        self.schema = self.spec.schema()
        self.limits = limits or Limits()
        self.learning = TotaraLearning.build(org)
        self.replica = Replica(replica) if replica is not None else None
        self.tokens: dict[str, float] = {}  # token -> expiry on time.monotonic(): elapsed real time
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
        if not self.limits.api_enabled:
            return {
                "error": "access_denied",
                "error_description": "The resource owner or authorization server denied the request.",
                "hint": "'totara_api' feature is not enabled.",
                "message": "The resource owner or authorization server denied the request.",
            }
        token = secrets.token_hex(20)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.limits.token_lifetime
            self.ledger.tokens_issued += 1
        return {"token_type": "Bearer", "expires_in": self.limits.token_lifetime, "access_token": token}

    def _authorised(self, header: str | None) -> str | None:
        """None when the bearer token is good, else the message Totara answers with."""
        if not header:
            return MISSING_HEADER
        token = header.removeprefix("Bearer ").strip()
        with self.lock:
            expiry = self.tokens.get(token)
        return None if expiry is not None and expiry > time.monotonic() else EXPIRED

    # ------------------------------------------------------------------ GraphQL

    def graphql(self, header: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        """HTTP status and body, as Totara's external endpoint answers (nearly always HTTP 200)."""
        if not self.limits.api_enabled:
            return 200, self._answer(None, [{"message": FEATURE_OFF}])
        problem = self._authorised(header)
        if problem is not None:
            return 200, self._answer(None, [{"message": problem}])
        try:
            request = json.loads(body or b"{}")
            source = str(request["query"])
            variables = request.get("variables") or {}
            if not isinstance(variables, dict):
                raise TypeError("variables")
        except (ValueError, KeyError, TypeError):
            return 200, self._answer(None, [{"message": "Invalid request, request cannot be empty"}])
        now = time.monotonic()
        with self.lock:
            name = str(request.get("operationName") or "anonymous")
            self.ledger.operations[name] = self.ledger.operations.get(name, 0) + 1
            if self.ledger.spent_last_minute(now) >= self.limits.client_rate_limit:
                self.ledger.refused_429 += 1
                return 429, self._answer(None, [{"message": TOO_MANY}])  # no Retry-After, as Totara
        try:
            document = parse(source)
        except GraphQLError as exc:
            return 200, self._answer(None, [self._format(exc)])
        rules: list[type[ASTValidationRule]] = [query_depth_rule(self.spec.max_query_depth)]
        if not self.limits.introspection:
            rules.append(DisableIntrospection)
        problems = validate(self.schema, document, rules)
        if problems:
            return 200, self._answer(None, [self._format(p) for p in problems])
        missing = self._unknown_variable_type(document, request.get("operationName"))
        if missing is not None:
            return 200, self._answer(
                None, [self._format(GraphQLError(INTERNAL, original_error=Internal(missing)))]
            )
        result = execute(
            self.schema,
            document,
            root_value=self.resolvers,
            variable_values=variables,
            operation_name=request.get("operationName"),
        )
        assert isinstance(result, ExecutionResult)  # the resolvers are synchronous
        mutation = any(
            isinstance(d, OperationDefinitionNode) and d.operation is OperationType.MUTATION
            for d in document.definitions
        )
        cost = (10 if mutation else 5) + _leaves(result.data or {})
        with self.lock:
            if cost > self.limits.max_query_complexity:
                message = f"Query complexity exceeded maximum allowed complexity of {self.limits.max_query_complexity}"
                return 200, self._answer(None, [self._format_client(message, "query_complexity")])
            self.ledger.points.append((now, cost))
            self.ledger.total_points += cost
        errors = [self._format(e) for e in result.errors or ()]
        return 200, self._answer(result.data, errors)

    def _unknown_variable_type(self, document: DocumentNode, operation_name: Any) -> str | None:
        """Totara's schema loads types lazily: a variable of a type it does not have fails the
        whole request with this text before anything runs."""
        for definition in document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            if operation_name and definition.name and definition.name.value != operation_name:
                continue
            for variable in definition.variable_definitions or ():
                type_name = _named(variable.type)
                if self.schema.get_type(type_name) is None:
                    return f'Type "{type_name}" not found in document.'
        return None

    @staticmethod
    def _answer(data: dict[str, Any] | None, errors: list[dict[str, Any]]) -> dict[str, Any]:
        """graphql-php's ``toArray`` (no ``data`` key when it is null; an empty result is the PHP
        empty array ``[]``) plus Totara's ``error`` string for old AJAX callers."""
        answer: dict[str, Any] = {}
        if errors:
            answer["errors"] = errors
        if data is not None:
            answer["data"] = data if data else []
        if errors:
            answer["error"] = "\n".join(str(e.get("message")) for e in errors)
        return answer

    def _format(self, error: GraphQLError) -> dict[str, Any]:
        original = error.original_error
        if isinstance(original, ClientAware):
            return self._format_client(str(original), original.category, error)
        formatted: dict[str, Any] = {}
        if original is None:  # graphql's own (syntax, validation, argument coercion): shown as is
            formatted["message"] = error.message
            if self.spec.error_categories:
                formatted["extensions"] = {"category": "graphql"}
        else:
            formatted["message"] = INTERNAL
            if self.spec.error_categories:
                formatted["extensions"] = {"category": "internal"}
            if self.limits.response_debug != "none":
                if self.spec.debug_in_extensions:
                    formatted.setdefault("extensions", {})["debugMessage"] = str(original)
                else:
                    formatted["debugMessage"] = str(original)
        self._where(formatted, error)
        return formatted

    def _format_client(
        self, message: str, category: str, error: GraphQLError | None = None
    ) -> dict[str, Any]:
        formatted: dict[str, Any] = {"message": message, "extensions": {"category": category}}
        if error is not None:
            self._where(formatted, error)
        return formatted

    @staticmethod
    def _where(formatted: dict[str, Any], error: GraphQLError) -> None:
        if error.locations:
            formatted["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
        if error.path:
            formatted["path"] = list(error.path)

    # ------------------------------------------------------------------ replica and control

    def close(self) -> None:
        if self.replica is not None:
            self.replica.close()

    def sync_replica(self) -> None:
        if self.replica is not None:
            with self.state.lock:
                completions = dict(self.state.completions)
            self.replica.write(self.learning, completions, site_now())

    def control(self, path: str, body: dict[str, Any]) -> Any:
        if path == "certify":
            self.learning.certify(
                int(body["userid"]),
                int(body.get("certifid", 1)),
                int(body.get("timecompleted") or site_now()),
            )
            self.sync_replica()
            return {"ok": True}
        if path == "expire":  # Totara's certification cron: the certification lapses now
            self.learning.expire(
                int(body["userid"]), int(body.get("certifid", 1)), int(body.get("when") or site_now())
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
                if key == "response_debug" and value not in RESPONSE_LEVELS:
                    raise ValueError(f"response_debug is one of {', '.join(RESPONSE_LEVELS)}")
                setattr(self.limits, key, type(getattr(self.limits, key))(value))
            return {"ok": True}
        if path == "state":
            answer = self.legacy.control("state", body)
            with self.lock:
                answer["graphql"] = {
                    "release": self.release,
                    "operations": dict(self.ledger.operations),
                    "total_points": self.ledger.total_points,
                    "refused_429": self.ledger.refused_429,
                    "tokens_issued": self.ledger.tokens_issued,
                }
            answer["audiences"] = {c.idnumber: sorted(c.members) for c in self.state.cohorts.values()}
            return answer
        return self.legacy.control(path, body)


def _release(name: str) -> Release:
    return release(name)


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
                self._send(status, json.dumps(answer).encode(), "application/json; charset=utf-8")
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
