# SPDX-License-Identifier: GPL-3.0-or-later
"""Invites and their uses in SQL (tables of schema version 5)."""

from __future__ import annotations

from typing import Iterable

from radicale_plugin import index
from radicale_plugin.index import Invite, InviteUse
from radicale_plugin.index.sql.database import Database, Row


def _invite(row: Row) -> Invite:
    return Invite(row["id"], row["owner"], row["token_hash"], row["created"], row["expires"],
                  row["max_uses"], row["uses"], row["revoked"], row["label"] or "")


def _use(row: Row) -> InviteUse:
    return InviteUse(row["invite"], row["recipient"], row["time"])


class SQLInviteStore(index.InviteStore):
    """The ``invites`` and ``invite_uses`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, invite: Invite) -> None:
        try:
            with self._db.transaction(), self._db.attempt():
                self._insert(invite)
        except self._db.IntegrityError as e:
            raise ValueError("an invite with that id or token exists already") from e

    def _insert(self, invite: Invite) -> None:
        self._db.execute(
            "INSERT INTO invites (id, owner, token_hash, created, expires, max_uses, uses, "
            "revoked, label) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (invite.id, invite.owner, invite.token_hash, invite.created, invite.expires,
             invite.max_uses, invite.uses, invite.revoked, invite.label))

    def get(self, invite_id: str) -> Invite | None:
        row = self._db.row("SELECT * FROM invites WHERE id = ?", (invite_id,))
        return _invite(row) if row else None

    def by_token_hash(self, token_hash: str) -> Invite | None:
        row = self._db.row("SELECT * FROM invites WHERE token_hash = ?", (token_hash,))
        return _invite(row) if row else None

    def of_owner(self, owner: str) -> list[Invite]:
        return [_invite(r) for r in self._db.rows(
            "SELECT * FROM invites WHERE owner = ? ORDER BY created DESC, id", (owner,))]

    def uses(self, invite_id: str) -> list[InviteUse]:
        return [_use(r) for r in self._db.rows(
            "SELECT * FROM invite_uses WHERE invite = ? ORDER BY time, recipient",
            (invite_id,))]

    def use(self, invite_id: str, recipient: str, now: float) -> bool:
        with self._db.transaction():
            # locked until the commit: two processes never both take the last use
            row = self._db.row("SELECT * FROM invites WHERE id = ?" + self._db.dialect.for_update,
                               (invite_id,))
            found = _invite(row) if row else None
            if found is None or found.revoked is not None or (
                    found.expires is not None and now >= found.expires):
                return False
            if self._db.value("SELECT 1 FROM invite_uses WHERE invite = ? AND recipient = ?",
                              (invite_id, recipient)):
                return True  # accepted before: harmless, and not counted again
            if found.max_uses is not None and found.uses >= found.max_uses:
                return False
            self._db.execute("INSERT INTO invite_uses (invite, recipient, time) "
                             "VALUES (?, ?, ?)", (invite_id, recipient, now))
            self._db.execute("UPDATE invites SET uses = uses + 1 WHERE id = ?", (invite_id,))
            return True

    def unuse(self, invite_id: str, recipient: str) -> None:
        with self._db.transaction():
            if self._db.execute("DELETE FROM invite_uses WHERE invite = ? AND recipient = ?",
                                (invite_id, recipient)).rowcount:
                self._db.execute("UPDATE invites SET uses = uses - 1 WHERE id = ? AND uses > 0",
                                 (invite_id,))

    def revoke(self, invite_id: str, now: float) -> bool:
        return self._db.execute("UPDATE invites SET revoked = ? WHERE id = ? AND revoked IS NULL",
                                (now, invite_id)).rowcount > 0

    def created_since(self, owner: str, since: float) -> int:
        return self._db.count("invites", "created >= ?", (since,), owner=owner)

    # -- backups and accounts -------------------------------------------------------
    def all(self) -> list[Invite]:
        return [_invite(r) for r in self._db.rows(
            "SELECT * FROM invites ORDER BY owner, created, id")]

    def all_uses(self) -> list[InviteUse]:
        return [_use(r) for r in self._db.rows(
            "SELECT * FROM invite_uses ORDER BY invite, time, recipient")]

    def restore(self, invite: Invite, uses: Iterable[InviteUse]) -> None:
        with self._db.transaction():
            self.add(invite)
            self._db.executemany(
                "INSERT INTO invite_uses (invite, recipient, time) VALUES (?, ?, ?) "
                "ON CONFLICT (invite, recipient) DO UPDATE SET time = excluded.time",
                [(invite.id, u.recipient, u.time) for u in uses])

    def forget_user(self, user: str) -> None:
        with self._db.transaction():
            self._db.execute("DELETE FROM invite_uses WHERE recipient = ? OR invite IN "
                             "(SELECT id FROM invites WHERE owner = ?)", (user, user))
            self._db.execute("DELETE FROM invites WHERE owner = ?", (user,))
