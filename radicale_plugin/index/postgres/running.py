# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether servers run on a PostgreSQL database: an advisory lock every server holds.

The counterpart of :mod:`radicale_plugin.index.running` (a ``flock`` beside the SQLite
file) for a database that servers on several hosts share.  Every server process holds
a session-level *shared* advisory lock (:data:`RUNNING_LOCK`) on a connection of its
own for as long as it serves (:func:`hold`); the admin's ``import`` takes it
exclusively, without waiting, and is refused while any server holds it (:func:`alone`).
PostgreSQL drops the lock when the session ends, so a crashed server (its connection
closed) leaves no stale mark, and a server starting while an import runs waits for it
(an import is one transaction: seconds at most).

PostgreSQL also drops the lock when *it* restarts (or the connection breaks) while the
server goes on: the mark then watches its connection (:meth:`Mark.watch`, every
:data:`CHECK_EVERY` seconds, a thread of its own) and takes the lock again on a new
connection, so that an import never finds "no server" on a database a server uses.

Chosen over counting the servers' connections in ``pg_stat_activity``: a pool may hold
no connection for a moment (one recycled, PostgreSQL restarted), other roles' rows may
be hidden from the admin's role, and nothing there keeps a server from starting in the
middle of an import.  The cost is one idle connection per server process.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

import psycopg
from radicale.log import logger

from radicale_plugin.index.running import ServerRunning

#: The advisory lock's key (a constant of this program's own; migrations use ...0001/2).
RUNNING_LOCK = 0x6D65636172640030
#: Seconds a connection may take before the database counts as unreachable.
CONNECT_TIMEOUT = 10
#: What the mark's connection is called in ``pg_stat_activity``.
APPLICATION_NAME = "radicale-mecard-server"
#: Seconds between two looks at the mark's connection (a PostgreSQL restart drops it).
CHECK_EVERY = 2.0


class Mark:
    """A server's mark: the connection holding the shared lock, taken again on a new
    connection when that one is lost; :meth:`close` ends it."""

    def __init__(self, dsn: str, conn: psycopg.Connection, check_every: float = CHECK_EVERY
                 ) -> None:
        self._dsn = dsn
        self._conn: psycopg.Connection | None = conn
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watching, args=(check_every,),
                                        name="mecard-running-mark", daemon=True)
        self._thread.start()

    def _watching(self, every: float) -> None:
        while not self._closed.wait(every):
            self.watch()

    def watch(self) -> bool:
        """Whether the mark is held now, after taking it again if its connection was lost
        (PostgreSQL restarted): never waits for an import (the next look tries again)."""
        conn = self._conn
        if conn is not None and not conn.closed:
            try:
                conn.execute("SELECT 1")
                return True
            except psycopg.Error:
                pass
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
            self._conn = None
        if self._closed.is_set():
            return False
        try:
            fresh = _connect(self._dsn)
        except psycopg.Error as e:
            logger.debug("Sharing: the running mark waits for the database: %s", e)
            return False
        try:
            if not _one(fresh, "SELECT pg_try_advisory_lock_shared(%s)", RUNNING_LOCK):
                fresh.close()
                logger.warning("Sharing: an admin's import runs on the database: this "
                               "server's running mark is taken again after it")
                return False
        except psycopg.Error:
            fresh.close()
            return False
        if self._closed.is_set():  # closed meanwhile
            fresh.close()
            return False
        self._conn = fresh
        logger.info("Sharing: the connection holding this server's running mark was lost "
                    "(PostgreSQL restarted?): the mark is held again")
        return True

    def close(self) -> None:
        self._closed.set()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()


def _connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                           application_name=APPLICATION_NAME)


def hold(dsn: str, check_every: float = CHECK_EVERY) -> Mark:
    """Mark the database as served by this process until it ends (or :meth:`Mark.close`);
    waits while an import runs."""
    conn = _connect(dsn)
    try:
        if not _one(conn, "SELECT pg_try_advisory_lock_shared(%s)", RUNNING_LOCK):
            logger.warning("Sharing: an admin's import runs on the database: waiting for it")
            conn.execute("SELECT pg_advisory_lock_shared(%s)", (RUNNING_LOCK,))
    except BaseException:
        conn.close()
        raise
    return Mark(dsn, conn, check_every)


def _one(conn: psycopg.Connection, sql: str, *args: Any) -> Any:
    row = conn.execute(sql, args).fetchone()  # type: ignore[call-overload]
    return row[0] if row is not None else None


def holders(conn: psycopg.Connection) -> int:
    """How many server sessions hold the mark (shared; a bigint key is split in two halves
    in pg_locks)."""
    return int(_one(
        conn, "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND mode = 'ShareLock' "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid::bigint = (%s >> 32) AND objid::bigint = (%s & 4294967295) "
        "AND objsubid = 1", RUNNING_LOCK, RUNNING_LOCK))


@contextlib.contextmanager
def alone(conn: psycopg.Connection, where: str, what: str) -> Iterator[None]:
    """Run ``what`` only while no server runs on the database of ``conn`` (a connection
    of the caller's, open for as long as this lasts), and keep servers from starting
    meanwhile; :class:`ServerRunning` otherwise."""
    if not _one(conn, "SELECT pg_try_advisory_lock(%s)", RUNNING_LOCK):
        raise ServerRunning(
            "%d server process(es) are running on %s (each holds the advisory lock %d): "
            "stop every server on that database before %s, then start them again"
            % (holders(conn), where, RUNNING_LOCK, what))
    try:
        yield
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock(%s)", (RUNNING_LOCK,))
