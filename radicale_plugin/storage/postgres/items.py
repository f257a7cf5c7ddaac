# SPDX-License-Identifier: GPL-3.0-or-later
"""Items and books of the PostgreSQL storage, read and written in the caller's transaction.

The small API beneath the Radicale classes (:mod:`.collection`), and for code that
writes cards without a Radicale request (the fan-out's copy writer): every function
takes the process's :class:`Database` and joins the calling thread's
``db.transaction()`` when there is one, so that an item written here and the index's
rows written beside it commit together.

A write numbers its change on the book's row (``UPDATE ... sync = sync + 1``): the
row stays locked until the transaction ends, so changes are numbered in commit order
and a reader never sees change ``n + 1`` before ``n``.  A writer that first reads and
then decides (If-Match, UID checks) holds the book's advisory lock (:func:`lock`), as
Radicale's requests do for their whole duration (``Storage.acquire_lock("w")``).
Paths are sanitized collection paths without ``/`` at either end (``alice/contacts``);
texts are the items' whole text; an etag is Radicale's (``"<sha256 of the text>"``).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional

import radicale.item as radicale_item
from radicale import pathutils
from radicale.item import filter as radicale_filter

from radicale_plugin.index.postgres.database import Database

#: First key of the advisory locks on paths (``pg_advisory_xact_lock(int, int)``).
LOCK_CLASS = 0x44415631  # "DAV1"

_BOOK = ("SELECT id, path, props, tag, incarnation, sync, oldest, modified "
         "FROM dav_collections WHERE path = ?")
_BOOKS = _BOOK.replace("path = ?", "path IN (?, ?)")
_ITEM = "href, uid, text, etag, name, component, start_time, end_time, modified"


@dataclass(frozen=True)
class Book:
    """A collection's row."""

    id: int
    path: str
    props: dict[str, str]
    tag: str
    incarnation: str
    sync: int
    oldest: int
    modified: float

    @classmethod
    def of(cls, row: Any) -> "Book":
        return cls(int(row[0]), row[1], json.loads(row[2]), row[3], row[4], int(row[5]),
                   int(row[6]), float(row[7]))


@dataclass(frozen=True)
class Stored:
    """An item's row: its text and what Radicale's item cache keeps beside it."""

    href: str
    uid: str
    text: str
    etag: str
    name: str
    component: str
    start: int
    end: int
    modified: float

    @classmethod
    def of(cls, row: Any) -> "Stored":
        return cls(row[0], row[1], row[2], row[3], row[4], row[5], int(row[6]), int(row[7]),
                   float(row[8]))


_savepoints = itertools.count(1)


@contextlib.contextmanager
def all_or_nothing(db: Database) -> Iterator[None]:
    """A block whose failure — any exception — undoes its own writes (a savepoint).

    Radicale answers some failures of a write (a ValueError: 400) inside the request's
    transaction, which then commits: what the block wrote before failing must not stay.
    """
    if not db.in_transaction():
        with db.transaction():
            yield
        return
    name = "dav_%d" % next(_savepoints)
    db.execute("SAVEPOINT " + name)
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK TO SAVEPOINT " + name)
        raise
    db.execute("RELEASE SAVEPOINT " + name)


def path_key(path: str) -> int:
    """The advisory lock's second key for a path (a 32-bit hash: a collision only makes
    two books wait for each other)."""
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:4], "big", signed=True)


def lock(db: Database, *paths: str) -> None:
    """Hold the advisory locks of ``paths`` (collections, existing or not) until the
    transaction ends; taken in one order, so that two lockers never deadlock.

    One statement for all of them: ``unnest`` gives the (sorted) keys in the array's
    order, and each row's lock is taken as the row is produced, so the locks are taken
    one after the other in that order, as a loop of statements would take them."""
    keys = sorted({path_key(p.strip("/")) for p in paths})
    if len(keys) == 1:
        db.execute("SELECT pg_advisory_xact_lock(?, ?)", (LOCK_CLASS, keys[0]))
    elif keys:
        db.execute("SELECT pg_advisory_xact_lock(?, k) FROM unnest(?::integer[]) "
                   "WITH ORDINALITY AS u(k, n) ORDER BY n", (LOCK_CLASS, keys))


def book(db: Database, path: str) -> Optional[Book]:
    """The collection at ``path``, or None."""
    row = db.row(_BOOK, (path.strip("/"),))
    return Book.of(row) if row is not None else None


def book_and_parent(db: Database, path: str) -> tuple[Optional[Book], Optional[Book]]:
    """The collections at ``path`` and at the path above it, in one round trip (a request
    for an item names its path: a collection or not, and its book); each is kept for the
    transaction as :func:`book` would keep it."""
    path = path.strip("/")
    parent = path.rpartition("/")[0]
    if db.kept(_BOOK, (path,)):  # read already by this transaction: no round trip at all
        known = book(db, path)
        return known, (book(db, parent) if known is None else None)
    found = {r[1]: r for r in db.rows(_BOOKS, (path, parent))}
    for key in (path, parent):
        db.remember(_BOOK, (key,), [found[key]] if key in found else [])
    return (Book.of(found[path]) if path in found else None,
            Book.of(found[parent]) if parent in found else None)


def books(db: Database, user: str, tag: str = "VADDRESSBOOK") -> list[str]:
    """The paths of ``user``'s collections of kind ``tag`` (all kinds: ``tag=""``)."""
    user = user.strip("/")
    rows = db.rows("SELECT path, tag FROM dav_collections WHERE path >= ? AND path < ? "
                   "ORDER BY path", (user + "/", user + "0"))
    return [r[0] for r in rows if not tag or r[1] == tag]


def read(db: Database, book_path: str, href: str) -> Optional[tuple[str, str]]:
    """``(text, etag)`` of an item, or None."""
    row = db.row("SELECT i.text, i.etag FROM dav_items i JOIN dav_collections c "
                 "ON c.id = i.collection WHERE c.path = ? AND i.href = ?",
                 (book_path.strip("/"), href))
    return (row[0], row[1]) if row is not None else None


def listing(db: Database, book_path: str) -> dict[str, str]:
    """href -> etag of every item of a book."""
    rows = db.rows("SELECT i.href, i.etag FROM dav_items i JOIN dav_collections c "
                   "ON c.id = i.collection WHERE c.path = ?", (book_path.strip("/"),))
    return {r[0]: r[1] for r in rows}


def find_uid(db: Database, book_path: str, uid: str) -> Optional[str]:
    """The href of the item with ``uid`` in a book, or None."""
    return db.value("SELECT i.href FROM dav_items i JOIN dav_collections c "
                    "ON c.id = i.collection WHERE c.path = ? AND i.uid = ? ORDER BY i.href "
                    "LIMIT 1", (book_path.strip("/"), uid))


def write(db: Database, book_path: str, href: str, text: str,
          uid: Optional[str] = None) -> str:
    """Store ``text`` at ``href`` of a book (made or replaced); its etag.

    The same text as stored is not written at all (no change, no new sync token, as
    on the file backend).  ``uid``: the item's UID when the caller knows it (then a
    vCard is not parsed); else it is read from the text.  Raises LookupError when the
    book does not exist, ValueError for an unsafe href or an unreadable text.
    """
    path = book_path.strip("/")
    with db.transaction():
        lock(db, path)
        found = book(db, path)
        if found is None:
            raise LookupError("no collection %r" % path)
        stored = facts(path, href, text, found.tag, uid)
        put(db, found.id, stored)
        return stored.etag


def delete(db: Database, book_path: str, href: str) -> bool:
    """Delete an item (its deletion numbered for sync); False when there was none."""
    path = book_path.strip("/")
    with db.transaction():
        lock(db, path)
        found = book(db, path)
        return found is not None and remove(db, found.id, href)


# -- the row level, shared with the Radicale classes ------------------------------------
def facts(book_path: str, href: str, text: str, tag: str,
          uid: Optional[str] = None) -> Stored:
    """The row of an item from its text (parsed unless it is a vCard whose UID is given)."""
    if not pathutils.is_safe_filesystem_path_component(href) or href.startswith("."):
        raise ValueError("unsafe href %r" % href)
    if "\x00" in text:
        raise ValueError("an item's text may not contain NUL characters")
    if uid is not None and tag == "VADDRESSBOOK":
        return Stored(href, uid, text, radicale_item.get_etag(text), "VCARD", "",
                      radicale_filter.TIMESTAMP_MIN, radicale_filter.TIMESTAMP_MAX, time.time())
    try:
        item = radicale_item.Item(collection_path=book_path, text=text)
        start, end = item.time_range
        return Stored(href, item.uid, text, item.etag, item.name, item.component_name,
                      start, end, time.time())
    except Exception as e:
        raise ValueError("unreadable item %r: %s" % (href, e)) from e


def of_item(href: str, item: radicale_item.Item) -> Stored:
    """The row of a Radicale item (its facts already known to it)."""
    text = item.serialize()
    if "\x00" in text:
        raise ValueError("an item's text may not contain NUL characters")
    start, end = item.time_range
    return Stored(href, item.uid, text, radicale_item.get_etag(text), item.name,
                  item.component_name, start, end, time.time())


def get(db: Database, collection: int, href: str) -> Optional[Stored]:
    row = db.row("SELECT %s FROM dav_items WHERE collection = ? AND href = ?" % _ITEM,
                 (collection, href))
    return Stored.of(row) if row is not None else None


def get_many(db: Database, collection: int, hrefs: Optional[Iterable[str]] = None
             ) -> list[Stored]:
    """Items of a collection (all of them, by href), or those of ``hrefs``."""
    if hrefs is None:
        rows = db.rows("SELECT %s FROM dav_items WHERE collection = ? ORDER BY href" % _ITEM,
                       (collection,))
    else:
        rows = db.rows("SELECT %s FROM dav_items WHERE collection = ? AND href = ANY(?)"
                       % _ITEM, (collection, list(hrefs)))
    return [Stored.of(r) for r in rows]


#: A change numbered on the book's row and logged, in one statement (:func:`number`);
#: the book's row as it is after it.
_NUMBER = (
    "WITH numbered AS (UPDATE dav_collections SET sync = sync + 1, modified = ? "
    "WHERE id = ? RETURNING id, path, props, tag, incarnation, sync, oldest, modified), "
    "logged AS (INSERT INTO dav_changes (collection, href, change, deleted, time) "
    "SELECT id, ?, sync, ?, ? FROM numbered ON CONFLICT (collection, href) DO UPDATE SET "
    "change = excluded.change, deleted = excluded.deleted, time = excluded.time) "
    "SELECT * FROM numbered")

#: An item's row written and its change numbered, in one statement (:func:`put`).
_PUT = (
    "WITH written AS (INSERT INTO dav_items (collection, %s) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (collection, href) DO UPDATE SET uid = excluded.uid, "
    "text = excluded.text, etag = excluded.etag, name = excluded.name, "
    "component = excluded.component, start_time = excluded.start_time, "
    "end_time = excluded.end_time, modified = excluded.modified RETURNING collection), "
    "numbered AS (UPDATE dav_collections SET sync = sync + 1, modified = ? "
    "WHERE id = (SELECT collection FROM written) "
    "RETURNING id, path, props, tag, incarnation, sync, oldest, modified), "
    "logged AS (INSERT INTO dav_changes (collection, href, change, deleted, time) "
    "SELECT id, ?, sync, 0, ? FROM numbered ON CONFLICT (collection, href) DO UPDATE SET "
    "change = excluded.change, deleted = excluded.deleted, time = excluded.time) "
    "SELECT * FROM numbered" % _ITEM)


def _numbered(db: Database, row: Any) -> int:
    """The change number of a numbering statement's row; the book's row it gives is
    kept for the transaction (the request's next look at its book needs no round trip)."""
    db.remember(_BOOK, (row[1],), [row])
    return int(row[5])


def number(db: Database, collection: int, href: str, deleted: bool, now: float) -> int:
    """Number a change of ``href`` (the collection's row stays locked until the end of
    the transaction): the change log keeps the latest change of each href."""
    return _numbered(db, db.row(_NUMBER, (now, collection, href, 1 if deleted else 0, now)))


def put(db: Database, collection: int, stored: Stored) -> Optional[Stored]:
    """Write an item's row (one change numbered); the row it replaced.  The same text
    as stored is left alone."""
    with db.transaction():
        old = get(db, collection, stored.href)
        if old is not None and old.text == stored.text:
            return old
        _numbered(db, db.row(_PUT, (
            collection, stored.href, stored.uid, stored.text, stored.etag, stored.name,
            stored.component, stored.start, stored.end, stored.modified, stored.modified,
            stored.href, stored.modified)))
        return old


#: One statement writes a batch of items (:func:`put_many`): the rows whose text changed
#: (or that are new) are written, each of their books' change numbers moves once by as
#: many changes, and each written href gets its own number in the change log, in the
#: order of the batch (``n``).  The unchanged rows are left alone, as :func:`put` does.
_PUT_MANY = (
    "WITH given AS (SELECT * FROM unnest(?::bigint[], ?::text[], ?::text[], ?::text[], "
    "?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::double precision[]) "
    "WITH ORDINALITY AS g(collection, href, uid, text, etag, name, component, start_time, "
    "end_time, modified, n)), "
    "written AS (INSERT INTO dav_items (collection, %s) SELECT collection, href, uid, text, "
    "etag, name, component, start_time, end_time, modified FROM given ORDER BY n "
    "ON CONFLICT (collection, href) DO UPDATE SET uid = excluded.uid, "
    "text = excluded.text, etag = excluded.etag, name = excluded.name, "
    "component = excluded.component, start_time = excluded.start_time, "
    "end_time = excluded.end_time, modified = excluded.modified "
    "WHERE dav_items.text <> excluded.text RETURNING collection, href), "
    "numbered AS (SELECT g.collection, g.href, g.modified, "
    "ROW_NUMBER() OVER (PARTITION BY g.collection ORDER BY g.n) AS k, "
    "COUNT(*) OVER (PARTITION BY g.collection) AS m FROM given g JOIN written w "
    "ON w.collection = g.collection AND w.href = g.href), "
    "books AS (UPDATE dav_collections c SET sync = c.sync + b.m, modified = b.t FROM "
    "(SELECT collection, MAX(m) AS m, MAX(modified) AS t FROM numbered GROUP BY collection) "
    "b WHERE c.id = b.collection RETURNING c.id, c.sync), "
    "logged AS (INSERT INTO dav_changes (collection, href, change, deleted, time) "
    "SELECT n.collection, n.href, b.sync - n.m + n.k, 0, n.modified FROM numbered n "
    "JOIN books b ON b.id = n.collection "
    "ON CONFLICT (collection, href) DO UPDATE SET change = excluded.change, "
    "deleted = excluded.deleted, time = excluded.time) "
    "SELECT id, sync FROM books" % _ITEM)


def put_many(db: Database, rows: Iterable[tuple[int, Stored]]) -> dict[int, int]:
    """Write many items' rows, of one or several collections (``(collection id, row)``),
    as :func:`put` writes each (a row whose text is the one stored is left alone; every
    other one is a numbered change, in the order given), in one statement; the change
    number each collection written into has now.

    The caller holds the advisory locks of the books (:func:`lock`), as for :func:`put`.
    An href given twice is written twice, in order (a statement of its own each time)."""
    batches: list[list[tuple[int, Stored]]] = [[]]
    seen: set[tuple[int, str]] = set()
    for collection, stored in rows:
        if (collection, stored.href) in seen:  # one statement may write a row only once
            batches.append([])
            seen = set()
        seen.add((collection, stored.href))
        batches[-1].append((collection, stored))
    numbers: dict[int, int] = {}
    with db.transaction():
        for batch in batches:
            if not batch:
                continue
            columns = list(zip(*((c, s.href, s.uid, s.text, s.etag, s.name, s.component,
                                  s.start, s.end, s.modified) for c, s in batch)))
            for row in db.rows(_PUT_MANY, [list(column) for column in columns]):
                numbers[int(row[0])] = int(row[1])
    return numbers


def remove(db: Database, collection: int, href: str, max_age: float = 0) -> bool:
    """Delete an item's row (its deletion numbered); False when there was none.  Marks
    of deletions older than ``max_age`` seconds (0: kept) are dropped, and the tokens
    that needed them refused from then on."""
    with db.transaction():
        if db.execute("DELETE FROM dav_items WHERE collection = ? AND href = ?",
                      (collection, href)).rowcount == 0:
            return False
        now = time.time()
        number(db, collection, href, True, now)
        if max_age > 0:
            gone = db.value("WITH gone AS (DELETE FROM dav_changes WHERE collection = ? "
                            "AND deleted <> 0 AND time < ? RETURNING change) "
                            "SELECT MAX(change) FROM gone", (collection, now - max_age))
            if gone is not None:
                db.execute("UPDATE dav_collections SET oldest = GREATEST(oldest, ?) "
                           "WHERE id = ?", (int(gone), collection))
        return True


def changed_since(db: Database, collection: int, change: int) -> list[str]:
    """The hrefs written or deleted after change number ``change``."""
    return [r[0] for r in db.rows("SELECT href FROM dav_changes WHERE collection = ? AND "
                                  "change > ? ORDER BY change", (collection, change))]
