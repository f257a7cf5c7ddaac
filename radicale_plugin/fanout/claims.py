# SPDX-License-Identifier: GPL-3.0-or-later
"""The worker's claims on deliveries: taken for a round, renewed while it runs.

Every process's worker claims the deliveries of its rounds
(:meth:`radicale_plugin.index.Outbox.claim`), leased to the process for
``mecard_claim_lease`` seconds: another process's worker leaves them alone meanwhile, and a
process that died (``kill -9`` mid fan-out) leaves its deliveries to the others once
their leases lapse — those with an intent are settled first by whoever claims them
(:meth:`Deliverer.settle`), as after a crash.  A round that runs long (a slow disk,
the storage lock busy) renews its claims every third of the lease, from the worker's
thread and from the file writer's.  Finishing a delivery ends its claim.

The owners' changes to plan are claimed the same way (:meth:`Claims.jobs`): a change is
planned by one process, never by each that saw it queued.
"""

from __future__ import annotations

import threading
import time
from typing import Iterable

from radicale.log import logger

from radicale_plugin.context import Context
from radicale_plugin.index import Delivery, Job
from radicale_plugin.index.duties import dead_here, holder

class Claims:
    """The deliveries this process's rounds hold, and their renewal."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        #: Seconds a claim lasts without renewal: how long a dead process's deliveries wait.
        self.lease = ctx.settings.claim_lease
        self._held: set[tuple[str, str]] = set()
        self._renewed = 0.0
        self._lock = threading.Lock()

    def take(self, limit: int, skip: Iterable[tuple[str, str]] = ()) -> list[Delivery]:
        """Claim up to ``limit`` due deliveries for a round."""
        now = time.time()
        batch = self._ctx.index.outbox.claim(holder(self._ctx.index), limit, now, self.lease,
                                             skip)
        with self._lock:
            if not self._held:
                self._renewed = now
            self._held.update((d.owner, d.recipient) for d in batch)
        return batch

    def jobs(self, limit: int) -> list[Job]:
        """Claim up to ``limit`` changes to plan (planning one ends its claim)."""
        return self._ctx.index.outbox.claim_jobs(holder(self._ctx.index), limit, time.time(),
                                                 self.lease)

    def keep(self) -> None:
        """Renew the claims held if a third of the lease went by since the last renewal."""
        now = time.time()
        with self._lock:
            if not self._held or now - self._renewed < self.lease / 3:
                return
            self._renewed = now
            pairs = list(self._held)
        kept = self._ctx.index.outbox.renew(holder(self._ctx.index), pairs, now + self.lease)
        if kept < len(pairs):  # finished meanwhile, or lapsed and taken by another process
            logger.debug("Fan-out: %d of %d claims renewed", kept, len(pairs))

    def free_dead(self) -> None:
        """Give back at once the claims of a process of this machine that is gone (this
        server restarted after ``kill -9``): they need not wait for their leases."""
        outbox = self._ctx.index.outbox
        for name in outbox.claimants(time.time()):
            if dead_here(name):
                logger.info("Fan-out: the deliveries %s claimed go back to the queue (its "
                            "process is gone)", name)
                outbox.release(name)

    def done(self, pairs: Iterable[tuple[str, str]]) -> None:
        """The round of these deliveries is over (finishing them ended their claims)."""
        with self._lock:
            self._held.difference_update(pairs)
