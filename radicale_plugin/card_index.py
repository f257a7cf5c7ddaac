# SPDX-License-Identifier: GPL-3.0-or-later
"""Keeping the card-key index current: which card of which book carries which key.

The storage hooks call this on every write, with the card's text in hand,
so the index costs one line-codec parse per write.  At start the index is
checked against the collections: a book whose folder changed since it was
last indexed (a crash between Radicale's write and ours, a restored backup,
a file edited by hand) is read again; the first start after an upgrade
builds the whole index.  The hooks' callers hold the storage lock; the
check at start needs none.
"""

from __future__ import annotations

from radicale import storage
from radicale.log import logger

from radicale_plugin import store
from radicale_plugin.context import Context
from radicale_plugin.copy_files import CopyFiles
from radicale_plugin.errors import BadCard
from radicale_plugin.index import IndexedCard
from radicale_plugin.matching import card_keys
from radicale_plugin.rules import categories, contact_name, is_group, members
from radicale_plugin.vcard import Card, read_card


def index_card(book: str, href: str, text: str, region: str) -> IndexedCard:
    """What the index keeps of one card (an unreadable card carries no keys)."""
    try:
        card = read_card(text)
    except BadCard:
        return IndexedCard(book, href, "", False, frozenset())
    return index_parsed(book, href, card, region)


def index_parsed(book: str, href: str, card: Card, region: str) -> IndexedCard:
    """What the index keeps of one card already parsed."""
    group = is_group(card)
    return IndexedCard(book, href, card.first_value("UID") or "", group,
                       frozenset(card_keys(card, region)), contact_name(card),
                       frozenset(categories(card)), tuple(members(card)) if group else (),
                       card.first_value("VERSION") or "")


class CardKeys:
    """The write hooks' side of the card-key index."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def _region(self) -> str:
        return self._ctx.settings.region

    def on_written(self, collection: storage.BaseCollection, href: str, text: str) -> None:
        if collection.tag != "VADDRESSBOOK":
            return  # calendars carry no contacts
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
        if "/" in collection.path and collection.tag == "VADDRESSBOOK":  # books only
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

    def rebuild(self, files: CopyFiles) -> int:
        """Read every book again (the admin's ``rebuild-index``)."""
        return self.reconcile(files, everything=True)

    def reconcile(self, files: CopyFiles, everything: bool = False) -> int:
        """Re-read books changed behind the index's back; build it all the first time.

        Returns how many books were read.  Books are read from their files,
        without the storage lock: Radicale replaces files atomically, and a
        book whose folder changes while it is read is read again.
        """
        cards = self._ctx.index.cards
        known = cards.book_mtimes()
        built = cards.is_built() and not everything
        region = self._region()
        seen: set[str] = set()
        read = 0
        for book, folder in files.books():
            seen.add(book)
            mtime = files.folder_mtime(folder)
            while not built or known.get(book) != mtime:
                found = [index_card(book, href, text, region)
                         for href, text in files.book_cards(book)]
                now = files.folder_mtime(folder)
                if now == mtime:
                    with self._ctx.index.transaction(durable=False):  # rebuildable
                        cards.replace_book(book, found, mtime)
                    read += 1
                    break
                mtime = now  # written meanwhile: read it again
        for path in set(known) - seen:
            if "/" in path:  # a book gone (only books are recorded)
                cards.remove_under(path)
        if not built:
            cards.set_built()
            logger.info("Sharing: card-key index built from %d address book(s)", read)
        elif read:
            logger.info("Sharing: %d address book(s) changed outside the index were read "
                        "again", read)
        return read
