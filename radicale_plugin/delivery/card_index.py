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

import contextlib
import threading
from typing import Any, Callable, ContextManager

from radicale import storage
from radicale.log import logger

from radicale_plugin import store
from radicale_plugin.context import Context
from radicale_plugin.delivery.writer import CopyWriter
from radicale_plugin.errors import BadCard
from radicale_plugin.index import IndexedCard
from radicale_plugin.vcard.matching import card_keys
from radicale_plugin.vcard.groups import categories, contact_name, is_group, members
from radicale_plugin.vcard.codec import Card, read_card


#: Cards of a book stored at a time when it is read again at start (see
#: :meth:`CardKeys._store_parts`).
PART = 2000
#: The ``mtime`` the index records for a book to be read again (no folder has it).
READ_AGAIN = -1


def index_card(book: str, href: str, text: str, region: str) -> IndexedCard:
    """What the index keeps of one card (an unreadable card carries no keys)."""
    try:
        card = read_card(text)
    except BadCard:
        return IndexedCard(book, href, "", False, frozenset())
    return index_parsed(book, href, card, region)


def indexed(book: str, texts: list[tuple[str, str]], region: str) -> list[IndexedCard]:
    """What the index keeps of a book's cards (``texts``: href and text of each), each
    text let go of as its card is made: an owner's book of 100,000 cards is not held
    twice, as texts and as cards (``texts`` is emptied)."""
    texts.reverse()
    out = []
    while texts:
        href, text = texts.pop()
        out.append(index_card(book, href, text, region))
    return out


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
        #: Users whose region changed: their books wait to be read again (the mark in the
        #: index makes it survive a restart; this set only saves looking for it).
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()

    def _region(self, book: str) -> str:
        """Each book is read in its owner's region."""
        return self._ctx.region_of(store.user_of(book))

    def on_written(self, collection: storage.BaseCollection, href: str, text: str) -> None:
        if collection.tag != "VADDRESSBOOK":
            return  # calendars carry no contacts
        cards = self._ctx.index.cards
        with self._ctx.index.transaction():
            cards.put(index_card(collection.path, href, text, self._region(collection.path)))
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
        region = self._region(collection.path)
        found = [index_card(collection.path, href, text, region)
                 for href, text in store.cards(collection)]
        self._ctx.index.cards.replace_book(collection.path, found, store.folder_mtime(collection))

    def rebuild(self, files: CopyWriter,
                hold: Callable[[str], ContextManager[Any]] = contextlib.nullcontext) -> int:
        """Read every book again (the admin's ``rebuild-index``, ``hold`` per book)."""
        return self.reconcile(files, everything=True, hold=hold)

    def reconcile(self, files: CopyWriter, everything: bool = False,
                  hold: Callable[[str], ContextManager[Any]] = contextlib.nullcontext) -> int:
        """Re-read books changed behind the index's back; build it all the first time.

        Returns how many books were read.  Books are read from their files,
        without the storage lock: Radicale replaces files atomically, and a
        book whose folder changes while it is read is read again.  ``hold`` (the
        admin's: Radicale's shared lock; on PostgreSQL the lock of the book it is given)
        is taken per book to store what was read, so that no write slips between the
        folder's last look and the store.
        """
        cards = self._ctx.index.cards
        known = cards.book_mtimes()
        built = cards.is_built() and not everything
        regions: dict[str, str] = {}
        seen: set[str] = set()
        read = 0
        for book, folder in files.books():
            seen.add(book)
            mtime = files.folder_mtime(folder)
            while not built or known.get(book) != mtime:
                user = store.user_of(book)
                if user not in regions:
                    regions[user] = self._ctx.region_of(user)
                region = regions[user]
                texts = files.book_cards(book)
                parted = len(texts) > PART
                if parted:  # all but its last part, each stored as it is read
                    self._store_parts(book, texts, region)
                found = indexed(book, texts, region)
                with hold(book):
                    now = files.folder_mtime(folder)
                    if now == mtime:
                        with self._ctx.index.transaction(durable=False):  # rebuildable
                            if parted:
                                cards.add_to_book(book, found, mtime)
                            else:
                                cards.replace_book(book, found, mtime)
                if now == mtime:
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

    def _store_parts(self, book: str, texts: list[tuple[str, str]], region: str) -> None:
        """Store a big book's cards in parts of :data:`PART`, all but the last (left in
        ``texts``), each in a transaction of its own.

        Why: the whole book at once, as texts and as cards, was the peak of a restart's
        memory (an owner's book of 100,000 cards: ~260 MiB).  The first part replaces the
        book's cards and marks it to be read again (:data:`READ_AGAIN`, which the hooks'
        writes keep), so a crash before the last part leaves it to be read at the next
        start; meanwhile a reader may see the book in part, only while the start-up check
        reads a big book changed behind the index's back.  The last part, stored with the
        folder's time under ``hold``, ends it (or, the book written meanwhile, it is read
        again from its first part)."""
        cards = self._ctx.index.cards
        texts.reverse()
        first = True
        while len(texts) > PART:
            part = [index_card(book, *texts.pop(), region) for _ in range(PART)]
            with self._ctx.index.transaction(durable=False):  # rebuildable
                if first:
                    cards.replace_book(book, part, READ_AGAIN)
                else:
                    cards.add_to_book(book, part, READ_AGAIN)
            first = False
        texts.reverse()

    # -- a user's region changed --------------------------------------------------------
    def region_changed(self, user: str) -> None:
        """Mark the user's books to be read again in their new region (in the caller's
        transaction; cheap, so a hook under the storage lock may call it)."""
        if self._ctx.index.cards.mark_stale(user):
            with self._pending_lock:
                self._pending.add(user)
            self._ctx.wake()

    def reindex_pending(self, files: CopyWriter) -> int:
        """Read again the books of users whose region changed (the fan-out worker's loop)."""
        with self._pending_lock:
            users, self._pending = self._pending, set()
        return sum(self.reindex(user, files) for user in sorted(users))

    def reindex(self, user: str, files: CopyWriter) -> int:
        """Read the user's books marked stale again, in their region; how many were read.

        Each book is read without any lock (Radicale replaces files atomically);
        its cards replace the index's under Radicale's *shared* lock, for the
        time of one SQLite transaction, and only if neither the folder nor the
        user's region changed meanwhile (else it is read again).  So no write
        is held up for the reading, and none slips between reading and recording.
        """
        cards = self._ctx.index.cards
        # through the writer: the hook that marked the books may still be committing
        # (it wakes the worker from inside its transaction), and a reader would not see
        # the marks yet, and the user would never be read again
        with self._ctx.index.transaction(durable=False):
            stale = cards.stale_books(user)
        before = {k for page in cards.card_pages(user) for c in page for k in c.keys}
        read = 0
        for book in stale:
            folder = files.folder(book)
            for _ in range(20):  # a book written without pause: the next wake tries again
                region = self._ctx.region_of(user)
                mtime = files.folder_mtime(folder)
                try:
                    found = indexed(book, files.book_cards(book), region)
                except OSError:
                    break  # the book is gone: its delete hook forgets it
                with self._ctx.storage.acquire_lock("r", user):
                    if files.folder_mtime(folder) == mtime \
                            and self._ctx.region_of(user) == region \
                            and book in cards.stale_books(user):
                        with self._ctx.index.transaction():
                            cards.replace_book(book, found, mtime)
                        read += 1
                        break
                    if book not in cards.stale_books(user):
                        break  # read meanwhile by somebody else (the worker or an API call)
            else:
                with self._pending_lock:
                    self._pending.add(user)
        if read:
            logger.info("Sharing: %d address book(s) of %r read again in region %s",
                        read, user, self._ctx.region_of(user))
            self._replan(user, {k for page in cards.card_pages(user) for c in page
                                for k in c.keys} - before)
        return read

    def _replan(self, user: str, new_keys: set[str]) -> None:
        """Plan again whom the books read anew may concern: the user's own target rules,
        and the owners whose verified keys the books now show (the user may know them now,
        and a card of the user's may be the place for their copy)."""
        index = self._ctx.index
        owners = {user} | set(index.keys.holders(new_keys).values())
        with index.transaction():
            for name in sorted(owners):
                owner = index.owners.get(name)
                if owner.view is not None and owner.rules \
                        and not index.outbox.queued(name, full_only=True):
                    index.outbox.requeue(name)
        self._ctx.wake()
