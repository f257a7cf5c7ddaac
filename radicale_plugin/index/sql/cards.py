# SPDX-License-Identifier: GPL-3.0-or-later
"""The card-key index in SQL: ``cards``, ``card_keys`` and ``books``."""

from __future__ import annotations

import json
from typing import Iterable, Iterator

from radicale_plugin import index
from radicale_plugin.index import LINK_CREATED, IndexedCard
from radicale_plugin.index.sql.database import (Database, batches, chunks, insert_rows,
                                                marks, pairs_where, under_path)


#: The ``books.mtime`` of a book to be read again (no folder has it).
STALE = -1


class SQLCardIndex(index.CardIndex):
    """Which card of which book carries which key."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _insert_many(self, cards: list[IndexedCard]) -> None:
        """The rows of ``cards`` and of their keys, a few statements for all of them (the
        last of a card given twice is its row; the keys of both are kept, as one insert
        after the other kept them)."""
        rows = {(c.book, c.href): (
            c.book, c.href, c.user, c.uid, int(c.is_group), c.name,
            json.dumps(sorted(c.categories)) if c.categories else None,
            json.dumps(list(c.members)) if c.members else None, c.version or None)
            for c in cards}
        insert_rows(self._db, 'INSERT INTO cards (book, href, "user", uid, is_group, name, '
                    "categories, members, version)", rows.values(),
                    ' ON CONFLICT (book, href) DO UPDATE SET "user" = excluded."user", '
                    "uid = excluded.uid, is_group = excluded.is_group, name = excluded.name, "
                    "categories = excluded.categories, members = excluded.members, "
                    "version = excluded.version")
        insert_rows(self._db, 'INSERT INTO card_keys ("user", key, book, href)',
                    ((c.user, k, c.book, c.href) for c in cards for k in sorted(c.keys)),
                    " ON CONFLICT DO NOTHING")

    def _delete(self, book: str, href: str) -> None:
        self._db.execute("DELETE FROM cards WHERE book = ? AND href = ?", (book, href))
        self._db.execute("DELETE FROM card_keys WHERE book = ? AND href = ?", (book, href))

    def put(self, card: IndexedCard) -> None:
        self.put_many([card])

    def put_many(self, cards: Iterable[IndexedCard]) -> None:
        cards = list(cards)
        with self._db.transaction():
            # a few statements for all of them (the fan-out's part: 10 cards); the cards'
            # rows are replaced by the insert itself (ON CONFLICT ... DO UPDATE), their
            # keys are not: the old ones go first
            for batch in batches(sorted({(c.book, c.href) for c in cards})):
                where, args = pairs_where(("book", "href"), batch)
                self._db.execute("DELETE FROM card_keys WHERE " + where, args)
            self._insert_many(cards)

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
            for batch in batches(cards, 500):
                self._insert_many(batch)
            # read whole again: a stale mark ends here
            self._db.execute("INSERT INTO books (path, mtime) VALUES (?, ?) "
                             "ON CONFLICT (path) DO UPDATE SET mtime = excluded.mtime",
                             (book, mtime))

    def add_to_book(self, book: str, cards: Iterable[IndexedCard], mtime: int) -> None:
        with self._db.transaction():
            self.put_many(cards)
            self._db.execute("INSERT INTO books (path, mtime) VALUES (?, ?) "
                             "ON CONFLICT (path) DO UPDATE SET mtime = excluded.mtime",
                             (book, mtime))

    def _cards(self, where: str, args: Iterable[object],
               keys_of: str | None = None) -> list[IndexedCard]:
        """The cards of ``where`` with their keys: read by ``keys_of`` (a condition on
        ``card_keys`` taking the same ``args``), else those of their whole books."""
        rows = self._db.rows("SELECT * FROM cards WHERE %s ORDER BY book, href" % where, args)
        keys: dict[tuple[str, str], set[str]] = {}
        if keys_of is not None:
            if rows:
                for book, href, key in self._db.rows(
                        "SELECT book, href, key FROM card_keys WHERE " + keys_of, args):
                    keys.setdefault((book, href), set()).add(key)
        else:
            for book in sorted({r["book"] for r in rows}):
                for key, href in self._db.rows(
                        "SELECT key, href FROM card_keys WHERE book = ?", (book,)):
                    keys.setdefault((book, href), set()).add(key)
        return _made(rows, keys)

    def card(self, book: str, href: str) -> IndexedCard | None:
        # its own keys only (those of its whole book are 100,000 rows in an owner's book),
        # with its row: one round trip (every write of a card reads it first)
        rows = self._db.rows("SELECT c.*, k.key AS card_key FROM cards c LEFT JOIN "
                             "card_keys k ON k.book = c.book AND k.href = c.href "
                             "WHERE c.book = ? AND c.href = ?", (book, href))
        if not rows:
            return None
        keys = {(rows[0]["book"], href): {r["card_key"] for r in rows
                                          if r["card_key"] is not None}}
        return _made(rows[:1], keys)[0]

    def cards_of(self, user: str) -> list[IndexedCard]:
        return self._cards('"user" = ?', (user,))

    def card_pages(self, user: str, size: int = 2000) -> Iterator[list[IndexedCard]]:
        # a range of the primary key per page, each after the last page's last card (the
        # books as cards_of finds them: those holding a card of the user's)
        for book in self._books_with_cards(user):
            after = ""
            while True:
                rows = self._db.rows("SELECT * FROM cards WHERE book = ? AND href > ? "
                                     "ORDER BY href LIMIT ?", (book, after, size))
                if not rows:
                    break
                last = rows[-1]["href"]
                keys: dict[tuple[str, str], set[str]] = {}
                for href, key in self._db.rows(
                        "SELECT href, key FROM card_keys WHERE book = ? AND href > ? "
                        "AND href <= ?", (book, after, last)):
                    keys.setdefault((book, href), set()).add(key)
                full = len(rows) == size
                yield _made(rows, keys)  # (it empties rows)
                if not full:
                    break
                after = last

    def _books_with_cards(self, user: str) -> list[str]:
        return [r[0] for r in self._db.rows(
            'SELECT DISTINCT book FROM cards WHERE "user" = ? ORDER BY book', (user,))]

    def groups_of(self, user: str) -> list[IndexedCard]:
        out: list[IndexedCard] = []
        for book in self._books_with_cards(user):
            rows = self._db.rows("SELECT * FROM cards WHERE book = ? AND is_group = 1 "
                                 "ORDER BY href", (book,))
            keys: dict[tuple[str, str], set[str]] = {}
            for chunk in chunks([r["href"] for r in rows]):
                for href, key in self._db.rows(
                        "SELECT href, key FROM card_keys WHERE book = ? AND href IN (%s)"
                        % marks(chunk), [book, *chunk]):
                    keys.setdefault((book, href), set()).add(key)
            out += _made(rows, keys)
        return out

    def cards_with_keys(self, user: str, keys: Iterable[str]) -> list[IndexedCard]:
        found: set[tuple[str, str]] = set()
        for chunk in chunks(sorted(set(keys))):
            found.update((r[0], r[1]) for r in self._db.rows(
                'SELECT book, href FROM card_keys WHERE "user" = ? AND key IN (%s)'
                % marks(chunk), [user, *chunk]))
        out = []
        for book, href in sorted(found):
            card = self.card(book, href)
            if card is not None:
                out.append(card)
        return out

    def users_knowing(self, keys: Iterable[str], users: Iterable[str],
                      not_created_for: str) -> set[str]:
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        out: set[str] = set()
        for chunk in chunks(sorted(set(users)), 400):
            out.update(r[0] for r in self._db.rows(
                'SELECT DISTINCT ck."user" FROM card_keys ck LEFT JOIN links l ON l.book = ck.book '
                "AND l.href = ck.href WHERE (l.owner IS NULL OR (l.owner = ? AND l.made_by != ?)) "
                'AND ck."user" IN (%s) AND ck.key IN (%s)'
                % (marks(chunk), marks(wanted)),
                [not_created_for, LINK_CREATED, *chunk, *wanted]))
        return out

    def books_of(self, user: str) -> list[str]:
        # a range on the primary key: "alice/" <= path < "alice0" ("0" follows "/")
        return [r[0] for r in self._db.rows(
            "SELECT path FROM books WHERE path >= ? AND path < ? ORDER BY path",
            (user + "/", user + "0"))]

    def books_of_many(self, users: Iterable[str]) -> dict[str, list[str]]:
        wanted = sorted(set(users))
        out: dict[str, list[str]] = {u: [] for u in wanted}
        for chunk in chunks(wanted, 400):
            # one range on the primary key per user, as books_of
            for (path,) in self._db.rows(
                    "SELECT path FROM books WHERE %s ORDER BY path"
                    % " OR ".join(["(path >= ? AND path < ?)"] * len(chunk)),
                    [v for u in chunk for v in (u + "/", u + "0")]):
                out[path.split("/", 1)[0]].append(path)
        return out

    def cards_with_keys_of(self, users: Iterable[str],
                           keys: Iterable[str]) -> dict[str, list[IndexedCard]]:
        wanted, key_list = sorted(set(users)), sorted(set(keys))
        out: dict[str, list[IndexedCard]] = {u: [] for u in wanted}
        if not key_list:
            return out
        for chunk in chunks(wanted, 400):
            for key_chunk in chunks(key_list, 400):
                found = ('SELECT DISTINCT book, href FROM card_keys WHERE "user" IN (%s) '
                         "AND key IN (%s)" % (marks(chunk), marks(key_chunk)))
                args = [*chunk, *key_chunk]
                rows = self._db.rows("SELECT * FROM cards WHERE (book, href) IN (%s)" % found,
                                     args)
                card_keys: dict[tuple[str, str], set[str]] = {}
                for book, href, key in self._db.rows(
                        "SELECT book, href, key FROM card_keys WHERE (book, href) IN (%s)"
                        % found, args):
                    card_keys.setdefault((book, href), set()).add(key)
                for r in rows:
                    out[r["user"]].append(IndexedCard(
                        r["book"], r["href"], r["uid"] or "", bool(r["is_group"]),
                        frozenset(card_keys.get((r["book"], r["href"]), ())), r["name"] or "",
                        frozenset(json.loads(r["categories"] or "[]")),
                        tuple(json.loads(r["members"] or "[]")), r["version"] or ""))
        for user, cards in out.items():
            # one card may carry keys of several chunks: once, in order
            out[user] = sorted({(c.book, c.href): c for c in cards}.values(),
                               key=lambda c: (c.book, c.href))
        return out

    def book_version(self, book: str) -> str | None:
        return self._db.value(
            "SELECT version FROM cards WHERE book = ? AND version IS NOT NULL GROUP BY version "
            "ORDER BY COUNT(*) DESC, version LIMIT 1", (book,))

    def href_of_uid(self, book: str, uid: str) -> str | None:
        return self._db.value("SELECT href FROM cards WHERE book = ? AND uid = ? LIMIT 1",
                              (book, uid))

    def book_mtimes(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._db.rows("SELECT path, mtime FROM books")}

    def set_book_mtime(self, book: str, mtime: int) -> None:
        # a stale mark (STALE) stays until replace_book: the book's other cards were
        # indexed in the user's former region
        self._db.execute("INSERT INTO books (path, mtime) VALUES (?, ?) ON CONFLICT(path) "
                         "DO UPDATE SET mtime = excluded.mtime WHERE books.mtime != ?",
                         (book, mtime, STALE))

    def set_book_mtimes(self, mtimes: Iterable[tuple[str, int]]) -> None:
        # one statement for the books of a fan-out's part (the last time of a book given
        # twice: as one write after the other)
        insert_rows(self._db, "INSERT INTO books (path, mtime)", dict(mtimes).items(),
                    " ON CONFLICT(path) DO UPDATE SET mtime = excluded.mtime "
                    "WHERE books.mtime != ?", (STALE,))

    def mark_stale(self, user: str) -> list[str]:
        books = self.books_of(user)
        self._db.execute("UPDATE books SET mtime = ? WHERE path >= ? AND path < ?",
                         (STALE, user + "/", user + "0"))
        return books

    def stale_books(self, user: str) -> list[str]:
        return [r[0] for r in self._db.rows(
            "SELECT path FROM books WHERE path >= ? AND path < ? AND mtime = ? ORDER BY path",
            (user + "/", user + "0", STALE))]

    def is_built(self) -> bool:
        return self._db.value("SELECT value FROM meta WHERE name = 'card_index'") == "built"

    def set_built(self) -> None:
        self._db.execute("INSERT INTO meta (name, value) VALUES ('card_index', 'built') "
                         "ON CONFLICT (name) DO UPDATE SET value = excluded.value")


def _made(rows: list, keys: dict[tuple[str, str], set[str]]) -> list[IndexedCard]:
    """The cards of ``rows`` (``cards`` rows, in order) with ``keys`` (by book and href).

    Each row and its keys are let go of as its card is made: a book of 100,000 cards is
    not held twice at once (and one string per book, one empty set for the cards without
    a category)."""
    cards: list[IndexedCard] = []
    books: dict[str, str] = {}
    none: frozenset[str] = frozenset()
    rows.reverse()
    while rows:
        r = rows.pop()
        book = books.setdefault(r["book"], r["book"])
        cards.append(IndexedCard(
            book, r["href"], r["uid"] or "", bool(r["is_group"]),
            frozenset(keys.pop((book, r["href"]), ())), r["name"] or "",
            frozenset(json.loads(r["categories"])) if r["categories"] else none,
            tuple(json.loads(r["members"] or "[]")), r["version"] or ""))
    return cards
