"""Signed events pushed by an LMS (Totara 19.1+ webhooks, Moodle's companion plugin
local_lmsbridge) as a signal to pull now.

An event is accepted only when its HMAC-SHA256 signature, computed over the exact body with the
site's shared secret, matches the signature header; the comparison is constant-time. The body is
never parsed into records: its shape is not documented across versions, and the pull that follows
reads the same data through the routes the cursors already track — so a forged, replayed or
dropped event can at worst cause or miss one early pull, never a wrong record. Early pulls of a
site are at most one per 30 s (bridge.daemon), so a replayed flood costs the site that one pull.
No timestamp window is checked: the body is not relied on (see above), and no signed timestamp
or nonce of Totara's could be confirmed without a real 19.1 site. (The Moodle plugin's body carries
a time and the log's newest id; they are not needed either, for the same reason.)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping

from bridge.log import get_logger
from bridge.ops import Response
from bridge.ports import Webhook

log = get_logger(__name__)


def signature_ok(webhook: Webhook, body: bytes, given: str | None) -> bool:
    expected = hmac.new(webhook.secret.encode(), body, hashlib.sha256).hexdigest()
    return given is not None and hmac.compare_digest(expected, given.strip().lower())


def receiver(
    site: str, webhook: Webhook, pull_now: Callable[[], None]
) -> Callable[[bytes, Mapping[str, str]], Response]:
    def receive(body: bytes, headers: Mapping[str, str]) -> Response:
        if not signature_ok(webhook, body, headers.get(webhook.header.lower())):
            log.warning("webhook refused: bad or missing signature", site=site)
            return Response.text("bad signature\n", 401)
        log.info("webhook received; pulling the site now", site=site, bytes=len(body))
        pull_now()
        return Response(202, b"")

    return receive
