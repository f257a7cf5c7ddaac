# SPDX-License-Identifier: GPL-3.0-or-later
"""Rate limits' token buckets in SQL: the ``limits`` table, one row per (bucket, subject).

A take is one transaction: the row is made full if it is new, read and locked
(``FOR UPDATE`` on PostgreSQL; SQLite's writer is one already), refilled, and written
back.  Every process of a deployment counts against the same buckets.  A row is as
small as a bucket: one per user and limit, never more.
"""

from __future__ import annotations

from radicale_plugin import index
from radicale_plugin.index.sql.database import Database

#: The table, in the SQL both dialects read (schema version 7 on SQLite; PostgreSQL:
#: :mod:`radicale_plugin.index.postgres.leases_schema`).
TABLES = """
CREATE TABLE IF NOT EXISTS limits (bucket TEXT NOT NULL, subject TEXT NOT NULL,
    tokens DOUBLE PRECISION NOT NULL, stamp DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (bucket, subject));
"""


class SQLLimitStore(index.LimitStore):
    """The ``limits`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def take(self, bucket: str, subject: str, amount: float, capacity: float, rate: float,
             now: float) -> float:
        with self._db.transaction(durable=False):  # a power loss refills a bucket: harmless
            self._db.execute(
                "INSERT INTO limits (bucket, subject, tokens, stamp) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (bucket, subject) DO NOTHING",
                (bucket, subject, float(capacity), now))
            found = self._db.row(
                "SELECT tokens, stamp FROM limits WHERE bucket = ? AND subject = ?"
                + self._db.dialect.for_update, (bucket, subject))
            tokens, stamp, wait = self.refill(float(found[0]), float(found[1]), amount,
                                              capacity, rate, now)
            self._db.execute("UPDATE limits SET tokens = ?, stamp = ? WHERE bucket = ? "
                             "AND subject = ?", (tokens, stamp, bucket, subject))
        return wait

    def forget_user(self, user: str) -> None:
        self._db.execute("DELETE FROM limits WHERE subject = ?", (user,))

    def hold(self, bucket: str, subject: str) -> None:
        # the bucket's row, locked until the transaction ends (SQLite's one writer is
        # held by the transaction already)
        self._db.execute("INSERT INTO limits (bucket, subject, tokens, stamp) VALUES "
                         "(?, ?, 0, 0) ON CONFLICT (bucket, subject) DO NOTHING",
                         (bucket, subject))
        self._db.row("SELECT tokens FROM limits WHERE bucket = ? AND subject = ?"
                      + self._db.dialect.for_update, (bucket, subject))
