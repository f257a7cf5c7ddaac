# SPDX-License-Identifier: GPL-3.0-or-later
"""Writing copies as rows of the storage on PostgreSQL, in the caller's transaction.

The counterpart of :mod:`.copy_files` for ``[storage] type =
radicale_plugin.storage.postgres``: the cards are items of the same database as the
sharing index, read and written through the storage's item API (its ``items``
module, handed in by the storage: this part may not import it).  A write joins the
calling thread's ``db.transaction()``, so a copy commits with its delivery record, its
history and its card-key entry, or none of them does (:mod:`radicale_plugin.fanout.at_once`):
no intent is recorded before it, no temporary file, no rename, nothing to settle after a
crash.

A card is still "the one read" when its text is: the identity of an item is taken from
its etag (the hash of its text) and its size.  :meth:`CopyRows.commit` first holds the
advisory locks of every book it writes (all at once, in one order: the storage's
requests hold their book's lock for their whole transaction, so a PUT and the fan-out
never interleave on a book, and never deadlock), then compares and writes each card.
No Radicale lock is taken: the transactions and these locks are the whole story, across
threads and processes alike.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterable, Iterator, Protocol

from radicale_plugin.delivery.writer import Identity, Write
from radicale_plugin.vcard.codec import parse_card


class ItemApi(Protocol):
    """The storage's item functions this writer uses (``storage.postgres.items``)."""

    def lock(self, db: Any, *paths: str) -> None: ...

    def read(self, db: Any, book_path: str, href: str) -> tuple[str, str] | None: ...

    def write(self, db: Any, book_path: str, href: str, text: str,
              uid: str | None = None) -> str: ...

    def book(self, db: Any, path: str) -> Any: ...

    def get_many(self, db: Any, collection: int, hrefs: Any = None) -> list[Any]: ...

    def facts(self, book_path: str, href: str, text: str, tag: str,
              uid: str | None = None) -> Any: ...

    def put(self, db: Any, collection: int, stored: Any) -> Any: ...

    def put_many(self, db: Any, rows: Any) -> dict[int, int]: ...


def identity(text: str, etag: str) -> Identity:
    """An item's identity: its etag (``"<sha256>"``, the first 128 bits) and its size."""
    digest = etag.strip('"')
    try:
        return (int(digest[:16], 16), int(digest[16:32], 16), len(text))
    except ValueError:  # not Radicale's etag: the text's own hash then
        return (hash(text) & 0x7FFFFFFFFFFFFFFF, 0, len(text))


class CopyRows:
    """Reads and writes the cards of books as rows, for the fan-out (a
    :class:`~.writer.CopyWriter`)."""

    #: Copies commit in the caller's transaction with their records.
    atomic = True

    def __init__(self, db: Any, items: ItemApi) -> None:
        self._db = db
        self._items = items
        #: Never held for long: nothing here waits for a lock of Radicale's.
        self.quiet = threading.Lock()
        #: The change numbers of the books this thread's last commit wrote (what the
        #: records of those writes ask next: one query for all, not one a book).
        self._numbers = threading.local()

    # -- reading (a snapshot of committed rows: no lock needed) ---------------------
    def read(self, book: str, href: str) -> tuple[str, Identity] | None:
        found = self._items.read(self._db, book, href)
        if found is None:
            return None
        return found[0], identity(*found)

    def read_many(self, cards: list[tuple[str, str]]
                  ) -> dict[tuple[str, str], tuple[str, Identity] | None]:
        """Every card of ``cards`` (None: not there), one statement per 200 of them."""
        found: dict[tuple[str, str], tuple[str, Identity] | None] = dict.fromkeys(cards)
        for book, href, _, text, etag, _ in self._rows_of(cards):
            if text is not None:
                found[(book, href)] = (text, identity(text, etag))
        return found

    def _rows_of(self, cards: Iterable[tuple[str, str]]) -> Iterator[tuple]:
        """(book, href, book id, text or None, etag, book's change number) of each card
        whose book exists, one statement per 200 cards.

        Each card looked up by its keys (a unique book path, the item's primary key): as
        plain joins, PostgreSQL hashed every book of the database for 200 cards, and
        looked a card up by its book alone when the books it knew of were small, reading
        a big book whole for each of its cards (8 ms for 200 cards at 10,000 users;
        1.7 ms so, whatever their number)."""
        keys = sorted(set(cards))
        for start in range(0, len(keys), 200):
            part = keys[start:start + 200]
            yield from self._db.rows(
                "WITH k(book, href) AS (VALUES %s) SELECT k.book, k.href, c.id, i.text, "
                "i.etag, c.sync FROM k JOIN LATERAL (SELECT b.id, b.sync FROM "
                "dav_collections b WHERE b.path = k.book LIMIT 1) c ON true LEFT JOIN "
                "LATERAL (SELECT x.text, x.etag FROM dav_items x WHERE x.collection = c.id "
                "AND x.href = k.href LIMIT 1) i ON true"
                % ",".join(["(?, ?)"] * len(part)), [x for key in part for x in key])

    def text(self, book: str, href: str) -> str | None:
        found = self._items.read(self._db, book, href)
        return found[0] if found is not None else None

    def books(self) -> Iterator[tuple[str, str]]:
        """(book path, book path) of every address book, by path."""
        for row in self._db.rows("SELECT path FROM dav_collections WHERE tag = ? "
                                 "ORDER BY path", ("VADDRESSBOOK",)):
            if row[0].count("/") == 1:  # books only, as the file storage's folders
                yield row[0], row[0]

    def book_cards(self, book: str) -> list[tuple[str, str]]:
        found = self._items.book(self._db, book)
        if found is None:
            raise FileNotFoundError("no address book /%s/" % book)
        return [(s.href, s.text) for s in self._items.get_many(self._db, found.id)]

    def folder(self, book: str) -> str:
        return book

    def folder_mtime(self, folder: str) -> int:
        """The book's change number: it moves with every write into it."""
        known = getattr(self._numbers, "books", {}).pop(folder, None)
        if known is not None:
            return known
        found = self._items.book(self._db, folder)
        return int(found.sync) if found is not None else 0

    def unavailable(self, book: str) -> str | None:
        # a book and its index rows go in one transaction: one the index knows is there
        return None

    # -- writing, in the caller's transaction ---------------------------------------------
    def prepare(self, writes: list[Write]) -> None:
        for write in writes:
            write.folder = write.target = write.book

    def commit(self, writes: list[Write], budget: float) -> list[Write]:
        """Write every write not done yet if its card is still the one read; the writes
        made.  A card changed since it was read is left (done, not written), and decided
        again in the next round.  ``budget``: no storage lock is held for these.

        Three statements for the whole batch: the books' locks, one read of every card
        of the batch (and its book's change number), then every row with its numbered
        change (:func:`~radicale_plugin.storage.postgres.items.put_many`).  A write whose
        text the storage refuses gets its ``error``; a failing statement fails the
        caller's whole transaction (nothing of it is written, and the fan-out tries the
        round again)."""
        todo = [w for w in writes if not w.done]
        if not todo:
            return []
        done: list[Write] = []
        rows: list[tuple[int, Any]] = []
        with self._db.transaction():
            # every book at once, in one order (see the module's text)
            self._items.lock(self._db, *sorted({w.book for w in todo}))
            now, numbers = self._now(todo)
            for write in todo:
                write.done = True
                book, found = now.get((write.book, write.href), (None, None))
                if book is None:
                    write.error = LookupError("no address book /%s/" % write.book)
                    continue
                if (found[1] if found is not None else None) != write.was:
                    continue  # changed since it was read
                try:
                    stored = self._items.facts(write.book, write.href, write.text,
                                               "VADDRESSBOOK", _uid(write.text))
                except ValueError as e:
                    write.error = e
                    continue
                rows.append((book, stored))
                write.renamed = True
                done.append(write)
            written = self._items.put_many(self._db, rows) if rows else {}
            # the books' change numbers now (under their locks: nobody else moved them)
            changed = {w.book for w in done}
            self._numbers.books = {path: written.get(book, sync)
                                   for path, (book, sync) in numbers.items() if path in changed}
        return done

    def _now(self, writes: list[Write]
             ) -> tuple[dict[tuple[str, str], tuple[int | None, tuple[str, Identity] | None]],
                        dict[str, tuple[int, int]]]:
        """(book id, (text, identity) or None) of every card of ``writes``, read at once
        (under the books' locks: as they will be written over); and each book's (id,
        change number)."""
        found: dict[tuple[str, str], tuple[int | None, tuple[str, Identity] | None]] = {}
        numbers: dict[str, tuple[int, int]] = {}
        for book, href, book_id, text, etag, sync in self._rows_of(
                (w.book, w.href) for w in writes):
            found[(book, href)] = (int(book_id), (text, identity(text, etag))
                                   if text is not None else None)
            numbers[book] = (int(book_id), int(sync))
        return found, numbers

    def finish(self, writes: list[Write]) -> None:
        """Nothing to sync or clean: the transaction's commit makes the copies durable."""

    def abandon(self, write: Write, error: Exception) -> None:
        write.error, write.done = error, True

    def clean(self, book: str, href: str) -> None:
        """No write leaves anything behind."""

    def attempt(self) -> contextlib.AbstractContextManager[None]:
        return self._db.attempt()

    def shared(self) -> contextlib.AbstractContextManager[None]:
        # a read sees committed transactions only: never a write half done
        return contextlib.nullcontext()

    def run_storage_hook(self) -> None:
        """The storage on PostgreSQL runs no ``[storage] hook``."""

    def close(self) -> None:
        """The database belongs to the storage: it closes it."""


def _uid(text: str) -> str | None:
    """The copy's UID, read with the line codec (the storage then need not parse it)."""
    try:
        return parse_card(text).first_value("UID")
    except Exception:
        return None  # the storage parses it, and says what is wrong
