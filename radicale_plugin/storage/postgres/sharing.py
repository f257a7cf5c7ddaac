# SPDX-License-Identifier: GPL-3.0-or-later
"""Radicale's storage on PostgreSQL with the sharing hooks: me cards, consent, the fan-out.

The plain storage of :mod:`radicale_plugin.storage.postgres.plain` with the hooks of
:mod:`radicale_plugin.storage.hooks` (the same ones the file storage runs).  A write
request is one transaction of the storage's database (``acquire_lock("w")``), and the
sharing index lives in that database on the same :class:`Database` object: whatever the
hooks record — the card-key index, a me card, the owner's outbox entry — commits with
the item the request wrote, or not at all.  The fan-out writes copies as rows
(:class:`radicale_plugin.delivery.copy_rows.CopyRows`), each with its delivery record in
one transaction.
"""

from __future__ import annotations

from radicale import config

from radicale_plugin.storage.hooks import SharingCollection, SharingStorage
from radicale_plugin.storage.postgres.collection import Collection as PlainCollection
from radicale_plugin.storage.postgres.plain import Storage as PlainStorage
from radicale_plugin.storage.postgres import items


class Collection(SharingCollection, PlainCollection):
    """A collection of the PostgreSQL storage whose writes keep the sharing index current."""

    _storage: "Storage"

    def change_number(self) -> int:
        """The number of the book's last change (what the card-key index compares, as it
        compares a book folder's time on the file storage)."""
        book = self._fresh()
        return book.sync if book is not None else 0


class Storage(SharingStorage, PlainStorage):
    """Radicale's storage on PostgreSQL with me cards, sharing and the fan-out."""

    _collection_class = Collection

    def __init__(self, configuration: config.Configuration) -> None:
        super().__init__(configuration)
        self.start_sharing(configuration)

    def writing_already(self) -> bool:
        # a lock inside the thread's transaction joins it: the outer one wakes the worker,
        # once its transaction has committed
        return self.database.in_transaction()

    def hold_for_plugin(self, user: str) -> None:
        # the plugin's own writes for a user (an answer to an offer, a setting) may write
        # into any of their books: hold them all now, before any index row, in one order
        # (as the fan-out does), rather than one book's lock in the middle of the transaction
        items.lock(self.database, *items.books(self.database, user))
