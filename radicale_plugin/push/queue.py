# SPDX-License-Identifier: GPL-3.0-or-later
"""The push sender's queue: the books changed, one waiting message per subscription,
coalesced, stored in the index (``push_queue``) so that it survives a restart, and
rescheduled for a retry.  The thread that drives it and sends is :mod:`.sender`.

:meth:`PushQueue.mark` only notes a book in memory and returns; a subscription's
message goes out at once, but at most one per subscription within
``mecard_push_coalesce`` seconds; changes meanwhile join the waiting message (a
change while it is being sent makes a new one).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Iterable

from radicale.log import logger

from radicale_plugin.push import retry as push_retry
from radicale_plugin.context import Context
from radicale_plugin.index import PushQueued, PushSubscription
from radicale_plugin.index.duties import dead_here, holder
from radicale_plugin.push.dont_notify import Skip, current, skipped
from radicale_plugin.push.sync_tokens import SyncTokens


@dataclass
class Pending:
    """The one message waiting for a subscription."""

    book: str
    due: float                   # when it may go (seconds since 1970)
    marked: float                # when the first change it tells of was noted
    attempt: int = 1
    marks: int = 0               # changes noted since it was taken to be sent
    final: PushSubscription | None = None   # the book was deleted: its last message
    topic: str = ""              # (for a final message: the topic is deleted with the book)


@dataclass
class Stats:
    """What the sender did since the process started (for tests and benchmarks)."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0         # subscriptions removed because the push service said 404/410
    suppressed: int = 0      # messages not queued because of Push-Dont-Notify
    restored: int = 0        # messages found queued at the start (not sent before a restart)
    last_latency: float = 0.0
    last_token: str | None = None


class PushQueue:
    """Book changes, and the one waiting message per subscription they make."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._cond = threading.Condition()
        self._marks: list[tuple[str, Skip, float]] = []  # (book, skip, when) not queued yet
        #: subscriptions of deleted books, each with its topic (appended without a lock)
        self._finals: collections.deque[tuple[list[tuple[PushSubscription, str | None]],
                                              Skip, float]] = collections.deque()
        self._pending: dict[str, Pending] = {}           # subscription → its waiting message
        self._heap: list[tuple[float, int, str]] = []     # (due, order, subscription)
        self._order = itertools.count()
        self._in_flight: set[str] = set()
        self._last: dict[str, float] = {}                 # subscription → its last message
        self._tokens = SyncTokens(ctx)
        self.stats = Stats()
        #: set by the sender's ``stop``: the thread ends at its next look
        self._stopping = False

    # -- from other threads ---------------------------------------------------------
    def mark(self, books: Iterable[str]) -> None:
        """These books changed: their subscribers get a message soon.  Never blocks.

        A request's ``Push-Dont-Notify`` (see :func:`dont_notify`) applies to the
        books it changed.
        """
        if not self._ctx.settings.push_services:
            return
        skip: Skip = current()
        now = time.time()
        with self._cond:
            for book in books:
                book = book.strip("/")
                if book.count("/") == 1:
                    self._marks.append((book, skip, now))
                    self._tokens.changed(book)
            if len(self._marks) > 100000:  # the thread is stuck: keep each book once
                self._marks = list({(b, k): (b, k, t) for b, k, t in self._marks}.values())
            self._cond.notify()

    def forget_book(self, path: str) -> None:
        """A book (or a user's home, with all their books) was deleted: its subscriptions,
        topic and waiting messages go with it; each subscription gets a last message.

        Called by the storage hook, under the request's storage lock: the index is
        written here, and the rest is left to the thread without taking any lock of
        this sender (the request's :meth:`mark` of the book, when the storage lock is
        released, wakes the thread).
        """
        gone = self._ctx.index.push.forget_book(path)
        if gone:
            self._finals.append((gone, current(), time.time()))
            logger.info("WebDAV-Push: /%s/ deleted, with its %d subscription(s)",
                        path.strip("/"), len(gone))

    # -- the sender's thread --------------------------------------------------------
    def _last_messages(self) -> None:
        """The last message to each subscription of a deleted book (see forget_book)."""
        with self._cond:
            while self._finals:
                gone, skip, now = self._finals.popleft()
                for subscription, topic in gone:
                    self._pending.pop(subscription.id, None)
                    if subscription.expires <= now or not topic \
                            or skipped(skip, subscription.id):
                        continue
                    self._pending[subscription.id] = Pending(subscription.book, now, now,
                                                              final=subscription, topic=topic)
                    heapq.heappush(self._heap, (now, next(self._order), subscription.id))

    def _store(self, messages: list[PushQueued]) -> None:
        """Store messages this process sends (the other processes leave them alone)."""
        index = self._ctx.index
        with index.transaction(durable=False):
            index.push.queue_put(messages)
            index.push.queue_hold(holder(index), [m.subscription for m in messages])

    def _load(self) -> None:
        """The messages of a process that is gone — this one before a restart, or another
        that died — go from this one now (or when they are due).  Only while this process
        holds its sender's lease (:meth:`PushSender._run`): the others see it alive."""
        index = self._ctx.index
        gone = [name for name in index.push.queue_holders() if dead_here(name)]
        queued = index.push.adopt(holder(index), gone, time.time())
        with self._cond:
            for message in queued:
                if message.subscription not in self._pending:
                    self._pending[message.subscription] = Pending(
                        message.book, message.due, time.time(), message.attempt)
                    heapq.heappush(self._heap, (message.due, next(self._order),
                                                message.subscription))
        if queued:
            self.stats.restored += len(queued)
            logger.info("WebDAV-Push: %d message(s) not sent before the restart (or by a "
                        "process that stopped) go out now", len(queued))

    def _take(self, until: float) -> tuple[list[tuple[str, Skip, float]], list[str]]:
        """Wait for new changes or messages that are due (or ``until``, monotonic); take them."""
        with self._cond:
            while True:
                now = time.time()
                due: list[str] = []
                while self._heap and self._heap[0][0] <= now:
                    when, _order, subscription_id = heapq.heappop(self._heap)
                    pending = self._pending.get(subscription_id)
                    if pending is None or pending.due != when \
                            or subscription_id in self._in_flight:
                        continue  # sent, rescheduled or dropped meanwhile
                    self._in_flight.add(subscription_id)
                    due.append(subscription_id)
                marks, self._marks = self._marks, []
                if marks or due or self._finals or self._stopping \
                        or time.monotonic() >= until:
                    return marks, due
                wake = min(until - time.monotonic(),
                           (self._heap[0][0] - now) if self._heap else until)
                self._cond.wait(max(0.001, wake))

    def _queue(self, marks: list[tuple[str, Skip, float]]) -> None:
        """One message per subscription of the changed books, stored before it is scheduled."""
        now = time.time()
        window = self._ctx.settings.push_coalesce
        new: list[PushQueued] = []
        with self._cond:
            wanted = [(book, skip, when) for book, skip, when in marks]
        # every changed book's subscriptions in one read (a fan-out's round: hundreds)
        of_book = self._ctx.index.push.of_books({book for book, _, _ in wanted}, now)
        with self._cond:
            for book, skip, when in wanted:
                for subscription in of_book[book]:
                    if skipped(skip, subscription.id):
                        self.stats.suppressed += 1
                        continue
                    pending = self._pending.get(subscription.id)
                    if pending is not None:
                        if subscription.id in self._in_flight:
                            pending.marks += 1  # being sent: this change needs another
                        continue  # a waiting message says the same
                    due = max(now, self._last.get(subscription.id, -window) + window)
                    self._pending[subscription.id] = Pending(book, due, when)
                    new.append(PushQueued(subscription.id, book, due, 1))
        if not new:
            return
        self._store(new)
        with self._cond:
            for message in new:
                heapq.heappush(self._heap, (message.due, next(self._order),
                                            message.subscription))
            if len(self._last) > 10000:  # forget subscriptions whose window is over
                self._last = {k: t for k, t in self._last.items() if t + window > now}

    def _done(self, subscription_id: str, sent_at: float | None = None) -> None:
        """The message went (``sent_at``), or was given up: forget it, unless a change came
        while it was being sent (then a new one waits, after the coalescing window)."""
        again: PushQueued | None = None
        with self._cond:
            self._in_flight.discard(subscription_id)
            pending = self._pending.get(subscription_id)
            if sent_at is not None:
                self._last[subscription_id] = sent_at
            if pending is not None and pending.marks and pending.final is None:
                pending.marks, pending.attempt = 0, 1
                pending.due = time.time() + self._ctx.settings.push_coalesce
                pending.marked = time.time()
                heapq.heappush(self._heap, (pending.due, next(self._order), subscription_id))
                again = PushQueued(subscription_id, pending.book, pending.due, 1)
                self._cond.notify()
            else:
                self._pending.pop(subscription_id, None)
        if again is not None:
            self._store([again])
        else:
            self._ctx.index.push.queue_done(subscription_id)

    def _retry(self, subscription_id: str, reason: str, after: float | None = None) -> None:
        with self._cond:
            pending = self._pending.get(subscription_id)
        if pending is None:
            self._done(subscription_id)
            return
        if pending.attempt >= push_retry.MAX_ATTEMPTS:
            self.stats.failed += 1
            logger.warning("WebDAV-Push: message for /%s/ to subscription %s given up after %d "
                           "attempts: %s", pending.book, subscription_id, pending.attempt,
                           reason)
            self._done(subscription_id)
            return
        delay = push_retry.delay(pending.attempt, after)
        logger.info("WebDAV-Push: message for /%s/ to subscription %s tried again in %.0f s: "
                    "%s", pending.book, subscription_id, delay, reason)
        with self._cond:
            self._in_flight.discard(subscription_id)
            pending.attempt += 1
            pending.marks = 0  # the retry tells of every change so far
            pending.due = time.time() + delay
            heapq.heappush(self._heap, (pending.due, next(self._order), subscription_id))
            self._cond.notify()
            queued = PushQueued(subscription_id, pending.book, pending.due, pending.attempt)
        if pending.final is None:
            self._store([queued])
