# SPDX-License-Identifier: GPL-3.0-or-later
"""Keeping the card-key index current: which card of which book carries which key.

The storage hooks call this on every write, with the card's text in hand,
so the index costs one line-codec parse per write.  At start the index is
checked against the collections: a book whose folder changed since it was
last indexed (a crash between Radicale's write and ours, a restored backup,
a file edited by hand) is read again; the first start after an upgrade
builds the whole index.  Callers hold the storage lock.
"""

from __future__ import annotations

from radicale import storage
from radicale.log import logger

from radicale_plugin import store
from radicale_plugin.context import Context
from radicale_plugin.errors import BadCard
from radicale_plugin.index import IndexedCard
from radicale_plugin.matching import card_keys
from radicale_plugin.rules import is_group
from radicale_plugin.vcard import parse_card


def index_card(book: str, href: str, text: str, region: str) -> IndexedCard:
    """What the index keeps of one card (an unreadable card carries no keys)."""
    try:
        card = parse_card(text)
    except BadCard:
        return IndexedCard(book, href, "", False, frozenset())
    return IndexedCard(book, href, card.first_value("UID") or "", is_group(card),
                       frozenset(card_keys(card, region)))


class CardKeys:
    """The write hooks' side of the card-key index."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def _region(self) -> str:
        return self._ctx.settings.region

    def on_written(self, collection: storage.BaseCollection, href: str, text: str) -> None:
        cards = self._ctx.index.cards
        with self._ctx.index.transaction():
            cards.put(index_card(collection.path, href, text, self._region()))
            cards.set_book_mtime(collection.path, store.folder_mtime(collection))

    def on_deleted(self, collection: storage.BaseCollection, href: str | None) -> None:
        cards = self._ctx.index.cards
        with self._ctx.index.transaction():
            if href is None:
                cards.remove_under(collection.path)
            else:
                cards.remove(collection.path, href)
                cards.set_book_mtime(collection.path, store.folder_mtime(collection))

    def on_replaced(self, collection: storage.BaseCollection) -> None:
        self._rescan(collection)

    def on_moved(self, from_collection: storage.BaseCollection, from_href: str,
                 to_collection: storage.BaseCollection, to_href: str, text: str) -> None:
        cards = self._ctx.index.cards
        with self._ctx.index.transaction():
            cards.remove(from_collection.path, from_href)
            cards.set_book_mtime(from_collection.path, store.folder_mtime(from_collection))
            self.on_written(to_collection, to_href, text)

    def _rescan(self, collection: storage.BaseCollection) -> None:
        region = self._region()
        found = [index_card(collection.path, href, text, region)
                 for href, text in store.cards(collection)]
        self._ctx.index.cards.replace_book(collection.path, found, store.folder_mtime(collection))

    def rebuild(self) -> int:
        """Read every book again (the admin's ``rebuild-index``); the caller holds the lock."""
        return self.reconcile(everything=True)

    def reconcile(self, everything: bool = False) -> int:
        """Re-read books changed behind the index's back; build it all the first time.

        Returns how many books were read.  The caller holds the storage lock.
        """
        cards = self._ctx.index.cards
        known = cards.book_mtimes()
        built = cards.is_built() and not everything
        seen: set[str] = set()
        read = 0
        for collection in store.all_address_books(self._ctx.storage):
            seen.add(collection.path)
            if not built or known.get(collection.path) != store.folder_mtime(collection):
                self._rescan(collection)
                read += 1
        for path in set(known) - seen:
            cards.remove_under(path)
        if not built:
            cards.set_built()
            logger.info("Sharing: card-key index built from %d address book(s)", read)
        elif read:
            logger.info("Sharing: %d address book(s) changed outside the index were read "
                        "again", read)
        return read
