# SPDX-License-Identifier: GPL-3.0-or-later
"""The embedded :class:`~radicale_plugin.index.SharingIndex`: one SQLite file.

It lives beside Radicale's collection root.  One writer connection per
process, serialised by a lock (Radicale serves requests from threads, and the
fan-out worker is one more), and reader connections beside it: in WAL mode a
read never waits for the writer, so no request (nor a storage hook under
Radicale's lock) waits for the worker's reads, and its reads never wait for the
worker's write transaction (:mod:`.database`).  ``synchronous=FULL`` so that a
change recorded before the owner's PUT returns survives ``kill -9`` and power
loss alike.  Each store of the contract is one module of this package; they
share the connections.
"""

from __future__ import annotations

import contextlib

from radicale_plugin import index
from radicale_plugin.index.sql import stores
from radicale_plugin.index.sqlite.database import Database
from radicale_plugin.index.sqlite.schema import migrate


class SQLiteIndex(index.SharingIndex):
    """Sharing index and outbox in a SQLite database file."""

    def __init__(self, path: str, region: str = "US", checkpoint_wait: float = 0.0) -> None:
        self.db = Database(path)
        self.db.checkpoint_wait = checkpoint_wait  # see Database.close
        migrate(self.db, region, self.SCHEMA_VERSION)
        stores.attach(self, self.db)

    def transaction(self, durable: bool = True) -> contextlib.AbstractContextManager[None]:
        return self.db.transaction(durable)

    def sync(self) -> None:
        self.db.sync()

    def close(self) -> None:
        self.db.close()

    #: Tables of sharing state; the card-key index (cards, card_keys, books) and ``meta``
    #: are left out: they are rebuilt from the collections.
    _STATE_TABLES = ("owners", "owner_views", "owner_values", "keys", "codes", "code_sends",
                     "links", "policies", "offers", "offer_log", "jobs", "deliveries",
                     "written", "history", "push_topics", "push_subscriptions",
                     "invites", "invite_uses", "history_undone", "undone_values",
                     "notify_events", "notify_batches")

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        return self.db.snapshot()

    def is_empty(self) -> bool:
        # a notification setting without a choice holds only the URL a request came by,
        # learnt again, and the key of unsubscribe links is made at the first check of
        # a link: a server that ran on an empty database leaves both
        return not any(self.db.value("SELECT EXISTS (SELECT 1 FROM %s)" % table)
                       for table in self._STATE_TABLES) and not self.db.value(
            "SELECT EXISTS (SELECT 1 FROM notify_settings WHERE email IS NOT NULL)")
