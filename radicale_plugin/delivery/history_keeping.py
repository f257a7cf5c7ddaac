# SPDX-License-Identifier: GPL-3.0-or-later
"""How long the history is kept: entries older than ``mecard_history_days`` are purged.

The fan-out worker calls :meth:`HistoryRetention.purge_due` between its rounds,
outside Radicale's storage lock; it purges at most every :data:`PURGE_EVERY`
seconds (sooner for a retention shorter than ten times that).  The owner values
a recipient undid are no history: they stay while they apply.

Several processes on one index purge once per period between them: a purge takes
the duty's lease for the period (:class:`~radicale_plugin.index.duties.Duty`); the
other processes find it held and skip that period.
"""

from __future__ import annotations

import datetime
import time

from radicale.log import logger

from radicale_plugin.context import Context
from radicale_plugin.index.duties import Duty

#: Longest time between two purges, in seconds.
PURGE_EVERY = 3600.0
_DAY = 86400.0


class HistoryRetention:
    """Purges the history of what is older than the configured number of days."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._next = 0.0  # the first purge comes with the worker's first pass

    def purge_due(self, now: float | None = None) -> int:
        """Purge if it is time to; how many entries went."""
        days = self._ctx.settings.history_days
        now = time.time() if now is None else now
        if days <= 0 or now < self._next:
            return 0
        keep = days * _DAY
        period = min(PURGE_EVERY, keep / 10)
        self._next = now + period
        if not Duty(self._ctx.index, "history-expiry", period).hold(now):
            return 0  # another process purged within the period
        cutoff = datetime.datetime.fromtimestamp(now - keep, datetime.timezone.utc)
        purged = self._ctx.index.history.purge(cutoff.isoformat(timespec="seconds"))
        if purged:
            logger.info("History: %d entr%s older than %g days purged", purged,
                        "y" if purged == 1 else "ies", days)
        return purged
