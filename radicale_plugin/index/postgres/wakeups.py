# SPDX-License-Identifier: GPL-3.0-or-later
"""LISTEN/NOTIFY: work queued by one process wakes the idle workers of the others.

:meth:`PostgresWakeups.announce` sends a notification on the topic's channel (with the
caller's transaction: PostgreSQL delivers it at the commit, so a woken worker finds the
work); :meth:`PostgresWakeups.listen` keeps one connection of its own per topic,
outside the pool, in a thread that calls the waker at each notification and connects
again after a failure (a worker still polls: a lost notification only delays it).
"""

from __future__ import annotations

import threading
from typing import Callable

import psycopg
from radicale.log import logger

from radicale_plugin import index
from radicale_plugin.index.postgres.database import Database

#: Seconds between two looks at whether to stop, and before connecting again.
_TICK = 1.0


def channel(topic: str) -> str:
    return "mecard_" + topic


class PostgresWakeups(index.Wakeups):
    """Notifications between the processes of one database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._topics: list[str] = []

    def announce(self, topic: str) -> None:
        try:
            self._db.notify(channel(topic))
        except psycopg.Error as e:  # the others find the work at their next poll
            logger.debug("Sharing: cannot announce %s: %s", topic, e)

    def listen(self, topic: str, wake: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._listen, args=(topic, wake), daemon=True,
                                  name="mecard-listen-%s" % topic)
        self._threads.append(thread)
        self._topics.append(topic)
        thread.start()

    def _listen(self, topic: str, wake: Callable[[], None]) -> None:
        while not self._stopping.is_set():
            try:
                conn = self._db.listen(channel(topic))
            except psycopg.Error as e:
                logger.warning("Sharing: cannot listen for %s (polling meanwhile): %s",
                               topic, e)
                self._stopping.wait(_TICK * 5)
                continue
            try:
                wake()  # whatever was announced while nobody listened
                while not self._stopping.is_set():
                    for _ in conn.notifies(timeout=_TICK):
                        if self._stopping.is_set():
                            break  # the generator waits out its tick otherwise
                        wake()
            except psycopg.Error as e:
                logger.debug("Sharing: listening for %s ended, again: %s", topic, e)
            finally:
                conn.close()

    def close(self) -> None:
        self._stopping.set()
        # a listener waits up to a tick for a notification: one on each of its channels
        # ends the wait now (the other processes' workers take it for a poll), so that a
        # server stops at once instead of a second later
        for topic in self._topics:
            self.announce(topic)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(_TICK * 3)
