# SPDX-License-Identifier: GPL-3.0-or-later
"""The outbox in SQL: ``jobs`` (changes to plan) and ``deliveries``.

Why one module over 400 lines: jobs and deliveries are one queue (planning a job is
writing its deliveries, finishing one may re-plan), read and written by one store; the
claims of several processes on it are apart (:mod:`.claims`).
"""

from __future__ import annotations

import json
import time
from typing import Iterable

from radicale_plugin import index
from radicale_plugin.index import Change, Delivery, Intent, Job, QueueCounts
from radicale_plugin.index.sql.database import (Database, Row, batches, ids_given,
                                                insert_rows, marks, now_iso, values_of)
from radicale_plugin.index.sql.dialect import Dialect
from radicale_plugin.vcard.view import View

#: What the worker picks up when due (a rolled-back copy waits for its repair).
_WAITING = (index.PENDING, index.WITHDRAWING, index.ROLLED_BACK)
#: Deliveries planned per transaction: a storage hook waiting for the writer waits for one
#: part at most (a few ms), not for a plan of 10,000 recipients.
_PLAN_PART = 100
_ENDED = (index.STOPPED, index.WITHDRAWING, index.WITHDRAWN)
#: A row still as its reader saw it (:attr:`Delivery.seen`; ``v``: the finished deliveries,
#: ``seen_state`` '' for one made by hand).  Every decision that makes a delivery wait
#: again or ends it changes its state or gives it a new place in the queue, so a round's
#: finish never overwrites a stop, a withdrawal or a new plan made while it was writing.
_AS_SEEN = ("(v.seen_state = '' OR (deliveries.state = v.seen_state "
            "AND COALESCE(deliveries.queued, 0) = v.seen_queued))")


def _select(dialect: Dialect) -> str:
    """A delivery with the view of the change it last delivered, and the values ever
    written (JSON pairs)."""
    return ("SELECT d.*, v.view AS delivered_view, (SELECT %s FROM written w "
            "WHERE w.owner = d.owner AND w.recipient = d.recipient) AS written_values "
            "FROM deliveries d LEFT JOIN owner_views v ON v.owner = d.owner "
            "AND v.seq = d.delivered_seq" % dialect.json_pairs("w.field", "w.value_key"))


def _parts(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _intent_json(intent: Intent) -> str:
    return json.dumps({"view": intent.view.to_json(), "book": intent.book,
                       "href": intent.href, "action": intent.action,
                       "changes": [[c.field, c.before, c.after] for c in intent.changes],
                       "after_hash": intent.after_hash})


def _intent(text: str | None) -> Intent | None:
    if not text:
        return None
    data = json.loads(text)
    view = View.from_json(data["view"])
    assert view is not None
    return Intent(view, data["book"], data["href"], data["action"],
                  tuple(Change(*c) for c in data["changes"]), data["after_hash"])


def _delivery(row: Row) -> Delivery:
    return Delivery(row["owner"], row["recipient"], row["state"], row["wanted_seq"],
                    row["delivered_seq"], View.from_json(row["delivered_view"]),
                    _intent(row["intent"]),
                    {(f, k) for f, k in json.loads(row["written_values"] or "[]")},
                    json.loads(row["reasons"] or "[]"), row["error"] or "",
                    row["updated"] or "", row["due"] or 0.0, row["delivered_at"] or 0.0,
                    row["attempts"] or 0, row["repairs"] or 0,
                    seen=(row["state"], row["queued"] or 0))


def _seen(delivery: Delivery) -> tuple[str, int]:
    """The (state, place) a finish expects the row still to have ('': not checked)."""
    return delivery.seen if delivery.seen is not None else ("", 0)


class SQLOutbox(index.Outbox):
    """Jobs and deliveries."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._select = _select(db.dialect)

    def requeue(self, user: str, withdraw: bool = False) -> None:
        self._db.execute(
            'INSERT INTO jobs (owner, seq, created, withdraw) SELECT "user", seq, ?, ? '
            'FROM owners WHERE "user" = ? AND view IS NOT NULL',
            (now_iso(), int(withdraw), user))

    def restrict(self, user: str, recipients: list[str]) -> None:
        self._db.execute("UPDATE jobs SET only_recipients = ? WHERE id = "
                         "(SELECT MAX(id) FROM jobs WHERE owner = ?)",
                         (json.dumps(recipients), user))

    def pending_jobs(self, limit: int) -> list[Job]:
        # not durable: what a power loss takes back is done again (the older jobs replaced
        # again); the fan-out syncs before it writes any file (SharingIndex.sync)
        with self._db.transaction(durable=False):
            # an owner's newest change for everyone replaces their older ones
            self._db.execute(
                "UPDATE jobs SET withdraw = 1 WHERE only_recipients IS NULL AND withdraw = 0 "
                "AND id = (SELECT MAX(j.id) FROM jobs j WHERE j.owner = jobs.owner "
                "AND j.only_recipients IS NULL) AND EXISTS (SELECT 1 FROM jobs j "
                "WHERE j.owner = jobs.owner AND j.id < jobs.id AND j.withdraw = 1)")
            self._db.execute(
                "DELETE FROM jobs WHERE id < (SELECT MAX(j.id) FROM jobs j "
                "WHERE j.owner = jobs.owner AND j.only_recipients IS NULL)")
            rows = self._db.rows("SELECT * FROM jobs ORDER BY id LIMIT ?", (limit,))
        return [Job(r["id"], r["owner"], r["seq"],
                    json.loads(r["only_recipients"]) if r["only_recipients"] else None,
                    bool(r["withdraw"])) for r in rows]

    def _positions(self, count: int) -> int:
        """Reserve ``count`` places at the end of the queue; the first one's number."""
        self._db.execute("INSERT INTO meta (name, value) VALUES ('queued', '0') "
                         "ON CONFLICT DO NOTHING")
        # one statement, not a read then a write: two PostgreSQL transactions never take
        # the same places (the second waits for the first's row, then adds to its value)
        last = self._db.execute(
            "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + ? AS TEXT) "
            "WHERE name = 'queued' RETURNING value", (count,)).fetchall()[0][0]
        return int(last) - count + 1

    def plan(self, job: Job, targets: dict[str, list[str]], spacing: float = 0.0) -> None:
        now, clock = now_iso(), time.time()
        names = sorted(targets)
        for part in range(0, len(names), _PLAN_PART):
            # in parts: one huge transaction would keep every request's hook waiting
            chunk = names[part:part + _PLAN_PART]
            # not durable: the job stays queued until the last transaction below, and a
            # plan a power loss takes back is made again (an upsert); the fan-out syncs
            # before it writes any file (SharingIndex.sync)
            with self._db.transaction(durable=False):
                first = self._positions(len(chunk))
                insert_rows(
                    self._db, "INSERT INTO deliveries (owner, recipient, state, wanted_seq, "
                    "reasons, updated, queued)",
                    [(job.owner, recipient, index.PENDING, job.seq,
                      json.dumps(targets[recipient]), now, first + i)
                     for i, recipient in enumerate(chunk)],
                    " ON CONFLICT (owner, recipient) DO UPDATE SET "
                    # a copy that already holds this change is not written again
                    "state = CASE WHEN deliveries.state = ? AND deliveries.delivered_seq >= "
                    "excluded.wanted_seq THEN deliveries.state ELSE excluded.state END, "
                    # what waits keeps its place, but for one being written (claimed): its
                    # new place tells the round's finish that it was planned again meanwhile
                    # (:data:`_AS_SEEN`); what was written a moment ago waits a little
                    "queued = CASE WHEN deliveries.state = excluded.state AND "
                    "deliveries.lease_holder IS NULL THEN deliveries.queued "
                    "ELSE excluded.queued END, "
                    "due = CASE WHEN deliveries.delivered_at > ? THEN deliveries.delivered_at + ? "
                    "ELSE 0 END, wanted_seq = excluded.wanted_seq, reasons = excluded.reasons, "
                    "error = NULL, updated = excluded.updated, attempts = 0, "
                    # repairs of a rolled-back copy are counted per change
                    "repairs = CASE WHEN deliveries.wanted_seq = excluded.wanted_seq "
                    "THEN deliveries.repairs ELSE 0 END",
                    (index.DELIVERED, clock - spacing, spacing))
        with self._db.transaction(durable=False):
            if job.only is None:
                self._left_out(job, names, now)
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job.id,))
            self._prune_views(job.owner)

    def _left_out(self, job: Job, targets: list[str], now: str) -> None:
        """Recipients no longer targeted: stopped (copies stay), or withdrawn if asked."""
        spared: tuple[str, ...] = _ENDED
        state = index.STOPPED
        if job.withdraw:
            spared, state = (index.WITHDRAWING, index.WITHDRAWN), index.WITHDRAWING
        wanted = set(targets)
        gone = [r[0] for r in self._db.rows(
            "SELECT recipient FROM deliveries WHERE owner = ? AND state NOT IN (%s) "
            "ORDER BY recipient%s" % (marks(list(spared)), self._db.dialect.for_update),
            (job.owner, *spared)) if r[0] not in wanted]
        first = self._positions(len(gone)) if gone else 0
        self._db.executemany(
            "UPDATE deliveries SET state = ?, updated = ?, due = 0, queued = ?, attempts = 0 "
            "WHERE owner = ? AND recipient = ?",
            [(state, now, first + i, job.owner, r) for i, r in enumerate(gone)])
        # a pending offer goes with the target; a refusal stays the recipient's answer
        offered = [r[0] for r in self._db.rows(
            "SELECT recipient FROM offers WHERE owner = ? AND state != ?",
            (job.owner, index.OFFER_REFUSED)) if r[0] not in wanted]
        self._db.executemany("DELETE FROM offers WHERE owner = ? AND recipient = ?",
                             [(job.owner, r) for r in offered])

    def _prune_views(self, owner: str) -> None:
        self._db.execute(
            "DELETE FROM owner_views WHERE owner = ? AND seq NOT IN ("
            'SELECT seq FROM owners WHERE "user" = ? '
            "UNION SELECT seq FROM jobs WHERE owner = ? "
            "UNION SELECT wanted_seq FROM deliveries WHERE owner = ? "
            "UNION SELECT delivered_seq FROM deliveries WHERE owner = ? "
            "UNION SELECT seq FROM offers WHERE owner = ?)", (owner,) * 6)

    def pending_deliveries(self, limit: int, now: float,
                           skip: Iterable[tuple[str, str]] = ()) -> list[Delivery]:
        busy = set(skip)
        found = []
        for state in _WAITING:  # each an index range in queue order: no sort of the queue
            found += [r for r in self._db.rows(
                "SELECT owner, recipient, due, queued FROM deliveries WHERE state = ? "
                "AND due <= ? ORDER BY due, queued LIMIT ?", (state, now, limit + len(busy)))
                if (r[0], r[1]) not in busy]
        # both kinds in one queue order, so that neither waits for the other to run dry
        found.sort(key=lambda r: (r[2], r[3]))
        chosen = found[:limit]
        # the chosen keys joined on the primary key (SQLite reads the whole table for a
        # row-value IN (VALUES ...): 25 ms at 100,000 deliveries instead of 1)
        rows = {(r["owner"], r["recipient"]): r for part in _parts(chosen, 400)
                for r in self._db.rows(
                    "WITH k(o, r) AS (VALUES %s) " % ",".join(["(?, ?)"] * len(part))
                    + self._select.replace("FROM deliveries d",
                                           "FROM k CROSS JOIN deliveries d")
                    + " WHERE d.owner = k.o AND d.recipient = k.r",
                    [x for r in part for x in (r[0], r[1])])}
        return [_delivery(rows[(r[0], r[1])]) for r in chosen if (r[0], r[1]) in rows]

    def delivery(self, owner: str, recipient: str) -> Delivery | None:
        row = self._db.row(self._select + " WHERE d.owner = ? AND d.recipient = ?",
                           (owner, recipient))
        return _delivery(row) if row else None

    def rolled_back(self, owner: str, recipient: str, seq: int, due: float,
                    max_repairs: int) -> str | None:
        with self._db.transaction():
            cursor = self._db.execute(
                "UPDATE deliveries SET state = CASE WHEN repairs < ? THEN ? ELSE ? END, "
                "due = CASE WHEN repairs < ? THEN ? ELSE 0 END, "
                "repairs = CASE WHEN repairs + 1 < ? THEN repairs + 1 ELSE ? END, "
                "updated = ?, attempts = 0, "
                "queued = CASE WHEN repairs < ? THEN ? ELSE queued END "
                "WHERE owner = ? AND recipient = ? AND state = ? AND wanted_seq = ? "
                "AND delivered_seq = ? AND intent IS NULL",
                (max_repairs, index.ROLLED_BACK, index.BEHIND, max_repairs, due, max_repairs,
                 max_repairs, now_iso(), max_repairs, self._positions(1), owner, recipient,
                 index.DELIVERED, seq, seq))
            if not cursor.rowcount:
                return None
            return str(self._db.value("SELECT state FROM deliveries WHERE owner = ? "
                                      "AND recipient = ?", (owner, recipient)))

    def ensure(self, owner: str, recipient: str, seq: int) -> Delivery:
        # not queued: the caller (an accepted offer) delivers it itself
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO deliveries (owner, recipient, state, wanted_seq, reasons, "
                "updated) VALUES (?, ?, ?, ?, '[]', ?) ON CONFLICT DO NOTHING",
                (owner, recipient, index.PENDING, seq, now_iso()))
            found = self.delivery(owner, recipient)
            assert found is not None
            return found

    def set_intent(self, owner: str, recipient: str, intent: Intent | None,
                   values: Iterable[tuple[str, str]] = ()) -> None:
        with self._db.transaction():
            cursor = self._db.execute(
                "UPDATE deliveries SET intent = ? WHERE owner = ? AND recipient = ?",
                (_intent_json(intent) if intent else None, owner, recipient))
            if cursor.rowcount:
                self._db.executemany(
                    "INSERT INTO written (owner, recipient, field, value_key) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [(owner, recipient, f, k) for f, k in set(values)])

    def finish_many(self, deliveries: Iterable[Delivery], spacing: float = 0.0) -> None:
        # two statements for many (the fan-out's part: 10), each row given its values
        # (the last of a delivery given twice, as one update after the other); on SQLite
        # as quick as a statement a row (UPDATE ... FROM: SQLite 3.33)
        rows = {(d.owner, d.recipient, d.wanted_seq): d for d in deliveries}
        for batch in batches(rows.values()):
            self._finish_batch(batch)
        self._delivered_meanwhile(list(rows.values()), spacing)

    #: the row a finish's values are for (see _AS_SEEN)
    _FINISHED = "deliveries.wanted_seq = v.wanted_seq AND " + _AS_SEEN

    def _finish_batch(self, batch: list[Delivery], unclaim: bool = False) -> None:
        """One statement: each delivery of ``batch`` (one row of a pair each when
        ``unclaim``) given its values if its row is as it was read; ``unclaim``: and the
        claim of each pair's row ended, whatever its state (:mod:`.claims`)."""
        values, args = values_of([(d.owner, d.recipient, d.wanted_seq, *_seen(d), d.state,
                                   d.delivered_seq, d.error, d.due, d.delivered_at,
                                   d.attempts) for d in batch])
        columns = ("state", "delivered_seq", "error", "due", "delivered_at", "updated",
                   "attempts")
        if unclaim:  # every row of the pairs; the values only where they are due
            sets = ", ".join("%s = CASE WHEN %s THEN %s ELSE deliveries.%s END" % (
                c, self._FINISHED, "?" if c == "updated" else "v." + c, c) for c in columns)
            sets += ", lease_holder = NULL, lease_until = 0"
            where = "(%s OR deliveries.lease_holder IS NOT NULL)" % self._FINISHED
        else:
            sets = ", ".join("%s = %s" % (c, "?" if c == "updated" else "v." + c)
                             for c in columns)
            where = self._FINISHED
        self._db.execute(
            "WITH v(owner, recipient, wanted_seq, seen_state, seen_queued, state, "
            "delivered_seq, error, due, delivered_at, attempts) AS (VALUES " + values
            + ") UPDATE deliveries SET " + sets + " FROM v WHERE deliveries.owner = v.owner "
            "AND deliveries.recipient = v.recipient AND " + where, args + [now_iso()])

    def _delivered_meanwhile(self, rows: list[Delivery], spacing: float) -> None:
        """The copies written of deliveries whose rows changed meanwhile (not finished)."""
        # planned again (or stopped, withdrawn, reopened) meanwhile: that decision stays,
        # but the copy was written now: recorded, and a newer change waits out the
        # spacing (else a burst rewrites it every round)
        for batch in batches(d for d in rows
                             if d.state == index.DELIVERED and d.delivered_at):
            values, args = values_of([(d.owner, d.recipient, d.wanted_seq, *_seen(d),
                                       d.delivered_seq, d.delivered_at,
                                       d.delivered_at + spacing) for d in batch])
            self._db.execute(
                "WITH v(owner, recipient, wanted_seq, seen_state, seen_queued, delivered_seq, "
                "delivered_at, due) AS (VALUES " + values + ") UPDATE deliveries SET "
                "delivered_seq = CASE WHEN deliveries.delivered_seq > v.delivered_seq THEN "
                "deliveries.delivered_seq ELSE v.delivered_seq END, delivered_at = "
                "v.delivered_at, due = CASE WHEN deliveries.state = ? AND deliveries.due < "
                "v.due THEN v.due ELSE deliveries.due END FROM v "
                "WHERE deliveries.owner = v.owner AND deliveries.recipient = v.recipient "
                "AND (deliveries.wanted_seq <> v.wanted_seq OR NOT " + _AS_SEEN + ") "
                "AND deliveries.delivered_at < v.delivered_at", args + [index.PENDING])

    def clear_intents(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._db.executemany("UPDATE deliveries SET intent = NULL WHERE owner = ? "
                             "AND recipient = ?", list(pairs))

    def finish(self, delivery: Delivery) -> None:
        # only the row as it was read (see _AS_SEEN)
        seen = "" if delivery.seen is None else " AND state = ? AND COALESCE(queued, 0) = ?"
        self._db.execute(
            "UPDATE deliveries SET state = ?, delivered_seq = ?, error = ?, due = ?, "
            "delivered_at = ?, updated = ?, attempts = ? "
            "WHERE owner = ? AND recipient = ? AND wanted_seq = ?" + seen,
            (delivery.state, delivery.delivered_seq, delivery.error, delivery.due,
             delivery.delivered_at, now_iso(), delivery.attempts, delivery.owner,
             delivery.recipient, delivery.wanted_seq, *(delivery.seen or ())))

    def reopen_for(self, recipient: str, owner: str | None, states: Iterable[str]) -> None:
        wanted = list(states)
        if not wanted:
            return
        # and those a round is deciding or writing (claimed): decided before this change,
        # they are decided again (a new place: the round's finish leaves them, _AS_SEEN)
        where = ("recipient = ? AND (state IN (%s) OR (state IN (%s) AND lease_holder IS "
                 "NOT NULL))" % (marks(wanted), marks(list(_WAITING))))
        args: list[object] = [recipient, *wanted, *_WAITING]
        if owner is not None:
            where += " AND owner = ?"
            args.append(owner)
        with self._db.transaction():
            rows = self._db.rows("SELECT owner, recipient, state FROM deliveries WHERE "
                                 + where + " ORDER BY owner, recipient"
                                 + self._db.dialect.for_update, args)
            first = self._positions(len(rows)) if rows else 0
            self._db.executemany(
                "UPDATE deliveries SET state = ?, due = 0, error = NULL, updated = ?, queued = ?, "
                "attempts = 0 WHERE owner = ? AND recipient = ?",
                [(r[2] if r[2] in _WAITING else index.PENDING, now_iso(), first + i, r[0],
                  r[1]) for i, r in enumerate(rows)])

    def withdraw(self, owner: str, recipients: Iterable[str] | None) -> list[str]:
        where, args = "owner = ? AND state = ?", [owner, index.STOPPED]
        if recipients is not None:
            names = sorted(set(recipients))
            if not names:
                return []
            where += " AND recipient IN (%s)" % marks(names)
            args += names
        with self._db.transaction():
            # the rows locked as they are read (PostgreSQL): one another process is
            # planning again meanwhile is read once it committed, no longer stopped
            found = [r[0] for r in self._db.rows(
                "SELECT recipient FROM deliveries WHERE " + where + " ORDER BY recipient"
                + self._db.dialect.for_update, args)]
            first = self._positions(len(found)) if found else 0
            self._db.executemany(
                "UPDATE deliveries SET state = ?, due = 0, updated = ?, queued = ?, attempts = 0 "
                "WHERE owner = ? AND recipient = ?",
                [(index.WITHDRAWING, now_iso(), first + i, owner, r)
                 for i, r in enumerate(found)])
            return found

    def interrupted(self, now: float | None = None) -> list[Delivery]:
        # every one: claims (and so ``now``) are :class:`.claims.ClaimingOutbox`'s
        return [_delivery(r) for r in self._db.rows(
            self._select + " WHERE d.intent IS NOT NULL ORDER BY d.owner, d.recipient")]

    def deliveries(self, owner: str) -> list[Delivery]:
        return [_delivery(r) for r in self._db.rows(
            self._select + " WHERE d.owner = ? ORDER BY d.recipient", (owner,))]

    def queued(self, owner: str, full_only: bool = False) -> int:
        return int(self._db.value(
            "SELECT COUNT(*) FROM jobs WHERE owner = ?"
            + (" AND only_recipients IS NULL" if full_only else ""), (owner,)))

    def has_work(self, now: float) -> bool:
        return bool(self._db.value(
            "SELECT EXISTS (SELECT 1 FROM jobs) OR EXISTS "
            "(SELECT 1 FROM deliveries WHERE state IN (%s) AND due <= ?)"
            % marks(list(_WAITING)),
            (*_WAITING, now)))

    def next_due(self) -> float | None:
        found = self._db.value("SELECT MIN(due) FROM deliveries WHERE state IN (%s)"
                               % marks(list(_WAITING)), _WAITING)
        return float(found) if found is not None else None

    # -- backups, accounts and monitoring -------------------------------------------
    def all_jobs(self) -> list[Job]:
        return [Job(r["id"], r["owner"], r["seq"],
                    json.loads(r["only_recipients"]) if r["only_recipients"] else None,
                    bool(r["withdraw"]))
                for r in self._db.rows("SELECT * FROM jobs ORDER BY id")]

    def all_deliveries(self) -> list[Delivery]:
        return [_delivery(r) for r in self._db.rows(
            self._select + " ORDER BY d.queued, d.owner, d.recipient")]

    def restore_job(self, job: Job) -> None:
        try:
            with self._db.transaction(), self._db.attempt():
                self._db.execute(
                    "INSERT INTO jobs (id, owner, seq, created, only_recipients, withdraw) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (job.id, job.owner, job.seq, now_iso(),
                     json.dumps(job.only) if job.only is not None else None,
                     int(job.withdraw)))
                ids_given(self._db, "jobs")
        except self._db.IntegrityError as e:
            raise ValueError("two queued changes have the id %d" % job.id) from e

    def restore_deliveries(self, deliveries: Iterable[Delivery]) -> None:
        found = list(deliveries)
        if not found:
            return
        with self._db.transaction():
            first = self._positions(len(found))  # the order given is the queue's
            try:
                with self._db.attempt():
                    self._db.executemany(
                        "INSERT INTO deliveries (owner, recipient, state, wanted_seq, "
                        "delivered_seq, reasons, error, updated, intent, due, queued, "
                        "delivered_at, attempts, repairs) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [(d.owner, d.recipient, d.state, d.wanted_seq, d.delivered_seq,
                          json.dumps(d.reasons), d.error, d.updated,
                          _intent_json(d.intent) if d.intent else None, d.due, first + i,
                          d.delivered_at, d.attempts, d.repairs) for i, d in enumerate(found)])
            except self._db.IntegrityError as e:
                raise ValueError("a delivery is given twice: %s" % e) from e
            self._db.executemany(
                "INSERT INTO written (owner, recipient, field, value_key) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(d.owner, d.recipient, f, k) for d in found for f, k in sorted(d.written_values)])

    def deliveries_to(self, recipient: str) -> list[Delivery]:
        return [_delivery(r) for r in self._db.rows(
            self._select + " WHERE d.recipient = ? ORDER BY d.owner", (recipient,))]

    def forget_user(self, user: str, keep_withdrawing: bool = False) -> None:
        with self._db.transaction():
            self._db.execute("DELETE FROM jobs WHERE owner = ?", (user,))
            self._db.execute("DELETE FROM deliveries WHERE recipient = ?", (user,))
            self._db.execute("DELETE FROM written WHERE recipient = ?", (user,))
            if keep_withdrawing:
                self._db.execute("DELETE FROM deliveries WHERE owner = ? AND state != ?",
                                 (user, index.WITHDRAWING))
                self._db.execute("DELETE FROM written WHERE owner = ? AND recipient NOT IN "
                                 "(SELECT recipient FROM deliveries WHERE owner = ?)",
                                 (user, user))
            else:
                self._db.execute("DELETE FROM deliveries WHERE owner = ?", (user,))
                self._db.execute("DELETE FROM written WHERE owner = ?", (user,))

    def counts(self, now: float) -> QueueCounts:
        with self._db.snapshot():
            jobs = self._db.row("SELECT COUNT(*), MIN(created) FROM jobs")
            states = {r[0]: r[1] for r in self._db.rows(
                "SELECT state, COUNT(*) FROM deliveries GROUP BY state ORDER BY state")}
            due = self._db.value("SELECT COUNT(*) FROM deliveries WHERE state IN (%s) "
                                 "AND due <= ?" % marks(list(_WAITING)), (*_WAITING, now))
        assert jobs is not None
        return QueueCounts(int(jobs[0]), states, int(due), jobs[1])
