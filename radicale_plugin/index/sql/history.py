# SPDX-License-Identifier: GPL-3.0-or-later
"""History in SQL: one row per change made to a recipient's card, the entries the
recipient undid (``history_undone``) and the owner values they undid (``undone_values``)."""

from __future__ import annotations

import json
from typing import Iterable

from radicale_plugin import index
from radicale_plugin.index import Change, HistoryEntry, UndoMark, UndoneValue
from radicale_plugin.index.sql.database import (Database, Row, ids_given, insert_rows,
                                                now_iso)


def _entry(row: Row) -> HistoryEntry:
    changes = tuple(Change(c["field"], c["before"], c["after"])
                    for c in json.loads(row["changes"]))
    return HistoryEntry(row["owner"], row["recipient"], row["book"], row["href"],
                        row["action"], changes, row["time"], row["id"])


class SQLHistoryLog(index.HistoryLog):
    """The ``history`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, entry: HistoryEntry) -> None:
        self.record_many([entry])

    def record_many(self, entries: Iterable[HistoryEntry]) -> None:
        now = now_iso()
        # one statement for many where that is quicker (the fan-out's part: 10), their
        # ids in the given order
        insert_rows(self._db, "INSERT INTO history (time, owner, recipient, book, href, "
                    "action, changes)",
                    ((e.time or now, e.owner, e.recipient, e.book, e.href, e.action,
                      json.dumps([{"field": c.field, "before": c.before, "after": c.after}
                                  for c in e.changes])) for e in entries))

    def of_recipient(self, recipient: str, limit: int = 100,
                     owner: str | None = None) -> list[HistoryEntry]:
        if owner is not None:
            return [_entry(r) for r in self._db.rows(
                "SELECT * FROM history WHERE recipient = ? AND owner = ? ORDER BY id DESC "
                "LIMIT ?", (recipient, owner, limit))]
        return [_entry(r) for r in self._db.rows(
            "SELECT * FROM history WHERE recipient = ? ORDER BY id DESC LIMIT ?",
            (recipient, limit))]

    # -- undo -----------------------------------------------------------------------
    def get(self, entry_id: int) -> HistoryEntry | None:
        rows = self._db.rows("SELECT * FROM history WHERE id = ?", (entry_id,))
        return _entry(rows[0]) if rows else None

    def add(self, entry: HistoryEntry) -> int:
        # in a transaction: the id is read before another thread uses the connection
        with self._db.transaction():
            return int(self._db.execute(
                "INSERT INTO history (time, owner, recipient, book, href, action, changes) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (entry.time or now_iso(), entry.owner, entry.recipient, entry.book, entry.href,
                 entry.action, _changes_json(entry.changes))).fetchall()[0][0])

    def mark_undone(self, mark: UndoMark) -> bool:
        return self._db.execute(
            "INSERT INTO history_undone (entry, time, undo_entry, answer) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (mark.entry, mark.time or now_iso(), mark.undo_entry, mark.answer)).rowcount > 0

    def undo_marks(self, entry_ids: Iterable[int]) -> dict[int, UndoMark]:
        ids = sorted(set(entry_ids))
        marks: dict[int, UndoMark] = {}
        for start in range(0, len(ids), 500):  # below SQLite's bound on parameters
            chunk = ids[start:start + 500]
            for r in self._db.rows(
                    "SELECT * FROM history_undone WHERE entry IN (%s)"
                    % ",".join("?" * len(chunk)), chunk):
                marks[r["entry"]] = UndoMark(r["entry"], r["time"], r["undo_entry"],
                                             r["answer"])
        return marks

    def add_undone(self, values: Iterable[UndoneValue]) -> None:
        self._db.executemany(
            "INSERT INTO undone_values (owner, recipient, field, value_key, kept, entry) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(v.owner, v.recipient, v.field, v.value_key, v.kept, v.entry) for v in values])

    def undone_of(self, pairs: Iterable[tuple[str, str]]
                  ) -> dict[tuple[str, str], list[UndoneValue]]:
        found: dict[tuple[str, str], list[UndoneValue]] = {}
        # one query per owner: a round's deliveries are few owners to many recipients
        by_owner: dict[str, set[str]] = {}
        for owner, recipient in pairs:
            by_owner.setdefault(owner, set()).add(recipient)
        for owner, recipients in sorted(by_owner.items()):
            names = sorted(recipients)
            for start in range(0, len(names), 500):
                chunk = names[start:start + 500]
                for r in self._db.rows(
                        "SELECT * FROM undone_values WHERE owner = ? AND recipient IN (%s) "
                        "ORDER BY id" % ",".join("?" * len(chunk)), [owner, *chunk]):
                    found.setdefault((owner, r["recipient"]), []).append(UndoneValue(
                        owner, r["recipient"], r["field"], r["value_key"], r["kept"],
                        r["entry"], r["id"]))
        return found

    def forget_undone(self, value_ids: Iterable[int]) -> None:
        self._db.executemany("DELETE FROM undone_values WHERE id = ?",
                             [(i,) for i in sorted(set(value_ids))])

    def purge(self, before: str) -> int:
        with self._db.transaction():
            self._db.execute("DELETE FROM history_undone WHERE entry IN "
                             "(SELECT id FROM history WHERE time < ?)", (before,))
            return self._db.execute("DELETE FROM history WHERE time < ?",
                                    (before,)).rowcount

    # -- backups and accounts -------------------------------------------------------
    def all(self, after: int = 0, limit: int = 1000) -> list[HistoryEntry]:
        return [_entry(r) for r in self._db.rows(
            "SELECT * FROM history WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]

    def restore_many(self, entries: Iterable[HistoryEntry]) -> None:
        found = list(entries)
        try:
            with self._db.transaction(), self._db.attempt():
                self._db.executemany(
                    "INSERT INTO history (id, time, owner, recipient, book, href, action, "
                    "changes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(e.id, e.time or now_iso(), e.owner, e.recipient, e.book, e.href,
                      e.action, _changes_json(e.changes)) for e in found if e.id])
                ids_given(self._db, "history")
                # an entry without an id gets the next one (not NULL given for the id: only
                # SQLite's INTEGER PRIMARY KEY makes an id of a NULL)
                self._db.executemany(
                    "INSERT INTO history (time, owner, recipient, book, href, action, "
                    "changes) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(e.time or now_iso(), e.owner, e.recipient, e.book, e.href, e.action,
                      _changes_json(e.changes)) for e in found if not e.id])
        except self._db.IntegrityError as e:
            raise ValueError("two history entries have the same id: %s" % e) from e

    def all_undone(self, after: int = 0, limit: int = 1000) -> list[UndoneValue]:
        return [UndoneValue(r["owner"], r["recipient"], r["field"], r["value_key"], r["kept"],
                            r["entry"], r["id"]) for r in self._db.rows(
            "SELECT * FROM undone_values WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]

    def forget_recipient(self, recipient: str) -> int:
        with self._db.transaction():
            self._db.execute("DELETE FROM history_undone WHERE entry IN "
                             "(SELECT id FROM history WHERE recipient = ?)", (recipient,))
            self._db.execute("DELETE FROM undone_values WHERE recipient = ?", (recipient,))
            return self._db.execute("DELETE FROM history WHERE recipient = ?",
                                    (recipient,)).rowcount


def _changes_json(changes: Iterable[Change]) -> str:
    return json.dumps([{"field": c.field, "before": c.before, "after": c.after}
                       for c in changes])
