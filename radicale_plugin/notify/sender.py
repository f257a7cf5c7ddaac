# SPDX-License-Identifier: GPL-3.0-or-later
"""The notification sender: a thread of its own that makes e-mails of waiting events and
sends them, at most once per batch.

Why at most once, and how.  An e-mail twice is a nuisance that teaches people to
ignore (or report) the server's mail; one lost after a crash is told again by the
pages, and by the next e-mail.  So each batch is **claimed** — ``ready`` → ``sending``
in a durable commit — *before* the mail server hears of it, and only then sent.  A
batch found ``sending`` at start (the process was killed mid-send, or right after
claiming) may have gone out: it becomes ``unknown`` and is logged, never sent again.
Likewise an attempt whose message's end got no answer (:mod:`.smtp`).  Failures that
prove the mail server has nothing (it cannot be reached, it answered 4xx) make the
batch ``ready`` again, due after a backoff: ``mecard_retry_base`` seconds doubling up to
``mecard_retry_max``, at most ``mecard_retry_attempts`` attempts (as deliveries);
a 5xx refusal or the last attempt makes it ``failed``.  A batch is sent with the same
bytes and Message-ID at every attempt.

The thread never takes Radicale's storage lock (it reads only the index), and no
request waits for it: events are recorded by their callers (:mod:`.events`), and this
thread looks for work when the next batch is due, and at least every
:data:`POLL` seconds.  Claiming is one conditional update, so two processes on one
database never send one batch twice.

Several processes on one index: one of them sends, the one holding the duty's lease
(:class:`~radicale_plugin.index.duties.Duty`, renewed at every look and before every
send); the others stand by and look at whether it lapsed.  The process that takes the
duty over (at start, or after the sender died) marks the batches the last one left
``sending`` as ``unknown``, as at a start -- but only those whose sender is gone: each
batch being sent has a lease of its own (``notify:<id>``), renewed while the mail
server talks, so that a slow sender whose duty lapsed meanwhile is not taken for a dead
one (its batch would be told "unknown" while it is still being sent).  The holder of
the duty looks at every tick: a batch's lease outlives the duty of a sender that died
mid-send by up to a lease.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator

from radicale.log import logger

from radicale_plugin.context import Context
from radicale_plugin.index.duties import Duty, dead_here, holder
from radicale_plugin.index.records import (BATCH_CANCELLED, BATCH_FAILED, BATCH_READY,
                                           BATCH_SENDING, BATCH_SENT, BATCH_UNKNOWN, EVENT_OFFER,
                                           NOTIFY_NONE, NotifyBatch)
from radicale_plugin.notify import smtp
from radicale_plugin.notify.batches import Batcher
from radicale_plugin.notify.choices import Choices

#: Longest time, in seconds, between two looks for new events.
POLL = 5.0
#: Finished batches are kept this long (the newest of each recipient always).
KEEP = 30 * 86400.0
#: Seconds between purges of old batches.
PURGE_EVERY = 3600.0
#: The lease of a batch being sent (:class:`~radicale_plugin.index.LeaseStore`).
BATCH_LEASE = "notify:%d"


class NotifySender:
    """Makes and sends notification e-mails from a thread of its own."""

    def __init__(self, ctx: Context, choices: Choices) -> None:
        self._ctx = ctx
        self._choices = choices
        self._batcher = Batcher(ctx, choices)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = False

    def start(self) -> None:
        """Start the thread once per process, if this server sends notification e-mails."""
        if not self._choices.enabled():
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="mecard-notify",
                                            daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look for work now (events were recorded)."""
        with self._cond:
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _poll(self) -> float:
        return max(0.1, min(POLL, self._ctx.settings.notify_settle / 4))

    def _lease(self) -> float:
        return max(self._ctx.settings.claim_lease, 3 * self._poll())

    def _gone(self, now: float) -> list[int]:
        """The batches left ``sending`` whose sender is gone: its lease lapsed, or it was
        a process of this machine that was killed."""
        index = self._ctx.index
        gone = []
        for batch in index.notify.batches(state=BATCH_SENDING):
            other = index.leases.holder(BATCH_LEASE % batch.id, now)
            if other is not None and dead_here(other):
                index.leases.release(BATCH_LEASE % batch.id, other)
                other = None
            if other is None:
                gone.append(batch.id)
        return gone

    def _interrupted(self) -> None:
        gone = self._gone(time.time())
        if not gone:
            return
        for batch in self._ctx.index.notify.interrupted(gone):
            logger.warning("Notification %d for %r was being sent when the server stopped: "
                           "it may have arrived, so it is not sent again", batch.id,
                           batch.recipient)

    def _run(self) -> None:
        # unrenewed, the lease lasts ``mecard_claim_lease``: how long a dead sender's mail waits
        duty = Duty(self._ctx.index, "notify-sender", self._lease())
        next_purge = time.time()
        while not self._stopping:
            wake = time.time() + self._poll()
            try:
                # another process holding the duty sends: this one looks again at the next
                # poll whether it still does
                if duty.hold():
                    # at start, taking over from a sender that died, or its batch's lease
                    # lapsed since (it outlives the duty by up to a lease)
                    self._interrupted()
                    now = time.time()
                    if now >= next_purge:
                        next_purge = now + PURGE_EVERY
                        self._ctx.index.notify.purge(now - KEEP)
                    made = self._batcher.run(now)
                    for batch in self._ctx.index.notify.due_batches(now):
                        if self._stopping or not duty.hold():
                            break  # the duty lapsed (a slow mail server): its holder sends
                        self.send(batch)
                    due = self._ctx.index.notify.next_due()
                    wake = min([wake] + [t for t in (made, due) if t is not None])
            except Exception as e:
                logger.error("Notifications: the sender failed, going on: %s", e,
                             exc_info=True)
                wake = time.time() + 1
            with self._cond:
                if not self._stopping:
                    self._cond.wait(max(0.05, wake - time.time()))
        try:
            duty.release()  # a clean stop: another process sends from now on
        except Exception as e:  # it lapses by itself
            logger.debug("Notifications: releasing the sending duty: %s", e)

    def send(self, batch: NotifyBatch) -> str:
        """Claim one ready batch and send it; returns its new state."""
        index = self._ctx.index
        email, address, _ = self._choices.effective(batch.recipient)
        if email == NOTIFY_NONE or address != batch.address or \
                not self._choices.wants(batch.recipient, EVENT_OFFER):
            # unsubscribed, or the address is no longer theirs (verified elsewhere)
            index.notify.finish(batch.id, BATCH_CANCELLED, error="no longer wanted there")
            return BATCH_CANCELLED
        # the batch's lease before its claim: once it is "sending", another process
        # taking the duty over sees that it is still being sent
        name, me, lease = BATCH_LEASE % batch.id, holder(index), self._lease()
        if not index.leases.take(name, me, lease, time.time()):
            return ""  # another process is sending it
        try:
            if not index.notify.claim(batch.id):
                return ""  # claimed by another thread or process, or cancelled meanwhile
            try:
                with self._renewing(name, me, lease):
                    outcome, error = smtp.send(self._ctx.settings, batch.address,
                                               batch.message)
            except Exception as e:  # claimed: it must not stay "sending" until the next start
                logger.error("Notification %d: sending failed unexpectedly", batch.id,
                             exc_info=True)
                outcome, error = smtp.UNKNOWN, "%s: %s" % (type(e).__name__, e)
            return self._record(batch, outcome, error)
        finally:
            index.leases.release(name, me)

    @contextlib.contextmanager
    def _renewing(self, name: str, me: str, lease: float) -> Iterator[None]:
        """Renew the batch's lease while the mail server talks (up to a few times
        :data:`.smtp.TIMEOUT`): the batch of a living sender is never taken over."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(lease / 3):
                try:
                    self._ctx.index.leases.take(name, me, lease, time.time())
                except Exception as e:  # the next renewal tries again
                    logger.warning("Notifications: renewing the lease of %s: %s", name, e)
        keeper = threading.Thread(target=renew, name="mecard-notify-lease", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()

    def _record(self, batch: NotifyBatch, outcome: str, error: str) -> str:
        """Store what came of an attempt; its new state."""
        index = self._ctx.index
        attempts = batch.attempts + 1
        settings = self._ctx.settings
        if outcome == smtp.SENT:
            index.notify.finish(batch.id, BATCH_SENT, sent=time.time())
            logger.info("Notification %d sent to %r (attempt %d)", batch.id, batch.recipient,
                        attempts)
            return BATCH_SENT
        if outcome == smtp.AGAIN and attempts < settings.retry_attempts:
            wait = settings.retry_delay(attempts)
            index.notify.finish(batch.id, BATCH_READY, time.time() + wait, error)
            logger.warning("Notification %d for %r not sent (attempt %d of %d), tried again "
                           "in %g s: %s", batch.id, batch.recipient, attempts,
                           settings.retry_attempts, wait, error)
            return BATCH_READY
        state = BATCH_UNKNOWN if outcome == smtp.UNKNOWN else BATCH_FAILED
        index.notify.finish(batch.id, state, error=error)
        logger.warning("Notification %d for %r %s: %s", batch.id, batch.recipient,
                       "may or may not have arrived, and is not sent again"
                       if state == BATCH_UNKNOWN else "given up", error)
        return state
