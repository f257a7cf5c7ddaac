# SPDX-License-Identifier: GPL-3.0-or-later
"""Consent: may an owner's change touch a recipient's book, and which card.  Pure.

The recipient decides.  Their policy towards an owner is ``auto`` (apply),
``ask`` (make an offer) or ``block`` (never); without one, their own default
(``*``) applies, then the admin's pre-authorisation (``auto`` between the
users it names), then the server's default (``ask`` as shipped).

Where the copy goes is decided by *links*: a card is linked to at most one
owner, and an owner writes only into a card linked to them.  A link is made
by the server creating a new card, by the recipient accepting an offer
naming one of their cards, or automatically when every matching key on a
card is verified for the owner.
"""

from __future__ import annotations

from dataclasses import dataclass
import datetime
from typing import Callable, Iterable, Mapping

from radicale_plugin.index.records import (LINK_CREATED, LINK_VERIFIED, OFFER_PENDING,
                                     OFFER_POSTPONED, Offer)

AUTO, ASK, BLOCK = "auto", "ask", "block"

#: What the fan-out does for one recipient.
WRITE = "write"              # merge into ``card`` (None: create a new card)
OFFER = "offer"              # make an offer proposing ``card`` (None: a new contact)
BLOCKED = "blocked"          # the recipient blocks the owner
NOT_ALLOWED = "not-allowed"  # the owner may not even make an offer

#: How well a card of the recipient fits an owner.
FIT_LINK = "link"        # every matching key is verified for the owner: link it
FIT_PROPOSE = "propose"  # carries a key verified for the owner, none for anybody else


def effective_policy(policies: Mapping[str, str], owner: str, preauthorized: bool,
                     default: str) -> str:
    """The recipient's policy towards ``owner``."""
    return policies.get(owner) or policies.get("*") or (AUTO if preauthorized else default)


def chosen(policies: Mapping[str, str], owner: str, preauthorized: bool) -> bool:
    """Whether the owner is pre-authorised (by the admin) or named in the recipient's policies."""
    return preauthorized or owner in policies


def may_offer(chosen: bool, owner_key_in_books: bool, linked: bool) -> bool:
    """Whether the owner may put an offer in front of the recipient.

    Offers are a way to plant text in somebody's view: only owners the
    recipient knows (one of the owner's verified keys is in their books, or
    a card of theirs already holds the owner's copy) or ``chosen`` (see
    :func:`chosen`) may.
    """
    return linked or owner_key_in_books or chosen


def card_fit(keys: Iterable[str], owner: str, holders: Mapping[str, str],
             claimed: Iterable[str]) -> str | None:
    """How a card carrying ``keys`` fits ``owner``.

    ``holders`` maps verified keys to their holder; ``claimed`` are keys on
    somebody's me card.  A *matching* key is one that is verified or claimed
    by anybody.  A card with a key verified for somebody else is never
    proposed; one with no key verified for the owner does not fit at all.
    """
    keys = set(keys)
    claims = set(claimed)
    verified_holders = {holders[k] for k in keys if k in holders}
    if owner not in verified_holders or verified_holders - {owner}:
        return None
    matching = {k for k in keys if k in holders or k in claims}
    if all(holders.get(k) == owner for k in matching):
        return FIT_LINK
    return FIT_PROPOSE


@dataclass(frozen=True)
class Candidate:
    """A card of the recipient's that may hold the owner's copy."""

    book: str
    href: str
    fit: str
    score: int  # keys verified for the owner on the card: more is a better match


@dataclass(frozen=True)
class Decision:
    """What to do for one recipient."""

    action: str
    card: tuple[str, str] | None = None   # (book, href); None: a new card
    link: str | None = None               # the kind of link to make, if any
    reason: str = ""


def best(candidates: Iterable[Candidate], fit: str) -> Candidate | None:
    """The candidate of that fit with the most of the owner's verified keys."""
    found = [c for c in candidates if c.fit == fit]
    return max(found, key=lambda c: (c.score, c.book, c.href)) if found else None


def decide(policy: str, linked: tuple[str, str] | None, candidates: list[Candidate],
           offer_allowed: bool) -> Decision:
    """The action for one recipient, given their policy and the cards that fit."""
    if policy == BLOCK:
        return Decision(BLOCKED, reason="the recipient blocks your updates")
    auto_link = best(candidates, FIT_LINK)
    if policy == AUTO:
        if linked is not None:
            return Decision(WRITE, linked)
        if auto_link is not None:
            return Decision(WRITE, (auto_link.book, auto_link.href), link=LINK_VERIFIED)
        partly = best(candidates, FIT_PROPOSE)
        if partly is not None:
            # the recipient has a card for the owner that only partly proves to be theirs:
            # linking it needs their word, and a duplicate contact would help nobody
            return Decision(OFFER, (partly.book, partly.href))
        return Decision(WRITE, None, link=LINK_CREATED)
    if linked is None and not offer_allowed:
        return Decision(NOT_ALLOWED, reason=(
            "the recipient asks before accepting updates, and none of your verified "
            "numbers or e-mails is in their address book, so no offer can be made; "
            "verify your keys, or ask them to add you or to allow you"))
    if linked is not None:
        return Decision(OFFER, linked)
    if auto_link is not None:
        # the link itself needs no consent; only a change of the card does
        return Decision(OFFER, (auto_link.book, auto_link.href), link=LINK_VERIFIED)
    proposed = best(candidates, FIT_PROPOSE)
    return Decision(OFFER, (proposed.book, proposed.href) if proposed else None)


@dataclass(frozen=True)
class Preauthorization:
    """The admin's pre-authorisation: ``*`` (everyone) or named groups of users.

    It only makes ``auto`` the default between the users it covers; a policy
    a recipient set always wins, and links are never bypassed.
    """

    everyone: bool = False
    groups: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> "Preauthorization":
        """``""`` (nobody), ``*``, or ``group:family, group:friends``."""
        everyone, groups = False, set()
        for part in (p.strip() for p in text.replace(";", ",").split(",")):
            if not part:
                continue
            if part == "*":
                everyone = True
            elif part.startswith("group:") and part[6:].strip():
                groups.add(part[6:].strip())
            else:
                raise ValueError("%r is neither * nor group:NAME" % part)
        return cls(everyone, frozenset(groups))

    def between(self, owner: str, recipient: str,
                groups_of: Callable[[str], Iterable[str]]) -> bool:
        """Whether the admin pre-authorised updates from ``owner`` to ``recipient``."""
        if self.everyone:
            return True
        if not self.groups:
            return False
        shared = set(groups_of(owner)) & set(groups_of(recipient))
        return bool(shared & self.groups)


#: How long an owner's first share may make offers beyond the daily limit.
FIRST_SHARE_WINDOW = datetime.timedelta(days=1)


def in_first_share(first: tuple[int, str], seq: int, now: datetime.datetime) -> bool:
    """Whether a new offer of the owner's change ``seq`` belongs to their first share.

    ``first`` is the change and time (ISO) of the owner's first new offer ever.
    Offers reach only people who have the owner's verified key in their books
    (or named the owner), so the daily limit guards against a flood, not
    against strangers: the first share reaches everyone who knows the owner
    at once.  It is that one change, for a day; a later change (or a day
    later) counts against the limit.
    """
    first_seq, when = first
    try:
        started = datetime.datetime.fromisoformat(when)
    except ValueError:
        return False
    if started.tzinfo is None:
        started = started.replace(tzinfo=datetime.timezone.utc)
    return seq == first_seq and now < started + FIRST_SHARE_WINDOW


def offer_state(offer: Offer, now: datetime.datetime | None = None) -> str:
    """pending, postponed or refused; a postponement that ran out is pending again."""
    if offer.state == OFFER_POSTPONED and offer.until:
        try:
            until = datetime.datetime.fromisoformat(offer.until)
        except ValueError:
            return OFFER_PENDING
        if until <= (now or datetime.datetime.now(datetime.timezone.utc)):
            return OFFER_PENDING
    return offer.state
