# SPDX-License-Identifier: GPL-3.0-or-later
"""Token buckets per user: how much one user may ask for in a while (clock given).

With a store (the index's :class:`~radicale_plugin.index.LimitStore`) the buckets are
shared by every process of the deployment and survive a restart: a user cannot get
twice the allowance by having a load balancer send their requests to two processes.
Without one they are kept in this process's memory (tests of the arithmetic).
"""

from __future__ import annotations

import threading

from radicale_plugin.index import LimitStore


class RateLimiter:
    """``capacity`` units at once, refilled at ``per_hour`` units an hour, per user.

    ``name`` tells this limiter's buckets from the other limiters' in the store.
    """

    def __init__(self, capacity: float, per_hour: float, store: LimitStore | None = None,
                 name: str = "") -> None:
        self.capacity = capacity
        self.rate = per_hour / 3600.0
        self._store = store
        self._name = name
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, user: str, amount: float, now: float) -> float:
        """Take ``amount`` units; 0.0 if granted, else the seconds to wait (nothing taken).

        ``now`` is the wall clock (seconds since 1970) when the buckets are shared: every
        process reads the same one."""
        if self._store is not None:
            return self._store.take(self._name, user, amount, self.capacity, self.rate, now)
        with self._lock:
            tokens, stamp = self._buckets.get(user, (self.capacity, now))
            tokens, stamp, wait = LimitStore.refill(tokens, stamp, amount, self.capacity,
                                                    self.rate, now)
            self._buckets[user] = (tokens, stamp)
            return wait
