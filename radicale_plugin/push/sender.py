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

A deleted book takes its subscriptions with it (:meth:`PushSender.forget_book`):
each gets one last message (the removal is a content update, as the draft
says) and nothing after.  Nothing here holds the storage lock but to read a
sync-token, and no request waits for this thread.  Expired subscriptions are
purged every :data:`PURGE_EVERY` seconds.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import http.client
import itertools
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, Sequence, Union

from pywebpush import WebPusher
from radicale.log import logger

from radicale_plugin import store
from radicale_plugin.push import dav as push_dav
from radicale_plugin.push import hosts as push_hosts
from radicale_plugin.push import http as push_http
from radicale_plugin.context import Context
from radicale_plugin.index import PushQueued, PushSubscription
from radicale_plugin.push.keys import VapidKeys

Post = Callable[[push_hosts.Destination, Sequence[str], Mapping[str, str], bytes, float],
                push_http.Answer]
Resolver = Callable[[push_hosts.Destination, bool], list[str]]
#: What a request asked not to be told (``Push-Dont-Notify``): subscription ids, or ALL.
Skip = Union[frozenset, str, None]

#: ``Push-Dont-Notify: *``: no subscription is told of the request's changes.
ALL = "*"
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

_request = threading.local()


@contextlib.contextmanager
def dont_notify(skip: Skip) -> Iterator[None]:
    """While this thread handles a request with ``Push-Dont-Notify``: what it asked not to be
    told (subscription ids, or :data:`ALL`).  The WSGI layer wraps each request in it."""
    previous = getattr(_request, "skip", None)
    _request.skip = skip
    try:
        yield
    finally:
        _request.skip = previous


def _skipped(skip: Skip, subscription_id: str) -> bool:
    return skip == ALL or (isinstance(skip, frozenset) and subscription_id in skip)


@dataclass
class _Pending:
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


class _Lanes:
    """A queue per push service, drained by up to ``threads`` threads that come and go."""

    def __init__(self, work: Callable[[str], None], threads: int) -> None:
        self._work = work
        self._threads = threads
        self._lock = threading.Lock()
        self._queues: dict[tuple[str, int], collections.deque[str]] = {}
        self._running: dict[tuple[str, int], int] = {}

    def put(self, lane: tuple[str, int], message: str) -> None:
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
    """Queues book changes and sends WebDAV-Push messages, from threads of its own."""

    def __init__(self, ctx: Context, keys: VapidKeys, topic: Callable[[str], str],
                 post: Post = push_http.post, resolve: Resolver = push_http.resolve) -> None:
        self._ctx = ctx
        self._keys = keys
        self._topic = topic
        self._post = post
        self._resolve = resolve
        self._cond = threading.Condition()
        self._marks: list[tuple[str, Skip, float]] = []  # (book, skip, when) not queued yet
        #: subscriptions of deleted books, each with its topic (appended without a lock)
        self._finals: collections.deque[tuple[list[tuple[PushSubscription, str | None]],
                                              Skip, float]] = collections.deque()
        self._pending: dict[str, _Pending] = {}          # subscription → its waiting message
        self._heap: list[tuple[float, int, str]] = []     # (due, order, subscription)
        self._order = itertools.count()
        self._in_flight: set[str] = set()
        self._last: dict[str, float] = {}                 # subscription → its last message
        self._versions: dict[str, int] = {}               # book → changes noted (for tokens)
        self._tokens: dict[str, tuple[int, str]] = {}     # book → (version, sync-token)
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
        """These books changed: their subscribers get a message soon.  Never blocks.

        A request's ``Push-Dont-Notify`` (see :func:`dont_notify`) applies to the
        books it changed.
        """
        if not self._ctx.settings.push_services:
            return
        skip: Skip = getattr(_request, "skip", None)
        now = time.time()
        with self._cond:
            for book in books:
                book = book.strip("/")
                if book.count("/") == 1:
                    self._marks.append((book, skip, now))
                    self._versions[book] = self._versions.get(book, 0) + 1
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
            self._finals.append((gone, getattr(_request, "skip", None), time.time()))
            logger.info("WebDAV-Push: /%s/ deleted, with its %d subscription(s)",
                        path.strip("/"), len(gone))

    def _last_messages(self) -> None:
        """The last message to each subscription of a deleted book (see forget_book)."""
        with self._cond:
            while self._finals:
                gone, skip, now = self._finals.popleft()
                for subscription, topic in gone:
                    self._pending.pop(subscription.id, None)
                    if subscription.expires <= now or not topic \
                            or _skipped(skip, subscription.id):
                        continue
                    self._pending[subscription.id] = _Pending(subscription.book, now, now,
                                                              final=subscription, topic=topic)
                    heapq.heappush(self._heap, (now, next(self._order), subscription.id))

    # -- the thread -----------------------------------------------------------------
    def _run(self) -> None:
        next_purge = time.monotonic()
        loaded = False
        while True:
            try:
                if not loaded:
                    self._load()
                    loaded = True
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + PURGE_EVERY
                    self._purge()
                self._last_messages()
                marks, due = self._take(next_purge)
                if marks:
                    self._queue(marks)
                for subscription_id in due:
                    self._send(subscription_id)
            except Exception as e:
                logger.error("WebDAV-Push: the sender failed, going on: %s", e, exc_info=True)
                time.sleep(1)

    def _load(self) -> None:
        """The messages not sent before the last stop: they go now (or when they are due)."""
        queued = self._ctx.index.push.queued()
        with self._cond:
            for message in queued:
                if message.subscription not in self._pending:
                    self._pending[message.subscription] = _Pending(
                        message.book, message.due, time.time(), message.attempt)
                    heapq.heappush(self._heap, (message.due, next(self._order),
                                                message.subscription))
        if queued:
            self.stats.restored += len(queued)
            logger.info("WebDAV-Push: %d message(s) not sent before the restart go out now",
                        len(queued))

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
                if marks or due or self._finals or time.monotonic() >= until:
                    return marks, due
                wake = min(until - time.monotonic(),
                           (self._heap[0][0] - now) if self._heap else until)
                self._cond.wait(max(0.001, wake))

    def _queue(self, marks: list[tuple[str, Skip, float]]) -> None:
        """One message per subscription of the changed books, stored before it is scheduled."""
        now = time.time()
        window = self._ctx.settings.push_coalesce
        of_book: dict[str, list[PushSubscription]] = {}
        new: list[PushQueued] = []
        with self._cond:
            wanted = [(book, skip, when) for book, skip, when in marks]
        for book, _skip, _when in wanted:
            if book not in of_book:
                of_book[book] = self._ctx.index.push.of_book(book, now)
        with self._cond:
            for book, skip, when in wanted:
                for subscription in of_book[book]:
                    if _skipped(skip, subscription.id):
                        self.stats.suppressed += 1
                        continue
                    pending = self._pending.get(subscription.id)
                    if pending is not None:
                        if subscription.id in self._in_flight:
                            pending.marks += 1  # being sent: this change needs another
                        continue  # a waiting message says the same
                    due = max(now, self._last.get(subscription.id, -window) + window)
                    self._pending[subscription.id] = _Pending(book, due, when)
                    new.append(PushQueued(subscription.id, book, due, 1))
        if not new:
            return
        self._ctx.index.push.queue_put(new)
        with self._cond:
            for message in new:
                heapq.heappush(self._heap, (message.due, next(self._order),
                                            message.subscription))
            if len(self._last) > 10000:  # forget subscriptions whose window is over
                self._last = {k: t for k, t in self._last.items() if t + window > now}

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
            self._ctx.index.push.queue_put([again])
        else:
            self._ctx.index.push.queue_done(subscription_id)

    def _retry(self, subscription_id: str, reason: str, after: float | None = None) -> None:
        with self._cond:
            pending = self._pending.get(subscription_id)
        if pending is None:
            self._done(subscription_id)
            return
        if pending.attempt >= MAX_ATTEMPTS:
            self.stats.failed += 1
            logger.warning("WebDAV-Push: message for /%s/ to subscription %s given up after %d "
                           "attempts: %s", pending.book, subscription_id, pending.attempt,
                           reason)
            self._done(subscription_id)
            return
        delay = BACKOFF * 2 ** (pending.attempt - 1) * random.uniform(0.8, 1.2)
        if after is not None:
            delay = max(delay, min(after, MAX_RETRY_AFTER))
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
            self._ctx.index.push.queue_put([queued])

    def _purge(self) -> None:
        gone = self._ctx.index.push.purge_expired(time.time())
        if gone:
            logger.info("WebDAV-Push: %d expired subscription(s) purged", gone)

    def _sync_token(self, book: str) -> str | None:
        """The book's sync-token now (RFC 6578), read under Radicale's shared lock; None if
        it cannot be read.  Read once per change of the book, whatever its subscriptions."""
        with self._cond:
            version = self._versions.get(book, 0)
            known = self._tokens.get(book)
        if known is not None and known[0] == version:
            return known[1]
        storage = self._ctx.storage
        if storage is None:
            return None
        try:
            with storage.acquire_lock("r"):
                collection = store.book(storage, book)
                if collection is None:
                    return None
                token, _changes = collection.sync()
        except Exception as e:  # the message still goes, without a token
            logger.warning("WebDAV-Push: the sync-token of /%s/ cannot be read: %s", book, e)
            return None
        with self._cond:
            self._tokens[book] = (version, token)
            if len(self._tokens) > 10000:
                self._tokens.clear()
        return token

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
        token = None if pending.final else self._sync_token(pending.book)
        body = _encrypted(push_dav.message_body(topic, token), subscription)
        headers = {
            "Authorization": self._keys.authorization(target.origin, settings.push_contact),
            "Content-Type": "application/xml; charset=\"utf-8\"",
            "Content-Encoding": subscription.content_encoding,
            "TTL": str(TTL),
            "Urgency": "normal",
            # a message not delivered yet is replaced by this one (RFC 8030 §5.4)
            "Topic": topic,
        }
        try:
            answer = self._post(target, addresses, headers, body, settings.push_timeout)
        except (OSError, http.client.HTTPException) as e:
            self._retry(subscription_id, "%s:%d did not answer (%s)" % (
                target.host, target.port, e or type(e).__name__))
            return
        self._answered(pending, subscription, answer, token)

    def _answered(self, pending: _Pending, subscription: PushSubscription,
                  answer: push_http.Answer, token: str | None) -> None:
        status = answer.status
        if 200 <= status < 300:
            latency = time.time() - pending.marked
            self.stats.sent += 1
            self.stats.last_latency = latency
            self.stats.last_token = token
            logger.debug("WebDAV-Push: message for /%s/ sent to subscription %s (%d), "
                         "%.0f ms after the change", pending.book, subscription.id, status,
                         latency * 1000)
            self._done(subscription.id, time.time())
        elif status in (404, 410):
            self._ctx.index.push.remove(subscription.id)
            self.stats.dropped += 1
            logger.info("WebDAV-Push: the push service says subscription %s of %r to /%s/ is "
                        "gone (%d): removed", subscription.id, subscription.user,
                        subscription.book, status)
            with self._cond:
                pending.marks = 0
            self._done(subscription.id)
        elif status == 429 or status >= 500:
            wait = answer.retry_after or ""
            after = float(wait) if wait.isdigit() else None  # an HTTP date: our own backoff
            self._retry(subscription.id, "the push service answered %d" % status, after)
        else:
            self.stats.failed += 1
            logger.warning("WebDAV-Push: message for /%s/ to subscription %s refused by the "
                           "push service (%d): %s", pending.book, subscription.id, status,
                           answer.text[:200].replace("\n", " "))
            self._done(subscription.id)


def _encrypted(body: bytes, subscription: PushSubscription) -> bytes:
    """``body`` encrypted for the subscription (RFC 8291, aes128gcm)."""
    pusher = WebPusher({"endpoint": subscription.push_resource,
                        "keys": {"p256dh": subscription.public_key,
                                 "auth": subscription.auth_secret}})
    return bytes(pusher.encode(body, subscription.content_encoding)["body"])
