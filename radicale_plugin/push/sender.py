# SPDX-License-Identifier: GPL-3.0-or-later
"""The push sender: a background thread that tells push services which books changed.

Whatever changes a book — a client's PUT, DELETE, MOVE or whole-book write
(the storage hooks, after the request released the storage lock), or a copy
the fan-out wrote (after its renames) — ends in :meth:`PushSender.mark`,
which only notes the book in memory and returns.  This thread then:

1. *queues* one message per subscription of the book that has not expired,
   except those the request named in ``Push-Dont-Notify`` (the phone that made
   the change is not told of it; ``*``: nobody is), and stores it in the
   index (``push_queue``): messages not sent yet survive a restart and go out
   when the server is back;
2. *coalesces*: a subscription's message goes out at once, but at most one
   per subscription within ``mecard_push_coalesce`` seconds; changes meanwhile
   join the waiting message (a change while it is being sent makes a new one);
3. *sends* from lanes, one per push service (host and port), each with a
   few threads of its own: a push service that never answers holds up only
   its own lane, for at most ``mecard_push_timeout`` seconds per attempt.
   Each message carries the book's ``sync-token`` as it is when the message
   goes (read under Radicale's shared lock), so that a phone that already
   synced that state can ignore it;
4. *retries* a timeout, a refused connection, a 429 or a 5xx with exponential
   backoff, :data:`MAX_ATTEMPTS` attempts in all; *drops* the subscription
   on 404 or 410 (the push service says it is gone); gives up on other answers.

This module holds the thread and the sending; its parts: the queue and its
coalescing (:mod:`.queue`, steps 1, 2 and the rescheduling of 4), ``Push-Dont-Notify``
(:mod:`.dont_notify`), the lanes (:mod:`.lanes`), the retry policy (:mod:`.retry`),
the message's body and headers (:mod:`.message`) and the sync-tokens
(:mod:`.sync_tokens`).

A deleted book takes its subscriptions with it (:meth:`PushSender.forget_book`):
each gets one last message (the removal is a content update, as the draft
says) and nothing after.  Nothing here holds the storage lock but to read a
sync-token, and no request waits for this thread.  Expired subscriptions are
purged every :data:`PURGE_EVERY` seconds (by one process of those sharing the index).

Several processes on one index: each sends the messages of the changes it noted, and
holds them in the index while its sender's lease lives; the messages of a process that
is gone (killed, or stopped before sending) are taken over by the next one to look.
"""

from __future__ import annotations

import http.client
import threading
import time
from typing import Callable, Mapping, Sequence

from radicale.log import logger

from radicale_plugin.push import dav as push_dav
from radicale_plugin.push import hosts as push_hosts
from radicale_plugin.push import http as push_http
from radicale_plugin.push import message as push_message
from radicale_plugin.push import retry as push_retry
from radicale_plugin.context import Context
from radicale_plugin.index import PushSubscription
from radicale_plugin.index.duties import Duty, holder
from radicale_plugin.push.dont_notify import ALL, Skip, dont_notify
from radicale_plugin.push.keys import VapidKeys
from radicale_plugin.push.lanes import THREADS_PER_SERVICE, Lanes
from radicale_plugin.push.message import TTL
from radicale_plugin.push.queue import Pending, PushQueue, Stats
from radicale_plugin.push.retry import BACKOFF, MAX_ATTEMPTS, MAX_RETRY_AFTER

__all__ = ["PushSender", "Stats", "Post", "Resolver", "Skip", "ALL", "dont_notify",
           "MAX_ATTEMPTS", "BACKOFF", "MAX_RETRY_AFTER", "THREADS_PER_SERVICE",
           "PURGE_EVERY", "TTL"]

Post = Callable[[push_hosts.Destination, Sequence[str], Mapping[str, str], bytes, float],
                push_http.Answer]
Resolver = Callable[[push_hosts.Destination, bool], list[str]]

#: Seconds between purges of expired subscriptions.
PURGE_EVERY = 600.0


class PushSender(PushQueue):
    """Queues book changes and sends WebDAV-Push messages, from threads of its own."""

    def __init__(self, ctx: Context, keys: VapidKeys, topic: Callable[[str], str],
                 post: Post = push_http.post, resolve: Resolver = push_http.resolve) -> None:
        super().__init__(ctx)
        self._keys = keys
        self._topic = topic
        self._post = post
        self._resolve = resolve
        self._lanes = Lanes(self._deliver, THREADS_PER_SERVICE)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # -- from other threads ---------------------------------------------------------
    def start(self) -> None:
        """Start the thread once per process (if push is offered); load the VAPID key."""
        settings = self._ctx.settings
        if not settings.push_services:
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            try:
                self._keys.load()
                # a contact push services refuse shows now, not at the first change
                self._keys.authorization("https://push.example.org", settings.push_contact)
            except Exception as e:
                logger.error("WebDAV-Push: the VAPID key (%s) or contact (%s) is not usable, "
                             "no push is sent: %s", self._keys.path, settings.push_contact, e)
                return
            self._thread = threading.Thread(target=self._run, name="mecard-push", daemon=True)
            self._thread.start()

    # -- the thread -----------------------------------------------------------------
    def _run(self) -> None:
        next_purge = next_look = time.monotonic()
        # this process's sender lives while it holds this lease: the messages it queued are
        # its own; those of a process that is gone are taken over (PushQueue._load)
        index = self._ctx.index
        alive = Duty(index, "push-sender:" + holder(index), self._ctx.settings.claim_lease)
        while not self._stopping:
            try:
                if time.monotonic() >= next_look:
                    next_look = time.monotonic() + alive.seconds / 3
                    alive.hold()
                    self._load()
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + PURGE_EVERY
                    self._purge()
                self._last_messages()
                marks, due = self._take(min(next_purge, next_look))
                if marks:
                    self._queue(marks)
                for subscription_id in due:
                    self._send(subscription_id)
            except Exception as e:
                logger.error("WebDAV-Push: the sender failed, going on: %s", e, exc_info=True)
                time.sleep(1)
        try:
            alive.release()  # what it did not send goes from another process at once
        except Exception as e:  # it lapses by itself
            logger.debug("WebDAV-Push: releasing the sender's lease: %s", e)

    def stop(self, timeout: float = 5.0) -> None:
        """A clean stop: the thread ends (messages being sent by the lanes go on), and the
        messages not sent yet are left in the index for the next process to look."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _send(self, subscription_id: str) -> None:
        """Hand a due message to its push service's lane."""
        with self._cond:
            pending = self._pending.get(subscription_id)
        subscription = pending.final if pending is not None and pending.final else \
            self._ctx.index.push.get(subscription_id)
        if pending is None or subscription is None:
            self._done(subscription_id)
            return
        settings = self._ctx.settings
        try:
            target = push_hosts.destination(subscription.push_resource, settings.push_services,
                                            settings.push_allow_insecure_loopback)
            lane = (target.host, target.port)
        except push_hosts.PushRefused:
            lane = ("", 0)  # refused again when sent, with the reason logged
        self._lanes.put(lane, subscription_id)

    def _purge(self) -> None:
        # once per period between every process sharing the index
        if not Duty(self._ctx.index, "push-purge", PURGE_EVERY).hold():
            return
        gone = self._ctx.index.push.purge_expired(time.time())
        if gone:
            logger.info("WebDAV-Push: %d expired subscription(s) purged", gone)
        self._ctx.index.leases.purge(time.time() - 86400)  # of processes long gone

    # -- the lanes' threads ---------------------------------------------------------------
    def _deliver(self, subscription_id: str) -> None:
        with self._cond:
            pending = self._pending.get(subscription_id)
            if pending is not None:
                pending.marks = 0  # from now on a new change needs a new message
        if pending is None:
            self._done(subscription_id)
            return
        subscription = pending.final or self._ctx.index.push.get(subscription_id)
        if subscription is None or subscription.expires <= time.time():
            self._done(subscription_id)  # removed or expired meanwhile
            return
        settings = self._ctx.settings
        insecure = settings.push_allow_insecure_loopback
        try:
            target = push_hosts.destination(subscription.push_resource, settings.push_services,
                                            insecure)
            addresses = self._resolve(target, insecure)
        except push_hosts.PushRefused as e:
            self.stats.failed += 1
            logger.warning("WebDAV-Push: message for /%s/ to subscription %s not sent: %s",
                           pending.book, subscription.id, e)
            self._done(subscription_id)
            return
        except OSError as e:
            self._retry(subscription_id, "%s does not resolve (%s)" % (target.host, e))
            return
        topic = pending.topic or self._topic(pending.book)
        token = None if pending.final else self._tokens.token(pending.book)
        body = push_message.encrypted(push_dav.message_body(topic, token), subscription)
        headers = push_message.headers(
            self._keys.authorization(target.origin, settings.push_contact), subscription, topic)
        try:
            answer = self._post(target, addresses, headers, body, settings.push_timeout)
        except (OSError, http.client.HTTPException) as e:
            self._retry(subscription_id, "%s:%d did not answer (%s)" % (
                target.host, target.port, e or type(e).__name__))
            return
        self._answered(pending, subscription, answer, token)

    def _answered(self, pending: Pending, subscription: PushSubscription,
                  answer: push_http.Answer, token: str | None) -> None:
        status = answer.status
        outcome = push_retry.outcome(status)
        if outcome == push_retry.SENT:
            latency = time.time() - pending.marked
            self.stats.sent += 1
            self.stats.last_latency = latency
            self.stats.last_token = token
            logger.debug("WebDAV-Push: message for /%s/ sent to subscription %s (%d), "
                         "%.0f ms after the change", pending.book, subscription.id, status,
                         latency * 1000)
            self._done(subscription.id, time.time())
        elif outcome == push_retry.GONE:
            self._ctx.index.push.remove(subscription.id)
            self.stats.dropped += 1
            logger.info("WebDAV-Push: the push service says subscription %s of %r to /%s/ is "
                        "gone (%d): removed", subscription.id, subscription.user,
                        subscription.book, status)
            with self._cond:
                pending.marks = 0
            self._done(subscription.id)
        elif outcome == push_retry.AGAIN:
            # a Retry-After that is an HTTP date: our own backoff
            self._retry(subscription.id, "the push service answered %d" % status,
                        push_retry.retry_after(answer.retry_after))
        else:
            self.stats.failed += 1
            logger.warning("WebDAV-Push: message for /%s/ to subscription %s refused by the "
                           "push service (%d): %s", pending.book, subscription.id, status,
                           answer.text[:200].replace("\n", " "))
            self._done(subscription.id)
