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

Chosen over counting the servers' connections in ``pg_stat_activity``: a pool may hold
no connection for a moment (one recycled, PostgreSQL restarted), other roles' rows may
be hidden from the admin's role, and nothing there keeps a server from starting in the
middle of an import.  The cost is one idle connection per server process.
"""

from __future__ import annotations

import contextlib
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


class Mark:
    """A server's mark: the connection holding the shared lock; :meth:`close` ends it."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._conn.close()


def hold(dsn: str) -> Mark:
    """Mark the database as served by this process until it ends (or :meth:`Mark.close`);
    waits while an import runs."""
    conn = psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                           application_name=APPLICATION_NAME)
    try:
        if not _one(conn, "SELECT pg_try_advisory_lock_shared(%s)", RUNNING_LOCK):
            logger.warning("Sharing: an admin's import runs on the database: waiting for it")
            conn.execute("SELECT pg_advisory_lock_shared(%s)", (RUNNING_LOCK,))
    except BaseException:
        conn.close()
        raise
    return Mark(conn)


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
