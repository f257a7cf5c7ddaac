# SPDX-License-Identifier: GPL-3.0-or-later
"""Policies and offers in SQL."""

from __future__ import annotations

from typing import Iterable

from radicale_plugin import index
from radicale_plugin.index import Offer
from radicale_plugin.index.sql.database import (Database, Row, batches, chunks,
                                                insert_rows, marks, now_iso, pairs_where,
                                                values_of)


#: The columns of an offer, in the order of :func:`_values`.
_COLUMNS = ("owner, recipient, seq, state, book, href, created, first_offered, until, "
            "refused_seq")


def _values(offer: Offer, now: str) -> tuple:
    return (offer.owner, offer.recipient, offer.seq, offer.state, offer.book, offer.href,
            offer.created or now, offer.first_offered or now, offer.until, offer.refused_seq)


def _offer(row: Row) -> Offer:
    return Offer(row["owner"], row["recipient"], row["seq"], row["state"], row["book"],
                 row["href"], row["created"] or "", row["first_offered"] or "", row["until"],
                 row["refused_seq"])


class SQLConsentStore(index.ConsentStore):
    """The ``policies`` and ``offers`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def policies(self, recipient: str) -> dict[str, str]:
        return {r[0]: r[1] for r in self._db.rows(
            "SELECT owner, policy FROM policies WHERE recipient = ? ORDER BY owner",
            (recipient,))}

    def policies_of(self, recipients: Iterable[str]) -> dict[str, dict[str, str]]:
        wanted = sorted(set(recipients))
        out: dict[str, dict[str, str]] = {r: {} for r in wanted}
        for chunk in chunks(wanted):
            for row in self._db.rows(
                    "SELECT recipient, owner, policy FROM policies WHERE recipient IN (%s) "
                    "ORDER BY recipient, owner" % marks(chunk), chunk):
                out[row[0]][row[1]] = row[2]
        return out

    def set_policy(self, recipient: str, owner: str, policy: str | None) -> None:
        if policy is None:
            self._db.execute("DELETE FROM policies WHERE recipient = ? AND owner = ?",
                             (recipient, owner))
        else:
            self._db.execute(
                "INSERT INTO policies (recipient, owner, policy) VALUES (?, ?, ?) "
                "ON CONFLICT (recipient, owner) DO UPDATE SET policy = excluded.policy",
                (recipient, owner, policy))

    def offer(self, owner: str, recipient: str) -> Offer | None:
        row = self._db.row("SELECT * FROM offers WHERE owner = ? AND recipient = ?",
                           (owner, recipient))
        return _offer(row) if row else None

    def offers_for(self, recipient: str) -> list[Offer]:
        return [_offer(r) for r in self._db.rows(
            "SELECT * FROM offers WHERE recipient = ? ORDER BY created NULLS FIRST, owner",
            (recipient,))]

    def offers_from(self, owner: str) -> list[Offer]:
        return [_offer(r) for r in self._db.rows(
            "SELECT * FROM offers WHERE owner = ? ORDER BY recipient", (owner,))]

    def put_offer(self, offer: Offer, counted: bool = True) -> None:
        self.put_offers([(offer, counted)])

    def offers_of(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Offer]:
        found: dict[tuple[str, str], Offer] = {}
        for batch in batches(sorted(set(pairs))):
            found.update(((r["owner"], r["recipient"]), _offer(r))
                         for r in self._db.rows(*self._offers_at(batch)))
        return found

    def _offers_at(self, pairs: list[tuple[str, str]]) -> tuple[str, list[str]]:
        """The statement reading the offers of ``pairs``, and its arguments.

        PostgreSQL: each pair looked up in the primary key (a lateral join on the list).
        As ORs of pairs, PostgreSQL planned the read by the table's last statistics: for
        a table analyzed while small (a first fan-out of offers) 5-18 ms a part at
        5,000-20,000 offers; pair by pair, 0.4-0.5 ms whatever the statistics.  SQLite
        looks each OR up in the index (:func:`pairs_where`) and has no lateral join."""
        if self._db.dialect.name != "postgresql":
            where, args = pairs_where(("owner", "recipient"), pairs)
            return "SELECT * FROM offers WHERE " + where, args
        values, args = values_of(pairs)
        return ("WITH k(o, r) AS (VALUES " + values + ") SELECT x.* FROM k JOIN LATERAL "
                "(SELECT * FROM offers WHERE offers.owner = k.o AND offers.recipient = k.r "
                "LIMIT 1) x ON true"), args

    def put_offers(self, offers: Iterable[tuple[Offer, bool]]) -> None:
        # as put_offer one after the other, in three statements for up to 50: the new ones
        # inserted (an insert that does nothing where the offer exists tells which are new
        # in one step: another process making the same offer at once waits for it
        # (PostgreSQL), then finds it there, and the offer is counted once), the others
        # replaced, the new counted ones logged.  The log is purged once per round
        # (purge_offer_log), not per offer: a purge per offer made a fan-out of offers
        # quadratic in the log's length
        given = {(o.owner, o.recipient): (o, counted) for o, counted in offers}
        # in one order: two writers of overlapping offers take their rows' locks alike
        wanted = {key: given[key] for key in sorted(given)}
        if not wanted:
            return
        now = now_iso()
        with self._db.transaction():
            made: set[tuple[str, str]] = set()
            for batch in batches(wanted.values()):
                values, args = values_of([_values(o, now) for o, _ in batch])
                made.update((r[0], r[1]) for r in self._db.execute(
                    "INSERT INTO offers (" + _COLUMNS + ") VALUES " + values
                    + " ON CONFLICT DO NOTHING RETURNING owner, recipient", args).fetchall())
            for batch in batches(o for key, (o, _) in wanted.items() if key not in made):
                self._put_rows(batch, now)
            insert_rows(self._db, "INSERT INTO offer_log (owner, recipient, time)",
                        [(o.owner, o.recipient, now) for key, (o, counted) in wanted.items()
                         if counted and key in made])

    def _put_rows(self, offers: list[Offer], now: str) -> None:
        values, args = values_of([_values(o, now) for o in offers])
        self._db.execute(
            "INSERT INTO offers (" + _COLUMNS + ") VALUES " + values + " "
            "ON CONFLICT (owner, recipient) DO UPDATE SET seq = excluded.seq, "
            "state = excluded.state, book = excluded.book, href = excluded.href, "
            "created = excluded.created, until = excluded.until, "
            "refused_seq = excluded.refused_seq", args)

    def drop_offer(self, owner: str, recipient: str) -> None:
        self._db.execute("DELETE FROM offers WHERE owner = ? AND recipient = ?",
                         (owner, recipient))

    def drop_offers(self, pairs: Iterable[tuple[str, str]]) -> None:
        # one statement for many (the fan-out's part: 10)
        for batch in batches(pairs):
            where, args = pairs_where(("owner", "recipient"), batch)
            self._db.execute("DELETE FROM offers WHERE " + where, args)

    def new_offers_since(self, owner: str, since: str) -> int:
        return int(self._db.value(
            "SELECT COUNT(*) FROM offer_log WHERE owner = ? AND time >= ?", (owner, since)))

    def oldest_new_offer_since(self, owner: str, since: str) -> str | None:
        found = self._db.value("SELECT MIN(time) FROM offer_log WHERE owner = ? AND time >= ?",
                               (owner, since))
        return str(found) if found is not None else None

    def purge_offer_log(self, before: str) -> int:
        # offer_log_by_time (schema 5): a range of the index, whatever the log's length
        return self._db.execute("DELETE FROM offer_log WHERE time < ?", (before,)).rowcount

    def first_share(self, owner: str) -> tuple[int, str] | None:
        row = self._db.row("SELECT seq, time FROM first_shares WHERE owner = ?", (owner,))
        return (int(row[0]), str(row[1])) if row else None

    def start_first_share(self, owner: str, seq: int, when: str) -> tuple[int, str]:
        with self._db.transaction():
            self._db.execute("INSERT INTO first_shares (owner, seq, time) VALUES (?, ?, ?) "
                             "ON CONFLICT DO NOTHING", (owner, seq, when))
            found = self.first_share(owner)
        assert found is not None
        return found

    # -- backups and accounts -------------------------------------------------------
    def all_policies(self) -> list[tuple[str, str, str]]:
        return [(r[0], r[1], r[2]) for r in self._db.rows(
            "SELECT recipient, owner, policy FROM policies ORDER BY recipient, owner")]

    def all_offers(self) -> list[Offer]:
        return [_offer(r) for r in self._db.rows(
            "SELECT * FROM offers ORDER BY owner, recipient")]

    def restore_offer(self, offer: Offer) -> None:
        # straight in: an offer carried over is no new offer of the day (offer_log)
        self._db.execute(
            "INSERT INTO offers (owner, recipient, seq, state, book, href, created, "
            "first_offered, until, refused_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (owner, recipient) DO UPDATE SET seq = excluded.seq, "
            "state = excluded.state, book = excluded.book, href = excluded.href, "
            "created = excluded.created, first_offered = excluded.first_offered, "
            "until = excluded.until, refused_seq = excluded.refused_seq",
            (offer.owner, offer.recipient, offer.seq, offer.state, offer.book, offer.href,
             offer.created, offer.first_offered, offer.until, offer.refused_seq))

    def forget_user(self, user: str) -> None:
        with self._db.transaction():
            self._db.execute("DELETE FROM policies WHERE recipient = ? OR owner = ?",
                             (user, user))
            self._db.execute("DELETE FROM offers WHERE owner = ? OR recipient = ?",
                             (user, user))
            # the log of offers made to the user stays: it is their owners' daily count
            self._db.execute("DELETE FROM offer_log WHERE owner = ?", (user,))
            self._db.execute("DELETE FROM first_shares WHERE owner = ?", (user,))
