# SPDX-License-Identifier: GPL-3.0-or-later
"""History in SQLite: one row per change made to a recipient's card."""

from __future__ import annotations

import json
import sqlite3
from typing import Iterable

from radicale_plugin import index
from radicale_plugin.index import Change, HistoryEntry
from radicale_plugin.index.sqlite.database import Database, now_iso


def _entry(row: sqlite3.Row) -> HistoryEntry:
    changes = tuple(Change(c["field"], c["before"], c["after"])
                    for c in json.loads(row["changes"]))
    return HistoryEntry(row["owner"], row["recipient"], row["book"], row["href"],
                        row["action"], changes, row["time"], row["id"])


class SQLiteHistoryLog(index.HistoryLog):
    """The ``history`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, entry: HistoryEntry) -> None:
        self.record_many([entry])

    def record_many(self, entries: Iterable[HistoryEntry]) -> None:
        now = now_iso()
        self._db.executemany(
            "INSERT INTO history (time, owner, recipient, book, href, action, changes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(e.time or now, e.owner, e.recipient, e.book, e.href, e.action,
              json.dumps([{"field": c.field, "before": c.before, "after": c.after}
                          for c in e.changes])) for e in entries])

    def of_recipient(self, recipient: str, limit: int = 100) -> list[HistoryEntry]:
        return [_entry(r) for r in self._db.rows(
            "SELECT * FROM history WHERE recipient = ? ORDER BY id DESC LIMIT ?",
            (recipient, limit))]

    # -- backups and accounts -------------------------------------------------------
    def all(self, after: int = 0, limit: int = 1000) -> list[HistoryEntry]:
        return [_entry(r) for r in self._db.rows(
            "SELECT * FROM history WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]

    def restore_many(self, entries: Iterable[HistoryEntry]) -> None:
        try:
            self._db.executemany(
                "INSERT INTO history (id, time, owner, recipient, book, href, action, changes) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(e.id or None, e.time or now_iso(), e.owner, e.recipient, e.book, e.href,
                  e.action, _changes_json(e.changes)) for e in entries])
        except sqlite3.IntegrityError as e:
            raise ValueError("two history entries have the same id: %s" % e) from e

    def forget_recipient(self, recipient: str) -> int:
        return self._db.execute("DELETE FROM history WHERE recipient = ?",
                                (recipient,)).rowcount


def _changes_json(changes: Iterable[Change]) -> str:
    return json.dumps([{"field": c.field, "before": c.before, "after": c.after}
                       for c in changes])
