# SPDX-License-Identifier: GPL-3.0-or-later
"""The push sender: a background thread that tells push services which books changed.

Whatever changes a book — a client's PUT, DELETE, MOVE or whole-book write
(the storage hooks, after the request released the storage lock), or a copy
the fan-out wrote (after its renames) — ends in :meth:`PushSender.mark`,
which only notes the book in memory and returns.  This thread then:

1. *coalesces*: a book's message goes out at once, but at most one per book
   within ``mecard_push_coalesce`` seconds; marks meanwhile join the next;
2. *fans out* to every subscription of the book that has not expired, one
   message each (at most one waiting per subscription: they all say the same);
3. *sends* from lanes, one per push service (host and port), each with a
   few threads of its own: a push service that never answers holds up only
   its own lane, for at most ``mecard_push_timeout`` seconds per attempt;
4. *retries* a timeout, a refused connection, a 429 or a 5xx with exponential
   backoff, :data:`MAX_ATTEMPTS` attempts in all; *drops* the subscription
   on 404 or 410 (the push service says it is gone); gives up on other answers.

Nothing here holds the storage lock, and no request waits for it.  What is
still to send lives in memory only: a restart loses the messages not sent
yet (clients still poll, and the next change sends again).  Expired
subscriptions are purged every :data:`PURGE_EVERY` seconds.
"""

from __future__ import annotations

import collections
import heapq
import http.client
import itertools
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from pywebpush import WebPusher
from radicale.log import logger

from radicale_plugin import push_dav, push_hosts, push_http
from radicale_plugin.context import Context
from radicale_plugin.index import PushSubscription
from radicale_plugin.push_keys import VapidKeys

Post = Callable[[push_hosts.Destination, Sequence[str], Mapping[str, str], bytes, float],
                push_http.Answer]
Resolver = Callable[[push_hosts.Destination, bool], list[str]]

#: Attempts per message, the first included.
MAX_ATTEMPTS = 5
#: Seconds before the first retry; each further one waits twice as long.
BACKOFF = 2.0
#: Longest wait a push service's Retry-After is granted.
MAX_RETRY_AFTER = 300.0
#: Threads per push service (host and port).
THREADS_PER_SERVICE = 4
#: Seconds between purges of expired subscriptions.
PURGE_EVERY = 600.0
#: How long a push service keeps a message for a phone that is offline (RFC 8030 TTL).
TTL = 24 * 3600


@dataclass(frozen=True)
class _Message:
    """One message to one subscription: the book changed."""

    subscription: str        # its id
    push_resource: str
    book: str
    topic: str
    marked: float            # when the change was noted (time.monotonic())
    attempt: int = 1


@dataclass
class Stats:
    """What the sender did since the process started (for tests and benchmarks)."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0         # subscriptions removed because the push service said 404/410
    last_latency: float = 0.0


class _Lanes:
    """A queue per push service, drained by up to ``threads`` threads that come and go."""

    def __init__(self, work: Callable[[_Message], None], threads: int) -> None:
        self._work = work
        self._threads = threads
        self._lock = threading.Lock()
        self._queues: dict[tuple[str, int], collections.deque[_Message]] = {}
        self._running: dict[tuple[str, int], int] = {}

    def put(self, lane: tuple[str, int], message: _Message) -> None:
        with self._lock:
            self._queues.setdefault(lane, collections.deque()).append(message)
            if self._running.get(lane, 0) >= self._threads:
                return
            self._running[lane] = self._running.get(lane, 0) + 1
        threading.Thread(target=self._drain, args=(lane,), daemon=True,
                         name="mecard-push-%s:%d" % lane).start()

    def _drain(self, lane: tuple[str, int]) -> None:
        while True:
            with self._lock:
                queue = self._queues.get(lane)
                if not queue:
                    self._queues.pop(lane, None)
                    self._running[lane] -= 1
                    if not self._running[lane]:
                        del self._running[lane]
                    return
                message = queue.popleft()
            try:
                self._work(message)
            except Exception as e:  # one bad message must not end the lane
                logger.error("WebDAV-Push: sending failed: %s", e, exc_info=True)


class PushSender:
    """Coalesces book changes and sends WebDAV-Push messages, from threads of its own."""

    def __init__(self, ctx: Context, keys: VapidKeys, topic: Callable[[str], str],
                 post: Post = push_http.post, resolve: Resolver = push_hosts.resolve) -> None:
        self._ctx = ctx
        self._keys = keys
        self._topic = topic
        self._post = post
        self._resolve = resolve
        self._cond = threading.Condition()
        self._due: dict[str, float] = {}        # book → when its message may go (monotonic)
        self._marked: dict[str, float] = {}     # book → when it was first marked since
        self._last: dict[str, float] = {}       # book → when its last message went
        self._retries: list[tuple[float, int, _Message]] = []   # a heap, by due time
        self._order = itertools.count()
        self._waiting: set[str] = set()         # subscriptions with a message not yet sent
        self._lanes = _Lanes(self._deliver, THREADS_PER_SERVICE)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.stats = Stats()

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

    def mark(self, books: Iterable[str]) -> None:
        """These books changed: their subscribers get a message soon.  Never blocks."""
        if not self._ctx.settings.push_services:
            return
        now = time.monotonic()
        window = self._ctx.settings.push_coalesce
        with self._cond:
            for book in books:
                book = book.strip("/")
                if book.count("/") == 1 and book not in self._due:
                    self._due[book] = max(now, self._last.get(book, -window) + window)
                    self._marked[book] = now
            self._cond.notify()

    # -- the thread -----------------------------------------------------------------
    def _run(self) -> None:
        next_purge = time.monotonic()
        while True:
            try:
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + PURGE_EVERY
                    self._purge()
                books, retries = self._take(next_purge)
                for book, marked in books:
                    self._fan_out(book, marked)
                for message in retries:
                    self._queue(message)
            except Exception as e:
                logger.error("WebDAV-Push: the sender failed, going on: %s", e, exc_info=True)
                time.sleep(1)

    def _take(self, until: float) -> tuple[list[tuple[str, float]], list[_Message]]:
        """Wait for books or retries that are due (or ``until``); take them.

        Books come with the time they were marked.
        """
        with self._cond:
            while True:
                now = time.monotonic()
                books = [b for b, due in self._due.items() if due <= now]
                retries = []
                while self._retries and self._retries[0][0] <= now:
                    retries.append(heapq.heappop(self._retries)[2])
                if books or retries or now >= until:
                    break
                wake = min([until, *self._due.values()]
                           + ([self._retries[0][0]] if self._retries else []))
                self._cond.wait(max(0.001, wake - now))
            for book in books:
                del self._due[book]
                self._last[book] = now
            if len(self._last) > 10000:  # forget books whose window is over
                window = self._ctx.settings.push_coalesce
                self._last = {b: t for b, t in self._last.items() if t + window > now}
            return [(b, self._marked.pop(b, now)) for b in books], retries

    def _fan_out(self, book: str, marked: float) -> None:
        subscriptions = self._ctx.index.push.of_book(book, time.time())
        if not subscriptions:
            return
        topic = self._topic(book)
        for subscription in subscriptions:
            self._queue(_Message(subscription.id, subscription.push_resource, book, topic,
                                 marked))

    def _queue(self, message: _Message) -> None:
        with self._cond:
            if message.subscription in self._waiting:
                return  # a message to it waits already, and says the same
            self._waiting.add(message.subscription)
        settings = self._ctx.settings
        try:
            target = push_hosts.destination(message.push_resource, settings.push_services,
                                            settings.push_allow_insecure_loopback)
            lane = (target.host, target.port)
        except push_hosts.PushRefused:
            lane = ("", 0)  # refused again when sent, with the reason logged
        self._lanes.put(lane, message)

    def _retry(self, message: _Message, reason: str, after: float | None = None) -> None:
        if message.attempt >= MAX_ATTEMPTS:
            self.stats.failed += 1
            logger.warning("WebDAV-Push: message for /%s/ to subscription %s given up after %d "
                           "attempts: %s", message.book, message.subscription, message.attempt,
                           reason)
            return
        delay = BACKOFF * 2 ** (message.attempt - 1) * random.uniform(0.8, 1.2)
        if after is not None:
            delay = max(delay, min(after, MAX_RETRY_AFTER))
        logger.info("WebDAV-Push: message for /%s/ to subscription %s tried again in %.0f s: "
                    "%s", message.book, message.subscription, delay, reason)
        retry = _Message(message.subscription, message.push_resource, message.book,
                         message.topic, message.marked, message.attempt + 1)
        with self._cond:
            heapq.heappush(self._retries, (time.monotonic() + delay, next(self._order), retry))
            self._cond.notify()

    def _purge(self) -> None:
        gone = self._ctx.index.push.purge_expired(time.time())
        if gone:
            logger.info("WebDAV-Push: %d expired subscription(s) purged", gone)

    # -- the lanes' threads ---------------------------------------------------------------
    def _deliver(self, message: _Message) -> None:
        with self._cond:
            # from now on a new change needs a new message
            self._waiting.discard(message.subscription)
        subscription = self._ctx.index.push.get(message.subscription)
        if subscription is None or subscription.expires <= time.time():
            return  # removed or expired meanwhile
        settings = self._ctx.settings
        insecure = settings.push_allow_insecure_loopback
        try:
            target = push_hosts.destination(subscription.push_resource, settings.push_services,
                                            insecure)
            addresses = self._resolve(target, insecure)
        except push_hosts.PushRefused as e:
            self.stats.failed += 1
            logger.warning("WebDAV-Push: message for /%s/ to subscription %s not sent: %s",
                           message.book, subscription.id, e)
            return
        except OSError as e:
            self._retry(message, "%s does not resolve (%s)" % (target.host, e))
            return
        body = _encrypted(push_dav.message_body(message.topic), subscription)
        headers = {
            "Authorization": self._keys.authorization(target.origin, settings.push_contact),
            "Content-Type": "application/xml; charset=\"utf-8\"",
            "Content-Encoding": subscription.content_encoding,
            "TTL": str(TTL),
            "Urgency": "normal",
            # a message not delivered yet is replaced by this one (RFC 8030 §5.4)
            "Topic": message.topic,
        }
        try:
            answer = self._post(target, addresses, headers, body, settings.push_timeout)
        except (OSError, http.client.HTTPException) as e:
            self._retry(message, "%s:%d did not answer (%s)" % (target.host, target.port,
                                                               e or type(e).__name__))
            return
        self._answered(message, subscription, answer)

    def _answered(self, message: _Message, subscription: PushSubscription,
                  answer: push_http.Answer) -> None:
        status = answer.status
        if 200 <= status < 300:
            latency = time.monotonic() - message.marked
            self.stats.sent += 1
            self.stats.last_latency = latency
            logger.debug("WebDAV-Push: message for /%s/ sent to subscription %s (%d), "
                         "%.0f ms after the change", message.book, subscription.id, status,
                         latency * 1000)
        elif status in (404, 410):
            self._ctx.index.push.remove(subscription.id)
            self.stats.dropped += 1
            logger.info("WebDAV-Push: the push service says subscription %s of %r to /%s/ is "
                        "gone (%d): removed", subscription.id, subscription.user,
                        subscription.book, status)
        elif status == 429 or status >= 500:
            wait = answer.retry_after or ""
            after = float(wait) if wait.isdigit() else None  # an HTTP date: our own backoff
            self._retry(message, "the push service answered %d" % status, after)
        else:
            self.stats.failed += 1
            logger.warning("WebDAV-Push: message for /%s/ to subscription %s refused by the "
                           "push service (%d): %s", message.book, subscription.id, status,
                           answer.text[:200].replace("\n", " "))


def _encrypted(body: bytes, subscription: PushSubscription) -> bytes:
    """``body`` encrypted for the subscription (RFC 8291, aes128gcm)."""
    pusher = WebPusher({"endpoint": subscription.push_resource,
                        "keys": {"p256dh": subscription.public_key,
                                 "auth": subscription.auth_secret}})
    return bytes(pusher.encode(body, subscription.content_encoding)["body"])
