# SPDX-License-Identifier: GPL-3.0-or-later
"""What owners see of their recipients: states, never the recipients' data.

An owner learns per recipient whether the latest change arrived
(``delivered``), arrived only in part of its history (``behind``), waits
(``pending``), failed for a passing reason and is tried again on a timer
(``retrying``, with the next attempt's time and the last error), waits for
the recipient's answer (``offered``, ``postponed``, ``refused``), is
``blocked``, or ``failed`` and why — never the href, name or content of the
recipient's card.
"""

from __future__ import annotations

import datetime
from typing import Any

from radicale_plugin import index as idx
from radicale_plugin.index import Delivery, Offer
from radicale_plugin.consent import offer_state

#: What owners see of a waiting delivery whose last attempt failed for a passing reason.
RETRYING = "retrying"

_OFFER_STATES = {idx.OFFER_PENDING: "offered", idx.OFFER_POSTPONED: "postponed",
                 idx.OFFER_REFUSED: "refused"}


def owner_state(delivery: Delivery | None, offer: Offer | None, seq: int) -> tuple[str, str]:
    """(state, reason) of one recipient as the owner sees it.  Pure."""
    if delivery is None:
        return "pending", ""
    state = delivery.state
    if state in (idx.PENDING, idx.WITHDRAWING):
        return (RETRYING if delivery.attempts else "pending"), delivery.error
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
        # retrying: when it is tried next, and how many attempts failed in a row
        "next_attempt": _iso(delivery.due) if delivery and state == RETRYING else None,
        "attempts": delivery.attempts if delivery else 0,
    }


def _iso(seconds: float) -> str:
    """A time as the API gives times (UTC, ISO 8601, seconds)."""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(
        timespec="seconds")
