"""Delivering the outbox: claim due actions, send them through the sinks, record each outcome.

An action whose outcome is unknown (a worker died between claiming and recording) is first
reconciled against the outside system: if the LMS shows it happened it is marked sent, otherwise
it goes back to the queue. So a crash at any point neither loses nor duplicates an action.

Before anything leaves, follow-ups made redundant by a later one are superseded, the guards check
each action against the state of now, and message bodies are rendered from that state
(:mod:`bridge.compose`), so what arrives is true on the day it arrives.
"""

from __future__ import annotations

import os
import socket
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from bridge import claims, clock, compose, guards, outbox, truth
from bridge.errors import BridgeError, Remedy
from bridge.log import get_logger, redact_text
from bridge.ports import DeliveryOutcome, OutcomeStatus, OutgoingAction, Sink
from bridge.settings import Settings

log = get_logger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class DeliveryReport:
    states: Counter[str] = field(default_factory=Counter)
    reconciled: int = 0
    paused: bool = False
    errors: list[str] = field(default_factory=list)
    delivered: list[dict[str, Any]] = field(default_factory=list)  # the first ``keep`` outcomes
    unreachable: set[str] = field(default_factory=set)  # sites given up on in this run
    keep: int | None = None  # None: every outcome listed (``states`` counts them all)


def _policy(settings: Settings) -> outbox.RetryPolicy:
    d = settings.delivery
    return outbox.RetryPolicy(d.max_attempts, d.backoff_base_seconds, d.backoff_max_seconds)


def reconcile(
    engine: Engine, sinks: Mapping[str, Sink], settings: Settings, report: DeliveryReport
) -> set[str]:
    """Check unknown outcomes on their sites; returns the sites that could not be reached.

    A site that fails once is not asked again in this run (a circuit per site): with it down,
    every row would otherwise wait out the client's retries in turn.
    """
    now = clock.now()
    unreachable: set[str] = set()
    with engine.begin() as conn:
        for row in claims.abandoned(conn):
            sink = sinks.get(row.site)
            if sink is None or row.site in unreachable:
                continue
            try:
                found = sink.reconcile(outbox.to_outgoing(row))
            except BridgeError as exc:
                report.errors.append(f"reconcile {row.key}: {redact_text(str(exc))}")
                if exc.remedy is Remedy.RETRY:
                    unreachable.add(row.site)
                continue
            if found is not None and found.status is OutcomeStatus.SENT:
                outbox.record(conn, row, found, now, _policy(settings))
                report.states["sent"] += 1
            else:
                outbox.release(
                    conn,
                    row,
                    "outcome unknown after a crash; not found on the site, sending again",
                    now,
                    now,
                )
            report.reconciled += 1
            log.info("reconciled", key=row.key, found=found is not None)
    return unreachable


def deliver(
    engine: Engine,
    sinks: Mapping[str, Sink],
    settings: Settings,
    *,
    worker: str | None = None,
    stop: Callable[[], bool] = lambda: False,
    keep: int | None = None,
) -> DeliveryReport:
    """Send every due action; returns what happened (``keep``: how many outcomes it lists).
    ``stop`` is checked between batches."""
    worker = worker or worker_id()
    report = DeliveryReport(keep=keep)
    with engine.connect() as conn:
        if guards.paused(conn, settings):
            report.paused = True
            return report
    with engine.begin() as conn:
        outbox.address_waiting(conn, clock.now())
        report.states["superseded"] += outbox.supersede(conn, clock.now())
        if not report.states["superseded"]:
            del report.states["superseded"]
    failed_sites = reconcile(engine, sinks, settings, report)
    lease = settings.delivery.lease_seconds
    while not stop():
        now = clock.now()
        with engine.begin() as conn:
            claimed = claims.claim(conn, worker, now, settings.delivery.batch_size, lease)
            to_send = _apply_guards(conn, claimed, settings, now, report)
        if not claimed:
            break
        by_site: dict[str, list[tuple[Any, OutgoingAction]]] = defaultdict(list)
        for row, outgoing in to_send:
            by_site[row.site].append((row, outgoing))
        with claims.heartbeat(engine, claimed, lease):
            for site, rows in by_site.items():
                _send_site(engine, sinks.get(site), site, rows, settings, report, failed_sites)
        if failed_sites and all(row.site in failed_sites for row in claimed):
            break
    report.unreachable = failed_sites
    return report


def _apply_guards(
    conn: Connection, claimed: list[Any], settings: Settings, now: datetime, report: DeliveryReport
) -> list[tuple[Any, OutgoingAction]]:
    """Hold back what must not go out now; return the rows to send, rendered as of now."""
    to_send = []
    rendered = []
    current = truth.load(conn, claimed)
    verdicts = guards.screen(conn, claimed, settings, now, current)
    bodies = compose.for_sending(conn, [v.row for v in verdicts if v.state == "send"], current, now)
    for screened in verdicts:
        row = screened.row
        body = bodies.get(row.id)
        verdict = (
            guards.Verdict(row, body.state, body.reason)
            if screened.state == "send" and isinstance(body, compose.NotSent)
            else screened
        )
        if verdict.state == "send":
            outgoing = outbox.to_outgoing(row)
            if body is not None:
                assert not isinstance(body, compose.NotSent)
                rendered.append((row, body))  # what `outbox` shows is what went
                outgoing = replace(outgoing, subject=body.subject, body_html=body.html, body_text=body.text)
            to_send.append((row, outgoing))
        elif verdict.state == "deferred":
            assert verdict.until is not None
            outbox.release(conn, row, f"deferred: {verdict.reason}", verdict.until, now)
            report.states["deferred"] += 1
        elif verdict.state == "waiting":
            outbox.hold_for_account(conn, row, verdict.reason or "", now)
            report.states["waiting"] += 1
        else:
            outbox.finish(conn, row, verdict.state, verdict.reason or "", now)
            report.states[verdict.state] += 1
    outbox.store_rendered(conn, rendered, now)
    return to_send


def _send_site(
    engine: Engine,
    sink: Sink | None,
    site: str,
    pairs: list[tuple[Any, OutgoingAction]],
    settings: Settings,
    report: DeliveryReport,
    failed_sites: set[str],
) -> None:
    now = clock.now()
    rows = [row for row, _ in pairs]
    if site in failed_sites or sink is None:
        error = f"site '{site}' is not configured" if sink is None else f"site '{site}' is failing this run"
        with engine.begin() as conn:
            if sink is None:
                dead = [(row, DeliveryOutcome(row.key, OutcomeStatus.DEAD, error=error)) for row in rows]
                outbox.record_many(conn, dead, now, _policy(settings))
                report.states["dead"] += len(rows)
            else:
                later = now + timedelta(seconds=settings.delivery.backoff_base_seconds)
                for row in rows:
                    outbox.release(conn, row, error, later, now)
        return
    mine = {row.id for row in claims.still_mine(engine, rows, settings.delivery.lease_seconds)}
    if lost := len(rows) - len(mine):
        report.states["lost"] += lost
        pairs = [(row, outgoing) for row, outgoing in pairs if row.id in mine]
        rows = [row for row, _ in pairs]
    if not pairs:
        return
    try:
        outcomes = sink.deliver([outgoing for _, outgoing in pairs])
    except BridgeError as exc:
        failed_sites.add(site)
        message = redact_text(str(exc))
        report.errors.append(message)
        log.error("delivery failed", site=site, error=message)
        later = now + timedelta(seconds=settings.delivery.backoff_base_seconds)
        unknown = getattr(exc, "ambiguous", False)
        with engine.begin() as conn:
            if exc.remedy is Remedy.FIX_CONFIG and not unknown:
                for row in rows:
                    outbox.release(conn, row, message, later, now)
            else:  # unknown: the site may have carried them out, reconcile before any resend
                status = OutcomeStatus.UNKNOWN if unknown else OutcomeStatus.RETRY
                failed = [(row, DeliveryOutcome(row.key, status, error=message)) for row in rows]
                outbox.record_many(conn, failed, now, _policy(settings))
        return
    by_key = {o.key: o for o in outcomes}
    paired = [
        (
            row,
            by_key.get(row.key) or DeliveryOutcome(row.key, OutcomeStatus.RETRY, error="no outcome returned"),
        )
        for row in rows
    ]
    with engine.begin() as conn:
        states = outbox.record_many(conn, paired, now, _policy(settings))
        for (row, outcome), state in zip(paired, states, strict=True):
            report.states[state] += 1
            if report.keep is not None and len(report.delivered) >= report.keep:
                continue
            report.delivered.append(
                {
                    "key": row.key,
                    "person_id": row.person_id,
                    "kind": row.kind,
                    "site": site,
                    "state": state,
                    "error": outcome.error,
                }
            )
