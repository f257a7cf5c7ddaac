# SPDX-License-Identifier: GPL-3.0-or-later
"""The durable fan-out: a background thread that carries owners' changes to recipients.

Why one module over 400 lines: the loop, its rounds and the renewal of their claims share
one round's state; what needs none of it is apart (:mod:`.records`, :mod:`.outcomes`,
:mod:`.claims`, :mod:`.at_once` for PostgreSQL's parts, :mod:`.memory`).

The owner's request only records the change in the index (see
:meth:`OwnerStore.record_view`) and returns.  This worker, one per process
and storage folder, then works in rounds:

1. *plan*: the newest queued change of each owner (older ones it replaces
   are dropped) is turned into pending deliveries by evaluating the owner's
   target rules over the card-key index (:mod:`selection`) — no book is
   read and no storage lock taken;
2. *gather, decide*, for up to ``round_size`` due deliveries: first everything
   their decisions need is read at once (:mod:`delivery.gather`: a few batched
   index queries, and each card a decision needs read once, straight from its
   file, outside the lock — only a linked card that seems gone is looked at
   again under the shared lock: a MOVE under way looks the same for a moment);
   then each delivery is decided from that data with no I/O
   (:mod:`delivery.decide`: where the copy is or could go, what the
   recipient's consent allows, the merged card): a write, an offer
   (:mod:`offers`), or nothing.  The new texts are written to temporary files
   beside the cards (:mod:`copy_files`);
3. *record intents*: what was decided, in short transactions (:mod:`.records`), durably
   before any file is written;
4. *write*: Radicale's exclusive lock is held for at most ``lock_hold``
   seconds at a time, only to check that each card is unchanged and rename
   the new file over it; other requests are served between holds;
5. *record results*: history, deliveries and the card-key index, worked out first and
   then written in short transactions (:mod:`.records` says why).

Everything written is recorded before it is written (an intent), and
merging again into a copy that already holds the change writes nothing: a
crash at any point loses nothing and writes nothing twice.  A delivery that
fails for a passing reason is tried again later (:mod:`.outcomes`); one
recipient's failure never holds up the others of its round.

A copy a recipient's phone wrote back over (:mod:`rollback`, found by the
storage hook) waits as ``rolled-back`` and is merged again like any delivery
when due, without a second offer.

This module is the loop and its timing (rounds that overlap, the lock held
by time, the start-up checks); the decisions, the reading and the file
writing it drives live in ``delivery/``, the records in :mod:`.records`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from radicale.log import logger

from radicale_plugin import index as idx
from radicale_plugin.delivery.card_index import CardKeys
from radicale_plugin.context import Context
from radicale_plugin.delivery.writer import Write
from radicale_plugin.delivery.copies import Deliverer
from radicale_plugin.delivery.decide import OFFER, REMOVED, WRITE, Verdict, decide
from radicale_plugin.delivery.gather import gather
from radicale_plugin.delivery.history_keeping import HistoryRetention
from radicale_plugin.index import Delivery, Job, Owner
from radicale_plugin.index.duties import Duty
from radicale_plugin.consent.links import Links
from radicale_plugin.fanout import memory
from radicale_plugin.fanout.at_once import AtOnce
from radicale_plugin.fanout.claims import Claims
from radicale_plugin.fanout.outcomes import Failures, Outcome
from radicale_plugin.fanout.records import Records
from radicale_plugin.recipient.offers import Offers
from radicale_plugin.owner.me_cards import Owners
from radicale_plugin.owner.targets import Targets

_JOBS_PER_ROUND = 20


@dataclass
class _Round:
    """A round whose files are being written."""

    outcomes: list["Outcome"]
    writes: list[Write]
    clock: "_Clock"
    written: Future
    taken: set[tuple[str, str]]
    recorded: bool = False  # written and recorded at once (:mod:`.at_once`)


class FanoutWorker:
    """Drains the outbox in rounds; holds the storage lock only to rename files."""

    def __init__(self, ctx: Context, owners: Owners, card_keys: CardKeys, targets: Targets,
                 deliverer: Deliverer, offers: Offers) -> None:
        self._ctx = ctx
        self._owners = owners
        self._card_keys = card_keys
        self._targets = targets
        self._deliverer = deliverer
        self._files = deliverer.files
        self._offers = offers
        self._history = HistoryRetention(ctx)  # the history's retention
        self._failures = Failures(ctx)
        self._records = Records(ctx, deliverer, offers, self._failures)
        #: the deliveries this process's rounds claimed (other processes leave them alone)
        self._claims = Claims(ctx)
        #: copies that commit with their records (PostgreSQL): written in the round's parts
        self._at_once = AtOnce(ctx, self._files, self._records, self._claims.keep) \
            if self._files.atomic else None
        self._event = threading.Event()
        self.stats = Stats()
        self._listening = False
        # one thread writes a round's files while the worker decides the next round
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="mecard-writer")
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        #: set by :meth:`stop`: the round in progress ends, no other begins
        self._stopping = False

    def start(self) -> None:
        """Start the thread once per process; it first catches up on what changed."""
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mecard-fanout",
                                                daemon=True)
                self._thread.start()
                if not self._listening:  # other processes' new work wakes this worker too
                    self._listening = True
                    self._ctx.index.wakeups().listen("outbox", self._event.set)

    def wake(self) -> None:
        self._event.set()

    def stop(self, timeout: float = 10.0) -> bool:
        """A clean stop of the server: the round in progress ends (its files written and
        recorded), no other begins.  Whether the thread ended within ``timeout``."""
        self._stopping = True
        self._event.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def _run(self) -> None:
        settings = self._ctx.settings
        # one process at a time catches up (they share the index); a check another
        # process began is not done twice at once
        duty = Duty(self._ctx.index, "fanout-reconcile", 600.0)
        try:
            if duty.hold():
                self.reconcile()
            else:
                logger.info("Fan-out: another process is checking me cards at start")
        except Exception as e:
            logger.error("Fan-out: checking me cards at start failed: %s", e, exc_info=True)
        finally:
            try:
                duty.release()
            except Exception as e:  # it lapses by itself
                logger.debug("Fan-out: releasing the start-up check: %s", e)
        # what the check read (after a fan-out: every book it wrote into) goes back before
        # the first fan-out: 260 MiB kept at 100,000 books, the base of the next peak
        memory.give_back()
        while not self._stopping:
            self._event.clear()
            try:
                # books of users whose region changed, before the plans that read them
                self._card_keys.reindex_pending(self._files)
                self.drain()
                self._history.purge_due()  # housekeeping, outside the storage lock
            except Exception as e:
                logger.error("Fan-out round failed, retrying later: %s", e, exc_info=True)
                time.sleep(1)
            wait = settings.poll_interval
            due = self._ctx.index.outbox.next_due()
            if due is not None:
                wait = max(0.05, min(wait, due - time.time()))
            if not self._stopping:  # stop() may have come between the check and clear()
                self._event.wait(wait)

    def reconcile(self) -> None:
        """Catch up with writes that reached the files but not the index (a crash mid-PUT).

        Nothing here blocks writers: files are read without the lock (Radicale
        replaces them atomically), and a me card is read again only if its
        file changed since it was last read.
        """
        self._claims.free_dead()  # a killed process of this machine: its writes settled below
        self._card_keys.reconcile(self._files)
        # cards deleted or replaced while the server was stopped: their links end
        Links(self._ctx).reconcile()
        # not those another process's round claimed: that one is writing them now
        for delivery in self._ctx.index.outbox.interrupted(time.time()):
            owner = self._ctx.index.owners.get(delivery.owner)
            try:
                self._deliverer.settle(owner, delivery)  # and its temporary files go
            except Exception as e:
                # e.g. its book cannot be read for now: settled when it is next decided,
                # and the me cards below are still checked
                logger.warning("Fan-out: the interrupted write of %r's copy for %r is "
                               "settled later: %s", delivery.owner, delivery.recipient, e)
        for owner in self._ctx.index.owners.with_me_card():
            found = self._files.read(owner.book or "", owner.href or "")
            if found is None:
                logger.info("Me card of %r is gone: no further updates go out", owner.user)
                self._owners.forget(owner.user)
            elif owner.card_stat != _stat_text(found[1]):
                self._owners.refresh(owner, found[0])
                self._ctx.index.owners.set_card_stat(owner.user, _stat_text(found[1]))

    # -- rounds -------------------------------------------------------------------------
    def drain(self) -> None:
        """Run rounds while there is work, deciding each round while the last one's files
        are written (the one is Python, the other the disk: they overlap)."""
        previous: _Round | None = None
        begun, before = time.monotonic(), (self.stats.deliveries, self.stats.copies_written)
        self.stats.longest_hold_now = 0.0
        try:
            while not self._stopping:
                current = self._start_round(previous)
                if previous is not None:
                    self._end_round(previous)
                previous = current
                if current is None:
                    if not self._ctx.index.outbox.has_work(time.time()):
                        return
                elif self._ctx.settings.batch_pause:
                    time.sleep(self._ctx.settings.batch_pause)
        finally:
            if previous is not None:
                self._end_round(previous)
            done = self.stats.deliveries - before[0]
            if done:
                logger.info("Fan-out: %d deliveries (%d copies written) in %.2f s; longest "
                            "hold of the storage lock %.1f ms", done,
                            self.stats.copies_written - before[1], time.monotonic() - begun,
                            self.stats.longest_hold_now * 1000)
                memory.give_back()

    def run_round(self) -> None:
        """One round, not overlapped (tests and the admin)."""
        current = self._start_round(None)
        if current is not None:
            self._end_round(current)

    def _start_round(self, busy: "_Round | None") -> "_Round | None":
        """Plan queued changes, decide up to ``round_size`` deliveries, record the intents,
        and start writing the files in the background."""
        clock = _Clock()
        jobs = self._claims.jobs(_JOBS_PER_ROUND)  # those no other process is planning
        for job in jobs:
            self._plan(job)
        if jobs:  # the idle workers of other processes take their share
            self._ctx.index.wakeups().announce("outbox")
        clock.lap("plan")
        batch = self._claims.take(self._ctx.settings.batch_size,
                                  busy.taken if busy is not None else ())
        if not batch:
            return None
        outcomes = self._decide(batch)
        clock.lap("decide")
        self._claims.keep()  # a long decision: the round's claims (and the last's) renewed
        if busy is not None:
            self._wait(busy.written)  # the last round's writes first: rounds stay in order
        if self._at_once is not None:  # no intents, no files: copies commit with records,
            # written by the writer's thread while the next round is decided
            writes = [o.planned.write for o in outcomes
                      if o.planned is not None and not o.planned.write.done]
            return _Round(outcomes, writes, clock, self._writer.submit(self._at_once.run,
                                                                       outcomes, clock),
                          {(d.owner, d.recipient) for d in batch}, recorded=True)
        self._records.intents(outcomes)  # in short transactions: requests' hooks go between
        clock.lap("record intents")
        writes = [o.planned.write for o in outcomes
                  if o.planned is not None and not o.planned.write.done]
        return _Round(outcomes, writes, clock, self._writer.submit(self._write, writes, clock),
                      {(d.owner, d.recipient) for d in batch})

    def _end_round(self, current: "_Round") -> None:
        """Wait for the round's files, then record what they did."""
        self._wait(current.written)
        if not current.recorded:
            self._records.results(current.outcomes)
        current.clock.lap("record results")
        self._claims.done((o.delivery.owner, o.delivery.recipient) for o in current.outcomes)
        written = sum(w.renamed for w in current.writes)  # not those that failed or changed
        self.stats.add(len(current.outcomes), written, current.clock)
        logger.debug("Fan-out round: %d deliveries, %d copies written; %s",
                     len(current.outcomes), written, current.clock)

    def _wait(self, written: Future) -> None:
        """Wait for a round's writes, renewing the claims meanwhile: a write that waits
        long (a book's lock held by a slow request, the storage lock busy) must not let
        its deliveries' claims lapse, or another process would decide them again."""
        while not wait([written], timeout=self._claims.lease / 3).done:
            self._claims.keep()
        written.result()

    def _plan(self, job: Job) -> None:
        outbox = self._ctx.index.outbox
        owner = self._ctx.index.owners.get(job.owner)
        if owner.view is None:
            outbox.plan(job, {})
            return
        if job.only is not None:
            # "update some": the owner named these recipients for this change; the rules
            # that select them stay in the reasons: they choose the field set each gets
            selected = self._targets.select(job.owner)[0] if owner.audiences else {}
            outbox.plan(job, {r: selected.get(r, []) + ["chosen for this update"]
                              for r in job.only})
            logger.info("Update of %r's me card goes to %d chosen recipient(s)",
                        job.owner, len(job.only))
            return
        targets, skipped = self._targets.select(job.owner)
        for item in skipped:
            logger.warning("Update of %r's me card skips a contact (%s): %s",
                           job.owner, item["rule"], item["reason"])
        outbox.plan(job, targets, self._ctx.settings.rewrite_spacing)
        logger.info("Update of %r's me card goes to %d recipient(s)", job.owner, len(targets))

    def _decide(self, batch: list[Delivery]) -> list[Outcome]:
        """Gather what the round's decisions need, then decide each delivery (pure), then
        work out its write (the merged card, the intent and the link to record)."""
        owners = self._ctx.index.owners.get_many(d.owner for d in batch)
        outcomes = [Outcome(delivery, owners[delivery.owner]) for delivery in batch]
        waiting = []
        for outcome in outcomes:
            try:
                # a write a crash interrupted is settled first (rare: an intent is left)
                outcome.delivery = self._deliverer.settle(outcome.owner, outcome.delivery)
                outcome.delivery.attempts = 0  # whatever is decided now ends a run of failures
                waiting.append(outcome)
            except Exception as e:
                self._failures.failed(outcome, e)
        try:
            # PostgreSQL: the round's reads at one moment, on one connection (a card a
            # statement otherwise takes a pooled connection each)
            with self._ctx.index.snapshot() if self._files.atomic else contextlib.nullcontext():
                gathered = gather(self._ctx, self._deliverer, [o.delivery for o in waiting],
                                  owners)
        except Exception as e:  # the index cannot be read for now: every one waits
            for outcome in waiting:
                self._failures.failed(outcome, e)
            return outcomes
        for outcome in waiting:
            with self._files.quiet:
                pass  # wait while the last round's writer holds the storage lock
            try:
                facts = gathered.facts(outcome.delivery)
                self._apply(outcome, decide(facts), facts.recipient_region)
            except Exception as e:
                self._failures.failed(outcome, e)
        return outcomes

    def _apply(self, outcome: Outcome, verdict: Verdict, region: str) -> None:
        """The delivery's new state, and the write to make (worked out, not made yet)."""
        delivery, owner = outcome.delivery, outcome.owner
        if verdict.action == WRITE:
            assert verdict.view is not None
            if verdict.card is None or verdict.after is None:
                # a new card: its place and UID depend on what the book holds now
                outcome.planned = self._deliverer.plan(owner, delivery, verdict.card,
                                                       verdict.link, verdict.view, verdict.kind)
            else:
                outcome.planned = self._deliverer.planned(
                    owner, delivery, verdict.card, verdict.link, verdict.view, verdict.kind,
                    verdict.found, verdict.before, verdict.after, region)
            delivery.state, delivery.error = verdict.state, ""
            if verdict.state == idx.DELIVERED:
                delivery.due, delivery.delivered_seq = 0.0, delivery.wanted_seq
        elif verdict.action == OFFER:
            outcome.offer, outcome.offering = verdict.card, True
        elif verdict.state == idx.STOPPED:
            delivery.state = idx.STOPPED
        else:
            if verdict.error == REMOVED:
                logger.info("Recipient %r deleted the copy of %r's card: not re-created",
                            delivery.recipient, owner.user)
            elif verdict.state == idx.BLOCKED:
                logger.debug("Recipient %r blocks %r: copy left alone", delivery.recipient,
                             owner.user)
            delivery.state, delivery.error = verdict.state, verdict.error

    def _write(self, writes: list[Write], clock: "_Clock") -> None:
        """Prepare the files, then rename them in holds of at most ``lock_hold`` seconds."""
        if not writes:
            return
        settings = self._ctx.settings
        done: list[Write] = []
        try:
            self._files.prepare(writes)  # a write that fails alone gets its error
            clock.lap("prepare files")
            while not all(w.done for w in writes):
                start = time.monotonic()
                done += self._files.commit(writes, settings.lock_hold)
                self._claims.keep()  # the storage lock busy for long: claims renewed
                clock.hold(time.monotonic() - start)
                if not all(w.done for w in writes):
                    time.sleep(settings.lock_gap)  # let waiting requests have the lock
        except (OSError, RuntimeError) as e:
            # the whole batch failed (the disk sync, the storage lock): what is not renamed
            # yet is tried again later (see _after); what is renamed is finished below
            logger.warning("Fan-out: %d of %d copies not written: %s",
                           sum(not w.done for w in writes), len(writes), e)
            for write in writes:
                if not write.done:
                    self._files.abandon(write, e)
            done = [w for w in writes if w.renamed]
        clock.lap("renames")
        self._files.finish(done)
        clock.lap("sync, clean")
        if done:
            # the copies are in place and the lock is free: their books' subscribers may sync
            self._ctx.books_changed({w.book for w in done})
            # before the next round's files appear: the hook sees only finished copies
            self._files.run_storage_hook()

class _Clock:
    """Where a round's time went, and its longest hold of the storage lock."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self.longest_hold = 0.0
        self.held = 0.0
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now

    def hold(self, seconds: float) -> None:
        self.longest_hold = max(self.longest_hold, seconds)
        self.held += seconds

    def __str__(self) -> str:
        return ", ".join("%s %.1f ms" % (k, v * 1000) for k, v in self.laps.items()) + (
            "; longest lock hold %.1f ms" % (self.longest_hold * 1000))


@dataclass
class Stats:
    """What the fan-out did since the process started (for the admin and benchmarks)."""

    rounds: int = 0
    deliveries: int = 0
    copies_written: int = 0
    longest_hold: float = 0.0
    longest_hold_now: float = 0.0   # since the queue last ran dry
    lock_held: float = 0.0

    def add(self, deliveries: int, written: int, clock: _Clock) -> None:
        self.rounds += 1
        self.deliveries += deliveries
        self.copies_written += written
        self.longest_hold = max(self.longest_hold, clock.longest_hold)
        self.longest_hold_now = max(self.longest_hold_now, clock.longest_hold)
        self.lock_held += clock.held


def _stat_text(identity: tuple[int, int, int]) -> str:
    return "%d:%d:%d" % identity
