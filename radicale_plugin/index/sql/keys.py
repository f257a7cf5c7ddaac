# SPDX-License-Identifier: GPL-3.0-or-later
"""Keys in SQL: claims, verifications (one holder per key), codes and sends."""

from __future__ import annotations

from typing import Iterable

from radicale_plugin import index
from radicale_plugin.index import Code, Key
from radicale_plugin.index.sql.database import Database, chunks, marks, now_iso


class SQLKeyStore(index.KeyStore):
    """The ``keys``, ``codes``, ``code_sends``, ``key_guesses`` and ``key_claims`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def of_user(self, user: str) -> list[Key]:
        return [Key(r["user"], r["key"], bool(r["on_card"]), r["verified"], r["lost"])
                for r in self._db.rows('SELECT * FROM keys WHERE "user" = ? ORDER BY key',
                                       (user,))]

    def set_claims(self, user: str, keys: Iterable[str]) -> None:
        wanted = sorted(set(keys))
        with self._db.transaction():
            self._db.execute('UPDATE keys SET on_card = 0 WHERE "user" = ?', (user,))
            self._db.executemany(
                'INSERT INTO keys ("user", key, on_card) VALUES (?, ?, 1) '
                'ON CONFLICT ("user", key) DO UPDATE SET on_card = 1', [(user, k) for k in wanted])
            # an unverified key that left the card is forgotten; a verified one stays,
            # so that copies carrying it can still be found and cleaned
            self._db.execute('DELETE FROM keys WHERE "user" = ? AND on_card = 0 '
                             "AND verified IS NULL", (user,))

    def holders(self, keys: Iterable[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in chunks(sorted(set(keys))):
            for row in self._db.rows(
                    'SELECT key, "user" FROM keys WHERE verified IS NOT NULL AND lost IS NULL '
                    "AND key IN (%s)" % marks(chunk), chunk):
                out[row[0]] = row[1]
        return out

    def claimed(self, keys: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for chunk in chunks(sorted(set(keys))):
            out.update(r[0] for r in self._db.rows(
                "SELECT DISTINCT key FROM keys WHERE on_card = 1 AND key IN (%s)"
                % marks(chunk), chunk))
        return out

    def claimants(self, keys: Iterable[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for chunk in chunks(sorted(set(keys))):
            for row in self._db.rows('SELECT key, "user" FROM keys WHERE on_card = 1 '
                                     "AND key IN (%s)" % marks(chunk), chunk):
                out.setdefault(row[0], set()).add(row[1])
        return out

    def verified(self, user: str) -> set[str]:
        return {r[0] for r in self._db.rows(
            'SELECT key FROM keys WHERE "user" = ? AND verified IS NOT NULL AND lost IS NULL',
            (user,))}

    def verify(self, user: str, key: str) -> str | None:
        now = now_iso()
        with self._db.transaction():
            try:
                with self._db.attempt():
                    return self._verify(user, key, now)
            except self._db.IntegrityError:
                # a key with no row yet, verified by another process meanwhile (PostgreSQL:
                # the insert waited for its commit, then broke keys_one_holder): read
                # again, and take it over from that holder, as one after the other would
                return self._verify(user, key, now)

    def _verify(self, user: str, key: str, now: str) -> str | None:
        # every row of the key locked until the commit (PostgreSQL): a second
        # verification of it waits, then sees this one's holder
        previous = next((r[0] for r in self._db.rows(
            'SELECT "user", verified, lost FROM keys WHERE key = ? ORDER BY "user"'
            + self._db.dialect.for_update, (key,)) if r[1] is not None and r[2] is None), None)
        if previous == user:
            return None
        if previous is not None:
            self._db.execute('UPDATE keys SET lost = ? WHERE "user" = ? AND key = ?',
                             (now, previous, key))
        self._db.execute(
            'INSERT INTO keys ("user", key, on_card, verified) VALUES (?, ?, 0, ?) '
            'ON CONFLICT ("user", key) DO UPDATE SET verified = excluded.verified, '
            "lost = NULL", (user, key, now))
        return previous

    def unverify(self, user: str, key: str) -> None:
        with self._db.transaction():
            self._db.execute("UPDATE keys SET verified = NULL, lost = NULL "
                             'WHERE "user" = ? AND key = ?', (user, key))
            self._db.execute('DELETE FROM keys WHERE "user" = ? AND key = ? AND on_card = 0',
                             (user, key))

    def put_code(self, code: Code) -> None:
        self._db.execute(
            'INSERT INTO codes ("user", key, digest, expires, attempts) VALUES (?, ?, ?, ?, ?) '
            'ON CONFLICT ("user", key) DO UPDATE SET digest = excluded.digest, '
            "expires = excluded.expires, attempts = excluded.attempts",
            (code.user, code.key, code.digest, code.expires, code.attempts))

    def code(self, user: str, key: str) -> Code | None:
        row = self._db.row('SELECT * FROM codes WHERE "user" = ? AND key = ?', (user, key))
        if row is None:
            return None
        return Code(row["user"], row["key"], row["digest"], row["expires"], row["attempts"])

    def count_attempt(self, user: str, key: str) -> None:
        self._db.execute('UPDATE codes SET attempts = attempts + 1 WHERE "user" = ? AND key = ?',
                         (user, key))

    def drop_code(self, user: str, key: str) -> None:
        self._db.execute('DELETE FROM codes WHERE "user" = ? AND key = ?', (user, key))

    def record_send(self, user: str, key: str, when: float) -> None:
        with self._db.transaction():
            self._db.execute('INSERT INTO code_sends ("user", key, time) VALUES (?, ?, ?)',
                             (user, key, when))
            # a day is the longest window anyone asks about
            self._db.execute("DELETE FROM code_sends WHERE time < ?", (when - 86400,))

    def sends_since(self, since: float, user: str | None = None,
                    key: str | None = None) -> int:
        return self._db.count("code_sends", "time >= ?", [since], user=user, key=key)

    def record_guess(self, user: str, key: str, when: float) -> None:
        with self._db.transaction():
            self._db.execute('INSERT INTO key_guesses (key, "user", time) VALUES (?, ?, ?)',
                             (key, user, when))
            # a week: the longest window the settings allow
            self._db.execute("DELETE FROM key_guesses WHERE time < ?", (when - 7 * 86400,))

    def guess_times(self, key: str, since: float) -> list[float]:
        return [r[0] for r in self._db.rows(
            "SELECT time FROM key_guesses WHERE key = ? AND time >= ? ORDER BY time",
            (key, since))]

    def record_claims(self, user: str, keys: Iterable[str], when: float) -> None:
        with self._db.transaction():
            self._db.executemany(
                'INSERT INTO key_claims ("user", key, time) VALUES (?, ?, ?) '
                'ON CONFLICT ("user", key) DO UPDATE SET time = excluded.time',
                [(user, k, when) for k in sorted(set(keys))])
            self._db.execute("DELETE FROM key_claims WHERE time < ?", (when - 7 * 86400,))

    def claimed_since(self, user: str, since: float) -> set[str]:
        return {r[0] for r in self._db.rows(
            'SELECT key FROM key_claims WHERE "user" = ? AND time >= ?', (user, since))}

    # -- backups and accounts -------------------------------------------------------
    def all(self) -> list[Key]:
        return [Key(r["user"], r["key"], bool(r["on_card"]), r["verified"], r["lost"])
                for r in self._db.rows('SELECT * FROM keys ORDER BY "user", key')]

    def restore(self, key: Key) -> None:
        try:
            with self._db.transaction(), self._db.attempt():
                self._db.execute(
                    'INSERT INTO keys ("user", key, on_card, verified, lost) '
                    "VALUES (?, ?, ?, ?, ?)",
                    (key.user, key.key, int(key.on_card), key.verified, key.lost))
        except self._db.IntegrityError as e:
            raise ValueError("%s of %s is given twice, or verified for another user already"
                             % (key.key, key.user)) from e

    def forget_user(self, user: str) -> None:
        with self._db.transaction():
            # key_guesses stay: they are about the key, whoever guessed
            for table in ("keys", "codes", "code_sends", "key_claims"):
                self._db.execute('DELETE FROM %s WHERE "user" = ?' % table, (user,))
