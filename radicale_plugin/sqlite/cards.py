# SPDX-License-Identifier: GPL-3.0-or-later
"""The card-key index in SQLite: ``cards``, ``card_keys`` and ``books``."""

from __future__ import annotations

from typing import Iterable

from radicale_plugin import index
from radicale_plugin.index import IndexedCard
from radicale_plugin.sqlite.database import Database, chunks, marks, under_path


class SQLiteCardIndex(index.CardIndex):
    """Which card of which book carries which key."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _insert(self, card: IndexedCard) -> None:
        self._db.execute("INSERT OR REPLACE INTO cards (book, href, user, uid, is_group) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (card.book, card.href, card.user, card.uid, int(card.is_group)))
        self._db.executemany(
            "INSERT OR IGNORE INTO card_keys (user, key, book, href) VALUES (?, ?, ?, ?)",
            [(card.user, k, card.book, card.href) for k in sorted(card.keys)])

    def _delete(self, book: str, href: str) -> None:
        self._db.execute("DELETE FROM cards WHERE book = ? AND href = ?", (book, href))
        self._db.execute("DELETE FROM card_keys WHERE book = ? AND href = ?", (book, href))

    def put(self, card: IndexedCard) -> None:
        with self._db.transaction():
            self._delete(card.book, card.href)
            self._insert(card)

    def remove(self, book: str, href: str) -> None:
        with self._db.transaction():
            self._delete(book, href)

    def remove_under(self, path: str) -> None:
        where, args = under_path(path)
        with self._db.transaction():
            self._db.execute("DELETE FROM cards WHERE " + where, args)
            self._db.execute("DELETE FROM card_keys WHERE " + where, args)
            self._db.execute("DELETE FROM books WHERE " + where.replace("book", "path"), args)

    def replace_book(self, book: str, cards: Iterable[IndexedCard], mtime: int) -> None:
        with self._db.transaction():
            self._db.execute("DELETE FROM cards WHERE book = ?", (book,))
            self._db.execute("DELETE FROM card_keys WHERE book = ?", (book,))
            for card in cards:
                self._insert(card)
            self.set_book_mtime(book, mtime)

    def _card(self, book: str, href: str, uid: str, is_group: int) -> IndexedCard:
        keys = frozenset(r[0] for r in self._db.rows(
            "SELECT key FROM card_keys WHERE book = ? AND href = ?", (book, href)))
        return IndexedCard(book, href, uid or "", bool(is_group), keys)

    def card(self, book: str, href: str) -> IndexedCard | None:
        row = self._db.row("SELECT uid, is_group FROM cards WHERE book = ? AND href = ?",
                           (book, href))
        return None if row is None else self._card(book, href, row[0], row[1])

    def cards_with_keys(self, user: str, keys: Iterable[str]) -> list[IndexedCard]:
        found: set[tuple[str, str]] = set()
        for chunk in chunks(sorted(set(keys))):
            found.update((r[0], r[1]) for r in self._db.rows(
                "SELECT book, href FROM card_keys WHERE user = ? AND key IN (%s)"
                % marks(chunk), [user, *chunk]))
        out = []
        for book, href in sorted(found):
            card = self.card(book, href)
            if card is not None:
                out.append(card)
        return out

    def book_mtimes(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._db.rows("SELECT path, mtime FROM books")}

    def set_book_mtime(self, book: str, mtime: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO books (path, mtime) VALUES (?, ?)",
                         (book, mtime))

    def is_built(self) -> bool:
        return self._db.value("SELECT value FROM meta WHERE name = 'card_index'") == "built"

    def set_built(self) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('card_index', 'built')")
