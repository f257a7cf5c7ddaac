# SPDX-License-Identifier: GPL-3.0-or-later
"""WebDAV-Push in SQL: one topic per book, subscriptions unique per (book, push resource),
and the messages not sent yet (``push_queue``, schema version 5), which survive a restart."""

from __future__ import annotations

from typing import Iterable

from radicale_plugin import index
from radicale_plugin.index import PushSubscription
from radicale_plugin.index.sql.database import (Database, Row, chunks, insert_rows, marks,
                                                under_path)

#: Added by schema version 3 of SQLite's schema (:mod:`radicale_plugin.index.sqlite.schema`).
TABLES = """
CREATE TABLE IF NOT EXISTS push_topics (book TEXT PRIMARY KEY, topic TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS push_subscriptions (
    id TEXT PRIMARY KEY, user TEXT NOT NULL, book TEXT NOT NULL, push_resource TEXT NOT NULL,
    public_key TEXT NOT NULL, auth_secret TEXT NOT NULL, content_encoding TEXT NOT NULL,
    expires REAL NOT NULL, created REAL NOT NULL, UNIQUE (book, push_resource));
CREATE INDEX IF NOT EXISTS push_subscriptions_by_user ON push_subscriptions (user);
CREATE INDEX IF NOT EXISTS push_subscriptions_by_expiry ON push_subscriptions (expires);
"""


def _subscription(row: Row) -> PushSubscription:
    return PushSubscription(row["id"], row["user"], row["book"], row["push_resource"],
                            row["public_key"], row["auth_secret"], row["expires"],
                            row["content_encoding"], row["created"])


class SQLPushStore(index.PushStore):
    """The ``push_topics`` and ``push_subscriptions`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def topic(self, book: str) -> str | None:
        return self._db.value("SELECT topic FROM push_topics WHERE book = ?", (book,))

    def ensure_topic(self, book: str, topic: str) -> str:
        with self._db.transaction():
            self._db.execute("INSERT INTO push_topics (book, topic) VALUES (?, ?) "
                             "ON CONFLICT DO NOTHING", (book, topic))
            return str(self._db.value("SELECT topic FROM push_topics WHERE book = ?", (book,)))

    def put(self, subscription: PushSubscription) -> PushSubscription:
        s = subscription
        with self._db.transaction():
            self._db.execute(
                'INSERT INTO push_subscriptions (id, "user", book, push_resource, public_key, '
                "auth_secret, content_encoding, expires, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (book, push_resource) DO UPDATE SET "
                "public_key = excluded.public_key, auth_secret = excluded.auth_secret, "
                "content_encoding = excluded.content_encoding, expires = excluded.expires",
                (s.id, s.user, s.book, s.push_resource, s.public_key, s.auth_secret,
                 s.content_encoding, s.expires, s.created))
            row = self._db.row("SELECT * FROM push_subscriptions WHERE book = ? "
                               "AND push_resource = ?", (s.book, s.push_resource))
            assert row is not None
            return _subscription(row)

    def get(self, subscription_id: str) -> PushSubscription | None:
        row = self._db.row("SELECT * FROM push_subscriptions WHERE id = ?", (subscription_id,))
        return _subscription(row) if row else None

    def of_user(self, user: str, now: float) -> list[PushSubscription]:
        return [_subscription(r) for r in self._db.rows(
            'SELECT * FROM push_subscriptions WHERE "user" = ? AND expires > ? '
            "ORDER BY book, created, id", (user, now))]

    def of_book(self, book: str, now: float) -> list[PushSubscription]:
        return [_subscription(r) for r in self._db.rows(
            "SELECT * FROM push_subscriptions WHERE book = ? AND expires > ? "
            "ORDER BY created, id", (book, now))]

    def of_books(self, books: Iterable[str], now: float) -> dict[str, list[PushSubscription]]:
        found: dict[str, list[PushSubscription]] = {book: [] for book in books}
        for part in chunks(sorted(found)):
            for r in self._db.rows(
                    "SELECT * FROM push_subscriptions WHERE book IN (%s) AND expires > ? "
                    "ORDER BY book, created, id" % marks(part), (*part, now)):
                found[r["book"]].append(_subscription(r))
        return found

    def count(self, now: float, user: str | None = None, book: str | None = None) -> int:
        return self._db.count("push_subscriptions", "expires > ?", [now], user=user, book=book)

    def remove(self, subscription_id: str) -> bool:
        with self._db.transaction():
            self._db.execute("DELETE FROM push_queue WHERE subscription = ?", (subscription_id,))
            return self._db.execute("DELETE FROM push_subscriptions WHERE id = ?",
                                    (subscription_id,)).rowcount > 0

    def purge_expired(self, now: float) -> int:
        with self._db.transaction():
            self._db.execute("DELETE FROM push_queue WHERE subscription IN (SELECT id FROM "
                             "push_subscriptions WHERE expires <= ?)", (now,))
            return self._db.execute("DELETE FROM push_subscriptions WHERE expires <= ?",
                                    (now,)).rowcount

    def forget_book(self, book: str) -> list[tuple[PushSubscription, str | None]]:
        where, args = under_path(book)
        with self._db.transaction():
            gone = [(_subscription(r), r["topic"]) for r in self._db.rows(
                "SELECT *, (SELECT topic FROM push_topics t WHERE t.book = s.book) AS topic "
                "FROM push_subscriptions s WHERE " + where + " ORDER BY id", args)]
            self._db.execute("DELETE FROM push_queue WHERE " + where, args)
            self._db.execute("DELETE FROM push_subscriptions WHERE " + where, args)
            self._db.execute("DELETE FROM push_topics WHERE " + where, args)
        return gone

    # -- messages not sent yet --------------------------------------------------------
    def queue_put(self, messages: list[index.PushQueued]) -> None:
        if not messages:
            return
        # not durable: a crash of the process keeps it; only a power loss may take it back
        # one message a subscription (the last given): a row of one statement is changed once
        last = {m.subscription: m for m in messages}
        with self._db.transaction(durable=False):
            insert_rows(self._db, "INSERT INTO push_queue (subscription, book, due, attempt)",
                        [(m.subscription, m.book, m.due, m.attempt) for m in last.values()],
                        " ON CONFLICT (subscription) DO UPDATE SET book = excluded.book, "
                        "due = excluded.due, attempt = excluded.attempt")

    def queue_done(self, subscription_id: str) -> None:
        with self._db.transaction(durable=False):
            self._db.execute("DELETE FROM push_queue WHERE subscription = ?", (subscription_id,))

    def queued(self) -> list[index.PushQueued]:
        return [index.PushQueued(r["subscription"], r["book"], r["due"], r["attempt"])
                for r in self._db.rows("SELECT * FROM push_queue ORDER BY due, subscription")]

    # -- backups and accounts -------------------------------------------------------
    def topics(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._db.rows(
            "SELECT book, topic FROM push_topics ORDER BY book")}

    def all(self) -> list[PushSubscription]:
        return [_subscription(r) for r in self._db.rows(
            "SELECT * FROM push_subscriptions ORDER BY id")]

    def forget_user(self, user: str) -> None:
        where, args = under_path(user)
        with self._db.transaction():
            self._db.execute("DELETE FROM push_queue WHERE subscription IN (SELECT id FROM "
                             'push_subscriptions WHERE "user" = ? OR ' + where + ")",
                             (user, *args))
            self._db.execute('DELETE FROM push_subscriptions WHERE "user" = ? OR ' + where,
                             (user, *args))
            self._db.execute("DELETE FROM push_topics WHERE " + where, args)
