# SPDX-License-Identifier: GPL-3.0-or-later
"""The durable fan-out: a background thread that writes owners' changes into copies.

The owner's request only records the change in the index (see
:meth:`SharingIndex.record_view`) and returns.  This worker, one per process
and storage folder, then

1. *plans* each queued change: evaluates the owner's target rules against
   the owner's books and turns the change into one pending delivery per
   recipient;
2. *delivers*: finds the recipient's copy (stored link, else a card carrying
   the owner's numbers or e-mails, else a new card), merges, writes it if it
   changed, and records the outcome in the same step.

It takes Radicale's global storage lock itself, for at most ``batch_size``
recipients at a time, and leaves it free between batches so that other
users' requests go on being served.  A crash at any point is safe: the queue
is in the index, and merging again into a copy that already got the change
writes nothing.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING

from radicale import storage
from radicale.log import logger

from radicale_plugin import index, store
from radicale_plugin.errors import BadCard, SharingError
from radicale_plugin.index import Delivery, Owner
from radicale_plugin.matching import card_keys
from radicale_plugin.merge import copy_uid, merge, new_copy
from radicale_plugin.rules import is_group
from radicale_plugin.vcard import parse_card
from radicale_plugin.view import View

if TYPE_CHECKING:
    from radicale_plugin.service import SharingService

_JOBS_PER_BATCH = 5


class FanoutWorker:
    """Drains the outbox in bounded batches under the storage lock."""

    def __init__(self, service: "SharingService") -> None:
        self._service = service
        self._event = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def start(self) -> None:
        """Start the thread once per process; it first catches up on queued work."""
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mecard-fanout",
                                                daemon=True)
                self._thread.start()

    def wake(self) -> None:
        self._event.set()

    def _run(self) -> None:
        settings = self._service.settings
        try:
            self.reconcile()
        except Exception as e:
            logger.error("Fan-out: checking me cards at start failed: %s", e, exc_info=True)
        while True:
            try:
                while self._service.index.has_work():
                    self.run_batch()
                    time.sleep(settings.batch_pause)
            except Exception as e:
                logger.error("Fan-out batch failed, retrying later: %s", e, exc_info=True)
                time.sleep(1)
            self._event.wait(settings.poll_interval)
            self._event.clear()

    def reconcile(self) -> None:
        """Queue me cards whose file changed without reaching the index (a crash mid-PUT)."""
        service = self._service
        with service.storage.acquire_lock("r"):
            for owner in service.index.owners_with_me_card():
                collection = store.book(service.storage, owner.book or "")
                text = store.card_text(collection, owner.href or "") if collection else None
                if text is None:
                    logger.info("Me card of %r is gone: no further updates go out", owner.user)
                    service._forget_me_card(owner.user)
                else:
                    service._refresh_view(owner, text)

    def run_batch(self) -> None:
        """Plan a few queued changes and deliver up to ``batch_size`` copies, under one lock."""
        service = self._service
        with service.storage.acquire_lock("w"):
            for job_id, user, seq, only in service.index.pending_jobs(_JOBS_PER_BATCH):
                self._plan(job_id, user, seq, only)
            for delivery in service.index.pending_deliveries(service.settings.batch_size):
                self._deliver(delivery)

    def _plan(self, job_id: int, user: str, seq: int, only: list[str] | None) -> None:
        service = self._service
        owner = service.index.owner(user)
        if owner.view is None:
            service.index.plan(job_id, user, seq, {}, [])
            return
        if only is not None:
            # "update some": the owner named these recipients for this change
            service.index.plan(job_id, user, seq, {r: ["chosen for this update"] for r in only},
                               [], restricted=True)
            logger.info("Update of %r's me card goes to %d chosen recipient(s)", user, len(only))
            return
        targets, skipped = service.select(user)
        for item in skipped:
            logger.warning("Update of %r's me card skips contact %r: %s",
                           user, item["contact"], item["reason"])
        service.index.plan(job_id, user, seq, targets, skipped)
        logger.info("Update of %r's me card goes to %d recipient(s)", user, len(targets))

    def _deliver(self, delivery: Delivery) -> None:
        service = self._service
        owner = service.index.owner(delivery.owner)
        try:
            self._deliver_to(delivery, owner)
        except Exception as e:
            # one recipient's failure must neither stop the others nor be retried forever
            logger.warning("Copy of %r's card for %r not written: %s",
                           delivery.owner, delivery.recipient, e,
                           exc_info=not isinstance(e, SharingError))
            delivery.state, delivery.error = index.FAILED, str(e)
        service.index.finish(delivery)

    def _deliver_to(self, delivery: Delivery, owner: Owner) -> None:
        service = self._service
        recipient = delivery.recipient
        if owner.view is None:
            delivery.state = index.STOPPED
            return
        if service.policy(recipient, owner.user) == "block":
            logger.debug("Recipient %r blocks %r: copy left alone", recipient, owner.user)
            delivery.state = index.BLOCKED
            return
        books = store.address_books(service.storage, recipient)
        if not books:
            logger.warning("Recipient %r has no address book for %r's card",
                           recipient, owner.user)
            delivery.state = index.NO_BOOK
            return
        found = self._find_copy(delivery, owner, books)
        if found is None and delivery.href:
            logger.info("Recipient %r deleted the copy of %r's card: not re-created",
                        recipient, owner.user)
            delivery.state = index.COPY_DELETED
            return
        if found is None:
            collection, href, text, old = self._new_copy_place(owner, recipient, books)
        else:
            collection, href, text, old = found
        assert owner.view is not None
        if text is None:
            new_text = new_copy(owner.view, copy_uid(owner.user, recipient),
                                self._book_version(collection)).serialize()
        else:
            new_text = merge(parse_card(text), old, owner.view,
                             service.settings.region).serialize()
        if new_text != text:
            store.write_card(collection, href, new_text)
            logger.debug("Copy of %r's card written to /%s/%s",
                         owner.user, collection.path, href)
        delivery.state, delivery.error = index.DELIVERED, ""
        delivery.book, delivery.href = collection.path, href
        delivery.delivered_view = owner.view
        delivery.delivered_seq = delivery.wanted_seq

    def _find_copy(self, delivery: Delivery, owner: Owner, books: list[storage.BaseCollection]
                   ) -> tuple[storage.BaseCollection, str, str, View | None] | None:
        """The stored link; else the copy this worker created; else a card with the owner's keys."""
        service = self._service
        if delivery.book and delivery.href:
            collection = store.book(service.storage, delivery.book)
            text = store.card_text(collection, delivery.href) if collection else None
            if collection is not None and text is not None:
                return collection, delivery.href, text, delivery.delivered_view or owner.prev_view
        created = copy_uid(owner.user, delivery.recipient) + ".vcf"
        for collection in books:
            text = store.card_text(collection, created)
            if text is not None:
                return collection, created, text, delivery.delivered_view or owner.prev_view
        keys = service.index.owner_keys(owner.user)
        mine = service.index.owner(delivery.recipient)
        best: tuple[int, storage.BaseCollection, str, str] | None = None
        for collection in books:
            for href, text in store.cards(collection):
                if collection.path == mine.book and href == mine.href:
                    continue
                try:
                    card = parse_card(text)
                except BadCard:
                    continue
                score = len(card_keys(card, service.settings.region) & keys)
                if score and not is_group(card) and (best is None or score > best[0]):
                    best = (score, collection, href, text)
        if best is None:
            return None
        return best[1], best[2], best[3], owner.prev_view

    def _new_copy_place(self, owner: Owner, recipient: str, books: list[storage.BaseCollection]
                        ) -> tuple[storage.BaseCollection, str, None, None]:
        """A new copy goes into the book holding the recipient's me card, else the first book."""
        mine = self._service.index.owner(recipient)
        collection = next((b for b in books if b.path == mine.book), books[0])
        return collection, copy_uid(owner.user, recipient) + ".vcf", None, None

    def _book_version(self, collection: storage.BaseCollection) -> str:
        """The vCard version most cards of the book use; 3.0, which every client reads, if empty."""
        versions: collections.Counter[str] = collections.Counter()
        for _, text in store.cards(collection):
            for line in text.splitlines():
                if line.upper().startswith("VERSION:"):
                    versions[line.split(":", 1)[1].strip()] += 1
                    break
        return versions.most_common(1)[0][0] if versions else "3.0"
