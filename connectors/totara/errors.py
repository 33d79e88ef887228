"""Totara's failures as typed errors that say what the bridge should do about them.

The external API answers GraphQL-style, nearly always with HTTP 200: an ``errors`` array whose
``message`` is ``"Internal server error"`` for anything a resolver threw, with the detail in
``errors[].debugMessage`` on 17 and 18 and in ``errors[].extensions.debugMessage`` from 19 (and
nowhere when the client's error response is "None"); Totara adds a top-level ``"error"`` string
for old AJAX callers, which is ignored here. A refused token, the API switched off
(``Feature api is not available.``) and a lazily loaded type that does not exist
(``Type "X" not found in document.``) are errors about the whole request (no ``path``). HTTP
429 (``Too many requests``) comes without Retry-After. The OAuth token endpoint reports problems
in the JSON body (``error``, ``error_description``, ``hint``) with HTTP 200. None of these
messages ever includes the client secret or a token.
"""

from __future__ import annotations

from typing import Any

import requests

from bridge.errors import BridgeError, Remedy

EXPIRED_TOKEN = "Missing, expired or invalid access token"  # noqa: S105 - an error text, not a secret
MISSING_HEADER = "did not contain the required Authorization header"
COMPLEXITY = "Query complexity exceeded"
FEATURE_OFF = "Feature api is not available"
MISSING_TYPE = ("not found in document", "cannot be used as an input type", "Unknown type")
NO_CLIENT = (
    "Couldn't identify API client",
    "Couldn't identify OAuth2 client provider",
    "API user is invalid",
)


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

    def __init__(self, site: str, error: str, description: str, hint: str = "") -> None:
        detail = f"{description} ({error}{'; ' + hint if hint else ''})"
        super().__init__(site, "the OAuth 2.0 token request", detail)

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
    """The site's schema has no such query, mutation or type (older version or a disabled feature)."""


class ApiDisabled(TotaraError):
    """The site's external API is switched off (``Feature api is not available.``)."""

    def __str__(self) -> str:
        return (
            f"Totara site '{self.site}' has its external API switched off ({self.detail}): enable it under "
            "Quick-access menu > Configure features > Shared services > Enable API, or remove client_id "
            "to use the legacy web services only"
        )


class HeaderStripped(TotaraError):
    """The request reached Totara without its Authorization header."""


class ClientInvalid(TotaraError):
    """The token was accepted but the API client or its service account is not usable."""


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
    text = "; ".join(error_message(e) for e in errors if isinstance(e, dict)) or "unknown error"
    if FEATURE_OFF in text:
        return ApiDisabled(site, operation, text)
    if EXPIRED_TOKEN in text:
        return TokenExpired(site, operation, text)
    if any(marker in text for marker in NO_CLIENT):
        return ClientInvalid(
            site,
            operation,
            text + " — check the API client is enabled and its service account is an ordinary, active user",
        )
    if COMPLEXITY in text:
        return QueryTooComplex(site, operation, text)
    if "Cannot query field" in text or any(marker in text for marker in MISSING_TYPE):
        return OperationMissing(site, operation, text)
    if MISSING_HEADER in text:
        return HeaderStripped(
            site,
            operation,
            text + " — the web server in front of Totara strips the Authorization header; pass it through",
        )
    return TotaraError(site, operation, text)


# Errors about the whole request, never about one field: raised however the answer looks.
REQUEST_LEVEL = (ApiDisabled, TokenExpired, ClientInvalid, HeaderStripped, QueryTooComplex)
