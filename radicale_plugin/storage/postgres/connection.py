# SPDX-License-Identifier: GPL-3.0-or-later
"""One :class:`Database` per connection string per process, its schema migrated once.

Radicale builds several ``Storage`` objects per process (the app's, the built-in
sharing module's), and the sharing index on PostgreSQL works on the same database:
they must all share one pool, so that whatever one thread does inside
``db.transaction()`` — the storage's item write and the index's delivery record — is
one transaction.  :func:`database_for` gives that one object.
"""

from __future__ import annotations

import re
import threading

import psycopg
from psycopg_pool import PoolTimeout

from radicale_plugin.index.postgres.database import Database
from radicale_plugin.storage.postgres import schema

#: Seconds the first connection of a process may take before the start fails.
PROBE_TIMEOUT = 10

_databases: dict[str, Database] = {}
_lock = threading.Lock()


class StorageUnavailable(RuntimeError):
    """The storage's database is not configured or cannot be reached: one line to fix it."""


def describe(dsn: str) -> str:
    """The connection string without its password (for messages and logs)."""
    dsn = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)


def database_for(dsn: str) -> Database:
    """The process's :class:`Database` for ``dsn`` (made, and the storage's tables
    migrated, at the first call)."""
    if not dsn.strip():
        raise StorageUnavailable(
            "[storage] postgresql_dsn is empty: set it to the PostgreSQL connection string, "
            "e.g. postgresql_dsn = host=db.example.org dbname=radicale user=radicale")
    with _lock:
        db = _databases.get(dsn)
        if db is None:
            try:
                # one connection first: a wrong DSN fails at once with PostgreSQL's reason
                # (the pool would retry it for its whole timeout)
                psycopg.connect(dsn, connect_timeout=PROBE_TIMEOUT).close()
                db = Database(dsn, name="radicale-storage")
            except (psycopg.Error, PoolTimeout) as e:
                reason = " ".join(str(e).split()) or type(e).__name__
                raise StorageUnavailable(
                    "cannot reach the PostgreSQL storage database %s ([storage] "
                    "postgresql_dsn): %s" % (describe(dsn), reason)) from None
            try:
                schema.migrate(db)
            except psycopg.Error as e:
                db.close()
                raise StorageUnavailable(
                    "cannot make the storage's tables in %s ([storage] postgresql_dsn): %s "
                    "(the user needs the right to create tables there)"
                    % (describe(dsn), " ".join(str(e).split()))) from None
            except BaseException:
                db.close()
                raise
            _databases[dsn] = db
        return db


def forget(dsn: str) -> None:
    """Close and drop the process's database for ``dsn`` (tests, shutdown)."""
    with _lock:
        db = _databases.pop(dsn, None)
    if db is not None:
        db.close()
