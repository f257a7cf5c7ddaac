# SPDX-License-Identifier: GPL-3.0-or-later
"""One SQLite connection shared by the stores, with nestable transactions."""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
import threading
from typing import Any, Iterable, Iterator

from radicale.log import logger


def now_iso() -> str:
    """The current time as stored (UTC, ISO 8601, seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Database:
    """A connection, its lock, and ``BEGIN IMMEDIATE`` transactions that nest."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self._depth = 0
        self._closed = False
        #: Seconds :meth:`close` may wait for other processes to checkpoint: the server's
        #: clean stop waits a little; an admin command never holds up the server.
        self.checkpoint_wait = 0.0
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                    timeout=30)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=OFF")

    @contextlib.contextmanager
    def transaction(self, durable: bool = True) -> Iterator[None]:
        """One transaction; a nested use joins the outer one (same thread).

        A transaction that is not ``durable`` commits without waiting for the
        disk (``synchronous=NORMAL``): it survives a crash of the process, and
        a power loss may take it back.  The next durable commit carries it too.
        """
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            if not durable:
                self.conn.execute("PRAGMA synchronous=NORMAL")
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                self._depth = 1
                try:
                    yield
                except BaseException:
                    self._depth = 0
                    self.conn.execute("ROLLBACK")
                    raise
                self._depth = 0
                self.conn.execute("COMMIT")
            finally:
                if not durable:
                    self.conn.execute("PRAGMA synchronous=FULL")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every read in it sees one moment, and writers go on meanwhile
        (WAL mode).  Inside a transaction it joins it (that is one moment already)."""
        with self.lock:
            if self._depth:
                yield
                return
            self.conn.execute("BEGIN DEFERRED")
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                self.conn.execute("COMMIT")

    def execute(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self.lock:
            return self.conn.execute(sql, tuple(args))

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        with self.lock:
            self.conn.executemany(sql, [tuple(r) for r in rows])

    def rows(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, tuple(args)).fetchall()

    def row(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Row | None:
        with self.lock:
            return self.conn.execute(sql, tuple(args)).fetchone()

    def value(self, sql: str, args: Iterable[Any] = ()) -> Any:
        found = self.row(sql, args)
        return found[0] if found is not None else None

    def count(self, table: str, condition: str, args: Iterable[Any],
              **equal: Any) -> int:
        """Rows of ``table`` meeting ``condition`` and, for each ``column=value`` given
        and not None, ``column = value`` (names are the caller's, never user input)."""
        where, values = [condition], list(args)
        for column, value in equal.items():
            if value is not None:
                where.append("%s = ?" % column)
                values.append(value)
        return int(self.value("SELECT COUNT(*) FROM %s WHERE %s" % (table, " AND ".join(where)),
                              values))

    def close(self) -> None:
        """Checkpoint and close: everything in the write-ahead log goes into the database
        file and the log is emptied, so that the file alone is the whole database (a copy
        of it is a complete backup).  Closing twice is harmless."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            try:
                # TRUNCATE: the -wal file is left empty.  It waits for other processes'
                # readers and writers (holding theirs up meanwhile) at most
                # ``checkpoint_wait``; after that it moves what it can and leaves the rest
                # to the last connection's close.
                self.conn.execute("PRAGMA busy_timeout = %d" % (self.checkpoint_wait * 1000))
                busy = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                if busy and self.checkpoint_wait:
                    logger.warning("Sharing: %s is in use by another process: its -wal file "
                                   "still holds recent changes (copy both for a backup)",
                                   self.path)
            except sqlite3.Error as e:
                logger.warning("Sharing: cannot checkpoint %s at close: %s", self.path, e)
            self.conn.close()


def chunks(items: Iterable[str], size: int = 500) -> Iterator[list[str]]:
    """``IN (...)`` lists short enough for SQLite's parameter limit."""
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def under_path(path: str) -> tuple[str, tuple[str, ...]]:
    """SQL condition on ``book`` for a book path, or a user (every book of theirs).

    A range, not LIKE: LIKE ignores case, and "bob" is not "Bob"
    ("bob/" <= book < "bob0": "0" is the character after "/").
    """
    path = path.strip("/")
    if "/" in path:
        return "book = ?", (path,)
    return "(book = ? OR (book >= ? AND book < ?))", (path, path + "/", path + "0")
