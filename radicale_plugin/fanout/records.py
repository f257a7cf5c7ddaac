# SPDX-License-Identifier: GPL-3.0-or-later
"""A round's records: what it decided (before its files are written) and what the writes
did (after), in short transactions of the index's writer.

Why short: the index has one writer connection (SQLite has one writer at a time), and a
request's storage hooks write to it (the card-key index, links, me cards) while they hold
Radicale's exclusive storage lock.  Whatever time the fan-out holds the writer, a PUT of
any user may wait, inside Radicale's lock, and every other request waits behind that
PUT.  A round's records used to be two transactions of 200 deliveries each, 12–390 ms on
a loaded machine, and PUTs waited up to 151 ms for them.  So here:

1. everything a round records is worked out *before* a transaction begins: which
   deliveries end how, the new cards' keys (parsing their numbers is the slow part),
   the books' times, the recipients' regions (reads go through reader connections);
2. the records are then written in parts of at most :data:`PART` deliveries, one
   transaction each, holding the writer for a few statements only; between parts the
   writer is free, and a waiting hook has it next (:class:`..index.sqlite.database.FairLock`).
   A hook waits for one part at most, not for a round.

Why parts are as safe as one transaction was:

* each delivery's records are all in one part, so each delivery is recorded whole or
  not at all;
* every part of the intents is committed, and then made durable, before any file of the
  round is written: one sync of the log (:meth:`SharingIndex.sync`), after the last part
  and outside the writer's lock, makes every commit before it durable (WAL: a log written
  in order), so that neither a part nor a hook waiting for it waits for the disk;
* a crash between parts of the results leaves some deliveries with their intent: the
  next start settles them (:meth:`Deliverer.settle`) as after a crash in any other place,
  and merging again into a copy that holds the change writes nothing.

Why not the other way round (the hooks queue their writes and apply them once Radicale's
lock is released): the next request's hooks would then read an index that does not yet
know the last write (a link ended, a me card moved), or wait for it inside the lock again.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

from radicale.log import logger

from radicale_plugin import index as idx
from radicale_plugin.context import Context
from radicale_plugin.delivery.copies import Deliverer, Planned
from radicale_plugin.fanout.outcomes import Failures, Outcome
from radicale_plugin.notify import events as notify_events
from radicale_plugin.recipient.offers import Offers

#: Deliveries recorded per transaction: a few ms of statements (10 to 30 of them), even
#: on a loaded machine where the thread holding the writer is pre-empted now and then.
PART = 10


def parts(outcomes: list[Outcome], size: int = PART) -> Iterator[list[Outcome]]:
    for i in range(0, len(outcomes), size):
        yield outcomes[i:i + size]


class Records:
    """Records a round's intents and results in short transactions."""

    def __init__(self, ctx: Context, deliverer: Deliverer, offers: Offers,
                 failures: Failures) -> None:
        self._ctx = ctx
        self._deliverer = deliverer
        self._offers = offers
        self._failures = failures

    # -- before the files are written -----------------------------------------------
    def intents(self, outcomes: list[Outcome]) -> None:
        """Links, intents, offers and every outcome that writes nothing; durable before any
        file of the round is written."""
        index = self._ctx.index
        todo = list(parts(outcomes)) or [[]]
        for n, part in enumerate(todo):
            with index.transaction(durable=False):
                self._before(part)
                if n == len(todo) - 1:
                    self._offers.end_round()  # one line for the offers held back, the log purged
        index.sync()  # durable before any file is written; the writer is free meanwhile

    def before(self, part: list[Outcome]) -> None:
        """A part's records before its writes, in the caller's transaction (what
        :meth:`intents` records of each part; :mod:`.at_once`)."""
        self._before(part)

    def end_round(self) -> None:
        """A round's offers are made (in the caller's transaction; :mod:`.at_once`)."""
        self._offers.end_round()

    def _before(self, part: list[Outcome]) -> None:
        """Links and intents of the writes; the offers and every outcome that writes
        nothing, recorded and finished a part at once (a few statements, not a few a
        delivery: on PostgreSQL each is a round trip)."""
        offering: list[Outcome] = []
        ending: list[Outcome] = []
        failed: list[Outcome] = []
        for outcome in part:
            if outcome.planned is None:
                (offering if outcome.offering else ending).append(outcome)
            elif self._deliverer.records_before(outcome.planned):  # else no savepoint
                self._each([outcome], self._before_write)
                if outcome.planned is None:  # failed: no write, finished here
                    failed.append(outcome)
        self._each(offering, lambda o: self._offers.make_many(
            [(x.owner, x.delivery, x.offer) for x in o]))
        self._each(ending, self._end)
        # those with a write are finished with its results
        self._ctx.index.outbox.finish_many([o.delivery for o in offering + ending + failed],
                                           self._ctx.settings.rewrite_spacing)

    def _before_write(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            assert outcome.planned is not None
            self._deliverer.before_write(outcome.planned)

    def _end(self, outcomes: list[Outcome]) -> None:
        """What outcomes without a write or an offer record: offers dropped, links ended."""
        index = self._ctx.index
        index.consent.drop_offers(
            (o.delivery.owner, o.delivery.recipient) for o in outcomes
            if o.delivery.state in (idx.BLOCKED, idx.WITHDRAWN, idx.DELIVERED))
        for outcome in outcomes:
            if outcome.delivery.state == idx.WITHDRAWN:
                index.links.remove(outcome.delivery.owner, outcome.delivery.recipient)

    def _each(self, outcomes: list[Outcome], record: Callable[[list[Outcome]], None]) -> None:
        """``record`` the outcomes at once; if a statement fails, each alone: a failing
        statement fails its delivery alone (PostgreSQL: each under a savepoint)."""
        if not outcomes:
            return
        if len(outcomes) > 1:
            try:
                with self._deliverer.files.attempt():
                    record(outcomes)
                return
            except Exception as e:
                logger.debug("Fan-out: %d records at once failed, each alone now: %s",
                             len(outcomes), e)
        for outcome in outcomes:
            try:
                with self._deliverer.files.attempt():
                    record([outcome])
            except Exception as e:
                self._failures.failed(outcome, e)

    # -- after the files are written ------------------------------------------------
    def results(self, outcomes: list[Outcome], size: int = PART) -> None:
        """What the writes did, ``size`` deliveries a transaction.  Not durable: if a power
        loss takes it back, the intents (durable) are still there, and the next start
        records what they did."""
        for part in parts([o for o in outcomes if o.planned is not None], size):
            self._results(part)

    def _results(self, outcomes: list[Outcome]) -> None:
        index = self._ctx.index
        forgotten: list[Planned] = []        # nothing was renamed
        changed: list[idx.Delivery] = []     # the card changed while it was written
        written: list[Planned] = []
        finished, offers_gone, withdrawn = [], [], []
        for outcome in outcomes:
            planned = outcome.planned
            assert planned is not None
            delivery = planned.delivery
            if planned.write.error is not None:
                # nothing was renamed: the card is as it was; try again later
                forgotten.append(planned)
                self._failures.retry(outcome, planned.write.error)
            elif planned.intent.after_hash and not planned.write.renamed:
                # the card changed while we wrote: decided again in the next round
                changed.append(delivery)
                delivery.state, delivery.due = idx.PENDING, 0.0
            elif planned.intent.after_hash:
                written.append(planned)
                delivery.delivered_at = time.time()
            if delivery.state == idx.DELIVERED:
                offers_gone.append((delivery.owner, delivery.recipient))
            if delivery.state == idx.WITHDRAWN:
                withdrawn.append(delivery)
            finished.append(delivery)
        records = self._deliverer.write_records(written)  # parsed and stat'ed out here
        with index.transaction(durable=False):
            for planned in forgotten:
                self._failures.forget_write(planned)
            for delivery in changed:
                index.outbox.set_intent(delivery.owner, delivery.recipient, None)
            for delivery in withdrawn:
                index.links.remove(delivery.owner, delivery.recipient)
            self._deliverer.record_writes(records)
            index.consent.drop_offers(offers_gone)
            index.outbox.finish_many(finished, self._ctx.settings.rewrite_spacing)
        # changes applied without asking: told to recipients who chose so (after the
        # transaction: it reads their choices, and the writer is not held for it)
        notify_events.changes_applied(self._ctx, [
            (p.delivery.owner, p.delivery.recipient, p.delivery.wanted_seq)
            for p in written if p.delivery.state == idx.DELIVERED])
