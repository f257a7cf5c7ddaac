# SPDX-License-Identifier: GPL-3.0-or-later
"""The push sender's lanes: a queue per push service (host and port), each drained by a
few threads of its own, so that a push service that never answers holds up only its
own lane (:mod:`.sender`).
"""

from __future__ import annotations

import collections
import threading
from typing import Callable

from radicale.log import logger

#: Threads per push service (host and port).
THREADS_PER_SERVICE = 4


class Lanes:
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
