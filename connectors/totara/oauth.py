"""OAuth 2.0 client-credentials tokens for Totara's external API (Totara 17+).

``POST {site}/totara/oauth2/token.php`` with ``grant_type=client_credentials``, the client id
and the client secret in the form body. The token is cached until shortly before its
``expires_in`` and fetched again when the API reports it expired. Totara reports token errors
in the JSON body (``error``, ``error_description``) rather than by HTTP status alone.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import requests

from bridge import http
from connectors.totara import errors

TOKEN_PATH = "/totara/oauth2/token.php"  # noqa: S105 - a URL path, not a secret
REFRESH_MARGIN = 60.0  # seconds before expiry at which a cached token is no longer used


@dataclass
class _Cached:
    value: str
    expires_at: float  # time.monotonic()


class TokenSource:
    def __init__(
        self,
        site: str,
        url: str,
        client_id: str,
        client_secret: str,
        session: requests.Session,
        *,
        timeout: float = 30.0,
        verify_tls: bool | str = True,
    ) -> None:
        self.site = site
        self.url = url.rstrip("/") + TOKEN_PATH
        self.client_id = client_id
        self._secret = client_secret
        self.session = http.harden(session)  # client_secret is never re-posted to another host
        self.timeout = timeout
        self.verify_tls = verify_tls
        self._cached: _Cached | None = None
        self._lock = threading.Lock()
        self.fetched = 0  # how many tokens were requested (for tests and doctor)

    def token(self) -> str:
        with self._lock:
            if self._cached is None or time.monotonic() >= self._cached.expires_at:
                self._cached = self._fetch()
            return self._cached.value

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after the API refused it (unless another thread already replaced it)."""
        with self._lock:
            if self._cached is not None and self._cached.value == token:
                self._cached = None

    def _fetch(self) -> _Cached:
        body = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret,
        }
        operation = "the OAuth 2.0 token request"
        try:
            response = errors.post(
                self.session,
                self.site,
                operation,
                self.url,
                data=body,
                timeout=self.timeout,
                verify=self.verify_tls,
            )
        except (http.RedirectRefused, http.AnswerTooLarge) as exc:
            raise errors.TotaraError(self.site, operation, str(exc)) from None
        if response.status_code in (429, 500, 502, 503, 504):
            raise errors.TransportError(self.site, operation, f"HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise errors.TransportError(
                self.site, operation, f"HTTP {response.status_code}, and the answer is not JSON"
            ) from None
        if not isinstance(data, dict) or data.get("error") or "access_token" not in data:
            data = data if isinstance(data, dict) else {}
            raise errors.ClientRejected(
                self.site,
                str(data.get("error") or f"HTTP {response.status_code}"),
                str(data.get("error_description") or data.get("message") or "no access token in the answer"),
                str(data.get("hint") or ""),
            )
        self.fetched += 1
        lifetime = float(data.get("expires_in") or 3600)
        return _Cached(
            str(data["access_token"]),
            time.monotonic() + max(1.0, lifetime - min(REFRESH_MARGIN, lifetime / 2)),
        )
