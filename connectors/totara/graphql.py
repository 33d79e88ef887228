"""The client for Totara's external GraphQL API (``POST {site}/api/graphql.php``, Totara 17+).

Queries are named operations kept as ``.graphql`` files next to this module, parsed once so the
client knows each one's root field and how many fields one returned item costs. Totara charges
query complexity — 5 points per query, 10 per mutation, 1 per field of every record returned —
against a per-query maximum and per-minute budgets for the client and the whole site. The
client sizes pages to stay under the per-query maximum and keeps its own account of the last
minute's spending, slowing down before the site would answer 429. Cursor paging follows
``next_cursor`` until it is empty (:class:`bridge.pagination.TokenPaginator`: a cursor the site
gave before is an error, not an endless loop).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import requests
from graphql import (
    FieldNode,
    ListTypeNode,
    NamedTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    TypeNode,
    parse,
)
from tenacity import RetryCallState

from bridge import http, metrics
from bridge.errors import Remedy
from bridge.log import get_logger
from bridge.pagination import Page, TokenPaginator, paginate
from connectors.totara import errors
from connectors.totara.oauth import TokenSource

log = get_logger(__name__)

ENDPOINT = "/api/graphql.php"
QUERY_COST = 5
MUTATION_COST = 10
INTROSPECTION = (
    "query lmsbridge_introspection { __schema { queryType { fields { name } } "
    "mutationType { fields { name } } types { name } } }"
)
RATE_LIMIT_PAUSE = 15.0  # per attempt, after a 429 without Retry-After (Totara's budgets are per minute)


@dataclass(frozen=True)
class Operation:
    name: str
    operation_name: str  # as written in the document (sent as operationName)
    text: str
    root: str  # the query or mutation field it calls
    mutation: bool
    item_fields: int  # leaf fields per returned item (for paged queries), or of the whole answer
    variable_types: tuple[str, ...] = ()  # the named types its variables declare

    @property
    def base_cost(self) -> int:
        return MUTATION_COST if self.mutation else QUERY_COST

    def cost(self, items: int = 1) -> int:
        return self.base_cost + self.item_fields * max(1, items) + 3  # total, next_cursor, ...


def _named(node: TypeNode) -> str:
    while isinstance(node, NonNullTypeNode | ListTypeNode):
        node = node.type
    assert isinstance(node, NamedTypeNode)
    return node.name.value


def _leaves(node: FieldNode) -> int:
    if node.selection_set is None:
        return 1
    return sum(_leaves(s) for s in node.selection_set.selections if isinstance(s, FieldNode))


@cache
def operation(name: str) -> Operation:
    """The named operation from ``connectors/totara/operations/<name>.graphql``."""
    text = resources.files("connectors.totara").joinpath("operations", f"{name}.graphql").read_text()
    (definition,) = [d for d in parse(text).definitions if isinstance(d, OperationDefinitionNode)]
    (root,) = [s for s in definition.selection_set.selections if isinstance(s, FieldNode)]
    items = next(
        (
            s
            for s in (root.selection_set.selections if root.selection_set else ())
            if isinstance(s, FieldNode) and s.name.value == "items"
        ),
        None,
    )
    return Operation(
        name=name,
        operation_name=definition.name.value if definition.name else name,
        text=text,
        root=root.name.value,
        mutation=definition.operation is OperationType.MUTATION,
        item_fields=_leaves(items) if items is not None else _leaves(root),
        variable_types=tuple(_named(v.type) for v in definition.variable_definitions or ()),
    )


class ComplexityBudget:
    """The client's own account of the complexity points it spent in the last minute.

    Totara refuses a client (HTTP 429) once it spends ``client_rate_limit`` points in a minute;
    waiting here first, at ``headroom`` of that, keeps the bridge from ever being the reason
    the site's shared budget runs out.
    """

    WINDOW = 60.0

    def __init__(
        self,
        per_minute: int,
        headroom: float = 0.8,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = per_minute * headroom
        self.now = now
        self.sleep = sleep
        self.spent: deque[tuple[float, int]] = deque()
        self.lock = threading.Lock()
        self.waited = 0.0

    def _trim(self, moment: float) -> None:
        while self.spent and moment - self.spent[0][0] >= self.WINDOW:
            self.spent.popleft()

    def in_window(self) -> int:
        with self.lock:
            self._trim(self.now())
            return sum(cost for _, cost in self.spent)

    def take(self, cost: int) -> None:
        """Wait until ``cost`` more points fit in the last minute's budget, then book them."""
        while True:
            with self.lock:
                moment = self.now()
                self._trim(moment)
                used = sum(c for _, c in self.spent)
                if not self.spent or used + cost <= self.limit:
                    self.spent.append((moment, cost))
                    return
                pause = self.WINDOW - (moment - self.spent[0][0]) + 0.01
            self.waited += pause
            log.info("pacing Totara API calls to stay within the complexity budget", seconds=round(pause, 2))
            self.sleep(pause)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, errors.TotaraError) and exc.remedy is Remedy.RETRY


class GraphQLClient:
    def __init__(
        self,
        site: str,
        url: str,
        tokens: TokenSource,
        session: requests.Session,
        *,
        timeout: float = 30.0,
        verify_tls: bool | str = True,
        max_query_complexity: int = 6000,
        client_rate_limit: int = 250_000,
        max_page: int = 500,
        attempts: int = 5,
        max_wait: float = 60.0,
        budget: ComplexityBudget | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.site = site
        self.url = url.rstrip("/") + ENDPOINT
        self.tokens = tokens
        self.session = http.harden(session)  # no redirect elsewhere, a deadline, a size limit
        self.timeout = timeout
        self.verify_tls = verify_tls
        self.max_query_complexity = max_query_complexity
        self.max_page = max_page
        self.attempts = attempts
        self.max_wait = max_wait
        self.budget = budget or ComplexityBudget(client_rate_limit)
        self.calls: Counter[str] = Counter()
        self.spent = 0
        self.sleep = sleep
        self._operations: set[str] | None = None
        self._type_names: set[str] | None = None  # from introspection
        self._types_checked: dict[str, list[str]] = {}
        self.discovery: str | None = None  # "introspection" or "probing"

    # ------------------------------------------------------------------ calling

    def execute(
        self, name: str, variables: Mapping[str, Any] | None = None, *, items: int = 1
    ) -> dict[str, Any]:
        """Run the named operation and return its root field's answer."""
        op = operation(name)
        retrying = http.retrying(_retryable, self.attempts, self._wait, self.sleep)
        data = retrying(self._post, op.operation_name, op.text, dict(variables or {}), op.cost(items))
        answer = data.get(op.root)
        if op.root not in data:  # Totara skips a root field it does not have, without an error
            raise errors.OperationMissing(
                self.site,
                op.operation_name,
                f"the site does not answer {op.root} (not in this Totara version)",
            )
        if not isinstance(answer, dict):
            raise errors.TotaraError(self.site, op.operation_name, f"the answer has no {op.root}")
        return answer

    def pages(self, name: str, query: Mapping[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Every page of a cursor-paged query (its ``query`` input plus pagination), as item lists."""
        size = self.page_size(name)

        def fetch(cursor: str) -> Page[dict[str, Any]]:
            variables = {"query": {**(query or {}), "pagination": {"cursor": cursor, "limit": size}}}
            answer = self.execute(name, variables, items=size)
            return Page(answer.get("items") or [], str(answer.get("next_cursor") or ""))

        for page in paginate(TokenPaginator(f"Totara site '{self.site}': {name}"), fetch):
            yield list(page.items)

    def page_size(self, name: str) -> int:
        """The largest page that keeps one request under the site's per-query complexity limit."""
        op = operation(name)
        room = int(self.max_query_complexity * 0.9) - op.base_cost - 3
        return max(1, min(self.max_page, room // max(1, op.item_fields)))

    def _wait(self, state: RetryCallState) -> float:
        exc = http.failure(state)
        if isinstance(exc, errors.TokenExpired):
            return 0.0
        retry_after = getattr(exc, "retry_after", None)
        # Totara's 429 has no Retry-After; its budget is per minute.
        limited = retry_after is None and isinstance(exc, errors.RateLimited)
        floor = RATE_LIMIT_PAUSE * state.attempt_number if limited else 0.0
        return http.backoff(state.attempt_number, self.max_wait, retry_after, floor)

    def _post(self, name: str, text: str, variables: dict[str, Any], cost: int) -> dict[str, Any]:
        self.budget.take(cost)
        self.calls[name] += 1
        started = time.monotonic()
        outcome = "error"
        try:
            data = self._request(name, text, variables)
            outcome = "ok"
            self.spent += cost
            return data
        except errors.TotaraError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            metrics.lms_calls.labels(self.site, name, outcome).observe(time.monotonic() - started)

    def _request(self, name: str, text: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The ``data`` of the answer; any error in it is raised as a typed error."""
        payload = self._exchange(name, text, variables)
        problems = payload.get("errors")
        if problems:
            raise errors.from_errors(self.site, name, problems)
        return _data(self.site, name, payload)

    def _exchange(self, name: str, text: str, variables: dict[str, Any]) -> dict[str, Any]:
        """One POST; the decoded answer (``data`` and ``errors`` as Totara sent them).

        Failures that say nothing about the query are raised here whatever the HTTP status:
        Totara answers most of them with HTTP 200 (a refused token, the API switched off), 429
        comes without Retry-After, and a proxy may answer 5xx or HTML.
        """
        token = self.tokens.token()
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        body = json.dumps({"operationName": name, "query": text, "variables": variables})
        try:
            response = errors.post(
                self.session,
                self.site,
                name,
                self.url,
                data=body,
                headers=headers,
                timeout=self.timeout,
                verify=self.verify_tls,
            )
        except (http.RedirectRefused, http.AnswerTooLarge) as exc:
            raise errors.TotaraError(self.site, name, str(exc)) from None
        retry_after = http.retry_after(response.headers.get("Retry-After"))
        if response.status_code == 429:
            raise errors.RateLimited(self.site, name, retry_after)
        if response.status_code in (500, 502, 503, 504):
            raise errors.TransportError(self.site, name, f"HTTP {response.status_code}", retry_after)
        try:
            payload = response.json()
        except ValueError:
            snippet = response.text[:80].replace("\n", " ")
            raise errors.TransportError(
                self.site, name, f"the answer is not JSON (starts {snippet!r})"
            ) from None
        if not isinstance(payload, dict):
            raise errors.TotaraError(self.site, name, f"HTTP {response.status_code}: not a GraphQL answer")
        problems = payload.get("errors")
        if problems and not isinstance(problems, list):
            raise errors.TotaraError(
                self.site, name, f"HTTP {response.status_code}: errors of an unknown shape"
            )
        general = [e for e in problems or () if isinstance(e, dict) and not e.get("path")]
        if general:
            failure = errors.from_errors(self.site, name, general)
            if isinstance(failure, errors.TokenExpired):
                self.tokens.invalidate(token)
            if isinstance(failure, errors.REQUEST_LEVEL):
                raise failure
        if response.status_code != 200:
            raise errors.TotaraError(self.site, name, f"HTTP {response.status_code}")
        return payload

    # ------------------------------------------------------------------ discovery

    def operations(self) -> set[str]:
        """The root fields this site answers, among those lmsbridge knows: from introspection
        where the site allows it (``enable_introspection``, off by default), otherwise by
        probing each one in a way Totara cannot fool (see :meth:`_probe`)."""
        if self._operations is None:
            self._operations = self._discover()
        return self._operations

    def has(self, root: str) -> bool:
        return root in self.operations()

    def available(self, name: str) -> bool:
        """Whether operation ``name`` (``operations/<name>.graphql``) will run on this site: its
        root field answers and every type its variables name exists there."""
        op = operation(name)
        return self.has(op.root) and not self.missing_types(name)

    def missing_types(self, name: str) -> list[str]:
        """The variable types of operation ``name`` this site does not have (empty when all do)."""
        if name not in self._types_checked:
            op = operation(name)
            if self._type_names is not None:
                missing = [t for t in op.variable_types if t not in self._type_names]
            elif op.variable_types and not self._types_exist(op.variable_types):
                missing = [t for t in op.variable_types if not self._types_exist((t,))]
            else:
                missing = []
            self._types_checked[name] = missing
        return self._types_checked[name]

    def version(self) -> str | None:
        """Totara's major version as the answering root fields show it, or None."""
        found = self.operations()
        if "totara_webapi_status" not in found:
            return None
        return next((major for major, markers in VERSION_MARKERS if markers & found), None)

    def _discover(self) -> set[str]:
        try:
            data = self._post_raw("lmsbridge_introspection", INTROSPECTION)
            schema = data["__schema"]
            self.discovery = "introspection"
            self._type_names = {str(t["name"]) for t in schema.get("types") or () if t.get("name")}
            return {
                f["name"]
                for kind in ("queryType", "mutationType")
                for f in ((schema.get(kind) or {}).get("fields") or [])
                if f["name"] in KNOWN_ROOTS
            }
        except errors.TotaraError as exc:
            if exc.remedy is Remedy.RETRY or isinstance(exc, errors.REQUEST_LEVEL):
                raise
        except (KeyError, TypeError, AttributeError):
            pass  # introspection answered in an unexpected shape: probe instead
        self.discovery = "probing"
        return {root for root in KNOWN_ROOTS if self._probe(root)}

    def _probe(self, root: str) -> bool:
        """Whether the site answers root field ``root``.

        Totara's external endpoint does not validate field names (only query depth and
        introspection): a query for a field that does not exist is answered ``{"data": []}``
        with no error. So a root counts as present only when its key comes back in ``data``, or
        when an error is reported *at that field* (``path`` = the field): graphql-php only
        reports errors at fields that exist. Mutations are asked with an argument of the wrong
        kind, so they fail in argument coercion and nothing runs.
        """
        keyword, arguments = KNOWN_ROOTS[root]
        name = f"lmsbridge_probe_{root}"
        text = f"{keyword} {name} {{ {root}{arguments} {{ __typename }} }}"
        payload = self._probe_post(name, text)
        data = payload.get("data")
        if isinstance(data, dict) and root in data:
            return True
        problems = [e for e in payload.get("errors") or () if isinstance(e, dict)]
        if any((e.get("path") or [None])[0] == root for e in problems):
            return True
        general = [e for e in problems if not e.get("path")]
        if general:  # an answer about the request, not the field: cannot tell
            raise errors.from_errors(self.site, name, general)
        return False

    def _types_exist(self, types: tuple[str, ...]) -> bool:
        """Ask for nothing but ``__typename`` with variables of these types: Totara resolves each
        variable's type before running anything, and fails the request for a type it lacks
        (``Type "X" not found in document.``)."""
        name = "lmsbridge_probe_types"
        declared = ", ".join(f"$v{i}: {t}" for i, t in enumerate(types))
        payload = self._probe_post(name, f"query {name}({declared}) {{ __typename }}")
        data = payload.get("data")
        if isinstance(data, dict) and data.get("__typename"):
            return True
        text = "; ".join(errors.error_message(e) for e in payload.get("errors") or () if isinstance(e, dict))
        if any(marker in text for marker in errors.MISSING_TYPE):
            return False
        raise errors.TotaraError(self.site, name, text or "no answer to a type check")

    def _probe_post(self, name: str, text: str) -> dict[str, Any]:
        retrying = http.retrying(_retryable, self.attempts, self._wait, self.sleep)
        return retrying(self._post_payload, name, text)

    def _post_payload(self, name: str, text: str) -> dict[str, Any]:
        self.budget.take(QUERY_COST)
        self.calls[name] += 1
        return self._exchange(name, text, {})

    def _post_raw(self, name: str, text: str) -> dict[str, Any]:
        retrying = http.retrying(_retryable, self.attempts, self._wait, self.sleep)
        return retrying(self._post, name, text, {}, QUERY_COST)


def _data(site: str, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """``data`` as a dict: PHP encodes an empty result as ``[]``."""
    data = payload.get("data")
    if isinstance(data, dict):
        return dict(data)
    if data in (None, []):
        return {}
    raise errors.TotaraError(site, name, "the answer's data is not an object")


# The first Totara release whose external API has each operation (operations/<name>.graphql);
# tests validate every operation for 17 against Totara 17.3's own schema.
SINCE: dict[str, int] = {"status": 17, "users": 17, "job_assignments": 17, "courses": 18, "enrol": 18}

# The root fields lmsbridge knows: how to ask for each without running anything that changes
# the site (keyword, arguments). Markers of a version are only read, never used for data.
KNOWN_ROOTS: dict[str, tuple[str, str]] = {
    "totara_webapi_status": ("query", ""),
    "core_user_users": ("query", ""),
    "totara_job_job_assignments": ("query", ""),
    "core_course_courses": ("query", ""),
    "enrol_manual_enrol_user": ("mutation", "(input: 0)"),
    "totara_job_job_assignment": ("query", "(target_job: 0)"),
}
# Highest first: the first whose marker answers names the version.
VERSION_MARKERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("19", frozenset({"totara_job_job_assignment"})),
    ("18", frozenset({"core_course_courses", "enrol_manual_enrol_user"})),
    ("17", frozenset({"core_user_users", "totara_job_job_assignments"})),
)
