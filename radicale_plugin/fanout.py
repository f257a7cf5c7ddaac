# SPDX-License-Identifier: GPL-3.0-or-later
"""The durable fan-out: a background thread that carries owners' changes to recipients.

The owner's request only records the change in the index (see
:meth:`OwnerStore.record_view`) and returns.  This worker, one per process
and storage folder, then

1. *plans* each queued change: evaluates the owner's target rules
   (:mod:`selection`) and turns the change into one pending delivery per
   recipient;
2. *delivers*: finds where the copy is or could go (:mod:`delivery`), lets
   the recipient's consent decide (:mod:`consent`), and writes the copy,
   makes an offer (:mod:`offers`), or leaves the book alone.

It takes Radicale's global storage lock itself, for at most ``batch_size``
recipients at a time, and leaves it free between batches so that other
users' requests go on being served.  A crash at any point is safe: the queue
is in the index, every write is recorded before it is made, and merging
again into a copy that already got the change writes nothing.
"""

from __future__ import annotations

import threading
import time

from radicale.log import logger

from radicale_plugin import consent
from radicale_plugin import index as idx
from radicale_plugin.card_index import CardKeys
from radicale_plugin.context import Context
from radicale_plugin.delivery import Deliverer
from radicale_plugin.errors import BadCard, SharingError
from radicale_plugin.index import Delivery, Job, Owner
from radicale_plugin.offers import Offers
from radicale_plugin.owners import Owners
from radicale_plugin.selection import Targets

_JOBS_PER_BATCH = 5


class FanoutWorker:
    """Drains the outbox in bounded batches under the storage lock."""

    def __init__(self, ctx: Context, owners: Owners, card_keys: CardKeys, targets: Targets,
                 deliverer: Deliverer, offers: Offers) -> None:
        self._ctx = ctx
        self._owners = owners
        self._card_keys = card_keys
        self._targets = targets
        self._deliverer = deliverer
        self._offers = offers
        self._event = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def start(self) -> None:
        """Start the thread once per process; it first catches up on what changed."""
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mecard-fanout",
                                                daemon=True)
                self._thread.start()

    def wake(self) -> None:
        self._event.set()

    def _run(self) -> None:
        settings = self._ctx.settings
        try:
            self.reconcile()
        except Exception as e:
            logger.error("Fan-out: checking me cards at start failed: %s", e, exc_info=True)
        while True:
            try:
                while self._ctx.index.outbox.has_work(time.time()):
                    self.run_batch()
                    time.sleep(settings.batch_pause)
            except Exception as e:
                logger.error("Fan-out batch failed, retrying later: %s", e, exc_info=True)
                time.sleep(1)
            wait = settings.poll_interval
            due = self._ctx.index.outbox.next_due()
            if due is not None:
                wait = max(0.05, min(wait, due - time.time()))
            self._event.wait(wait)
            self._event.clear()

    def reconcile(self) -> None:
        """Catch up with writes that reached the files but not the index (a crash mid-PUT)."""
        with self._ctx.storage.acquire_lock("r"):
            self._card_keys.reconcile()
            for owner in self._ctx.index.owners.with_me_card():
                text = self._deliverer.card_text(owner.book or "", owner.href or "")
                if text is None:
                    logger.info("Me card of %r is gone: no further updates go out", owner.user)
                    self._owners.forget(owner.user)
                else:
                    self._owners.refresh(owner, text)

    def run_batch(self) -> None:
        """Plan a few queued changes and deliver up to ``batch_size`` copies, under one lock."""
        outbox = self._ctx.index.outbox
        with self._ctx.storage.acquire_lock("w"):
            for job in outbox.pending_jobs(_JOBS_PER_BATCH):
                self._plan(job)
            for delivery in outbox.pending_deliveries(self._ctx.settings.batch_size,
                                                      time.time()):
                self._deliver(delivery)

    def _plan(self, job: Job) -> None:
        outbox = self._ctx.index.outbox
        owner = self._ctx.index.owners.get(job.owner)
        if owner.view is None:
            outbox.plan(job, {})
            return
        if job.only is not None:
            # "update some": the owner named these recipients for this change
            outbox.plan(job, {r: ["chosen for this update"] for r in job.only})
            logger.info("Update of %r's me card goes to %d chosen recipient(s)",
                        job.owner, len(job.only))
            return
        targets, skipped = self._targets.select(job.owner)
        for item in skipped:
            logger.warning("Update of %r's me card skips a contact (%s): %s",
                           job.owner, item["rule"], item["reason"])
        outbox.plan(job, targets)
        logger.info("Update of %r's me card goes to %d recipient(s)", job.owner, len(targets))

    def _deliver(self, delivery: Delivery) -> None:
        owner = self._ctx.index.owners.get(delivery.owner)
        try:
            delivery = self._deliverer.settle(owner, delivery)
            self._deliver_to(delivery, owner)
        except Exception as e:
            # one recipient's failure must neither stop the others nor be retried forever;
            # the owner sees a fixed reason: an error's text may quote the recipient's card
            logger.warning("Copy of %r's card for %r not written: %s",
                           delivery.owner, delivery.recipient, e,
                           exc_info=not isinstance(e, SharingError))
            delivery.state = idx.FAILED
            delivery.error = ("the recipient's card could not be read" if isinstance(e, BadCard)
                              else "the copy could not be written; the server's log says why")
        self._ctx.index.outbox.finish(delivery)

    def _deliver_to(self, delivery: Delivery, owner: Owner) -> None:
        recipient = delivery.recipient
        if delivery.state == idx.WITHDRAWING:
            self._deliverer.withdraw(owner, delivery)
            delivery.state, delivery.error = idx.WITHDRAWN, ""
            return
        view = self._deliverer.wanted_view(owner, delivery)
        if view is None:
            delivery.state = idx.STOPPED
            return
        placement = self._deliverer.place(owner, delivery)
        if placement.no_book:
            delivery.state, delivery.error = idx.FAILED, "the recipient has no address book"
            return
        if placement.deleted:
            logger.info("Recipient %r deleted the copy of %r's card: not re-created",
                        recipient, owner.user)
            delivery.state = idx.FAILED
            delivery.error = "the recipient removed your card from their address book"
            return
        policy, chosen = self._ctx.standing(recipient, owner.user)
        allowed = consent.may_offer(chosen, placement.owner_key_in_books,
                                    placement.linked is not None)
        decision = consent.decide(policy, placement.linked, placement.candidates, allowed)
        if decision.action == consent.OFFER and decision.card is not None \
                and (placement.linked or decision.link) \
                and not self._deliverer.would_change(owner, delivery, decision.card):
            # the card already says it all: an offer would change nothing
            decision = consent.Decision(consent.WRITE, decision.card, decision.link)
        if decision.action == consent.WRITE:
            self._deliverer.apply(owner, delivery, decision.card, decision.link, view)
            self._ctx.index.consent.drop_offer(owner.user, recipient)
            delivery.state, delivery.error, delivery.due = idx.DELIVERED, "", 0.0
            delivery.delivered_seq = delivery.wanted_seq
        elif decision.action == consent.OFFER:
            self._offers.make(owner, delivery, decision.card)
        elif decision.action == consent.BLOCKED:
            logger.debug("Recipient %r blocks %r: copy left alone", recipient, owner.user)
            self._ctx.index.consent.drop_offer(owner.user, recipient)
            delivery.state, delivery.error = idx.BLOCKED, ""
        else:
            delivery.state, delivery.error = idx.FAILED, decision.reason
