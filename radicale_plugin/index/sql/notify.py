# SPDX-License-Identifier: GPL-3.0-or-later
"""Notifications in SQL: each user's choice, the events to tell, the batches (one e-mail
each) and the key of unsubscribe links (the "notifications" block of schema version 6 in
:mod:`.schema`).

A batch is claimed (``sending``) in a durable commit before the mail server hears of it,
so that after ``kill -9`` a batch that may have gone out is never sent again
(:mod:`radicale_plugin.notify.sender`).
"""

from __future__ import annotations

import secrets
from typing import Iterable

from radicale_plugin import index
from radicale_plugin.index.records import (BATCH_CANCELLED, BATCH_READY, BATCH_SENDING,
                                           BATCH_UNKNOWN, NOTIFY_NONE, NotifyBatch,
                                           NotifyEvent, NotifySetting)
from radicale_plugin.index.sql.database import Database, Row, ids_given, marks

def _event(row: Row) -> NotifyEvent:
    return NotifyEvent(row["recipient"], row["owner"], row["kind"], row["seq"], row["time"],
                       row["due"], row["base"], row["id"], row["batch"])


def _batch(row: Row) -> NotifyBatch:
    return NotifyBatch(row["id"], row["recipient"], row["address"], row["state"],
                       row["created"], row["due"], row["message"], row["message_id"],
                       row["attempts"], row["sent"], row["error"])


class SQLNotifyStore(index.NotifyStore):
    """The ``notify_*`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def setting(self, user: str) -> NotifySetting:
        row = self._db.row('SELECT * FROM notify_settings WHERE "user" = ?', (user,))
        if row is None:
            return NotifySetting(user)
        return NotifySetting(user, row["email"], row["address"], row["base"])

    def set_choice(self, user: str, email: str, address: str | None) -> None:
        with self._db.transaction():
            self._db.execute(
                'INSERT INTO notify_settings ("user", email, address) VALUES (?, ?, ?) '
                'ON CONFLICT ("user") DO UPDATE SET email = excluded.email, '
                "address = excluded.address", (user, email, address))
            if email == NOTIFY_NONE:
                self._db.execute("DELETE FROM notify_events WHERE recipient = ? AND "
                                 "batch IS NULL", (user,))
                self._db.execute("UPDATE notify_batches SET state = ? WHERE recipient = ? "
                                 "AND state = ?", (BATCH_CANCELLED, user, BATCH_READY))

    def set_base(self, user: str, base: str) -> None:
        # not durable: a base lost to a power cut is learnt again at the user's next request
        with self._db.transaction(durable=False):
            self._db.execute('INSERT INTO notify_settings ("user", base) VALUES (?, ?) '
                             'ON CONFLICT ("user") DO UPDATE SET base = excluded.base',
                             (user, base))

    def add_event(self, event: NotifyEvent) -> None:
        e = event
        self._db.execute("INSERT INTO notify_events (recipient, owner, kind, seq, time, due, "
                         "base) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (e.recipient, e.owner, e.kind, e.seq, e.time, e.due, e.base))

    def waiting(self, limit: int = 10000) -> list[NotifyEvent]:
        return [_event(r) for r in self._db.rows(
            "SELECT * FROM notify_events WHERE batch IS NULL ORDER BY recipient, time, id "
            "LIMIT ?", (limit,))]

    def last_batch(self, recipient: str) -> float | None:
        value = self._db.value("SELECT MAX(created) FROM notify_batches WHERE recipient = ?",
                               (recipient,))
        return float(value) if value is not None else None

    def make_batch(self, batch: NotifyBatch, events: list[int], drop: list[int]) -> int:
        b = batch
        with self._db.transaction():
            if events and self._db.value(
                    "SELECT COUNT(*) FROM notify_events WHERE batch IS NULL AND id IN (%s)"
                    % marks(events), events) != len(set(events)):
                return 0  # another process made a batch of them first
            batch_id = int(self._db.execute(
                "INSERT INTO notify_batches (recipient, address, state, created, due, message, "
                "message_id, attempts, sent, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (b.recipient, b.address, b.state, b.created, b.due, b.message, b.message_id,
                 b.attempts, b.sent, b.error)).fetchall()[0][0])
            # "batch IS NULL" again: on PostgreSQL another process may have taken some
            # since the count (the update waits for its commit, then sees its batch)
            if events and self._db.execute(
                    "UPDATE notify_events SET batch = ? WHERE batch IS NULL AND id IN (%s)"
                    % marks(events), (batch_id, *events)).rowcount != len(set(events)):
                self._db.execute("UPDATE notify_events SET batch = NULL WHERE batch = ?",
                                 (batch_id,))
                self._db.execute("DELETE FROM notify_batches WHERE id = ?", (batch_id,))
                return 0
            self.drop_events(drop)
        return batch_id

    def drop_events(self, ids: list[int]) -> None:
        if ids:
            self._db.execute("DELETE FROM notify_events WHERE id IN (%s)" % marks(ids), ids)

    def batch(self, batch_id: int) -> NotifyBatch | None:
        row = self._db.row("SELECT * FROM notify_batches WHERE id = ?", (batch_id,))
        return _batch(row) if row else None

    def batches(self, recipient: str | None = None, state: str | None = None
                ) -> list[NotifyBatch]:
        # the conditions given, not "? IS NULL OR ...": PostgreSQL cannot tell the type
        # of a parameter compared with nothing
        where, args = ["1 = 1"], []
        for column, value in (("recipient", recipient), ("state", state)):
            if value is not None:
                where.append("%s = ?" % column)
                args.append(value)
        return [_batch(r) for r in self._db.rows(
            "SELECT * FROM notify_batches WHERE %s ORDER BY created, id" % " AND ".join(where),
            args)]

    def events_of(self, batch_id: int) -> list[NotifyEvent]:
        return [_event(r) for r in self._db.rows(
            "SELECT * FROM notify_events WHERE batch = ? ORDER BY time, id", (batch_id,))]

    def due_batches(self, now: float) -> list[NotifyBatch]:
        return [_batch(r) for r in self._db.rows(
            "SELECT * FROM notify_batches WHERE state = ? AND due <= ? ORDER BY due, id",
            (BATCH_READY, now))]

    def next_due(self) -> float | None:
        value = self._db.value("SELECT MIN(due) FROM notify_batches WHERE state = ?",
                               (BATCH_READY,))
        return float(value) if value is not None else None

    def claim(self, batch_id: int) -> bool:
        # durable: once the mail server may have the message, a crash must find "sending"
        with self._db.transaction(durable=True):
            return self._db.execute(
                "UPDATE notify_batches SET state = ?, attempts = attempts + 1 "
                "WHERE id = ? AND state = ?", (BATCH_SENDING, batch_id, BATCH_READY)
            ).rowcount > 0

    def finish(self, batch_id: int, state: str, due: float = 0.0, error: str = "",
               sent: float | None = None) -> None:
        with self._db.transaction():
            self._db.execute("UPDATE notify_batches SET state = ?, due = ?, error = ?, "
                             "sent = ? WHERE id = ?",
                             (state, due, error[:500], sent, batch_id))

    def interrupted(self, ids: Iterable[int] | None = None) -> list[NotifyBatch]:
        with self._db.transaction():
            found = self.batches(state=BATCH_SENDING)
            if ids is not None:  # only those whose sender is gone (notify.sender)
                wanted = set(ids)
                found = [b for b in found if b.id in wanted]
            self._db.executemany(
                "UPDATE notify_batches SET state = ?, error = ? WHERE id = ? AND state = ?",
                [(BATCH_UNKNOWN, "the server stopped while sending it", b.id, BATCH_SENDING)
                 for b in found])
        return found

    def secret(self) -> bytes:
        with self._db.transaction():
            self._db.execute("INSERT INTO notify_secret (id, secret) VALUES (1, ?) "
                             "ON CONFLICT DO NOTHING", (secrets.token_hex(32),))
            return bytes.fromhex(str(self._db.value(
                "SELECT secret FROM notify_secret WHERE id = 1")))

    def purge(self, before: float) -> int:
        finished = (BATCH_READY, BATCH_SENDING)
        with self._db.transaction(durable=False):
            where = ("state NOT IN (?, ?) AND created < ? AND id NOT IN (SELECT MAX(id) FROM "
                     "notify_batches GROUP BY recipient)")
            args = (*finished, before)
            self._db.execute("DELETE FROM notify_events WHERE batch IN (SELECT id FROM "
                             "notify_batches WHERE " + where + ")", args)
            return self._db.execute("DELETE FROM notify_batches WHERE " + where,
                                    args).rowcount

    def forget_user(self, user: str) -> None:
        with self._db.transaction():
            self._db.execute('DELETE FROM notify_settings WHERE "user" = ?', (user,))
            self._db.execute("DELETE FROM notify_events WHERE recipient = ?", (user,))
            self._db.execute("DELETE FROM notify_batches WHERE recipient = ?", (user,))

    # -- backups --------------------------------------------------------------------
    def all_settings(self) -> list[NotifySetting]:
        return [NotifySetting(r["user"], r["email"], r["address"], r["base"])
                for r in self._db.rows('SELECT * FROM notify_settings ORDER BY "user"')]

    def all_events(self) -> list[NotifyEvent]:
        return [_event(r) for r in self._db.rows("SELECT * FROM notify_events ORDER BY id")]

    def known_secret(self) -> bytes | None:
        value = self._db.value("SELECT secret FROM notify_secret WHERE id = 1")
        return bytes.fromhex(str(value)) if value is not None else None

    def restore(self, settings: Iterable[NotifySetting], batches: Iterable[NotifyBatch],
                events: Iterable[NotifyEvent], secret: bytes | None) -> None:
        try:
            with self._db.transaction(), self._db.attempt():
                # a setting holding only the URL a user's request came by (an empty
                # database a server ran on learns it) gives way to the backup's
                self._db.executemany(
                    'INSERT INTO notify_settings ("user", email, address, base) '
                    'VALUES (?, ?, ?, ?) ON CONFLICT ("user") DO UPDATE SET '
                    "email = excluded.email, address = excluded.address, "
                    "base = COALESCE(excluded.base, notify_settings.base) "
                    "WHERE notify_settings.email IS NULL",
                    [(s.user, s.email, s.address, s.base) for s in settings])
                self._db.executemany(
                    "INSERT INTO notify_batches (id, recipient, address, state, created, due, "
                    "message, message_id, attempts, sent, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(b.id, b.recipient, b.address, b.state, b.created, b.due, b.message,
                      b.message_id, b.attempts, b.sent, b.error) for b in batches])
                self._db.executemany(
                    "INSERT INTO notify_events (id, recipient, owner, kind, seq, time, due, "
                    "base, batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(e.id, e.recipient, e.owner, e.kind, e.seq, e.time, e.due, e.base,
                      e.batch) for e in events])
                ids_given(self._db, "notify_batches")
                ids_given(self._db, "notify_events")
                if secret is not None:
                    # the backup's key: links mailed before it was made still work
                    self._db.execute("INSERT INTO notify_secret (id, secret) VALUES (1, ?) "
                                     "ON CONFLICT (id) DO UPDATE SET secret = excluded.secret",
                                     (secret.hex(),))
        except self._db.IntegrityError as e:
            raise ValueError("a notification batch or event id is given twice: %s" % e) from e
