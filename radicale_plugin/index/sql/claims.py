# SPDX-License-Identifier: GPL-3.0-or-later
"""Deliveries claimed with leases: the outbox shared by the workers of many processes.

A worker claims the deliveries of its round (:meth:`ClaimingOutbox.claim`): each is
marked leased to the worker's process (``lease_holder``) until a time
(``lease_until``), in one short transaction, and another claim leaves it out until the
claim ends (the delivery finished or released) or its lease lapses (the process died:
its deliveries come back to the others).  The worker renews its claims during a long
round.

Written once for both dialects: the candidates are read with ``FOR UPDATE SKIP
LOCKED`` where the dialect locks rows (PostgreSQL: a concurrent claim skips the rows
this one is taking instead of waiting for them, or taking them twice); SQLite has one
writer, whose transaction alone claims.

Jobs (owners' changes to plan) are claimed too (:meth:`ClaimingOutbox.claim_jobs`),
with a lease of the ``leases`` table per job (``plan:<id>``, no column of their own):
planning runs in several transactions, so a row lock would not last it.  The lease is
taken, then the job looked for again: one planned (and so deleted) by another process
in the meantime is left out.  Planning a change twice wrote nothing twice, but decided
every delivery of it twice.
"""

from __future__ import annotations

from typing import Iterable

from radicale_plugin import index
from radicale_plugin.index import Delivery, Job
from radicale_plugin.index.sql.database import Database, batches, marks, values_of
from radicale_plugin.index.sql.outbox import SQLOutbox, _delivery

#: What a worker picks up when due (as :meth:`Outbox.pending_deliveries`).
_WAITING = (index.PENDING, index.WITHDRAWING, index.ROLLED_BACK)

#: The columns, in the SQL both dialects read (schema version 7 on SQLite; PostgreSQL:
#: :mod:`radicale_plugin.index.postgres.leases_schema`): (table, column, type).
COLUMNS = [("deliveries", "lease_holder", "TEXT"),
           ("deliveries", "lease_until", "DOUBLE PRECISION NOT NULL DEFAULT 0")]
TABLES = """
CREATE INDEX IF NOT EXISTS deliveries_by_lease ON deliveries (lease_holder);
"""


#: The lease of a job being planned, in the ``leases`` table (:mod:`.leases`).
_PLAN = "plan:"
_JOB = _PLAN + "%d"
_JOB_LEASE = _PLAN + "%"  # every job's (LIKE)


def _skip_locked(db: Database) -> str:
    # where the dialect locks the rows a transaction reads to change (PostgreSQL), a
    # claim skips those another claim is taking; SQLite's one writer needs nothing
    return db.dialect.for_update + " SKIP LOCKED" if db.dialect.for_update else ""


class ClaimingOutbox(SQLOutbox):
    """The outbox, with claims that keep the workers of several processes apart."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._db = db

    def claim(self, holder: str, limit: int, now: float, lease: float,
              skip: Iterable[tuple[str, str]] = ()) -> list[Delivery]:
        busy = set(skip)
        with self._db.transaction(durable=False):  # a claim lost is nobody's: harmless
            found = []
            for state in _WAITING:  # each an index range in queue order: no sort of the queue
                found += [r for r in self._db.rows(
                    "SELECT owner, recipient, due, queued FROM deliveries WHERE state = ? "
                    "AND due <= ? AND lease_until <= ? ORDER BY due, queued LIMIT ?"
                    + _skip_locked(self._db), (state, now, now, limit + len(busy)))
                    if (r[0], r[1]) not in busy]
            # both kinds in one queue order, so that neither waits for the other to run dry
            found.sort(key=lambda r: (r[2], r[3] or 0))
            chosen = [(r[0], r[1]) for r in found[:limit]]
            self._lease(chosen, holder, now + lease)
            got = self._read(holder, now + lease)
        return [got[k] for k in chosen if k in got]

    def _lease(self, pairs: Iterable[tuple[str, str]], holder: str | None, until: float,
               only: str = "", only_args: tuple = ()) -> None:
        """Lease these deliveries to ``holder`` (None: to nobody) until ``until``: one
        statement per :func:`batches` of them, not one a delivery (PostgreSQL: a round trip
        each).  ``only``: a further condition on the rows (``deliveries.`` columns), with
        its ``only_args``.  Joined on a list of 50 keys: each looked up in an index (3×
        quicker than as many ORs on PostgreSQL; a longer list is hashed against the whole
        table instead)."""
        for batch in batches(pairs):
            values, args = values_of(batch)
            self._db.execute(
                "WITH v(o, r) AS (VALUES " + values + ") UPDATE deliveries SET lease_holder "
                "= ?, lease_until = ? FROM v WHERE deliveries.owner = v.o AND "
                "deliveries.recipient = v.r" + only, [*args, holder, until, *only_args])

    def claim_jobs(self, holder: str, limit: int, now: float, lease: float) -> list[Job]:
        taken = []
        for job in self.pending_jobs(limit):
            # one short transaction a job: a claim never waits behind another's whole batch
            with self._db.transaction(durable=False):
                if not self._db.execute(
                        "INSERT INTO leases (duty, holder, expires) VALUES (?, ?, ?) "
                        "ON CONFLICT (duty) DO UPDATE SET holder = excluded.holder, "
                        "expires = excluded.expires "
                        "WHERE leases.holder = excluded.holder OR leases.expires <= ?",
                        (_JOB % job.id, holder, now + lease, now)).rowcount:
                    continue  # another process is planning it
                if self._db.value("SELECT 1 FROM jobs WHERE id = ?", (job.id,)) is None:
                    # planned by another process since it was read
                    self._db.execute("DELETE FROM leases WHERE duty = ?", (_JOB % job.id,))
                    continue
            taken.append(job)
        return taken

    def plan(self, job: Job, targets: dict[str, list[str]], spacing: float = 0.0) -> None:
        super().plan(job, targets, spacing)
        # the job is gone (planned): its lease with it; another claim finding the lease
        # taken or the job gone leaves it out either way
        self._db.execute("DELETE FROM leases WHERE duty = ?", (_JOB % job.id,))

    def _read(self, holder: str, until: float) -> dict[tuple[str, str], Delivery]:
        """The deliveries this claim leased (as :meth:`pending_deliveries` reads them),
        found by their lease (``deliveries_by_lease``: the holder's rounds, a few hundred
        rows whatever the queue's length).  Not joined on a list of keys: PostgreSQL
        hashed the whole table for that (7 ms a claim at 20,000 deliveries, growing)."""
        return {(r["owner"], r["recipient"]): _delivery(r) for r in self._db.rows(
            self._select + " WHERE d.lease_holder = ? AND d.lease_until = ?",
            (holder, until))}

    def renew(self, holder: str, pairs: Iterable[tuple[str, str]], until: float) -> int:
        wanted = list(pairs)
        renewed = 0
        with self._db.transaction(durable=False):
            for part in range(0, len(wanted), 200):
                chunk = wanted[part:part + 200]
                renewed += self._db.execute(
                    "UPDATE deliveries SET lease_until = ? WHERE lease_holder = ? AND (%s)"
                    % " OR ".join(["(owner = ? AND recipient = ?)"] * len(chunk)),
                    [until, holder, *(x for pair in chunk for x in pair)]).rowcount
        return renewed

    def release(self, holder: str, pairs: Iterable[tuple[str, str]] | None = None) -> None:
        if pairs is None:
            with self._db.transaction(durable=False):
                self._db.execute("UPDATE deliveries SET lease_holder = NULL, lease_until = 0 "
                                 "WHERE lease_holder = ?", (holder,))
                self._db.execute("DELETE FROM leases WHERE holder = ? AND duty LIKE ?",
                                 (holder, _JOB_LEASE))
            return
        self._lease(pairs, None, 0, " AND deliveries.lease_holder = ?", (holder,))

    def claimants(self, now: float) -> set[str]:
        return {r[0] for r in self._db.rows(
            "SELECT DISTINCT lease_holder FROM deliveries WHERE lease_holder IS NOT NULL "
            "AND lease_until > ? UNION SELECT holder FROM leases WHERE duty LIKE ? "
            "AND expires > ?", (now, _JOB_LEASE, now))}

    def _unclaim(self, deliveries: list[Delivery]) -> None:
        # a part's claims ended in one statement (a fan-out's part: up to 50)
        self._lease(sorted({(d.owner, d.recipient) for d in deliveries}), None, 0,
                    " AND deliveries.lease_holder IS NOT NULL")

    def finish(self, delivery: Delivery) -> None:
        with self._db.transaction():
            super().finish(delivery)
            self._unclaim([delivery])

    def finish_many(self, deliveries: Iterable[Delivery], spacing: float = 0.0) -> None:
        found = list({(d.owner, d.recipient, d.wanted_seq): d for d in deliveries}.values())
        with self._db.transaction():
            if len({(d.owner, d.recipient) for d in found}) < len(found):
                # a pair twice (two changes): its row takes the values of the one it is at
                super().finish_many(found, spacing)
                self._unclaim(found)
                return
            # a part's finishes and the end of its claims in one statement (up to 50)
            for batch in batches(found):
                self._finish_batch(batch, unclaim=True)
            self._delivered_meanwhile(found, spacing)

    def interrupted(self, now: float | None = None) -> list[Delivery]:
        if now is None:
            return super().interrupted()
        got = [self.delivery(r[0], r[1]) for r in self._db.rows(
            "SELECT owner, recipient FROM deliveries WHERE intent IS NOT NULL "
            "AND lease_until <= ? ORDER BY owner, recipient", (now,))]
        return [d for d in got if d is not None]

    def has_work(self, now: float) -> bool:
        # a job another process is planning is its work, as a claimed delivery
        return bool(self._db.value(
            "SELECT EXISTS (SELECT 1 FROM jobs j WHERE NOT EXISTS (SELECT 1 FROM leases l "
            "WHERE l.duty = ? || CAST(j.id AS TEXT) AND l.expires > ?)) "
            "OR EXISTS (SELECT 1 FROM deliveries "
            "WHERE state IN (%s) AND due <= ? AND lease_until <= ?)" % marks(list(_WAITING)),
            (_PLAN, now, *_WAITING, now, now)))

    def next_due(self) -> float | None:
        found = self._db.value(
            "SELECT MIN(CASE WHEN lease_until > due THEN lease_until ELSE due END) "
            "FROM deliveries WHERE state IN (%s)" % marks(list(_WAITING)), _WAITING)
        return float(found) if found is not None else None
