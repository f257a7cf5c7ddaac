# SPDX-License-Identifier: GPL-3.0-or-later
"""Placing an owner's copy because the recipient said yes: an accepted offer or invite.

Both answers do the same under the storage lock (the caller holds it): the
delivery is parked so that the fan-out, which reads books without the lock,
does not decide it while the copy is written (it would see a link without its
card yet, and end it); what a crash interrupted is settled; the link moves to
the card the recipient chose (or is made with ``kind``); the view is written
through Radicale; and the delivery is recorded as delivered, in the caller's
transaction so that it commits with the consent that comes with it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator

from radicale_plugin import index as idx
from radicale_plugin.context import Context
from radicale_plugin.delivery.copies import Deliverer
from radicale_plugin.errors import Conflict
from radicale_plugin.index import Owner
from radicale_plugin.vcard.codec import unescape
from radicale_plugin.vcard.matching import line_key
from radicale_plugin.vcard.view import View

#: How long a delivery being placed is kept from the fan-out (the accept's own finish
#: ends it at once; this only bounds a crash in between).
PARKED = 60.0
_WAITING = (idx.PENDING, idx.ROLLED_BACK, idx.WITHDRAWING)


def owner_keys(ctx: Context, owner: str, view: View) -> list[dict[str, Any]]:
    """The owner's numbers and e-mails in ``view``, each with whether it is verified for
    her (read in her region: her national forms, as she wrote them), for a recipient
    deciding on an offer or an invite."""
    verified = ctx.index.keys.verified(owner)
    region = ctx.region_of(owner)
    keys = []
    for entry in view.entries:
        key = line_key(entry.name, entry.value, region)
        if key:
            keys.append({"key": key, "value": unescape(entry.value),
                         "verified": key in verified})
    return keys


def check_chosen_card(index: idx.SharingIndex, recipient: str, owner: str,
                      chosen: tuple[str, str]) -> tuple[str, str]:
    """The card a recipient named for the owner's copy, if it may hold it: not another
    owner's copy, not their me card, not a group (:class:`Conflict` says which)."""
    link = index.links.at(*chosen)
    if link is not None and link.owner != owner:
        raise Conflict("that card holds another user's copy; choose another card or "
                       "\"new\"")
    me = index.owners.get(recipient)
    if chosen == (me.book, me.href):
        raise Conflict("that is your own me card; choose another card or \"new\"")
    indexed = index.cards.card(*chosen)
    if indexed is not None and indexed.is_group:
        raise Conflict("that card is a group; choose a contact or \"new\"")
    return chosen


@contextlib.contextmanager
def place_accepted(ctx: Context, deliverer: Deliverer, owner: Owner, recipient: str,
                   seq: int, target: tuple[str, str] | None, kind: str, view: View
                   ) -> Iterator[tuple[str, str]]:
    """Write ``view`` into ``target`` (None: a new card) for an answer of the recipient's.

    Yields where the copy is, inside the transaction that records the delivery: the
    caller adds the consent the answer gives (policy, rules, dropped offer) to it.
    """
    index = ctx.index
    with index.transaction():
        delivery = index.outbox.ensure(owner.user, recipient, seq)
        if delivery.state in _WAITING:
            delivery.due = time.time() + PARKED
            index.outbox.finish(delivery)
    delivery = deliverer.settle(owner, delivery)
    link = index.links.get(owner.user, recipient)
    link_kind: str | None = kind
    if link is not None and target == (link.book, link.href):
        link_kind = None
    elif link is not None:
        index.links.remove(owner.user, recipient)  # the copy moves to the chosen card
    written = deliverer.apply(owner, delivery, target, link_kind, view)
    delivery = index.outbox.delivery(owner.user, recipient) or delivery
    delivery.state, delivery.error, delivery.due = idx.DELIVERED, "", 0.0
    delivery.delivered_seq = seq
    with index.transaction():
        index.outbox.finish(delivery)
        index.consent.drop_offer(owner.user, recipient)
        yield written
