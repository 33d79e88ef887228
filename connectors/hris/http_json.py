"""The JSON-over-HTTP HR feed: a generic reader for HR APIs and report endpoints.

Configured, not coded: a base URL, authentication (bearer token, HTTP basic, or an API-key
header — secrets from the environment), one endpoint per record kind with the dotted path to
its list of items and a dotted path per field (``work.department``, ``manager.id``), and paging
by offset/limit, page number, cursor, or next link. Transient failures (connection errors,
timeouts, 429, 5xx) are retried with exponential backoff, honouring Retry-After.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import requests
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr
from tenacity import RetryCallState

from bridge import http
from bridge.errors import Remedy, SourceError
from bridge.pagination import (
    OffsetPaginator,
    Page,
    PageNumberPaginator,
    Paginator,
    TokenPaginator,
    paginate,
)
from bridge.ports import Connector, PullContext, Source
from bridge.settings import Settings
from connectors.hris.csv_connector import RatingScale
from connectors.hris.feed import MAX_RETIRE_HELP, MAX_RETIRE_PERCENT, HrFeed, Rows
from connectors.hris.fields import Builder, Scale, dotted

RETRY_STATUSES = {429, 500, 502, 503, 504}


class Endpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Path under base_url, e.g. /v1/employees.")
    items: str = Field(
        default="",
        description="Dotted path to the list of items in the answer ('' = the answer is the list).",
    )
    fields: dict[str, str] = Field(
        description="lmsbridge field -> dotted path in an item, e.g. {department = 'work.department'}."
    )
    params: dict[str, str] = Field(default_factory=dict, description="Extra query parameters.")


class Paging(BaseModel):
    model_config = ConfigDict(extra="forbid")

    style: Literal["none", "offset", "page", "cursor", "next_link"] = "none"
    page_size: int = Field(default=100, ge=1, le=10000)
    limit_param: str = "limit"
    offset_param: str = "offset"
    page_param: str = "page"
    first_page: int = 1
    cursor_param: str = "cursor"
    next_cursor: str = Field(
        default="next_cursor", description="Dotted path of the next cursor in the answer."
    )
    next_link: str = Field(default="next", description="Dotted path of the next page's URL in the answer.")
    total: str = Field(
        default="",
        description="Dotted path of the total item count in the answer, for offset and page paging "
        "('' = none: a page shorter than page_size is the last).",
    )


class JsonOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: AnyHttpUrl
    auth: Literal["none", "bearer", "basic", "api_key"] = "none"
    token: SecretStr | None = Field(
        default=None, description="Bearer token (LMSBRIDGE_FEEDS__<NAME>__TOKEN)."
    )
    username: str | None = None
    password: SecretStr | None = None
    api_key_header: str = "X-API-Key"
    api_key: SecretStr | None = None
    timeout_seconds: float = Field(default=30, gt=0, description="Total time for one answer, body included.")
    max_answer_mb: float = Field(
        default=http.DEFAULT_MAX_BYTES / 2**20, gt=0, description="Largest answer read (MiB)."
    )
    verify_tls: bool = True
    attempts: int = Field(default=5, ge=1)
    paging: Paging = Field(default_factory=Paging)
    people: Endpoint | None = None
    measurements: Endpoint | None = None
    reviews: Endpoint | None = None
    goals: Endpoint | None = None
    people_snapshot: bool = True
    max_retire_percent: float = Field(default=MAX_RETIRE_PERCENT, ge=0, le=100, description=MAX_RETIRE_HELP)
    date_format: str | None = None
    decimal: str = "."
    rating_scale: RatingScale = Field(default_factory=RatingScale)


class Transient(Exception):
    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class JsonSource(HrFeed):
    def __init__(self, name: str, options: JsonOptions, max_wait: float = 30.0) -> None:
        self.name = name
        self.options = options
        self.max_wait = max_wait
        self.people_snapshot = options.people_snapshot
        self.max_retire_percent = options.max_retire_percent
        self.people_origin = f"from {options.people.path}" if options.people else "people"
        scale = options.rating_scale
        self.builder = Builder(
            name,
            options.date_format,
            options.decimal,
            Scale(tuple(scale.labels), scale.min, scale.max, tuple(scale.unrated)),
        )
        # Never follows a redirect to another host: the session carries the feed's credentials.
        self.session = http.session(max_bytes=int(options.max_answer_mb * 2**20))
        self.session.headers["Accept"] = "application/json"
        if options.auth == "bearer" and options.token:
            self.session.headers["Authorization"] = f"Bearer {options.token.get_secret_value()}"
        elif options.auth == "basic" and options.username and options.password:
            self.session.auth = (options.username, options.password.get_secret_value())
        elif options.auth == "api_key" and options.api_key:
            self.session.headers[options.api_key_header] = options.api_key.get_secret_value()

    def rows(self, kind: str, ctx: PullContext) -> Rows | None:
        endpoint: Endpoint | None = getattr(self.options, kind)
        if endpoint is None:
            return None
        return self._rows(kind, endpoint)

    def _rows(self, kind: str, endpoint: Endpoint) -> Rows:
        for number, item in enumerate(self._items(endpoint), start=1):
            values = {name: dotted(item, path) for name, path in endpoint.fields.items()}
            key = values.get("person_id") or values.get("person") or ""
            yield f"{endpoint.path} item {number} ({key})", values.get

    def _items(self, endpoint: Endpoint) -> Iterator[Any]:
        paging = self.options.paging
        url = urljoin(str(self.options.base_url), endpoint.path)
        params: dict[str, Any] = dict(endpoint.params)
        stream = f"feed '{self.name}': {endpoint.path}"
        if paging.style == "none":
            yield from self._page(url, params, endpoint).items
            return
        sized = {**params, paging.limit_param: paging.page_size}
        paginator: Paginator[int | str, Any]
        if paging.style == "offset":
            paginator = OffsetPaginator(stream, paging.page_size)
        elif paging.style == "page":
            paginator = PageNumberPaginator(stream, paging.page_size, paging.first_page)
        else:
            paginator = TokenPaginator(stream)

        def fetch(position: object) -> Page[Any]:
            if paging.style == "next_link":  # '' is the first page; then each page's own link
                return self._page(str(position) or url, {} if position else params, endpoint)
            if paging.style == "cursor":
                return self._page(
                    url, {**sized, paging.cursor_param: position} if position else sized, endpoint
                )
            number = paging.offset_param if paging.style == "offset" else paging.page_param
            return self._page(url, {**sized, number: position}, endpoint)

        for page in paginate(paginator, fetch):
            yield from page.items

    def _page(self, url: str, params: dict[str, Any], endpoint: Endpoint) -> Page[Any]:
        """One answer's items, and where it says the next page is (only when it held items)."""
        paging = self.options.paging
        answer = self._get(url, params)
        items = dotted(answer, endpoint.items) if endpoint.items else answer
        if not isinstance(items, list):
            raise SourceError(
                f"feed '{self.name}': {endpoint.path} answered without a list at '{endpoint.items}'",
                Remedy.FIX_CONFIG,
            )
        if not items or paging.style == "none":
            return Page(items)
        if paging.style == "cursor":
            return Page(items, str(dotted(answer, paging.next_cursor) or ""))
        if paging.style == "next_link":
            link = dotted(answer, paging.next_link)
            return Page(items, self._next_page(url, str(link), endpoint) if link else None)
        return Page(items, total=self._total(answer, endpoint) if paging.total else None)

    def _total(self, answer: Any, endpoint: Endpoint) -> int:
        total = dotted(answer, self.options.paging.total)
        if isinstance(total, bool) or not isinstance(total, int | str) or not str(total).isdigit():
            raise SourceError(
                f"feed '{self.name}': {endpoint.path} answered without a whole number at "
                f"'{self.options.paging.total}' (paging.total)",
                Remedy.FIX_CONFIG,
            )
        return int(total)

    def _next_page(self, url: str, link: str, endpoint: Endpoint) -> str:
        """The next page from the answer's link, refused unless it stays on the configured site.

        The session carries the feed's credentials: a link elsewhere would hand them over.
        """
        base = urlsplit(str(self.options.base_url))
        try:
            target = urlsplit(urljoin(url, link))
            same = (target.scheme, target.hostname, target.port) == (base.scheme, base.hostname, base.port)
        except ValueError:  # not a URL at all (a bad IPv6 literal, a port that is no number)
            same = False
        if not same:
            raise SourceError(
                f"feed '{self.name}': {endpoint.path} answered with a next-page link that leaves "
                f"{base.scheme}://{base.netloc} ({link[:80]!r}); the feed's credentials go nowhere else",
                Remedy.FIX_CONFIG,
            )
        return target.geturl()

    def _get(self, url: str, params: dict[str, Any]) -> Any:
        retrying = http.retrying(lambda e: isinstance(e, Transient), self.options.attempts, self._wait)
        try:
            return retrying(self._request, url, params)
        except Transient as exc:
            raise SourceError(f"feed '{self.name}': {exc}", Remedy.RETRY) from None

    def _wait(self, state: RetryCallState) -> float:
        exc = http.failure(state)
        return http.backoff(
            state.attempt_number, self.max_wait, exc.retry_after if isinstance(exc, Transient) else None
        )

    def _request(self, url: str, params: dict[str, Any]) -> Any:
        started = time.monotonic()
        try:
            response = self.session.get(
                url, params=params, timeout=self.options.timeout_seconds, verify=self.options.verify_tls
            )
        except (http.RedirectRefused, http.AnswerTooLarge) as exc:
            raise SourceError(f"feed '{self.name}': {exc}", Remedy.FIX_CONFIG) from None
        except requests.Timeout:
            raise Transient(f"no answer from {url} within {self.options.timeout_seconds:g} s") from None
        except requests.RequestException as exc:
            raise Transient(f"cannot connect to {url} ({type(exc).__name__})") from None
        if response.status_code in RETRY_STATUSES:
            raise Transient(
                f"{url} answered HTTP {response.status_code}",
                http.retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code in (401, 403):
            raise SourceError(
                f"feed '{self.name}': {url} refused the credentials (HTTP {response.status_code})",
                Remedy.FIX_CONFIG,
            )
        if response.status_code != 200:
            raise SourceError(
                f"feed '{self.name}': {url} answered HTTP {response.status_code}", Remedy.FIX_CONFIG
            )
        try:
            return response.json()
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            raise Transient(f"{url} did not answer JSON ({time.monotonic() - started:.1f} s)") from None


def build_source(name: str, options: Any, settings: Settings) -> Source:
    return JsonSource(name, options)


connector = Connector(name="json_http", kind="hris", options_model=JsonOptions, build_source=build_source)
