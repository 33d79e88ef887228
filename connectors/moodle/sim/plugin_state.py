"""What the companion plugin local_lmsbridge holds on a simulated site, and its webhook push.

Mirrors ``moodle/local_lmsbridge``: the append-only change log (``local_lmsbridge_changes``),
the open recommendations (``local_lmsbridge_recs``), and the signed notification its adhoc task
POSTs after each logged change — off the request that made the change, coalesced (at most one
waiting; a send sends again when more changes were logged meanwhile), its outcome recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests

SIGNATURE_HEADER = "X-Lmsbridge-Signature"
VERSION = 2026120301  # moodle/local_lmsbridge/version.php
RELEASE = "1.0.1"

DEFAULTS: dict[str, Any] = {
    "courseid": 0,
    "competencyid": 0,
    "planid": 0,
    "grade": None,
    "proficiency": None,
    "status": "",
    "idnumber": "",
    "email": "",
    "suspended": False,
    "deleted": False,
}


@dataclass
class Webhook:
    """The plugin's settings (settings.php) and what its task last did."""

    url: str = ""
    secret: str = ""
    enabled: bool = False
    last_sent: int = 0
    last_status: str = ""
    sent: list[dict[str, Any]] = field(default_factory=list)  # every body sent, for tests

    @property
    def configured(self) -> bool:
        return self.enabled and bool(self.url) and bool(self.secret)


@dataclass
class PluginState:
    version: int = VERSION
    release: str = RELEASE
    changes: list[dict[str, Any]] = field(default_factory=list)
    recommendations: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)  # user -> ref -> item
    webhook: Webhook = field(default_factory=Webhook)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _queued: bool = False  # a notification task waits (queue_adhoc_task(..., true) coalesces)
    _running: bool = False

    def log(
        self, kind: str, userid: int, timechanged: int, *, created: int | None = None, **fields: Any
    ) -> int:
        """change_log::add: one row, then the notification when the webhook is set up."""
        with self.lock:
            row = {
                **DEFAULTS,
                **fields,
                "id": len(self.changes) + 1,
                "kind": kind,
                "userid": userid,
                "timechanged": timechanged,
                "timecreated": created if created is not None else int(time.time()),
            }
            self.changes.append(row)
        if self.webhook.configured:
            self.queue_notify()
        return int(row["id"])

    def log_rating(
        self, userid: int, competencyid: int, grade: int | None, when: int, *, created: int | None = None
    ) -> None:
        proficiency = None if grade is None else int(grade == 2)
        self.log(
            "rating",
            userid,
            when,
            created=created,
            competencyid=competencyid,
            grade=grade,
            proficiency=proficiency,
        )

    def last_id(self) -> int:
        with self.lock:
            return len(self.changes)

    # ------------------------------------------------------------------ the notify task

    def queue_notify(self) -> None:
        with self.lock:
            if self._queued:
                return
            self._queued = True
            if self._running:
                return  # the running task sends again once it sees the newer rows
            self._running = True
        threading.Thread(target=self._run_task, name="lmsbridge-notify", daemon=True).start()

    def _run_task(self) -> None:
        """notify_webhook::execute: send, and again while changes arrived during the send."""
        while True:
            with self.lock:
                if not self._queued or not self.webhook.configured:
                    self._queued = self._running = False
                    return
                self._queued = False
                lastid = len(self.changes)
            self._send(lastid)

    def _send(self, lastid: int) -> None:
        body = json.dumps(
            {"site": "simulated", "event": "changes", "lastid": lastid, "time": int(time.time())}
        ).encode()
        signature = hmac.new(self.webhook.secret.encode(), body, hashlib.sha256).hexdigest()
        try:
            response = requests.post(
                self.webhook.url,
                data=body,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
                timeout=10,
            )
            status = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            status = f"error: {type(exc).__name__}"
        with self.lock:
            self.webhook.last_sent = int(time.time())
            self.webhook.last_status = status
            self.webhook.sent.append({"body": body.decode(), "signature": signature, "status": status})
