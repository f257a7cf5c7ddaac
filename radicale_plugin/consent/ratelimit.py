# SPDX-License-Identifier: GPL-3.0-or-later
"""Token buckets per user: how much one user may ask for in a while.  Pure (clock given)."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """``capacity`` units at once, refilled at ``per_hour`` units an hour, per user.

    Kept in memory: a restart refills every bucket, and each process of a
    multi-process setup keeps its own (docs/known-limits.md says so).
    """

    def __init__(self, capacity: float, per_hour: float) -> None:
        self.capacity = capacity
        self.rate = per_hour / 3600.0
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, user: str, amount: float, now: float) -> float:
        """Take ``amount`` units; 0.0 if granted, else the seconds to wait (nothing taken)."""
        with self._lock:
            bucket = self._buckets.get(user)
            if bucket is None:
                bucket = self._buckets[user] = _Bucket(self.capacity, now)
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if amount <= bucket.tokens:
                bucket.tokens -= amount
                return 0.0
            if self.rate <= 0:
                return 3600.0
            return max(1.0, (amount - bucket.tokens) / self.rate)
