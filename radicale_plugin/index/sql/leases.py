# SPDX-License-Identifier: GPL-3.0-or-later
"""Leases on duties in SQL: the ``leases`` table, one row per duty.

Taking a lease is one upsert whose ``WHERE`` lets it through only for the holder or a
lapsed lease: SQLite (one writer) and PostgreSQL (the conflicting row locked by the
``ON CONFLICT``) both decide it atomically, so two processes asking at once never
both get it.
"""

from __future__ import annotations

from radicale_plugin import index
from radicale_plugin.index.sql.database import Database

#: The table, in the SQL both dialects read (schema version 7 on SQLite; PostgreSQL:
#: :mod:`radicale_plugin.index.postgres.leases_schema`).
TABLES = """
CREATE TABLE IF NOT EXISTS leases (duty TEXT PRIMARY KEY, holder TEXT NOT NULL,
    expires DOUBLE PRECISION NOT NULL);
"""


class SQLLeaseStore(index.LeaseStore):
    """The ``leases`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def take(self, duty: str, holder: str, seconds: float, now: float) -> bool:
        # not durable: a lease a power loss takes back is nobody's, and is taken again
        with self._db.transaction(durable=False):
            return bool(self._db.execute(
                "INSERT INTO leases (duty, holder, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (duty) DO UPDATE SET holder = excluded.holder, "
                "expires = excluded.expires "
                "WHERE leases.holder = excluded.holder OR leases.expires <= ?",
                (duty, holder, now + seconds, now)).rowcount)

    def release(self, duty: str, holder: str) -> None:
        self._db.execute("DELETE FROM leases WHERE duty = ? AND holder = ?", (duty, holder))

    def purge(self, before: float) -> int:
        return int(self._db.execute("DELETE FROM leases WHERE expires < ?", (before,)).rowcount)

    def holder(self, duty: str, now: float) -> str | None:
        found = self._db.value("SELECT holder FROM leases WHERE duty = ? AND expires > ?",
                               (duty, now))
        return str(found) if found is not None else None
