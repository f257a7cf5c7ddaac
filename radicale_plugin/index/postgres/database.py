# SPDX-License-Identifier: GPL-3.0-or-later
"""PostgreSQL connections for the stores: a pool, and one transaction per thread.

The same calls as SQLite's :class:`~radicale_plugin.index.sqlite.database.Database`
(the :class:`~radicale_plugin.index.sql.database.Database` protocol), on psycopg 3
with ``psycopg_pool``.  There is no writer lock: every thread takes its own
connection for its transaction and PostgreSQL's row locks and MVCC keep them apart,
across threads and across processes alike.  A transaction nests (a nested use
joins the thread's outer one); a read or write outside any transaction of the thread
borrows a pooled connection for that one statement (autocommit).  Statements are
written with ``?`` as the stores write them; they are turned into psycopg's ``%s``
once per statement text.  A write transaction keeps its reads of a few tables
(:mod:`.memo`) until one of its own statements may change them: a request that reads
its book's row or its owner in several hooks pays one round trip.

The storage on PostgreSQL (:mod:`radicale_plugin.storage.postgres`) uses the same
object, so that a recipient's copy and its delivery record commit in one
transaction: whatever runs inside :meth:`Database.transaction` on this thread —
the index's writes and the storage's — is one transaction.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from typing import Any, Callable, Iterable, Iterator, Sequence

import psycopg
import psycopg.conninfo
import psycopg.sql
from psycopg_pool import ConnectionPool
from radicale.log import logger

from radicale_plugin.index.postgres.memo import Memo, kept_tables
from radicale_plugin.index.sql.database import Derived
from radicale_plugin.index.sql.dialect import POSTGRESQL

#: Connections kept open per process at least, and at most (Radicale's request threads,
#: the fan-out worker, the senders: each holds one only while it reads or writes).
MIN_CONNECTIONS = 1
MAX_CONNECTIONS = 16
#: Seconds a thread waits for a free connection before the request fails.
CONNECTION_TIMEOUT = 30.0
#: PostgreSQL's answers that say "run the transaction again": it was chosen as a
#: deadlock's victim, could not be serialised, or did not get a lock in time
#: (``lock_timeout``).  Nothing of it was committed.
RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure,
             psycopg.errors.LockNotAvailable)

_conflicts = threading.local()


def _keep_parsed_statements() -> None:
    """Let psycopg keep the parsed form of the fan-out's long statements too.

    psycopg parses a statement's text (its ``%s``) once and keeps the result, but only for
    statements of at most 50 parameters and 4 KiB: ORMs make ever new ``VALUES`` lists
    that would only churn its cache (psycopg discussion 628).  A fan-out part's statements
    have 100-550 parameters in a few fixed shapes, and parsing them again at every call
    was a quarter of a PostgreSQL fan-out's CPU.  The limits are module settings of
    psycopg 3 (``psycopg._queries``, 3.1 to 3.3): where they are gone, nothing changes
    but the time."""
    try:
        from psycopg import _queries
    except ImportError:
        return
    if hasattr(_queries, "MAX_CACHED_STATEMENT_PARAMS"):
        _queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, 2000)
    if hasattr(_queries, "MAX_CACHED_STATEMENT_LENGTH"):
        _queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH,
                                                    256 * 1024)


_keep_parsed_statements()


def conflicts() -> int:
    """How many :data:`RETRYABLE` failures the calling thread has met so far: a request
    that failed after one more of them may be run again whole
    (:mod:`radicale_plugin.http.retry`)."""
    return getattr(_conflicts, "count", 0)


def _met(error: BaseException) -> None:
    if isinstance(error, RETRYABLE):
        _conflicts.count = conflicts() + 1


class Row(tuple):
    """A row that gives its columns by index and by name, as ``sqlite3.Row`` does."""

    __slots__ = ()
    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@functools.lru_cache(maxsize=512)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


def _rows(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    """psycopg's row factory: :class:`Row` objects named after the result's columns."""
    if cursor.description is None:
        return tuple
    cls = _row_class(tuple(c.name for c in cursor.description))
    return cls


_MARK = re.compile(r"\?")


@functools.lru_cache(maxsize=2048)
def to_psycopg(sql: str) -> str:
    """A statement with ``?`` parameters in psycopg's spelling (``%s``; a literal ``%``
    doubled).  The stores never put ``?`` inside a string literal."""
    return _MARK.sub("%s", sql.replace("%", "%%"))


class Result:
    """What a write gave back, read before its connection went back to the pool."""

    __slots__ = ("rowcount", "_rows")

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self.rowcount = cursor.rowcount
        self._rows = cursor.fetchall() if cursor.description is not None else []

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class Database(Derived):
    """A pool of connections; each thread's transaction (it nests) on its own one."""

    IntegrityError = psycopg.errors.IntegrityError
    #: The SQL the stores of :mod:`radicale_plugin.index.sql` write for PostgreSQL.
    dialect = POSTGRESQL

    def __init__(self, dsn: str, min_size: int = MIN_CONNECTIONS,
                 max_size: int = MAX_CONNECTIONS, name: str = "mecard") -> None:
        self.dsn = dsn
        self.pool = ConnectionPool(
            dsn, min_size=min_size, max_size=max(min_size, max_size), name=name,
            timeout=CONNECTION_TIMEOUT, open=False,
            kwargs={"autocommit": True, "row_factory": _rows},
            check=ConnectionPool.check_connection)
        self.pool.open(wait=True, timeout=CONNECTION_TIMEOUT)
        self._local = threading.local()

    # -- the calling thread's connection --------------------------------------------
    def _current(self) -> psycopg.Connection | None:
        """The connection of the calling thread's transaction or snapshot, if any."""
        return getattr(self._local, "conn", None)

    def in_transaction(self) -> bool:
        """Is the calling thread inside its own (writing) transaction?"""
        return getattr(self._local, "depth", 0) > 0

    def memo(self) -> Memo | None:
        """The calling thread's write transaction's :class:`Memo` (None outside one)."""
        return getattr(self._local, "memo", None) if self.in_transaction() else None

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """The thread's transaction's connection, or a pooled one for one statement
        (what the caller runs on it is unknown: the transaction's memo is dropped)."""
        memo = self.memo()
        if memo is not None:
            memo.clear()
        with self._connection() as conn:
            yield conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        conn = self._current()
        try:
            if conn is not None:
                yield conn
                return
            with self.pool.connection() as conn:
                yield conn
        except psycopg.Error as e:
            _met(e)  # noted where the caller may catch it: a request's 500 is retried
            raise

    @contextlib.contextmanager
    def transaction(self, durable: bool = True) -> Iterator[None]:
        """One transaction; a nested use joins the outer one (same thread).

        One that is not ``durable`` commits without waiting for the disk
        (``synchronous_commit = off``): a crash of PostgreSQL may take back its last
        moment's commits, never half of one.
        """
        local = self._local
        if getattr(local, "depth", 0):
            local.depth += 1
            try:
                yield
            finally:
                local.depth -= 1
            return
        outer = getattr(local, "conn", None)  # a snapshot's: writes get their own connection
        with self.pool.connection() as conn:
            conn.execute("BEGIN")
            if not durable:
                conn.execute("SET LOCAL synchronous_commit TO OFF")
            local.conn, local.depth, local.memo = conn, 1, Memo()
            try:
                yield
            except BaseException:
                local.conn, local.depth, local.memo = outer, 0, None
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
                raise
            local.conn, local.depth, local.memo = outer, 0, None
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every read in it sees one moment (repeatable read).
        Inside a transaction or snapshot of the thread it joins it."""
        local = self._local
        if getattr(local, "conn", None) is not None:
            yield
            return
        with self.pool.connection() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            local.conn = conn
            try:
                yield
            finally:
                local.conn = None
                with contextlib.suppress(psycopg.Error):
                    conn.execute("COMMIT")

    @contextlib.contextmanager
    def attempt(self) -> Iterator[None]:
        """A block whose failure leaves the thread's transaction usable (a savepoint)."""
        if not self.in_transaction():
            yield
            return
        conn = self._local.conn
        # one name per nesting depth, not per savepoint: the statements stay few and alike
        # (pg_stat_statements would keep one entry per name and evict the others)
        depth = getattr(self._local, "savepoints", 0) + 1
        name = "mecard_%d" % depth
        self._local.savepoints = depth
        try:
            conn.execute("SAVEPOINT " + name)
            try:
                yield
            except psycopg.Error:
                conn.execute("ROLLBACK TO SAVEPOINT " + name)
                self._local.memo.clear()  # what it kept may have been undone
                raise
            conn.execute("RELEASE SAVEPOINT " + name)
        finally:
            self._local.savepoints = depth - 1

    def sync(self) -> None:
        """Make every commit so far durable (those of ``durable=False`` transactions too).

        PostgreSQL's log is written in order: a commit that waits for the disk flushes
        every commit before it.  A commit waits only if its transaction wrote to the log,
        so this one writes a logical message (no table, no row lock: syncs of several
        threads and processes never wait for each other, and PostgreSQL groups their
        flushes).  Without it, the others become durable within ``wal_writer_delay``."""
        with self.pool.connection() as conn:
            conn.execute("BEGIN")
            conn.execute("SELECT pg_logical_emit_message(true, 'mecard-sync', '')")
            conn.execute("COMMIT")

    def describe(self) -> str:
        """The database for a message: host, port and name (never a password)."""
        try:
            params = psycopg.conninfo.conninfo_to_dict(self.dsn)
        except psycopg.ProgrammingError:
            return "(PostgreSQL)"
        return "postgresql://%s:%s/%s" % (params.get("host", "localhost"),
                                          params.get("port", 5432), params.get("dbname", ""))

    # -- statements ----------------------------------------------------------------
    def execute(self, sql: str, args: Iterable[Any] = ()) -> Result:
        """A write (alone, it is its own transaction)."""
        memo = self.memo()
        if memo is not None:
            memo.forget(sql)
        with self._connection() as conn:
            return Result(conn.execute(to_psycopg(sql), tuple(args)))

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        values = [tuple(r) for r in rows]
        if not values:
            return
        memo = self.memo()
        if memo is not None:
            memo.forget(sql)
        with self._connection() as conn:
            with conn.cursor() as cursor:
                cursor.executemany(to_psycopg(sql), values)

    def rows(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        args = tuple(args)
        memo = self.memo()
        if memo is None:
            with self._connection() as conn:
                return conn.execute(to_psycopg(sql), args).fetchall()
        tables = kept_tables(sql)
        key = (sql, args)
        if tables is not None:
            try:
                found = memo.get(key)
            except TypeError:  # a list among the arguments: not kept
                tables = None
            else:
                if found is not None:
                    return list(found)
        else:
            memo.forget(sql)
        with self._connection() as conn:
            got = conn.execute(to_psycopg(sql), args).fetchall()
        if tables is not None:
            memo.keep(key, tables, list(got))
        return got

    def row(self, sql: str, args: Iterable[Any] = ()) -> Any:
        memo = self.memo()
        if memo is not None:
            if kept_tables(sql) is not None:
                found = self.rows(sql, args)
                return found[0] if found else None
            memo.forget(sql)  # a write with RETURNING, read by value()
        with self._connection() as conn:
            return conn.execute(to_psycopg(sql), tuple(args)).fetchone()

    def kept(self, sql: str, args: Iterable[Any]) -> bool:
        """Does the thread's write transaction know what the read gives (no round trip)?"""
        memo = self.memo()
        return memo is not None and memo.get((sql, tuple(args))) is not None

    def remember(self, sql: str, args: Iterable[Any], rows: list[Any]) -> None:
        """What the read ``sql`` with ``args`` gives now, known to the caller (it just
        wrote it): kept as if read, inside a write transaction (else nothing)."""
        memo, tables = self.memo(), kept_tables(sql)
        if memo is not None and tables is not None:
            memo.keep((sql, tuple(args)), tables, list(rows))

    def listen(self, channel: str) -> psycopg.Connection:
        """A connection of its own (not pooled) listening on ``channel``: the caller
        waits on ``conn.notifies()`` and closes it."""
        conn = psycopg.connect(self.dsn, autocommit=True)
        conn.execute("LISTEN %s" % psycopg.sql.Identifier(channel).as_string(conn))
        return conn

    def notify(self, channel: str, payload: str = "") -> None:
        """Wake the listeners of ``channel`` (with the thread's transaction: at its commit)."""
        self.execute("SELECT pg_notify(?, ?)", (channel, payload))

    def close(self) -> None:
        """Close every connection; closing twice is harmless."""
        try:
            self.pool.close()
        except psycopg.Error as e:  # the server went away first
            logger.warning("Sharing: closing the PostgreSQL pool: %s", e)
