# SPDX-License-Identifier: GPL-3.0-or-later
"""The push messages not sent yet, each held by the process that sends it.

Every process sends the messages of the changes its own requests made: it holds them
(``push_queue.holder``) while its push sender lives, which it shows by holding a lease
of its own (:class:`~radicale_plugin.index.LeaseStore`).  A process starting, and every
process now and then, adopts the messages of processes that are gone (no lease held any
more, or known dead), so that a change noted by a process that was killed still reaches
the phones, once.
"""

from __future__ import annotations

from typing import Iterable

from radicale_plugin import index
from radicale_plugin.index.sql.database import Database, chunks, marks
from radicale_plugin.index.sql.push import SQLPushStore

#: The column, in the SQL both dialects read (schema version 7 on SQLite; PostgreSQL:
#: :mod:`radicale_plugin.index.postgres.leases_schema`): (table, column, type).
COLUMNS = [("push_queue", "holder", "TEXT")]


class ClaimingPushStore(SQLPushStore):
    """The push store, with its queue held per process."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._db = db

    def queue_hold(self, holder: str, subscriptions: Iterable[str]) -> None:
        with self._db.transaction(durable=False):
            for part in chunks(subscriptions):
                self._db.execute("UPDATE push_queue SET holder = ? WHERE subscription IN (%s)"
                                 % marks(part), (holder, *part))

    def queue_holders(self) -> set[str]:
        return {r[0] for r in self._db.rows(
            "SELECT DISTINCT holder FROM push_queue WHERE holder IS NOT NULL")}

    def adopt(self, holder: str, gone: Iterable[str], now: float) -> list[index.PushQueued]:
        dead = sorted(set(gone) - {holder})
        named = " OR holder IN (%s)" % marks(dead) if dead else ""
        with self._db.transaction(durable=False):
            rows = self._db.rows(
                "SELECT subscription, book, due, attempt FROM push_queue "
                "WHERE (holder IS NULL OR holder <> ?) AND (holder IS NULL%s OR NOT EXISTS "
                "(SELECT 1 FROM leases l WHERE l.holder = push_queue.holder AND l.expires > ?)) "
                "ORDER BY due, subscription%s" % (named, self._db.dialect.for_update),
                (holder, *dead, now))
            self.queue_hold(holder, [r[0] for r in rows])
        return [index.PushQueued(r[0], r[1], r[2], r[3]) for r in rows]
