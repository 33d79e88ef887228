"""Linking HR people to their accounts on each LMS site.

Keys are tried in the configured order, never names:

- ``employee_number``: the HR employee number equals the LMS ``idnumber`` (both trimmed, exact);
- ``email``: the work email equals the LMS email, ignoring case — only where the address is
  unique among HR people *and* among the site's users;
- ``username``: the LMS username equals the HR employee number or the work email (ignoring case).

A person with two candidate accounts on a key, or an account claimed by two people, is
ambiguous and stays unlinked: a message to the wrong person is worse than none. Links are
recomputed as a whole so that changed data re-links and deleted accounts unlink.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, and_, delete, select

from bridge import clock
from bridge.outbox import address_waiting, wait_for_account
from bridge.store import schema as t
from bridge.store.ingest import CHUNK, bump_version, mark_dirty


@dataclass
class MatchReport:
    site: str
    matched: int = 0
    unmatched: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    changed: int = 0
    released: int = 0  # actions that waited for one of the newly linked accounts

    def __str__(self) -> str:
        text = f"{self.matched} matched, {len(self.unmatched)} unmatched, {len(self.ambiguous)} ambiguous"
        return text + (f", {self.released} waiting action(s) released" if self.released else "")


def _fold(value: str | None) -> str:
    return (value or "").strip().casefold()


@dataclass(frozen=True)
class Account:
    user_id: int
    idnumber: str | None
    email: str | None
    username: str | None


@dataclass(frozen=True)
class HrKeys:
    person_id: str
    employee_number: str | None
    email: str | None


def link(
    people: Sequence[HrKeys], accounts: Sequence[Account], order: Sequence[str], site: str = ""
) -> tuple[dict[str, tuple[int, str]], MatchReport]:
    """Which account belongs to which person, by the ordered keys; nothing is stored."""
    report = MatchReport(site)
    by_idnumber: dict[str, list[int]] = defaultdict(list)
    by_email: dict[str, list[int]] = defaultdict(list)
    by_username: dict[str, list[int]] = defaultdict(list)
    for account in accounts:
        if account.idnumber and account.idnumber.strip():
            by_idnumber[account.idnumber.strip()].append(account.user_id)
        if account.email:
            by_email[_fold(account.email)].append(account.user_id)
        if account.username:
            by_username[_fold(account.username)].append(account.user_id)
    hr_emails = Counter(_fold(p.email) for p in people if p.email)

    chosen: dict[str, tuple[int, str]] = {}
    for person in people:
        number, email = (person.employee_number or "").strip(), _fold(person.email)
        for key in order:
            if key == "employee_number":
                candidates = by_idnumber.get(number, []) if number else []
            elif key == "email":
                candidates = by_email.get(email, []) if email and hr_emails[email] == 1 else []
            else:
                names = {*by_username.get(_fold(number), []), *by_username.get(email, [])}
                candidates = sorted(names) if number or email else []
            if len(candidates) == 1:
                chosen[person.person_id] = (candidates[0], key)
                break
            if len(candidates) > 1:
                report.ambiguous.append(person.person_id)
                break
        else:
            report.unmatched.append(person.person_id)

    claims = Counter(user_id for user_id, _ in chosen.values())
    for person_id, (user_id, _) in list(chosen.items()):
        if claims[user_id] > 1:
            del chosen[person_id]
            report.ambiguous.append(person_id)
    report.matched = len(chosen)
    report.ambiguous.sort()
    return chosen, report


def match_identities(conn: Connection, site: str, order: Sequence[str]) -> MatchReport:
    """Link the stored HR people to the site's stored users and persist the links."""
    u, p, i = t.lms_users, t.people, t.identities
    query = select(u.c.user_id, u.c.idnumber, u.c.email, u.c.username).where(
        and_(u.c.site == site, u.c.deleted.is_(False))
    )
    accounts = [Account(r.user_id, r.idnumber, r.email, r.username) for r in conn.execute(query)]
    hr = select(p.c.person_id, p.c.employee_number, p.c.email)
    people = [HrKeys(r.person_id, r.employee_number, r.email) for r in conn.execute(hr)]
    chosen, report = link(people, accounts, order, site)

    existing = {
        r.person_id: r.user_id
        for r in conn.execute(select(i.c.person_id, i.c.user_id).where(i.c.site == site))
    }
    now = clock.now()
    changed = {pid: pair for pid, pair in chosen.items() if existing.get(pid) != pair[0]}
    moved = [pid for pid in existing if pid not in chosen or pid in changed]
    _relink(conn, site, moved, changed, now)
    if moved or changed:
        report.released = readdress(conn, site, moved, now)
    report.changed = len({*moved, *changed})
    mark_dirty(conn, [*moved, *changed], now)
    return report


def _relink(
    conn: Connection, site: str, moved: list[str], changed: dict[str, tuple[int, str]], now: datetime
) -> None:
    """Replace the links that go or move, all freed before any is written.

    Links are unique per account: when two accounts exchange employee numbers, each new link's
    account is still held by the other person until both old links are gone. Deleting first,
    in the caller's transaction, relinks a swap (or any rotation) atomically on every database.
    """
    i = t.identities
    if moved or changed:
        bump_version(conn, "managers", now)  # the managers an LMS names are found through links
        bump_version(conn, f"links:{site}", now)  # bridge.cycle's kept links
    for start in range(0, len(moved), CHUNK):
        conn.execute(delete(i).where(and_(i.c.site == site, i.c.person_id.in_(moved[start : start + CHUNK]))))
    rows = [
        {"person_id": pid, "site": site, "user_id": uid, "matched_by": key, "updated_at": now}
        for pid, (uid, key) in changed.items()
    ]
    for start in range(0, len(rows), CHUNK):
        conn.execute(i.insert(), rows[start : start + CHUNK])


def readdress(conn: Connection, site: str, moved: list[str], now: datetime) -> int:
    """Hold the queued actions of people whose account changed, then address all that can go.

    An action queued for an account that now belongs to someone else (or to nobody) must not go
    there: it waits like an action whose person was never linked, and :func:`address_waiting`
    gives it the person's current account, now if there is one. Returns how many were released.
    """
    a = t.actions
    reason = f"the person's account on site '{site}' changed: waiting for the new one to be linked"
    for start in range(0, len(moved), CHUNK):
        queued_for_old = and_(
            a.c.site == site,
            a.c.state == "pending",
            a.c.recipient_user_id.is_not(None),
            a.c.recipient_person_id.in_(moved[start : start + CHUNK]),
        )
        wait_for_account(conn, queued_for_old, reason, now)
    return address_waiting(conn, now, site)
