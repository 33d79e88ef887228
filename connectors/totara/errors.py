"""Totara's failures as typed errors that say what the bridge should do about them.

The external API answers GraphQL-style: HTTP 200 with an ``errors`` array (the detail is in
``errors[].debugMessage`` on 17 and 18 and in ``errors[].extensions.debugMessage`` from 19),
HTTP 429 when a rate limit is spent, and plain messages for authentication problems. The OAuth
token endpoint reports problems in the JSON body (``error``), whatever the HTTP status. None of
these messages ever includes the client secret or a token.
"""

from __future__ import annotations

from typing import Any

import requests

from bridge.errors import BridgeError, Remedy

EXPIRED_TOKEN = "Missing, expired or invalid access token"  # noqa: S105 - an error text, not a secret
MISSING_HEADER = "did not contain the required Authorization header"
COMPLEXITY = "Query complexity exceeded"


class TotaraError(BridgeError):
    remedy = Remedy.FIX_CONFIG

    def __init__(self, site: str, operation: str, message: str, remedy: Remedy | None = None) -> None:
        self.site = site
        self.operation = operation
        self.detail = message
        if remedy is not None:
            self.remedy = remedy
        super().__init__(f"Totara site '{site}' refused {operation}: {message}")


class ClientRejected(TotaraError):
    """The token endpoint refused the client id and secret (or the client is disabled)."""

    def __init__(self, site: str, error: str, description: str) -> None:
        super().__init__(site, "the OAuth 2.0 token request", f"{description} ({error})")

    def __str__(self) -> str:
        return (
            f"Totara site '{self.site}' rejected the API client: {self.detail}. Check the client id and "
            "secret under Development > API > API clients, and that the client is enabled"
        )


class TokenExpired(TotaraError):
    """The access token is no longer accepted; the client fetches a new one once."""

    remedy = Remedy.RETRY


class QueryTooComplex(TotaraError):
    """One query asked for more than the site's ``max_query_complexity``."""


class RateLimited(TotaraError):
    remedy = Remedy.RETRY

    def __init__(self, site: str, operation: str, retry_after: float | None) -> None:
        self.retry_after = retry_after
        super().__init__(site, operation, "the site's query-complexity budget for this minute is spent")


class TransportError(TotaraError):
    remedy = Remedy.RETRY

    def __init__(self, site: str, operation: str, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(site, operation, message)


class OperationMissing(TotaraError):
    """The site's schema has no such query or mutation (older version or a disabled feature)."""


def post(
    session: requests.Session, site: str, operation: str, url: str, *, timeout: float, **kwargs: Any
) -> requests.Response:
    """POST to the site; a timeout or a failed connection becomes a retryable TransportError."""
    try:
        return session.post(url, timeout=timeout, **kwargs)
    except requests.Timeout:
        raise TransportError(site, operation, f"no answer within {timeout:g} s") from None
    except requests.ConnectionError as exc:
        raise TransportError(site, operation, f"cannot connect ({type(exc).__name__})") from None


def error_message(error: dict[str, Any]) -> str:
    """The most useful text of one GraphQL error, wherever this Totara version put it."""
    extensions = error.get("extensions") or {}
    detail = error.get("debugMessage") or (
        extensions.get("debugMessage") if isinstance(extensions, dict) else None
    )
    message = str(error.get("message") or "unknown error")
    return f"{message} ({detail})" if detail and detail != message else message


def from_errors(site: str, operation: str, errors: list[dict[str, Any]]) -> TotaraError:
    text = "; ".join(error_message(e) for e in errors)
    if EXPIRED_TOKEN in text:
        return TokenExpired(site, operation, text)
    if COMPLEXITY in text:
        return QueryTooComplex(site, operation, text)
    if "Cannot query field" in text:
        return OperationMissing(site, operation, text)
    if MISSING_HEADER in text:
        return TotaraError(
            site,
            operation,
            text + " — the web server in front of Totara strips the Authorization header; pass it through",
        )
    return TotaraError(site, operation, text)
