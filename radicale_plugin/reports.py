# SPDX-License-Identifier: GPL-3.0-or-later
"""What owners see of their recipients: states, never the recipients' data.

An owner learns per recipient whether the latest change arrived
(``delivered``), arrived only in part of its history (``behind``), waits
(``pending``), waits for the recipient's answer (``offered``,
``postponed``, ``refused``), is ``blocked``, or ``failed`` and why — never
the href, name or content of the recipient's card.
"""

from __future__ import annotations

from typing import Any

from radicale_plugin import index as idx
from radicale_plugin.index import Delivery, Offer
from radicale_plugin.consent import offer_state

_OFFER_STATES = {idx.OFFER_PENDING: "offered", idx.OFFER_POSTPONED: "postponed",
                 idx.OFFER_REFUSED: "refused"}


def owner_state(delivery: Delivery | None, offer: Offer | None, seq: int) -> tuple[str, str]:
    """(state, reason) of one recipient as the owner sees it.  Pure."""
    if delivery is None:
        return "pending", ""
    state = delivery.state
    if state in (idx.PENDING, idx.WITHDRAWING):
        return "pending", delivery.error
    if state == idx.DELIVERED:
        return ("delivered" if delivery.delivered_seq >= seq else "behind"), ""
    if state == idx.OFFERED:
        if offer is None:
            return "pending", ""
        return _OFFER_STATES.get(offer_state(offer), "offered"), ""
    if state == idx.FAILED:
        return "failed", delivery.error
    return state, delivery.error  # blocked, stopped, withdrawn


def recipient_row(user: str, is_target: bool, reasons: list[str],
                  delivery: Delivery | None, offer: Offer | None, seq: int) -> dict[str, Any]:
    state, reason = owner_state(delivery, offer, seq)
    return {
        "user": user, "target": is_target, "reasons": reasons, "state": state,
        "reason": reason or None,
        "updated": delivery.updated if delivery else None,
        "seq": delivery.wanted_seq if delivery else None,
        "delivered_seq": delivery.delivered_seq if delivery else None,
    }
