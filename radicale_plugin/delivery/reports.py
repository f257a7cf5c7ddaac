# SPDX-License-Identifier: GPL-3.0-or-later
"""What owners see of their recipients: states, never the recipients' data.

An owner learns per recipient whether the latest change arrived
(``delivered``), arrived only in part of its history or was written back
over by an older copy on the recipient's phone (``behind``, see ``reason``),
waits (``pending``; or held back by the daily limit of new offers), failed for a passing reason and is tried again on a timer
(``retrying``, with the next attempt's time and the last error), waits for
the recipient's answer (``offered``, ``postponed``, ``refused``), is
``blocked``, or ``failed`` and why — never the href, name or content of the
recipient's card.
"""

from __future__ import annotations

import datetime
from typing import Any, Iterable, Mapping

from radicale_plugin import index as idx
from radicale_plugin.index import Delivery, Offer
from radicale_plugin.consent.decisions import offer_state

#: What owners see of a waiting delivery whose last attempt failed for a passing reason.
RETRYING = "retrying"

_OFFER_STATES = {idx.OFFER_PENDING: "offered", idx.OFFER_POSTPONED: "postponed",
                 idx.OFFER_REFUSED: "refused"}

#: How the reason of an offer held back by the owner's daily limit begins (see offers).
HELD_BACK = "held back"

ROLLED_BACK_REASON = ("their phone wrote an older copy of your card back over your change; "
                      "it is put right by itself")
BEHIND_REASON = ("their phone keeps writing an older copy of your card back: put right %d "
                 "times for this change, then left as it is; your next change reaches them "
                 "again")


def is_held_back(delivery: Delivery) -> bool:
    """A delivery waiting because the owner made their day's new offers.  Pure."""
    return delivery.state == idx.PENDING and not delivery.attempts \
        and delivery.error.startswith(HELD_BACK)


def held_back(deliveries: Iterable[Delivery], per_day: int) -> dict[str, Any] | None:
    """How many offers wait for the owner's daily limit, and when the next go out.  Pure."""
    waiting = [d.due for d in deliveries if is_held_back(d)]
    if not waiting:
        return None
    return {"count": len(waiting), "next": _iso(min(waiting)), "per_day": per_day}


def owner_state(delivery: Delivery | None, offer: Offer | None, seq: int) -> tuple[str, str]:
    """(state, reason) of one recipient as the owner sees it.  Pure."""
    if delivery is None:
        return "pending", ""
    state = delivery.state
    if state in (idx.PENDING, idx.WITHDRAWING):
        return (RETRYING if delivery.attempts else "pending"), delivery.error
    if state == idx.DELIVERED:
        return ("delivered" if delivery.delivered_seq >= seq else "behind"), ""
    if state == idx.ROLLED_BACK:
        return "behind", ROLLED_BACK_REASON
    if state == idx.BEHIND:
        return "behind", BEHIND_REASON % delivery.repairs
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
        # retrying, put right, held back: when it is tried next; how many attempts failed
        "next_attempt": _iso(delivery.due) if delivery and delivery.due and (
            state == RETRYING or delivery.state == idx.ROLLED_BACK or is_held_back(delivery))
        else None,
        "attempts": delivery.attempts if delivery else 0,
    }


#: The reason a recipient got a change the owner sent to chosen people (see fanout).
CHOSEN = "chosen for this update"


def dropped(deliveries: Iterable[Delivery], targets: Mapping[str, list[str]],
            rules: Iterable[str], skipped: Iterable[dict[str, str]] = ()
            ) -> list[dict[str, str]]:
    """A ``skipped`` entry for each recipient who is no longer a target, with the reason
    (but one a ``user:NAME`` rule of ``skipped`` already reports).

    Pure.  It says what the owner's own rules and contacts did, never why a
    contact stopped standing for a user (their keys, their privacy, their
    consent): that is theirs to keep.
    """
    current = set(rules)
    named = {s.get("rule", "") for s in skipped}
    out = []
    for delivery in deliveries:
        user = delivery.recipient
        if user in targets or "user:%s" % user in named:
            continue
        reasons = [r for r in delivery.reasons if r != CHOSEN]
        out.append({"contact": _contact_of(reasons) or user, "user": user,
                    "rule": _rule_of(reasons[0]) if reasons else "",
                    "reason": dropped_reason(user, reasons, current, CHOSEN in delivery.reasons)})
    return out


def dropped_reason(user: str, reasons: list[str], rules: set[str], chosen: bool) -> str:
    """Why ``user`` is not a target now, from the ``reasons`` that once made them one."""
    if not reasons:
        return ("none of your target rules selects them%s; add user:%s to your targets to "
                "keep them" % (" (they got a change you sent to them by name)" if chosen
                               else "", user))
    was = sorted({_rule_of(r) for r in reasons})
    if not set(was) & rules:
        return "you removed %s from your targets" % ", ".join(was)
    return ("no contact of yours that %s covers stands for them now (the "
            "contact was changed or removed, or their numbers, e-mails or privacy changed, or "
            "they removed or blocked your card); add user:%s to your targets to keep them"
            % (", ".join(r for r in was if r in rules), user))


def _rule_of(reason: str) -> str:
    """The rule of a target's reason: ``group:Family (contact Bob)`` → ``group:Family``."""
    return reason.split(" (contact ", 1)[0]


def _contact_of(reasons: list[str]) -> str:
    """The owner's contact a target's reasons name (the owner's own data), if any."""
    for reason in reasons:
        if " (contact " in reason and reason.endswith(")"):
            return reason.split(" (contact ", 1)[1][:-1]
    return ""


def _iso(seconds: float) -> str:
    """A time as the API gives times (UTC, ISO 8601, seconds)."""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(
        timespec="seconds")
