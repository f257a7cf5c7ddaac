# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether a server runs on a sharing database: a lock file beside it.

Every server process (``radicale``, ``radicale-mecard``, each worker of a WSGI
server) holds a shared ``flock`` on ``<database>.running`` for as long as it
serves; the admin's ``import`` takes it exclusively, without waiting, and is
refused when it cannot.  The kernel drops the lock when the process ends, so a
crashed server leaves no stale mark.  A server starting while an import runs
waits for it (an import is one transaction: seconds at most).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import IO, Iterator


class ServerRunning(RuntimeError):
    """A server holds the database; ``str()`` is the one line the admin reads."""


def lock_path(database: str) -> str:
    return database + ".running"


def hold(database: str) -> IO[bytes] | None:
    """Mark the database as served by this process until it ends (the file stays open).

    None for a database in memory."""
    if database == ":memory:" or database.startswith("file::memory:"):
        return None
    mark = open(lock_path(database), "ab")
    fcntl.flock(mark.fileno(), fcntl.LOCK_SH)
    return mark


@contextlib.contextmanager
def alone(database: str, what: str) -> Iterator[None]:
    """Run ``what`` only while no server runs on ``database``, and keep servers from
    starting meanwhile; :class:`ServerRunning` otherwise."""
    if not os.path.isdir(os.path.dirname(os.path.abspath(database))):
        yield  # no folder: no server runs on it
        return
    with open(lock_path(database), "ab") as mark:
        try:
            fcntl.flock(mark.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServerRunning(
                "a server is running on %s (it holds %s): stop it before %s, then start it "
                "again" % (database, lock_path(database), what)) from None
        try:
            yield
        finally:
            fcntl.flock(mark.fileno(), fcntl.LOCK_UN)
