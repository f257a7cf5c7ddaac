# SPDX-License-Identifier: GPL-3.0-or-later
"""The sharing index on PostgreSQL: the same stores as SQLite's, on a shared database.

Several Radicale processes, on several hosts, use one database: there is no
writer lock, transactions and row locks keep them apart (:mod:`.database`).
The stores are :mod:`radicale_plugin.index.sql`'s; this package gives their
connections, the schema and what only PostgreSQL does.

May import: :mod:`radicale_plugin.index` (contract, records), :mod:`radicale_plugin.index.sql`,
the vCard core, errors, psycopg.
"""

from __future__ import annotations

import contextlib

from radicale_plugin import index
from radicale_plugin.index.sql import stores
from radicale_plugin.index.postgres.database import Database
from radicale_plugin.index.postgres.schema import migrate
from radicale_plugin.index.postgres.wakeups import PostgresWakeups


class PostgresIndex(index.SharingIndex):
    """Sharing index and outbox in a PostgreSQL database, shared by every process."""

    #: Tables of sharing state, as :attr:`SQLiteIndex._STATE_TABLES
    #: <radicale_plugin.index.sqlite.SQLiteIndex._STATE_TABLES>` (the card-key index and
    #: ``meta`` are rebuilt from the collections).
    _STATE_TABLES = ("owners", "owner_views", "owner_values", "keys", "codes", "code_sends",
                     "links", "policies", "offers", "offer_log", "jobs", "deliveries",
                     "written", "history", "push_topics", "push_subscriptions",
                     "invites", "invite_uses", "history_undone", "undone_values",
                     "notify_events", "notify_batches")

    def __init__(self, database: str | Database, min_connections: int = 1,
                 max_connections: int = 16) -> None:
        """``database``: a connection string (the index has a pool of its own), or the
        :class:`Database` of PostgreSQL's storage, shared so that a copy and its delivery
        record commit in one transaction (then :meth:`close` leaves it open)."""
        self._own = isinstance(database, str)
        self.db = Database(database, min_connections, max_connections) if isinstance(
            database, str) else database
        try:
            migrate(self.db)
        except BaseException:
            if self._own:
                self.db.close()
            raise
        stores.attach(self, self.db)
        self._wakeups = PostgresWakeups(self.db)

    def transaction(self, durable: bool = True) -> contextlib.AbstractContextManager[None]:
        return self.db.transaction(durable)

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        return self.db.snapshot()

    def sync(self) -> None:
        self.db.sync()

    def wakeups(self) -> index.Wakeups:
        return self._wakeups

    def close(self) -> None:
        self._wakeups.close()
        if self._own:  # a storage's database is closed by the storage
            self.db.close()

    def is_empty(self) -> bool:
        # as SQLite's: a notification setting holding only a URL learnt, and the key of
        # unsubscribe links, are made by a server running on an empty database (one
        # statement: one moment)
        return not self.db.value(
            "SELECT " + " OR ".join("EXISTS (SELECT 1 FROM %s)" % table
                                    for table in self._STATE_TABLES)
            + " OR EXISTS (SELECT 1 FROM notify_settings WHERE email IS NOT NULL)")
