# SPDX-License-Identifier: GPL-3.0-or-later
"""One delivery decided from plain data: placement, consent, merge.  Pure.

The fan-out's round first gathers what its deliveries need (:mod:`.gather`:
batched index queries and one read per card), then decides each delivery
here, with no I/O: where the owner's copy is or could go (:func:`place`),
what the recipient's consent allows (:mod:`radicale_plugin.consent.decisions`)
and what the copy becomes (:func:`radicale_plugin.vcard.merge.merge`).  The
answer, a :class:`Verdict`, is written and recorded by the worker
(:mod:`radicale_plugin.fanout.worker`, :class:`.copies.Deliverer`).

A new card's place and text are the one thing left to the write step: its
href and UID depend on what the book holds when it is created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from radicale_plugin.consent import decisions as consent
from radicale_plugin.consent.decisions import Candidate, card_fit
from radicale_plugin.delivery import undone
from radicale_plugin.index.records import (BLOCKED, DELIVERED, FAILED, ROLLED_BACK, STOPPED,
                                           WITHDRAWING, WITHDRAWN, Delivery, IndexedCard,
                                           Link, Owner, UndoneValue)
from radicale_plugin.vcard.codec import Card, parse_card
from radicale_plugin.vcard.merge import Previous, merge
from radicale_plugin.vcard.view import View

#: A card as read: its text and its file's identity (inode, mtime_ns, size).
Found = tuple[str, tuple[int, int, int]]

#: What the fan-out does for one delivery (beyond :mod:`consent.decisions`' actions).
WRITE, OFFER, BLOCKED_ACTION, NOT_ALLOWED = (consent.WRITE, consent.OFFER, consent.BLOCKED,
                                             consent.NOT_ALLOWED)
NOTHING = "nothing"          # only the delivery's state changes

NO_BOOK = "the recipient has no address book"
REMOVED = "the recipient removed your card from their address book"

_KEY_FIELDS = ("TEL", "EMAIL")


@dataclass
class Facts:
    """Everything one delivery's decision needs, as plain data (see :mod:`.gather`)."""

    delivery: Delivery
    owner: Owner
    #: the view of the change meant for this recipient (None: the me card is gone)
    view: View | None
    policies: Mapping[str, str] = field(default_factory=dict)  # the recipient's
    preauthorized: bool = False
    default_policy: str = consent.ASK
    has_book: bool = True
    link: Link | None = None
    #: the linked card was found gone (its link ended meanwhile): the recipient deleted it
    link_gone: bool = False
    #: the recipient's me card (never a copy)
    me_card: tuple[str, str] | None = None
    #: the owner's verified keys, the recipient's cards carrying one, and those cards' links
    verified: frozenset[str] = frozenset()
    cards: list[IndexedCard] = field(default_factory=list)
    links_at: Mapping[tuple[str, str], Link] = field(default_factory=dict)
    holders: Mapping[str, str] = field(default_factory=dict)
    claimed: frozenset[str] = frozenset()
    #: cards as read (None: no such card), and cards that could not be read (why)
    read: Mapping[tuple[str, str], Found | None] = field(default_factory=dict)
    unreadable: Mapping[tuple[str, str], BaseException] = field(default_factory=dict)
    #: the owner's earlier values that prove a value is theirs
    owned: frozenset[tuple[str, str]] = frozenset()
    owner_region: str = "US"
    recipient_region: str = "US"
    #: the owner's values the recipient undid (left out of the merge, see :mod:`.undone`)
    undone: tuple[UndoneValue, ...] = ()


@dataclass
class Placement:
    """Where an owner's copy is, or could go, in a recipient's books."""

    linked: tuple[str, str] | None = None
    deleted: bool = False
    no_book: bool = False
    candidates: list[Candidate] = field(default_factory=list)
    owner_key_in_books: bool = False


@dataclass(frozen=True)
class Verdict:
    """What was decided for one delivery.

    ``WRITE``: ``view`` goes into ``card`` (None: a new card), making a ``link``
    of that kind if given; ``before``/``after`` are the card parsed and merged
    (``after`` None: a new card, rendered where it is placed), ``found`` the card
    as read.  ``state``/``error``: the delivery's new state (``OFFER``: set by the
    offer made).
    """

    action: str
    state: str = ""
    error: str = ""
    card: tuple[str, str] | None = None
    link: str | None = None
    view: View | None = None
    kind: str = "update"             # the history's action: update or withdraw
    found: Found | None = None
    before: Card | None = None
    after: Card | None = None


def previous(owned: Iterable[tuple[str, str]], delivery: Delivery) -> Previous:
    """What in the recipient's copy is provably the owner's: their earlier values (as
    ``owned``), what was written there, the views delivered and about to be."""
    values = set(owned) | delivery.written_values
    written: tuple = ()
    if delivery.delivered_view is not None:
        written += delivery.delivered_view.entries
    if delivery.intent is not None:
        written += delivery.intent.view.entries
    return Previous(written, frozenset(values))


def owned_values(past: Iterable[tuple[str, str]],
                 ever_verified: Iterable[str]) -> frozenset[tuple[str, str]]:
    """The owner's past values that prove a value is theirs (numbers and e-mails only if
    they were verified for the owner)."""
    verified = set(ever_verified)
    return frozenset((f, k) for f, k in past if f not in _KEY_FIELDS or k in verified)


def withdrawal_view(owner: Owner, delivery: Delivery) -> View:
    """Nothing shared any more: every field the copy may hold of the owner is withdrawn."""
    fields = set(owner.shared_fields) | set(owner.withdrawn_fields) | {
        f for f, _ in delivery.written_values}
    return View((), (), tuple(sorted(fields)))


def place(facts: Facts) -> Placement:
    """The linked card, or the recipient's cards that could hold the owner's copy."""
    if not facts.has_book:
        return Placement(no_book=True)
    if facts.link_gone:
        return Placement(deleted=True)
    if facts.link is not None:
        return Placement(linked=(facts.link.book, facts.link.href))
    # a card linked to another owner stands for them: the owner's keys on it are values
    # that owner put there (plain text), no sign that the recipient knows this owner
    placement = Placement(owner_key_in_books=any(
        (c.book, c.href) not in facts.links_at for c in facts.cards))
    for card in facts.cards:
        if card.is_group or (card.book, card.href) == facts.me_card:
            continue
        if (card.book, card.href) in facts.links_at:
            continue  # one owner per card
        fit = card_fit(card.keys, facts.owner.user, facts.holders, facts.claimed)
        if fit is not None:
            placement.candidates.append(
                Candidate(card.book, card.href, fit, len(card.keys & facts.verified)))
    return placement


def cards_to_read(facts: Facts) -> list[tuple[str, str]]:
    """The cards a decision may need the text of: the linked card, else the candidate a
    link would be made to (a card only proposed is offered without being read)."""
    if facts.delivery.state == WITHDRAWING:
        return [(facts.link.book, facts.link.href)] if facts.link is not None else []
    if facts.view is None or not facts.has_book:
        return []  # decided without a card
    if facts.link is not None:
        return [(facts.link.book, facts.link.href)]
    auto_link = consent.best(place(facts).candidates, consent.FIT_LINK)
    return [(auto_link.book, auto_link.href)] if auto_link is not None else []


def _found(facts: Facts, card: tuple[str, str]) -> Found | None:
    error = facts.unreadable.get(card)
    if error is not None:
        raise error  # the fan-out tries again later (see copies.transient)
    return facts.read.get(card)


def _merged(facts: Facts, view: View, found: Found | None) -> tuple[Card | None, Card | None]:
    if found is None:
        return None, None
    before = parse_card(found[0])
    # the owner's values (the view, what was recorded as theirs) are read in the owner's
    # region; the copy's lines may be the recipient's typing: in theirs too.  Values the
    # recipient undid are left out, and the lines the undo put back are theirs.
    kept = undone.apply(view, previous(facts.owned, facts.delivery), facts.undone,
                        facts.owner_region, facts.recipient_region)
    return before, merge(before, kept.view, kept.previous,
                         facts.owner_region, facts.recipient_region)


def _write(facts: Facts, view: View, card: tuple[str, str] | None, link: str | None,
           state: str, kind: str = "update") -> Verdict:
    found = _found(facts, card) if card is not None else None
    before, after = _merged(facts, view, found)
    return Verdict(WRITE, state, "", card, link, view, kind, found, before, after)


def decide(facts: Facts) -> Verdict:
    """The verdict for one delivery (raises what a card it needs could not be read with)."""
    delivery, owner = facts.delivery, facts.owner
    policy = consent.effective_policy(facts.policies, owner.user, facts.preauthorized,
                                      facts.default_policy)
    if delivery.state == WITHDRAWING:
        link = facts.link
        if link is not None and policy != consent.BLOCK \
                and _found(facts, (link.book, link.href)) is not None:
            return _write(facts, withdrawal_view(owner, delivery), (link.book, link.href),
                          None, WITHDRAWN, "withdraw")
        return Verdict(NOTHING, WITHDRAWN)
    view = facts.view
    if view is None:
        return Verdict(NOTHING, STOPPED)
    placement = place(facts)
    if placement.no_book:
        return Verdict(NOTHING, FAILED, NO_BOOK)
    if placement.deleted:
        return Verdict(NOTHING, FAILED, REMOVED)
    if placement.linked is not None:
        _found(facts, placement.linked)  # a linked card in a book unreadable for now waits
    chosen = consent.chosen(facts.policies, owner.user, facts.preauthorized)
    allowed = consent.may_offer(chosen, placement.owner_key_in_books,
                                placement.linked is not None)
    decision = consent.decide(policy, placement.linked, placement.candidates, allowed)
    if delivery.state == ROLLED_BACK and placement.linked is not None \
            and decision.action == consent.OFFER:
        # a repair puts back the change the recipient already took (their phone wrote an
        # older copy over it): it is not offered to them a second time
        decision = consent.Decision(consent.WRITE, placement.linked)
    if decision.action == consent.OFFER and decision.card is not None \
            and (placement.linked or decision.link):
        # a card that cannot be read for now is offered (an offer reads it when shown)
        found = facts.read.get(decision.card)
        before, after = _merged(facts, view, found)
        if found is not None and after is not None and after.serialize() == found[0]:
            # the card already says it all: an offer would change nothing
            return Verdict(WRITE, DELIVERED, "", decision.card, decision.link, view, "update",
                           found, before, after)
        return Verdict(OFFER, card=decision.card)
    if decision.action == consent.WRITE:
        return _write(facts, view, decision.card, decision.link, DELIVERED)
    if decision.action == consent.OFFER:
        return Verdict(OFFER, card=decision.card)
    if decision.action == consent.BLOCKED:
        return Verdict(BLOCKED_ACTION, BLOCKED)
    return Verdict(NOT_ALLOWED, FAILED, decision.reason)
