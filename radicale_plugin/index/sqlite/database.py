# SPDX-License-Identifier: GPL-3.0-or-later
"""The SQLite connections shared by the stores: one writer, and readers beside it.

Writes and :meth:`Database.transaction` go through the one writer connection,
serialised by :attr:`Database.lock`, in ``BEGIN IMMEDIATE`` transactions that
nest.  Reads outside the calling thread's own transaction go through a reader
connection from a small pool: in WAL mode a reader sees the last commit and
never waits for a writer, so a request's read (and a storage hook's, under
Radicale's exclusive lock) is never held up by the fan-out worker's write
transaction, nor the worker's reads by a request's.  Inside its own transaction
a thread reads through the writer, and so sees what it wrote.

Checkpoints (copying the write-ahead log into the database file, and waiting for the
disk) are not left to SQLite's automatic ones: those run inside the COMMIT of whichever
transaction crosses 1,000 pages, holding the writer for tens of ms — a storage hook's
commit under Radicale's exclusive lock, or the fan-out's while a hook waits for it.
Here the writer never checkpoints; a thread of its own (:class:`_Checkpointer`) does,
on its own connection, a moment after writes: a PASSIVE checkpoint runs beside the
writer and the readers and holds up neither.  It also makes the commits that did not
wait for the disk (``durable=False``) durable, as SQLite's own checkpoints did.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from radicale.log import logger

from radicale_plugin.index.sql.database import Derived, now_iso  # noqa: F401  (the stored time)
from radicale_plugin.index.sql.dialect import SQLITE


#: Idle reader connections kept for reuse; more are opened when more threads read at once
#: (Radicale starts a thread per request) and closed when they come back to a full pool.
_IDLE_READERS = 4
#: Each reader's page cache, in KiB (SQLite's default is 2 MiB per connection): the
#: operating system caches the file too, and the pool must not add much to the server's RSS.
_READER_CACHE_KIB = 1024
#: Seconds between two checkpoints at most (while there are writes): the write-ahead log
#: grows by at most this much writing before it is copied into the database file.
_CHECKPOINT_EVERY = 0.5


class _Checkpointer:
    """A thread that checkpoints the write-ahead log a moment after writes, on its own
    connection, without the writer's lock (see the module's docstring)."""

    def __init__(self, path: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self._path = path
        self._connect = connect
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        """A write was committed: a checkpoint is wanted soon."""
        self._wanted.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping.is_set():
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="mecard-checkpoint")
                    self._thread.start()

    def _run(self) -> None:
        conn = self._connect()
        try:
            while not self._stopping.is_set():
                self._wanted.wait()
                if self._stopping.is_set():
                    break
                self._wanted.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as e:  # tried again after the next write
                    logger.debug("Sharing: checkpoint of %s failed: %s", self._path, e)
                self._stopping.wait(_CHECKPOINT_EVERY)
        finally:
            conn.close()

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            self._wanted.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)


class FairLock:
    """A reentrant lock handed over in the order it was asked for.

    Python's own locks are not fair: the fan-out worker, writing offer after offer,
    would take the writer again and again while a request's storage hook waits for it
    under Radicale's exclusive lock.  Here a waiting thread is next, whoever asks after.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._count = 0
        self._next = 0      # the ticket the next thread to ask gets
        self._serving = 0   # the ticket whose turn it is

    def acquire(self, blocking: bool = True) -> bool:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._count += 1
                return True
            if self._owner is None and self._serving == self._next:
                self._next += 1
            elif not blocking:
                return False
            else:
                ticket = self._next
                self._next += 1
                while self._owner is not None or self._serving != ticket:
                    self._cond.wait()
            self._owner, self._count = me, 1
            self._serving += 1
            return True

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a FairLock not held by this thread")
            self._count -= 1
            if not self._count:
                self._owner = None
                self._cond.notify_all()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class Database(Derived):
    """The writer connection, its lock, ``BEGIN IMMEDIATE`` transactions that nest, and a
    pool of reader connections for reads outside a transaction."""

    IntegrityError = sqlite3.IntegrityError
    #: The SQL the stores of :mod:`radicale_plugin.index.sql` write for SQLite.
    dialect = SQLITE

    def __init__(self, path: str) -> None:
        self.path = path
        #: Held by the thread whose transaction (or single write) uses the writer.
        self.lock = FairLock()
        self._depth = 0
        self._writer: int | None = None  # the thread in the writer's transaction
        self._closed = False
        #: Seconds :meth:`close` may wait for other processes to checkpoint: the server's
        #: clean stop waits a little; an admin command never holds up the server.
        self.checkpoint_wait = 0.0
        self.conn = self._connect()
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=OFF")
        # an in-memory database is one per connection: there, the writer reads too
        self._shared = path in ("", ":memory:") or path.startswith("file::memory:")
        self._checkpointer: _Checkpointer | None = None
        if not self._shared:
            # checkpoints are the checkpointer's, never a commit's (see the docstring)
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = _Checkpointer(path, self._connect)
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        #: The calling thread's reader while it is in a :meth:`snapshot`.
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                               timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    # -- the writer ------------------------------------------------------------
    def _in_transaction(self) -> bool:
        """Is the calling thread inside its own write transaction?"""
        return self._writer == threading.get_ident()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the writer; a wait for another thread's transaction is logged (debug)."""
        if not self.lock.acquire(blocking=False):
            begin = time.monotonic()
            self.lock.acquire()
            waited = time.monotonic() - begin
            if waited > 0.01:
                logger.debug("Sharing: waited %.0f ms for the index's writer", waited * 1000)
        try:
            yield
        finally:
            self.lock.release()
            if self._checkpointer is not None:
                self._checkpointer.poke()

    @contextlib.contextmanager
    def transaction(self, durable: bool = True) -> Iterator[None]:
        """One transaction; a nested use joins the outer one (same thread).

        A transaction that is not ``durable`` commits without waiting for the
        disk (``synchronous=NORMAL``): it survives a crash of the process, and
        a power loss may take it back.  The next durable commit carries it too.
        """
        with self._writing():
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
                self._writer = threading.get_ident()
                try:
                    yield
                except BaseException:
                    self._depth = 0
                    self._writer = None
                    self.conn.execute("ROLLBACK")
                    raise
                self._depth = 0
                self._writer = None
                self.conn.execute("COMMIT")
            finally:
                if not durable:
                    self.conn.execute("PRAGMA synchronous=FULL")

    def sync(self) -> None:
        """Make every commit so far durable without the writer's lock: the write-ahead log
        is written in order, so one sync of its file makes every commit in it durable (a
        ``durable=False`` one too); what a checkpoint already moved out of it was synced
        by the checkpoint, before the log could be written over."""
        if self._shared:
            return
        for path in (self.path + "-wal", self.path):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return

    def execute(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        """A write (alone, it is its own transaction), through the writer."""
        with self._writing():
            return self.conn.execute(sql, tuple(args))

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        with self._writing():
            self.conn.executemany(sql, [tuple(r) for r in rows])

    # -- the readers -------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection a read of the calling thread goes through.

        Its own transaction's writer (it sees its own writes), its snapshot's reader,
        or a reader from the pool: never one that waits for another thread's writes.
        """
        if self._in_transaction() or self._shared:
            with self.lock:
                yield self.conn
            return
        mine = getattr(self._local, "conn", None)
        if mine is not None:
            yield mine
            return
        conn = self._checkout()
        try:
            yield conn
        finally:
            self._checkin(conn)

    def _checkout(self) -> sqlite3.Connection:
        with self._idle_lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the database %s is closed" % self.path)
            if self._idle:
                return self._idle.pop()
        conn = self._connect()
        # a reader never writes: a write through one would bypass the writer's lock
        conn.execute("PRAGMA query_only=1")
        conn.execute("PRAGMA cache_size=-%d" % _READER_CACHE_KIB)
        return conn

    def _checkin(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:  # a read that failed half-way: end its read transaction
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        with self._idle_lock:
            if not self._closed and len(self._idle) < _IDLE_READERS:
                self._idle.append(conn)
                return
        conn.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every read in it sees one moment, and writers go on meanwhile
        (WAL mode).  Inside a transaction it joins it (that is one moment already)."""
        if self._in_transaction() or self._shared or getattr(self._local, "conn", None):
            with contextlib.ExitStack() as stack:
                if self._shared:
                    stack.enter_context(self.transaction())
                yield
            return
        conn = self._checkout()
        try:
            conn.execute("BEGIN DEFERRED")
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None
                conn.execute("COMMIT")
        finally:
            self._checkin(conn)

    @contextlib.contextmanager
    def attempt(self) -> Iterator[None]:
        """A failed statement in SQLite undoes itself alone: the transaction goes on."""
        yield

    def rows(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._reading() as conn:
            return conn.execute(sql, tuple(args)).fetchall()

    def row(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Row | None:
        with self._reading() as conn:
            cursor = conn.execute(sql, tuple(args))
            try:
                return cursor.fetchone()
            finally:
                cursor.close()  # an unfinished statement would keep the reader's moment

    def close(self) -> None:
        """Checkpoint and close: everything in the write-ahead log goes into the database
        file and the log is emptied, so that the file alone is the whole database (a copy
        of it is a complete backup).  Closing twice is harmless."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self.lock:
            if self._closed:
                return
            with self._idle_lock:  # readers still reading are closed when they come back
                self._closed = True
                idle, self._idle = self._idle, []
            for reader in idle:
                reader.close()
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
