# SPDX-License-Identifier: GPL-3.0-or-later
"""The embedded :class:`~radicale_plugin.index.SharingIndex`: one SQLite file.

It lives beside Radicale's collection root.  One connection per process,
serialised by a lock (Radicale serves requests from threads, and the fan-out
worker is one more); ``synchronous=FULL`` so that a change recorded before the
owner's PUT returns survives ``kill -9`` and power loss alike.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import threading
from typing import Iterable

from radicale_plugin import index
from radicale_plugin.index import Delivery, Owner
from radicale_plugin.view import View

_SCHEMA = """
CREATE TABLE IF NOT EXISTS owners (
    user TEXT PRIMARY KEY, book TEXT, href TEXT, uid TEXT,
    shared_fields TEXT, rules TEXT, view TEXT, prev_view TEXT,
    seq INTEGER NOT NULL DEFAULT 0, skipped TEXT);
CREATE TABLE IF NOT EXISTS owner_keys (
    owner TEXT NOT NULL, key TEXT NOT NULL, current INTEGER NOT NULL,
    PRIMARY KEY (owner, key));
CREATE INDEX IF NOT EXISTS owner_keys_by_key ON owner_keys (key, current);
CREATE TABLE IF NOT EXISTS policies (
    recipient TEXT NOT NULL, owner TEXT NOT NULL, policy TEXT NOT NULL,
    PRIMARY KEY (recipient, owner));
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL,
    seq INTEGER NOT NULL, created TEXT NOT NULL, only_recipients TEXT);
CREATE TABLE IF NOT EXISTS deliveries (
    owner TEXT NOT NULL, recipient TEXT NOT NULL, state TEXT NOT NULL,
    wanted_seq INTEGER NOT NULL, delivered_seq INTEGER NOT NULL DEFAULT 0,
    book TEXT, href TEXT, delivered_view TEXT, reasons TEXT, error TEXT,
    updated TEXT, PRIMARY KEY (owner, recipient));
CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (state, updated);
"""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class SQLiteIndex(index.SharingIndex):
    """Sharing index and outbox in a SQLite database file."""

    def __init__(self, path: str) -> None:
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def _tx(self) -> "_Transaction":
        return _Transaction(self)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- owners --------------------------------------------------------
    def _owner_row(self, user: str) -> Owner:
        row = self._db.execute("SELECT * FROM owners WHERE user = ?", (user,)).fetchone()
        if row is None:
            return Owner(user)
        owner = Owner(user, row["book"], row["href"], row["uid"],
                      view=View.from_json(row["view"]),
                      prev_view=View.from_json(row["prev_view"]), seq=row["seq"],
                      skipped=json.loads(row["skipped"] or "[]"))
        if row["shared_fields"]:
            owner.shared_fields = json.loads(row["shared_fields"])
        owner.rules = json.loads(row["rules"] or "[]")
        return owner

    def owner(self, user: str) -> Owner:
        with self._lock:
            return self._owner_row(user)

    def owners_with_me_card(self) -> list[Owner]:
        with self._lock:
            users = [r[0] for r in self._db.execute(
                "SELECT user FROM owners WHERE href IS NOT NULL ORDER BY user")]
            return [self._owner_row(u) for u in users]

    def _ensure(self, user: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO owners (user) VALUES (?)", (user,))

    def set_me_card(self, user: str, book: str | None, href: str | None,
                    uid: str | None) -> None:
        with self._tx():
            self._ensure(user)
            self._db.execute("UPDATE owners SET book = ?, href = ?, uid = ? WHERE user = ?",
                             (book, href, uid, user))

    def set_shared_fields(self, user: str, fields: list[str]) -> None:
        with self._tx():
            self._ensure(user)
            self._db.execute("UPDATE owners SET shared_fields = ? WHERE user = ?",
                             (json.dumps(fields), user))

    def set_rules(self, user: str, rules: list[str]) -> None:
        with self._tx():
            self._ensure(user)
            self._db.execute("UPDATE owners SET rules = ? WHERE user = ?",
                             (json.dumps(rules), user))

    def record_view(self, user: str, view: View | None, keys: set[str]) -> bool:
        with self._tx():
            current = self._owner_row(user)
            old = current.view
            if (old is None and view is None) or (
                    old is not None and view is not None
                    and old.fingerprint() == view.fingerprint()):
                return False
            self._ensure(user)
            self._db.execute("UPDATE owner_keys SET current = 0 WHERE owner = ?", (user,))
            self._db.executemany(
                "INSERT INTO owner_keys (owner, key, current) VALUES (?, ?, 1) "
                "ON CONFLICT (owner, key) DO UPDATE SET current = 1",
                [(user, k) for k in sorted(keys)])
            if view is None:
                # the me card is gone: stop, never delete copies
                self._db.execute("UPDATE owners SET view = NULL, prev_view = ? WHERE user = ?",
                                 (old.to_json() if old else None, user))
                self._db.execute("DELETE FROM jobs WHERE owner = ?", (user,))
                self._db.execute("UPDATE deliveries SET state = ?, updated = ? "
                                 "WHERE owner = ? AND state = ?",
                                 (index.STOPPED, _now(), user, index.PENDING))
                return True
            self._db.execute(
                "UPDATE owners SET view = ?, prev_view = COALESCE(?, prev_view), "
                "seq = seq + 1 WHERE user = ?",
                (view.to_json(), old.to_json() if old else None, user))
            seq = current.seq + 1
            self._db.execute("INSERT INTO jobs (owner, seq, created) VALUES (?, ?, ?)",
                             (user, seq, _now()))
            return True

    def requeue(self, user: str) -> None:
        with self._tx():
            self._db.execute(
                "INSERT INTO jobs (owner, seq, created) SELECT user, seq, ? FROM owners "
                "WHERE user = ? AND view IS NOT NULL", (_now(), user))

    def users_by_keys(self, keys: Iterable[str]) -> dict[str, set[str]]:
        wanted = sorted(set(keys))
        out: dict[str, set[str]] = {}
        with self._lock:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i:i + 500]
                rows = self._db.execute(
                    "SELECT key, owner FROM owner_keys WHERE current = 1 AND key IN (%s)"
                    % ",".join("?" * len(chunk)), chunk)
                for key, owner in rows:
                    out.setdefault(key, set()).add(owner)
        return out

    def owner_keys(self, user: str) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute(
                "SELECT key FROM owner_keys WHERE owner = ?", (user,))}

    # -- policies ------------------------------------------------------
    def policies(self, recipient: str) -> dict[str, str]:
        with self._lock:
            return {r[0]: r[1] for r in self._db.execute(
                "SELECT owner, policy FROM policies WHERE recipient = ? ORDER BY owner",
                (recipient,))}

    def set_policy(self, recipient: str, owner: str, policy: str | None) -> None:
        with self._tx():
            if policy is None:
                self._db.execute("DELETE FROM policies WHERE recipient = ? AND owner = ?",
                                 (recipient, owner))
            else:
                self._db.execute(
                    "INSERT INTO policies (recipient, owner, policy) VALUES (?, ?, ?) "
                    "ON CONFLICT (recipient, owner) DO UPDATE SET policy = excluded.policy",
                    (recipient, owner, policy))
            # a blocked delivery gets another chance: the worker re-reads the policy
            where = "recipient = ? AND state = ?" + ("" if owner == "*" else " AND owner = ?")
            args: tuple = (recipient, index.BLOCKED) + (() if owner == "*" else (owner,))
            self._db.execute("UPDATE deliveries SET state = ?, updated = ? WHERE " + where,
                             (index.PENDING, _now()) + args)

    # -- outbox --------------------------------------------------------
    def restrict(self, user: str, seq: int, recipients: list[str]) -> None:
        with self._tx():
            self._db.execute("UPDATE jobs SET only_recipients = ? WHERE owner = ? AND seq = ?",
                             (json.dumps(recipients), user, seq))

    def pending_jobs(self, limit: int) -> list[tuple[int, str, int, list[str] | None]]:
        with self._lock:
            return [(r[0], r[1], r[2], json.loads(r[3]) if r[3] else None)
                    for r in self._db.execute(
                        "SELECT id, owner, seq, only_recipients FROM jobs ORDER BY id LIMIT ?",
                        (limit,))]

    def plan(self, job_id: int, owner: str, seq: int,
             targets: dict[str, list[str]], skipped: list[dict[str, str]],
             restricted: bool = False) -> None:
        now = _now()
        with self._tx():
            for recipient, reasons in targets.items():
                self._db.execute(
                    "INSERT INTO deliveries (owner, recipient, state, wanted_seq, reasons, "
                    "updated) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owner, recipient) DO "
                    # a copy that already holds this change is not written again
                    "UPDATE SET state = CASE WHEN deliveries.state = ? AND "
                    "deliveries.delivered_seq >= excluded.wanted_seq THEN deliveries.state "
                    "ELSE excluded.state END, wanted_seq = excluded.wanted_seq, "
                    "reasons = excluded.reasons, error = NULL, updated = excluded.updated",
                    (owner, recipient, index.PENDING, seq, json.dumps(reasons), now,
                     index.DELIVERED))
            if not restricted:
                # targets removed since the last plan: stop, keep their copies
                placeholders = ",".join("?" * len(targets))
                self._db.execute(
                    "UPDATE deliveries SET state = ?, updated = ? WHERE owner = ? AND state != ?"
                    + (" AND recipient NOT IN (%s)" % placeholders if targets else ""),
                    (index.STOPPED, now, owner, index.STOPPED, *targets))
                self._db.execute("UPDATE owners SET skipped = ? WHERE user = ?",
                                 (json.dumps(skipped), owner))
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def _delivery(self, row: sqlite3.Row) -> Delivery:
        return Delivery(row["owner"], row["recipient"], row["state"], row["wanted_seq"],
                        row["delivered_seq"], row["book"], row["href"],
                        View.from_json(row["delivered_view"]),
                        json.loads(row["reasons"] or "[]"), row["error"] or "",
                        row["updated"] or "")

    def pending_deliveries(self, limit: int) -> list[Delivery]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM deliveries WHERE state = ? ORDER BY updated, owner, recipient "
                "LIMIT ?", (index.PENDING, limit)).fetchall()
            return [self._delivery(r) for r in rows]

    def finish(self, delivery: Delivery) -> None:
        with self._tx():
            self._db.execute(
                "UPDATE deliveries SET state = ?, delivered_seq = ?, book = ?, href = ?, "
                "delivered_view = ?, error = ?, updated = ? WHERE owner = ? AND recipient = ? "
                "AND wanted_seq = ?",
                (delivery.state, delivery.delivered_seq, delivery.book, delivery.href,
                 delivery.delivered_view.to_json() if delivery.delivered_view else None,
                 delivery.error, _now(), delivery.owner, delivery.recipient,
                 delivery.wanted_seq))

    def deliveries(self, owner: str) -> list[Delivery]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM deliveries WHERE owner = ? ORDER BY recipient",
                                    (owner,)).fetchall()
            return [self._delivery(r) for r in rows]

    def queued(self, owner: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE owner = ?",
                                    (owner,)).fetchone()[0]

    def has_work(self) -> bool:
        with self._lock:
            return bool(self._db.execute(
                "SELECT EXISTS (SELECT 1 FROM jobs) OR EXISTS "
                "(SELECT 1 FROM deliveries WHERE state = ?)", (index.PENDING,)).fetchone()[0])


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK``) under the index lock."""

    def __init__(self, idx: SQLiteIndex) -> None:
        self._idx = idx

    def __enter__(self) -> None:
        self._idx._lock.acquire()
        try:
            self._idx._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._idx._lock.release()
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._idx._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self._idx._lock.release()


