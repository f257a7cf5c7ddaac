# SPDX-License-Identifier: GPL-3.0-or-later
"""Recording what recipients are to be told of, where it happens (in the caller's
transaction; a few point reads and one insert, no lock of ours).

* :func:`offer_made`: the fan-out made an offer, or a newer change replaced one
  (:meth:`radicale_plugin.recipient.offers.Offers.make`);
* :func:`offer_postponed`: the recipient postponed one: it is told again at its time;
* :func:`changes_applied`: the fan-out wrote changes into copies without asking
  (told only to those who chose ``offers-and-changes``).

Only recipients are told, never owners: an owner learns a refusal or a block from
the state in their report, and from no message.  An event is recorded only if the
recipient wants e-mail of its kind now; the sender checks again when it sends.
"""

from __future__ import annotations

import time
from typing import Iterable

from radicale_plugin.context import Context
from radicale_plugin.index.records import (EVENT_CHANGED, EVENT_OFFER, EVENT_OFFER_DUE,
                                           NotifyEvent)
from radicale_plugin.notify.choices import Choices


def _record(ctx: Context, owner: str, recipient: str, kind: str, seq: int,
            due: float | None = None) -> None:
    choices = Choices(ctx)
    if owner == recipient or not choices.wants(recipient, kind):
        return
    now = time.time()
    ctx.index.notify.add_event(NotifyEvent(recipient, owner, kind, seq, now,
                                           now if due is None else due,
                                           choices.base_of(recipient)))


def offer_made(ctx: Context, owner: str, recipient: str, seq: int) -> None:
    """An offer of ``owner``'s change ``seq`` waits for ``recipient``."""
    _record(ctx, owner, recipient, EVENT_OFFER, seq)


def offer_postponed(ctx: Context, owner: str, recipient: str, seq: int, until: float) -> None:
    """``recipient`` postponed ``owner``'s offer until ``until``: told again then."""
    _record(ctx, owner, recipient, EVENT_OFFER_DUE, seq, until)


def changes_applied(ctx: Context, changes: Iterable[tuple[str, str, int]]) -> None:
    """Changes (owner, recipient, seq) written into copies without asking (one short
    transaction, after the choices are read)."""
    choices = Choices(ctx)
    if not choices.enabled():
        return
    now = time.time()
    events = [NotifyEvent(recipient, owner, EVENT_CHANGED, seq, now, now,
                          choices.base_of(recipient))
              for owner, recipient, seq in changes
              if owner != recipient and choices.wants(recipient, EVENT_CHANGED)]
    if events:
        with ctx.index.transaction(durable=False):
            for event in events:
                ctx.index.notify.add_event(event)
