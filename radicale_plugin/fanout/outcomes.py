# SPDX-License-Identifier: GPL-3.0-or-later
"""What a round decided for each delivery, and what becomes of one that failed.

A delivery that fails for a passing reason (:func:`delivery.copies.transient`: an
I/O error, a book unreadable for a moment, a lock not obtained) keeps waiting and
is tried again on a timer, ``mecard_retry_base`` seconds later, doubling up to
``mecard_retry_max``; after ``mecard_retry_attempts`` such failures in a row it is
``failed`` with the last error.  Any other failure fails it at once.  The owner
sees a fixed reason, never an error's text (it may quote the recipient's card).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from radicale.log import logger

from radicale_plugin import index as idx
from radicale_plugin.context import Context
from radicale_plugin.delivery.copies import BookUnavailable, Planned, transient
from radicale_plugin.errors import BadCard, SharingError
from radicale_plugin.index import Delivery, Owner


@dataclass
class Outcome:
    """What was decided for one delivery in a round."""

    delivery: Delivery
    owner: Owner
    planned: Planned | None = None           # a write (or a link) to make
    offer: tuple[str, str] | None = None     # an offer to make, naming this card
    offering: bool = False
    # the delivery as it waited, to wait again in if it fails for a passing reason
    waiting: str = ""
    delivered_seq: int = 0
    attempts: int = 0

    def __post_init__(self) -> None:
        self.waiting = self.delivery.state
        self.delivered_seq = self.delivery.delivered_seq
        self.attempts = self.delivery.attempts


class Failures:
    """A delivery's failure: waits again (a passing one), or is failed."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def failed(self, outcome: Outcome, e: Exception) -> None:
        # one recipient's failure must neither stop the others nor be retried forever
        delivery = outcome.delivery
        if transient(e):
            if outcome.planned is not None and not outcome.planned.write.done:
                try:  # it failed while its intent was recorded: nothing is written
                    self.forget_write(outcome.planned)
                except Exception:
                    pass  # settle() does it at the next attempt
            outcome.planned, outcome.offer, outcome.offering = None, None, False
            self.retry(outcome, e)
            return
        delivery.attempts = 0
        logger.warning("Copy of %r's card for %r not written: %s", delivery.owner,
                       delivery.recipient, e, exc_info=not isinstance(e, SharingError))
        outcome.planned, outcome.offering = None, False
        delivery.state = idx.FAILED
        delivery.error = ("the recipient's card could not be read" if isinstance(e, BadCard)
                          else "the copy could not be written; the server's log says why")

    def forget_write(self, planned: Planned) -> None:
        """A write that was not made: forget its intent, and the link to a card that was to
        be created (as :meth:`Deliverer.settle` does after a crash)."""
        delivery = planned.delivery
        self._ctx.index.outbox.set_intent(delivery.owner, delivery.recipient, None)
        if planned.intent.action == "create":
            self._ctx.index.links.remove(delivery.owner, delivery.recipient)

    def retry(self, outcome: Outcome, e: BaseException) -> None:
        """A failure that may pass: the delivery waits as it did, and is tried again after
        a growing wait; after ``retry_attempts`` of them in a row it is failed."""
        settings = self._ctx.settings
        delivery = outcome.delivery
        attempts = outcome.attempts + 1
        # a fixed reason for the owner: the error's text names the recipient's files
        reason = ("the recipient's address book could not be read"
                  if isinstance(e, BookUnavailable)
                  else "the copy could not be written (a storage error on the server)")
        delivery.attempts, delivery.delivered_seq = attempts, outcome.delivered_seq
        if attempts >= settings.retry_attempts:
            delivery.state, delivery.due = idx.FAILED, 0.0
            delivery.error = "%s; gave up after %d attempts" % (reason, attempts)
            logger.warning("Copy of %r's card for %r not written after %d attempts, given "
                           "up until the owner's next change: %s", delivery.owner,
                           delivery.recipient, attempts, e)
            return
        wait = settings.retry_delay(attempts)
        delivery.state, delivery.error = outcome.waiting, reason
        delivery.due = time.time() + wait
        logger.warning("Copy of %r's card for %r not written (attempt %d of %d), tried again "
                       "in %g s: %s", delivery.owner, delivery.recipient, attempts,
                       settings.retry_attempts, wait, e)
