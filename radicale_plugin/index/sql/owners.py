# SPDX-License-Identifier: GPL-3.0-or-later
"""Owners in SQL: me cards, settings, views and the values they ever had."""

from __future__ import annotations

import json
from typing import Iterable

from radicale_plugin import index
from radicale_plugin.index import Owner
from radicale_plugin.index.sql.database import Database, Row, chunks, marks, now_iso
from radicale_plugin.vcard.view import View


#: Notices kept per owner (the newest).
MAX_NOTICES = 20


class SQLOwnerStore(index.OwnerStore):
    """The ``owners`` and ``owner_values`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def _owner(user: str, row: Row | None) -> Owner:
        if row is None:
            return Owner(user)
        owner = Owner(user, row["book"], row["href"], row["uid"],
                      card_view=View.from_json(row["card_view"]),
                      view=View.from_json(row["view"]), seq=row["seq"],
                      discoverability=row["discoverability"], card_stat=row["card_stat"] or "",
                      notices=json.loads(row["notices"] or "[]"), region=row["region"])
        if row["shared_fields"]:
            owner.shared_fields = json.loads(row["shared_fields"])
        owner.withdrawn_fields = json.loads(row["withdrawn_fields"] or "[]")
        owner.rules = json.loads(row["rules"] or "[]")
        owner.audiences = json.loads(row["audiences"] or "{}")
        return owner

    def get(self, user: str) -> Owner:
        return self._owner(user, self._db.row('SELECT * FROM owners WHERE "user" = ?', (user,)))

    def get_many(self, users: Iterable[str]) -> dict[str, Owner]:
        wanted = sorted(set(users))
        out = {user: Owner(user) for user in wanted}
        for chunk in chunks(wanted):
            for row in self._db.rows('SELECT * FROM owners WHERE "user" IN (%s)' % marks(chunk),
                                     chunk):
                out[row["user"]] = self._owner(row["user"], row)
        return out

    def with_me_card(self) -> list[Owner]:
        return [self._owner(r["user"], r) for r in self._db.rows(
            'SELECT * FROM owners WHERE href IS NOT NULL ORDER BY "user"')]

    def discoverability_of(self, users: Iterable[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in chunks(sorted(set(users))):
            out.update((r[0], r[1]) for r in self._db.rows(
                'SELECT "user", discoverability FROM owners WHERE discoverability IS NOT NULL '
                'AND "user" IN (%s)' % marks(chunk), chunk))
        return out

    def set_card_stat(self, user: str, stat: str) -> None:
        self._db.execute('UPDATE owners SET card_stat = ? WHERE "user" = ?', (stat, user))

    def _ensure(self, user: str) -> None:
        self._db.execute('INSERT INTO owners ("user") VALUES (?) ON CONFLICT DO NOTHING', (user,))

    def _locked(self, user: str) -> Owner:
        """The owner, made if new, its row locked until the commit (PostgreSQL: another
        process changing it from what it read waits, rather than one change being lost)."""
        self._ensure(user)
        return self._owner(user, self._db.row(
            'SELECT * FROM owners WHERE "user" = ?' + self._db.dialect.for_update, (user,)))

    def _set(self, user: str, column: str, value: object) -> None:
        with self._db.transaction():
            self._ensure(user)
            self._db.execute('UPDATE owners SET %s = ? WHERE "user" = ?' % column, (value, user))

    def set_me_card(self, user: str, book: str | None, href: str | None,
                    uid: str | None) -> None:
        with self._db.transaction():
            self._ensure(user)
            self._db.execute('UPDATE owners SET book = ?, href = ?, uid = ? WHERE "user" = ?',
                             (book, href, uid, user))

    def set_shared_fields(self, user: str, fields: list[str], withdrawn: list[str]) -> None:
        with self._db.transaction():
            self._ensure(user)
            self._db.execute("UPDATE owners SET shared_fields = ?, withdrawn_fields = ? "
                             'WHERE "user" = ?', (json.dumps(fields), json.dumps(withdrawn), user))

    def set_rules(self, user: str, rules: list[str]) -> None:
        self._set(user, "rules", json.dumps(rules))

    def set_audiences(self, user: str, audiences: dict) -> None:
        self._set(user, "audiences", json.dumps(audiences, sort_keys=True) if audiences else None)

    def set_discoverability(self, user: str, value: str) -> None:
        self._set(user, "discoverability", value)

    def set_region(self, user: str, region: str | None) -> None:
        self._set(user, "region", region)

    def record_view(self, user: str, card_view: View | None, view: View | None,
                    values: Iterable[tuple[str, str]], force: bool = False) -> bool:
        with self._db.transaction():
            current = self._locked(user)
            if _same(current.view, view) and _same(current.card_view, card_view) and not (
                    force and view is not None):
                return False
            self._db.execute('UPDATE owners SET card_view = ? WHERE "user" = ?',
                             (card_view.to_json() if card_view else None, user))
            if view is None:
                # the me card is gone: stop everything, never delete copies
                self._db.execute('UPDATE owners SET view = NULL WHERE "user" = ?', (user,))
                self._db.execute("DELETE FROM jobs WHERE owner = ?", (user,))
                self._db.execute("UPDATE deliveries SET state = ?, updated = ?, due = 0 "
                                 "WHERE owner = ? AND state NOT IN (?, ?, ?)",
                                 (index.STOPPED, now_iso(), user, index.STOPPED,
                                  index.WITHDRAWING, index.WITHDRAWN))
                self._db.execute("DELETE FROM offers WHERE owner = ? AND state != ?",
                                 (user, index.OFFER_REFUSED))
                return True
            seq = current.seq + 1
            self._db.executemany(
                "INSERT INTO owner_values (owner, field, value_key) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING", [(user, f, k) for f, k in sorted(set(values))])
            self._db.execute('UPDATE owners SET view = ?, seq = ? WHERE "user" = ?',
                             (view.to_json(), seq, user))
            self._db.execute("INSERT INTO owner_views (owner, seq, view) VALUES (?, ?, ?) "
                             "ON CONFLICT (owner, seq) DO UPDATE SET view = excluded.view",
                             (user, seq, view.to_json()))
            self._db.execute("INSERT INTO jobs (owner, seq, created) VALUES (?, ?, ?)",
                             (user, seq, now_iso()))
            return True

    def view_at(self, user: str, seq: int) -> View | None:
        return View.from_json(self._db.value(
            "SELECT view FROM owner_views WHERE owner = ? AND seq = ?", (user, seq)))

    def past_values(self, user: str) -> set[tuple[str, str]]:
        return {(r[0], r[1]) for r in self._db.rows(
            "SELECT field, value_key FROM owner_values WHERE owner = ?", (user,))}

    def add_notice(self, user: str, text: str) -> None:
        with self._db.transaction():
            notices = [n for n in self._locked(user).notices if n != text] + [text]
            self._set(user, "notices", json.dumps(notices[-MAX_NOTICES:]))

    # -- backups and accounts -------------------------------------------------------
    def all(self) -> list[Owner]:
        return [self._owner(r["user"], r) for r in self._db.rows(
            'SELECT * FROM owners ORDER BY "user"')]

    def views(self, user: str) -> dict[int, View]:
        out: dict[int, View] = {}
        for row in self._db.rows("SELECT seq, view FROM owner_views WHERE owner = ? "
                                 "ORDER BY seq", (user,)):
            found = View.from_json(row["view"])
            if found is not None:
                out[row["seq"]] = found
        return out

    def restore(self, owner: Owner, views: dict[int, View],
                values: Iterable[tuple[str, str]]) -> None:
        o = owner
        with self._db.transaction():
            # the backup's owner whole: a column it does not give is reset, not kept
            self._db.execute('DELETE FROM owners WHERE "user" = ?', (o.user,))
            self._db.execute(
                'INSERT INTO owners ("user", book, href, uid, shared_fields, rules, '
                "view, seq, withdrawn_fields, card_view, discoverability, notices, card_stat, "
                "region) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (o.user, o.book, o.href, o.uid, json.dumps(o.shared_fields),
                 json.dumps(o.rules), o.view.to_json() if o.view else None, o.seq,
                 json.dumps(o.withdrawn_fields), o.card_view.to_json() if o.card_view else None,
                 o.discoverability, json.dumps(o.notices), o.card_stat or None, o.region))
            if o.audiences:
                self.set_audiences(o.user, o.audiences)
            self._db.executemany(
                "INSERT INTO owner_views (owner, seq, view) VALUES (?, ?, ?) "
                "ON CONFLICT (owner, seq) DO UPDATE SET view = excluded.view",
                [(o.user, seq, v.to_json()) for seq, v in sorted(views.items())])
            self._db.executemany(
                "INSERT INTO owner_values (owner, field, value_key) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING", [(o.user, f, k) for f, k in sorted(set(values))])

    def forget_user(self, user: str) -> None:
        with self._db.transaction():
            self._db.execute('DELETE FROM owners WHERE "user" = ?', (user,))
            self._db.execute("DELETE FROM owner_views WHERE owner = ?", (user,))
            self._db.execute("DELETE FROM owner_values WHERE owner = ?", (user,))



def _same(old: View | None, new: View | None) -> bool:
    if old is None or new is None:
        return old is new
    return old.fingerprint() == new.fingerprint()
