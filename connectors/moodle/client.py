"""The Moodle REST web-service client.

One pooled ``requests.Session``; ``POST {site}/webservice/rest/server.php`` with ``wstoken``,
``wsfunction`` and ``moodlewsrestformat=json`` in the form body (never in the URL, so the
token stays out of access logs). Moodle's HTTP-200 error bodies become typed errors
(:mod:`connectors.moodle.errors`); ``warnings`` arrays are logged per item. Connection errors,
timeouts, 429 and 5xx are retried with exponential backoff and jitter (honouring Retry-After);
Moodle exceptions are not, except maintenance mode. A write Moodle cannot deduplicate (sending a
message, creating a plan) is never repeated after the request may have reached the site (a read
timeout, a dropped connection, a 5xx from a proxy, an answer that is not JSON): it raises
:class:`OutcomeUnknown` at once, so the caller can check the site before sending again. Every
HTTP request is counted by function name, and a per-site budget (calls per second) keeps the
bridge from becoming the site's biggest load.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import requests
from tenacity import RetryCallState
from urllib3.exceptions import NewConnectionError

from bridge import http, metrics
from bridge.errors import Remedy
from bridge.log import get_logger
from connectors.moodle import errors
from connectors.moodle.params import encode

log = get_logger(__name__)

ENDPOINT = "/webservice/rest/server.php"
RETRY_STATUSES = {429, 500, 502, 503, 504}
# 500/502/504 may come after the site did the work; 429 and 503 mean it was not attempted.
MAYBE_DONE_STATUSES = {500, 502, 504}
# Writes that doing twice does twice: Moodle keeps no idempotency key for them.
NOT_IDEMPOTENT = frozenset({"core_message_send_instant_messages", "core_competency_create_plan"})
MAX_FIELDS = 4000  # Moodle requires max_input_vars >= 5000; stay clear of it


class RateLimiter:
    """At most ``per_second`` calls per second across threads (a simple spacing limiter)."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.lock = threading.Lock()
        self.next_slot = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class OutcomeUnknown(errors.TransportError):
    """A non-idempotent call failed after the request may have reached the site: not repeated here.

    ``ambiguous`` tells the delivery stage to check the site (reconcile) before any resend.
    """

    ambiguous = True


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, OutcomeUnknown):
        return False
    return isinstance(exc, errors.TransportError | errors.SiteMaintenance) and exc.remedy is Remedy.RETRY


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the request certainly did not reach the site (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None  # urllib3's MaxRetryError carries the reason
    return isinstance(getattr(cause, "reason", cause), NewConnectionError)


class MoodleClient:
    def __init__(
        self,
        site: str,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        verify_tls: bool | str = True,
        attempts: int = 5,
        max_wait: float = 60.0,
        calls_per_second: float | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.site = site
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.verify_tls = verify_tls
        self.attempts = attempts
        self.max_wait = max_wait
        self.limiter = RateLimiter(calls_per_second)
        # Limits from bridge.http: no redirect to another host (wstoken is in every body), a
        # total deadline per call, a maximum answer size.
        self.session = http.harden(session or requests.Session())
        self.session.headers.update({"User-Agent": "lmsbridge", "Accept": "application/json"})
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self._info: dict[str, Any] | None = None  # the last site info asked
        self._functions: set[str] | None = None

    # ------------------------------------------------------------------ calling

    def call(
        self, function: str, params: Mapping[str, Any] | None = None, *, once: bool = False, **settings: Any
    ) -> Any:
        """Call one web-service function and return its decoded JSON answer.

        ``settings`` are per-call Moodle settings such as ``lang="en"`` or ``timezone="UTC"``
        (sent as ``moodlewssetting*``). ``once``: a probe, whose failure is the answer, is not retried.
        """
        fields = encode(params or {})
        if len(fields) > MAX_FIELDS:
            raise ValueError(
                f"{function}: {len(fields)} form fields is too many for one request; chunk the call"
            )
        body = [("wstoken", self._token), ("wsfunction", function), ("moodlewsrestformat", "json"), *fields]
        body += [(f"moodlewssetting{k}", str(v)) for k, v in settings.items()]
        retrying = http.retrying(_retryable, 1 if once else self.attempts, self._wait)
        try:
            return retrying(self._post, function, body)
        except errors.MissingRecord as exc:
            if exc.errorcode == "invalidrecordunknown" and not self.has_function(function):
                raise errors.UnknownFunction(
                    self.site, function, exc.exception, exc.errorcode, exc.moodle_message
                ) from None
            raise

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter, or the server's Retry-After when it gives one."""
        exc = http.failure(state)
        retry_after = exc.retry_after if isinstance(exc, errors.TransportError) else None
        return http.backoff(state.attempt_number, self.max_wait, retry_after)

    def _post(self, function: str, body: list[tuple[str, str]]) -> Any:
        self.limiter.wait()
        with self._calls_lock:
            self.calls[function] += 1
        started = time.monotonic()
        outcome = "error"
        try:
            answer = self._request(function, body)
            outcome = "ok"
            return answer
        except errors.MoodleError as exc:
            # The error's kind, a fixed set: a site's error codes are its own, and as metric
            # labels they would grow without bound (the code is in the log line instead).
            outcome = type(exc).__name__
            log.debug("moodle error", site=self.site, function=function, errorcode=exc.errorcode)
            raise
        except errors.TransportError:
            outcome = "transport"
            raise
        finally:
            elapsed = time.monotonic() - started
            metrics.lms_calls.labels(self.site, function, outcome).observe(elapsed)
            log.debug(
                "moodle call", site=self.site, function=function, outcome=outcome, seconds=round(elapsed, 3)
            )

    def _transport(
        self,
        function: str,
        detail: str,
        retry_after: float | None = None,
        *,
        maybe_done: bool = False,
        status: int | None = None,
    ) -> errors.TransportError:
        if maybe_done and function in NOT_IDEMPOTENT:
            return OutcomeUnknown(
                self.site, function, f"{detail}; it may have taken effect, so it is not repeated blindly"
            )
        return errors.TransportError(self.site, function, detail, retry_after, status)

    def _request(self, function: str, body: list[tuple[str, str]]) -> Any:
        try:
            response = self.session.post(
                self.url + ENDPOINT, data=body, timeout=self.timeout, verify=self.verify_tls
            )
        except (http.RedirectRefused, http.AnswerTooLarge) as exc:
            error = self._transport(function, str(exc), maybe_done=isinstance(exc, http.AnswerTooLarge))
            error.remedy = Remedy.FIX_CONFIG
            raise error from None
        except requests.Timeout as exc:
            raise self._transport(
                function, f"no answer within {self.timeout:g} s", maybe_done=not _never_sent(exc)
            ) from None
        except requests.ConnectionError as exc:
            raise self._transport(
                function, f"cannot connect ({type(exc).__name__})", maybe_done=not _never_sent(exc)
            ) from None
        if response.status_code != 200:
            retry_after = http.retry_after(response.headers.get("Retry-After"))
            if response.status_code in RETRY_STATUSES:
                raise self._transport(
                    function,
                    f"HTTP {response.status_code}",
                    retry_after,
                    maybe_done=response.status_code in MAYBE_DONE_STATUSES,
                    status=response.status_code,
                )
            hint = (
                " (web services or the REST protocol may be disabled)" if response.status_code == 403 else ""
            )
            error = errors.TransportError(
                self.site, function, f"HTTP {response.status_code}{hint}", status=response.status_code
            )
            error.remedy = Remedy.FIX_CONFIG
            raise error
        try:
            data = response.json()
        except (json.JSONDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
            snippet = response.text[:80].replace("\n", " ")
            raise self._transport(
                function, f"the answer is not JSON (starts {snippet!r})", maybe_done=True
            ) from None
        if isinstance(data, dict) and "exception" in data and "errorcode" in data:
            raise errors.from_body(self.site, function, data)
        _log_warnings(self.site, function, data)
        return data

    # ------------------------------------------------------------------ site

    def site_info(self) -> dict[str, Any]:
        """Asks the site (every time: the doctor checks the token with it) and keeps the answer."""
        info: dict[str, Any] = self.call("core_webservice_get_site_info")
        self._info = info
        self._functions = {f["name"] for f in info.get("functions", [])}
        return info

    def known_site_info(self) -> dict[str, Any]:
        """The site info already asked (by :meth:`has_function`, say), or asked now."""
        return self._info if self._info is not None else self.site_info()

    def has_function(self, function: str) -> bool:
        """Whether the token's service offers the function (asks the site once)."""
        if self._functions is None:
            self.site_info()
        offered = self.offers(function)
        assert offered is not None
        return offered

    def offers(self, function: str) -> bool | None:
        """Whether the service offers the function, if the site was asked already; else None."""
        return None if self._functions is None else function in self._functions

    def total_calls(self) -> int:
        return sum(self.calls.values())


def _log_warnings(site: str, function: str, data: Any) -> None:
    warnings = data.get("warnings") if isinstance(data, dict) else None
    if not isinstance(warnings, list):
        return
    for warning in warnings:
        if not isinstance(warning, dict):
            log.warning("moodle warning", site=site, function=function, message=str(warning)[:200])
            continue
        log.warning(
            "moodle warning",
            site=site,
            function=function,
            item=warning.get("item"),
            itemid=warning.get("itemid"),
            code=warning.get("warningcode"),
            message=warning.get("message"),
        )
