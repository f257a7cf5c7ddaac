# SPDX-License-Identifier: GPL-3.0-or-later
"""The push sender's retry policy: what a push service's answer means for the message,
and how long a retry waits (:mod:`.sender`).

A timeout, a refused connection, a 429 or a 5xx is retried with exponential
backoff, :data:`MAX_ATTEMPTS` attempts in all (a ``Retry-After`` in seconds is
granted up to :data:`MAX_RETRY_AFTER`); 404 and 410 say the subscription is gone;
other answers are given up.
"""

from __future__ import annotations

import random

#: Attempts per message, the first included.
MAX_ATTEMPTS = 5
#: Seconds before the first retry; each further one waits twice as long.
BACKOFF = 2.0
#: Longest wait a push service's Retry-After is granted.
MAX_RETRY_AFTER = 300.0

SENT, GONE, AGAIN, REFUSED = "sent", "gone", "again", "refused"


def outcome(status: int) -> str:
    """What a push service's answer means: :data:`SENT`, :data:`GONE` (drop the
    subscription), :data:`AGAIN` (retry) or :data:`REFUSED` (give up)."""
    if 200 <= status < 300:
        return SENT
    if status in (404, 410):
        return GONE
    if status == 429 or status >= 500:
        return AGAIN
    return REFUSED


def retry_after(header: str | None) -> float | None:
    """A ``Retry-After`` in seconds; None for none or an HTTP date (our own backoff then)."""
    wait = header or ""
    return float(wait) if wait.isdigit() else None


def delay(attempt: int, after: float | None = None) -> float:
    """Seconds before the next try of a message that failed its ``attempt``-th try."""
    wait = BACKOFF * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
    if after is not None:
        wait = max(wait, min(after, MAX_RETRY_AFTER))
    return wait
