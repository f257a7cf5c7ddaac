# SPDX-License-Identifier: GPL-3.0-or-later
"""Links in SQL: one owner per card, one card per (owner, recipient)."""

from __future__ import annotations

from typing import Iterable, Iterator

from radicale_plugin import index
from radicale_plugin.index import Link
from radicale_plugin.index.sql.database import Database, Row, under_path


def _link(row: Row) -> Link:
    return Link(row["owner"], row["recipient"], row["book"], row["href"], row["made_by"],
                row["made"] or "", row["uid"] or "")


class SQLLinkStore(index.LinkStore):
    """The ``links`` table (unique by owner and recipient, and by card)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, owner: str, recipient: str) -> Link | None:
        row = self._db.row("SELECT * FROM links WHERE owner = ? AND recipient = ?",
                           (owner, recipient))
        return _link(row) if row else None

    def at(self, book: str, href: str) -> Link | None:
        row = self._db.row("SELECT * FROM links WHERE book = ? AND href = ?", (book, href))
        return _link(row) if row else None

    def get_many(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Link]:
        out: dict[tuple[str, str], Link] = {}
        for chunk in _pair_chunks(pairs):
            # row values on the primary key: one indexed look-up per pair
            for row in self._db.rows(
                    "SELECT * FROM links WHERE (owner, recipient) IN (VALUES %s)"
                    % ",".join(["(?, ?)"] * len(chunk)), [v for p in chunk for v in p]):
                out[(row["owner"], row["recipient"])] = _link(row)
        return out

    def at_many(self, cards: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Link]:
        out: dict[tuple[str, str], Link] = {}
        for chunk in _pair_chunks(cards):
            for row in self._db.rows(
                    "SELECT * FROM links WHERE (book, href) IN (VALUES %s)"
                    % ",".join(["(?, ?)"] * len(chunk)), [v for p in chunk for v in p]):
                out[(row["book"], row["href"])] = _link(row)
        return out

    def of_owner(self, owner: str) -> list[Link]:
        return [_link(r) for r in self._db.rows(
            "SELECT * FROM links WHERE owner = ? ORDER BY recipient", (owner,))]

    def put(self, link: Link) -> None:
        with self._db.transaction():
            other = self.at(link.book, link.href)
            if other is not None and (other.owner, other.recipient) != (link.owner,
                                                                       link.recipient):
                raise ValueError("/%s/%s already holds %s's copy"
                                 % (link.book, link.href, other.owner))
            if self._db.value('SELECT COUNT(*) FROM owners WHERE "user" = ? AND book = ? '
                              "AND href = ?", (link.recipient, link.book, link.href)):
                raise ValueError("/%s/%s is %s's me card: it never holds a copy"
                                 % (link.book, link.href, link.recipient))
            # the card (book, href) holds no other pair's link (above): the only row in
            # the way is the pair's own; unless another process linked the card meanwhile
            # (PostgreSQL: the insert waits for its commit, then breaks links_by_card)
            try:
                with self._db.attempt():
                    self._db.execute(
                        "INSERT INTO links (owner, recipient, book, href, made_by, made, uid) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (owner, recipient) "
                        "DO UPDATE SET book = excluded.book, href = excluded.href, "
                        "made_by = excluded.made_by, made = excluded.made, uid = excluded.uid",
                        (link.owner, link.recipient, link.book, link.href, link.made_by,
                         link.made, link.uid or None))
            except self._db.IntegrityError:
                other = self.at(link.book, link.href)
                if other is None:
                    raise
                raise ValueError("/%s/%s already holds %s's copy"
                                 % (link.book, link.href, other.owner)) from None

    def remove(self, owner: str, recipient: str) -> None:
        self._db.execute("DELETE FROM links WHERE owner = ? AND recipient = ?",
                         (owner, recipient))

    def under(self, path: str) -> list[Link]:
        path = path.strip("/")
        where: str
        args: tuple[str, ...]
        if path.count("/") == 2:
            book, href = path.rsplit("/", 1)
            where, args = "book = ? AND href = ?", (book, href)
        else:
            where, args = under_path(path)
        return [_link(r) for r in self._db.rows("SELECT * FROM links WHERE " + where, args)]

    def move(self, book: str, href: str, to_book: str, to_href: str) -> None:
        with self._db.transaction():
            try:
                with self._db.attempt():
                    self._move(book, href, to_book, to_href)
            except self._db.IntegrityError:
                # another process moved a linked card there meanwhile (PostgreSQL: the
                # update waited for its commit, then broke links_by_card): this card
                # overwrites that one, as one move after the other would
                self._move(book, href, to_book, to_href)

    def _move(self, book: str, href: str, to_book: str, to_href: str) -> None:
        # the card that was there is overwritten: its link ends
        self._db.execute("DELETE FROM links WHERE book = ? AND href = ? "
                         "AND NOT (book = ? AND href = ?)", (to_book, to_href, book, href))
        self._db.execute("UPDATE links SET book = ?, href = ? WHERE book = ? AND href = ?",
                         (to_book, to_href, book, href))

    def astray(self) -> list[Link]:
        # one pass over the links, each looked up in the card-key index by its primary key
        return [_link(r) for r in self._db.rows(
            "SELECT links.* FROM links LEFT JOIN cards ON cards.book = links.book "
            "AND cards.href = links.href WHERE cards.href IS NULL OR (links.uid IS NOT NULL "
            "AND links.uid != '' AND links.uid != COALESCE(cards.uid, '')) "
            "ORDER BY links.owner, links.recipient")]

    # -- backups ----------------------------------------------------------------------
    def all(self) -> list[Link]:
        return [_link(r) for r in self._db.rows(
            "SELECT * FROM links ORDER BY owner, recipient")]


def _pair_chunks(pairs: Iterable[tuple[str, str]], size: int = 400
                 ) -> Iterator[list[tuple[str, str]]]:
    """Pairs in lists short enough for SQLite's parameter limit (two values each)."""
    batch: list[tuple[str, str]] = []
    for pair in sorted(set(pairs)):
        batch.append(pair)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
