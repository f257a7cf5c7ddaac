# SPDX-License-Identifier: GPL-3.0-or-later
"""The reads a write transaction on PostgreSQL keeps: one round trip for a row read again.

A PUT on the PostgreSQL storage reads its book's row, its item, its owner and its links
in several hooks, each a round trip to the server.  Inside one write transaction
:class:`Memo` keeps each such read until a statement of the transaction that may change
its tables runs (or a rollback to a savepoint): the book and its items are held by the
book's advisory lock, and the owner's row and the links are read once, one view of them
for the whole request (under READ COMMITTED a second read could have seen another
session's commit in between; none of the hooks needs that).  It does no I/O itself
(the :class:`~radicale_plugin.index.postgres.database.Database` asks it before and
after each statement).
"""

from __future__ import annotations

import functools
import re
from typing import Any

#: The tables whose reads a write transaction keeps (:class:`Memo`): the rows one
#: request reads again and again (its book's row, its item, its owner, its links).
MEMO_TABLES = frozenset({"dav_collections", "dav_items", "owners", "links"})
_TABLE = re.compile(r'\b(?:FROM|JOIN)\s+"?(\w+)', re.IGNORECASE)
_WORD = re.compile(r"\w+")
#: What a kept read may not contain: locking reads, functions with effects, the clock.
_NOT_KEPT = ("FOR UPDATE", "FOR SHARE", "FOR NO KEY", "FOR KEY", "NEXTVAL", "SETVAL",
             "PG_", "NOW(", "CURRENT_", "RANDOM(", "CLOCK_")


@functools.lru_cache(maxsize=2048)
def kept_tables(sql: str) -> frozenset[str] | None:
    """The tables of a read a transaction may keep (a plain ``SELECT`` of
    :data:`MEMO_TABLES` only, without locks or effects), or None."""
    upper = sql.upper()
    if not upper.lstrip().startswith("SELECT") or any(n in upper for n in _NOT_KEPT):
        return None
    tables = frozenset(t.lower() for t in _TABLE.findall(sql))
    return tables if tables and tables <= MEMO_TABLES else None


#: Statements that take a lock: what was read before may have changed until it was
#: granted (a reader that locks and then reads again must see the row afresh).
_LOCKING = ("PG_ADVISORY", "PG_TRY_ADVISORY", "FOR UPDATE", "FOR SHARE", "FOR NO KEY",
            "FOR KEY", "LOCK ")


@functools.lru_cache(maxsize=2048)
def forgets_all(sql: str) -> bool:
    """Does the statement make every kept read stale (a rollback to a savepoint, a lock)?"""
    upper = sql.upper()
    return upper.lstrip().startswith("ROLLBACK") or any(n in upper for n in _LOCKING)


#: What a change of a table changes too (``ON DELETE CASCADE``: a book's items).
CASCADES = {"dav_collections": frozenset({"dav_items"})}


@functools.lru_cache(maxsize=2048)
def touched_tables(sql: str) -> frozenset[str]:
    """The kept tables a statement (any other than a kept read) may change: every one it
    names and those its rows cascade to (a read that is not kept only loses the memo of
    what it names)."""
    named = frozenset(w.lower() for w in _WORD.findall(sql)) & MEMO_TABLES
    return named.union(*(CASCADES.get(t, frozenset()) for t in named))


class Memo:
    """The reads of one write transaction, kept until a statement of the transaction
    may change their tables (or a rollback to a savepoint), and dropped at its end.

    Inside a write request the rows read are locked (the book's advisory lock) or the
    request's own: reading them once per transaction saves the round trips of reading
    the book's row, the item, the owner and the links again in each hook.  A retried
    request (``http/retry.py``) runs a new transaction: an empty memo."""

    __slots__ = ("_reads",)

    def __init__(self) -> None:
        self._reads: dict[tuple[str, tuple[Any, ...]], tuple[frozenset[str], list[Any]]] = {}

    def get(self, key: tuple[str, tuple[Any, ...]]) -> list[Any] | None:
        found = self._reads.get(key)
        return found[1] if found is not None else None

    def keep(self, key: tuple[str, tuple[Any, ...]], tables: frozenset[str],
             rows: list[Any]) -> None:
        self._reads[key] = (tables, rows)

    def forget(self, sql: str) -> None:
        """A statement other than a kept read runs: drop what it may change."""
        if not self._reads:
            return
        if forgets_all(sql):
            self._reads.clear()
            return
        touched = touched_tables(sql)
        if touched:
            for key in [k for k, (tables, _) in self._reads.items() if tables & touched]:
                del self._reads[key]

    def clear(self) -> None:
        self._reads.clear()
