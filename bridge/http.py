"""The one way lmsbridge talks HTTP to outside systems: sessions with limits that hold.

Every connector's ``requests.Session`` goes through :func:`harden` (or is made by
:func:`session`), which gives it three guarantees:

- **Credentials stay on the configured host.** A redirect to another origin (scheme, host or
  port; ``http`` to ``https`` on the same host is allowed) is never followed: the call fails with
  :class:`RedirectRefused` naming both hosts. requests itself only drops ``Authorization`` on a
  cross-host redirect; an ``X-API-Key`` header, or a ``wstoken``/``client_secret`` in a POST body
  replayed on 307/308, would go along.
- **A deadline per call.** ``timeout`` is the total wall-clock time for the answer, body
  included: a server trickling one byte a second cannot hold a call past it
  (:class:`DeadlineExceeded`, a :class:`requests.Timeout`).
- **A maximum answer size.** The body is streamed and the call stops once it passes
  ``max_bytes`` (:class:`AnswerTooLarge`), so a 400 MB answer costs 400 MB of nobody's memory.

:func:`retry_after` reads a ``Retry-After`` header in both of its forms (seconds, HTTP-date).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

DEFAULT_MAX_BYTES = 128 * 1024 * 1024
MAX_REDIRECTS = 5
CHUNK = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}


class HttpLimitError(requests.RequestException):
    """A call stopped by one of this module's limits; the message says which and why."""


class RedirectRefused(HttpLimitError):
    """The server redirected to another host; the credentials are not sent there."""


class AnswerTooLarge(HttpLimitError):
    """The answer's body passed the maximum size."""


class DeadlineExceeded(HttpLimitError, requests.Timeout):
    """The whole answer did not arrive within the call's total time."""


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme)


def shown(url: str) -> str:
    """scheme://host[:port] only: never a path, query or user info that may carry a secret."""
    scheme, host, port = origin(url)
    return f"{scheme}://{host}" + ("" if port == DEFAULT_PORTS.get(scheme) else f":{port}")


def same_site(source: str, target: str) -> bool:
    """Whether a redirect from ``source`` to ``target`` stays on the same host (an upgrade to
    https on the same host included)."""
    try:
        a, b = origin(source), origin(target)
    except ValueError:  # a port that is no number, a bad IPv6 literal
        return False
    if a == b:
        return True
    return a[0] == "http" and b[0] == "https" and a[1] == b[1] and b[2] == 443 and a[2] == 80


def _refuse_foreign_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    if not response.is_redirect:
        return
    source = response.request.url or response.url
    target = urljoin(source, response.headers.get("location", ""))
    if same_site(source, target):
        return
    response.close()
    raise RedirectRefused(
        f"{shown(source)} answered HTTP {response.status_code} redirecting to {shown(target)}; "
        "credentials are never sent to another host, so the redirect was not followed "
        "(configure the address the site really answers on)",
        response=response,
    )


# The clock of each host this process talked to, from the Date header of its last answer: the
# time it gave and the monotonic time it was read, so the host's time now can be estimated.
_server_dates: dict[str, tuple[datetime, float]] = {}


def _note_server_date(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    try:
        given = parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return
    host = urlsplit(response.url).hostname or ""
    _server_dates[host] = (given if given.tzinfo else given.replace(tzinfo=UTC), time.monotonic())


def server_times() -> dict[str, datetime]:
    """Each host's time now, as its last answer's Date header implies (to within a second)."""
    now = time.monotonic()
    return {host: when + timedelta(seconds=now - read) for host, (when, read) in _server_dates.items()}


def _total(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        parts = [float(p) for p in timeout if p is not None]
        return sum(parts) if parts else None
    return float(timeout)


class GuardedAdapter(HTTPAdapter):
    """Reads every non-streamed body itself, under a wall-clock deadline and a size limit."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, **kwargs: Any) -> None:
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        started = time.monotonic()
        total = _total(timeout)
        response = super().send(
            request, stream=True, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )
        if stream:
            return response
        deadline = started + total if total is not None else None
        try:
            self._read(response, deadline, total)
        except BaseException:
            response.close()
            raise
        return response

    def _read(self, response: requests.Response, deadline: float | None, total: float | None) -> None:
        url = shown(response.url or "")
        declared = response.headers.get("content-length", "")
        if declared.isdecimal() and int(declared) > self.max_bytes:
            raise AnswerTooLarge(
                f"{url} announced an answer of {int(declared):,} bytes, more than the "
                f"{self.max_bytes:,} bytes allowed",
                response=response,
            )
        raw = response.raw
        chunks: list[bytes] = []
        size = 0
        while True:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlineExceeded(
                        f"{url}: the answer did not arrive in full within {total:g} s "
                        f"({size:,} bytes so far)",
                        response=response,
                    )
                sock = getattr(getattr(raw, "_connection", None), "sock", None)
                if sock is not None:
                    sock.settimeout(remaining)
            try:
                chunk = raw.read1(CHUNK, decode_content=True)
            except ReadTimeoutError:
                raise DeadlineExceeded(
                    f"{url}: the answer did not arrive in full within {total:g} s ({size:,} bytes so far)",
                    response=response,
                ) from None
            except ProtocolError as exc:
                raise requests.exceptions.ChunkedEncodingError(exc) from None
            except DecodeError as exc:
                raise requests.exceptions.ContentDecodingError(exc) from None
            except SSLError as exc:
                raise requests.exceptions.SSLError(exc) from None
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_bytes:
                raise AnswerTooLarge(
                    f"{url}: the answer passed the {self.max_bytes:,} bytes allowed; stopped reading",
                    response=response,
                )
            chunks.append(chunk)
        response._content = b"".join(chunks)
        response._content_consumed = True  # type: ignore[attr-defined]
        response.close()  # returns the connection to the pool


def harden(session: requests.Session, *, max_bytes: int = DEFAULT_MAX_BYTES) -> requests.Session:
    """Give an existing session this module's limits (in place; returns it)."""
    adapter = GuardedAdapter(max_bytes=max_bytes)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.max_redirects = MAX_REDIRECTS
    hooks = session.hooks.setdefault("response", [])
    for hook in (_refuse_foreign_redirect, _note_server_date):
        if hook not in hooks:
            hooks.append(hook)
    return session


def session(*, max_bytes: int = DEFAULT_MAX_BYTES) -> requests.Session:
    """A new session with the limits (see the module's description)."""
    return harden(requests.Session(), max_bytes=max_bytes)


def is_hardened(session: requests.Session) -> bool:
    return _refuse_foreign_redirect in session.hooks.get("response", [])


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: ``120`` or ``Wed, 21 Oct 2026 07:28:00 GMT``.

    None when there is no usable value; a date in the past is 0.
    """
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff(attempt: int, max_wait: float, retry_after: float | None = None, floor: float = 0.0) -> float:
    """Seconds to wait after failed attempt number ``attempt``: exponential with jitter, at least
    the server's Retry-After and ``floor``, never more than ``max_wait``."""
    delay = min(max_wait, 0.5 * float(1 << min(16, attempt - 1))) + random.uniform(0, 0.5)
    return float(min(max(delay, retry_after or 0.0, floor), max_wait))


def retrying(
    retryable: Callable[[BaseException], bool],
    attempts: int,
    wait: Callable[[RetryCallState], float],
    sleep: Callable[[float], None] = time.sleep,
) -> Retrying:
    """Up to ``attempts`` tries of a call, retrying what ``retryable`` accepts after ``wait``;
    the last error is raised as itself."""
    return Retrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(attempts),
        wait=wait,
        sleep=sleep,
        reraise=True,
    )


def failure(state: RetryCallState) -> BaseException | None:
    """The error of the attempt that just failed."""
    return state.outcome.exception() if state.outcome else None
