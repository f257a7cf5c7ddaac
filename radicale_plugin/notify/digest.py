# SPDX-License-Identifier: GPL-3.0-or-later
"""The digest decision, pure: which of a recipient's events go into an e-mail now, which
are dropped, and when to look again.

* An event counts from its *moment*: when it happened, or for a postponed offer the time
  it comes back (``due``); an event not due yet waits.
* **Settle**: a message goes once no new event came for ``settle`` seconds — an owner
  who edits five times in a minute makes one message, not five — but never later than
  ``longest_wait`` after the first event waiting (an owner who edits every minute for an
  hour does not silence the recipient).
* **Digest**: at most one message per ``spacing`` seconds per recipient
  (``mecard_notify_digest_minutes``): what comes meanwhile waits for the next one.
* An event with nothing left to tell is dropped: an offer answered (accepted, refused,
  blocked), withdrawn, or postponed again; a change applied is always told.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from radicale_plugin.consent.decisions import offer_state
from radicale_plugin.index.records import EVENT_CHANGED, OFFER_PENDING, NotifyEvent, Offer

#: A message goes at the latest this many seconds after the first event it tells of.
LONGEST_WAIT = 900.0


@dataclass(frozen=True)
class Timing:
    """How long a batch settles, and how far apart two messages to one recipient are."""

    settle: float = 120.0
    spacing: float = 3600.0
    longest_wait: float = LONGEST_WAIT


@dataclass
class Decision:
    """What to do with one recipient's waiting events now."""

    batch: list[NotifyEvent] = field(default_factory=list)  # put in an e-mail now
    drop: list[NotifyEvent] = field(default_factory=list)   # nothing left to tell
    wake: float | None = None                               # look again then (None: no need)


def moment(event: NotifyEvent) -> float:
    """When an event counts from: it happened, or (a postponed offer) it comes back."""
    return max(event.time, event.due)


def live(event: NotifyEvent, offer: Offer | None, now: float) -> bool:
    """Whether the event still has something to tell: a change applied always; an offer
    only while it waits for the recipient's answer (not answered, not postponed again)."""
    if event.kind == EVENT_CHANGED:
        return True
    if offer is None:
        return False
    when = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    return offer_state(offer, when) == OFFER_PENDING


def due_at(events: Sequence[NotifyEvent], last_batch: float | None, timing: Timing
           ) -> float | None:
    """When an e-mail of ``events`` (all due) may go: settled, and spaced from the last."""
    if not events:
        return None
    moments = [moment(e) for e in events]
    at = min(max(moments) + timing.settle,
             min(moments) + max(timing.settle, timing.longest_wait))
    if last_batch is not None:
        at = max(at, last_batch + timing.spacing)
    return at


def decide(events: Sequence[NotifyEvent], offers: Mapping[str, Offer | None],
           last_batch: float | None, now: float, timing: Timing) -> Decision:
    """One recipient's waiting ``events`` at ``now``; ``offers``: the recipient's offer from
    each owner (None: none), ``last_batch``: when their newest e-mail was made."""
    decision = Decision()
    due, later = [], []
    for event in events:
        if event.due > now:
            later.append(event)
        elif live(event, offers.get(event.owner), now):
            due.append(event)
        else:
            decision.drop.append(event)
    at = due_at(due, last_batch, timing)
    wakes = [e.due for e in later]
    if at is not None and at <= now:
        decision.batch = due
    elif at is not None:
        wakes.append(at)
    decision.wake = min(wakes) if wakes else None
    return decision
