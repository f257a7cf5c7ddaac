# SPDX-License-Identifier: GPL-3.0-or-later
"""A fan-out round's reads, all before any decision: batched index queries, one read per card.

:func:`gather` fetches, for a round's deliveries, everything their decisions
(:mod:`.decide`) need: the people involved (owners and recipients: views, me
cards, regions), the recipients' books and policies, the links, the owners'
verified keys and earlier values, the recipients' cards carrying those keys
with those cards' links and key holders — each in one batched query of the
index — and then reads each card a decision may need once: the round's all at
once where the writer can (:class:`.copy_rows.CopyRows`: one statement per 200
cards, not one a card), else each straight from its file
(:class:`.copy_files.CopyFiles`, no lock).  :meth:`Gathered.facts` hands one
delivery's share to the pure decision as plain data.

One thing here writes: a linked card that seems gone is looked at again under
Radicale's shared lock (a MOVE or PUT under way looks the same for a moment),
and if it is gone its link ends then (:meth:`.copies.Deliverer.linked_or_gone`),
as the hooks would have ended it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from radicale.log import logger

from radicale_plugin import index as idx
from radicale_plugin.consent import links as consent_links
from radicale_plugin.context import Context
from radicale_plugin.delivery.copies import Deliverer
from radicale_plugin.delivery import undone
from radicale_plugin.delivery.decide import Facts, Found, cards_to_read, owned_values
from radicale_plugin.index import Delivery, IndexedCard, Link, Owner, UndoneValue
from radicale_plugin.owner.audiences import recipient_view
from radicale_plugin.vcard.codec import parse_card
from radicale_plugin.vcard.view import View

Pair = tuple[str, str]


@dataclass
class Gathered:
    """What a round's decisions need, read in one go (see :func:`gather`)."""

    people: dict[str, Owner] = field(default_factory=dict)  # owners and recipients
    views: dict[tuple[str, int], View | None] = field(default_factory=dict)
    books: dict[str, list[str]] = field(default_factory=dict)
    policies: dict[str, dict[str, str]] = field(default_factory=dict)
    preauthorized: dict[Pair, bool] = field(default_factory=dict)
    links: dict[Pair, Link] = field(default_factory=dict)   # by (owner, recipient)
    link_gone: set[Pair] = field(default_factory=set)
    verified: dict[str, frozenset[str]] = field(default_factory=dict)
    owned: dict[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    cards: dict[Pair, list[IndexedCard]] = field(default_factory=dict)
    links_at: dict[Pair, Link] = field(default_factory=dict)  # by (book, href)
    holders: dict[str, str] = field(default_factory=dict)
    claimed: frozenset[str] = frozenset()
    read: dict[Pair, Found | None] = field(default_factory=dict)
    unreadable: dict[Pair, BaseException] = field(default_factory=dict)
    regions: dict[str, str] = field(default_factory=dict)
    default_policy: str = "ask"
    audience_views: dict = field(default_factory=dict)  # see owner.audiences.recipient_view
    undone: dict[Pair, list[UndoneValue]] = field(default_factory=dict)  # by (owner, recipient)

    def facts(self, delivery: Delivery) -> Facts:
        """One delivery's share, as the pure decision takes it."""
        owner = self.people[delivery.owner]
        recipient = self.people[delivery.recipient]
        pair = (delivery.owner, delivery.recipient)
        view = owner.view
        if view is not None and delivery.wanted_seq != owner.seq:
            view = self.views.get((owner.user, delivery.wanted_seq)) or view
        if view is not None:  # the recipient's audience's part of it, each one made once
            view = recipient_view(view, owner, delivery.reasons, self.audience_views)
        return Facts(
            delivery, owner, view, policies=self.policies.get(delivery.recipient, {}),
            preauthorized=self.preauthorized.get(pair, False),
            default_policy=self.default_policy,
            has_book=bool(self.books.get(delivery.recipient)), link=self.links.get(pair),
            link_gone=pair in self.link_gone,
            me_card=(recipient.book or "", recipient.href) if recipient.href else None,
            verified=self.verified.get(owner.user, frozenset()),
            cards=self.cards.get(pair, []), links_at=self.links_at, holders=self.holders,
            claimed=self.claimed, read=self.read, unreadable=self.unreadable,
            owned=self.owned.get(owner.user, frozenset()),
            owner_region=self.regions[owner.user],
            recipient_region=self.regions[delivery.recipient],
            undone=tuple(self.undone.get(pair, ())))


def gather(ctx: Context, deliverer: Deliverer, deliveries: list[Delivery],
           owners: dict[str, Owner]) -> Gathered:
    """Everything the decisions of ``deliveries`` need (``owners``: their owners, read)."""
    index = ctx.index
    got = Gathered(default_policy=ctx.settings.default_policy)
    recipients = {d.recipient for d in deliveries}
    got.people = dict(owners)
    got.people.update(index.owners.get_many(recipients - set(owners)))
    got.regions = {user: ctx.region_of(person) for user, person in got.people.items()}
    got.books = index.cards.books_of_many(recipients)
    got.policies = index.consent.policies_of(recipients)
    got.links = index.links.get_many((d.owner, d.recipient) for d in deliveries)
    for delivery in deliveries:
        pair = (delivery.owner, delivery.recipient)
        got.preauthorized[pair] = ctx.preauthorized(*pair)
        owner = got.people[delivery.owner]
        key = (owner.user, delivery.wanted_seq)
        if owner.view is not None and delivery.wanted_seq != owner.seq \
                and key not in got.views:
            got.views[key] = index.owners.view_at(*key)
    for user in sorted({d.owner for d in deliveries if got.people[d.owner].view is not None
                        or d.state == idx.WITHDRAWING}):
        ever_verified = {k.key for k in index.keys.of_user(user) if k.verified}
        got.owned[user] = owned_values(index.owners.past_values(user), ever_verified)
    # without a link: the recipient's cards carrying the owner's verified keys
    unlinked = [d for d in deliveries if d.state != idx.WITHDRAWING
                and (d.owner, d.recipient) not in got.links and got.books[d.recipient]
                and got.people[d.owner].view is not None]
    for user in sorted({d.owner for d in unlinked}):
        got.verified[user] = frozenset(index.keys.verified(user))
    if unlinked:
        found = index.cards.cards_with_keys_of(
            {d.recipient for d in unlinked},
            {k for d in unlinked for k in got.verified[d.owner]})
        for delivery in unlinked:
            mine = got.verified[delivery.owner]
            got.cards[(delivery.owner, delivery.recipient)] = [
                c for c in found[delivery.recipient] if c.keys & mine]
        cards = {(c.book, c.href) for cs in got.cards.values() for c in cs}
        keys = {k for cs in got.cards.values() for c in cs for k in c.keys}
        got.links_at = index.links.at_many(cards)
        got.holders = index.keys.holders(keys)
        got.claimed = frozenset(index.keys.claimed(keys))
    _undone(index, got, deliveries)
    # every card the round's decisions may need, read at once (PostgreSQL: one statement
    # per 200, not one a card; the files: each by itself, as cheap); a card not found
    # there is read again by itself (a book that cannot be read is told apart then)
    wanted = [(delivery, cards_to_read(got.facts(delivery))) for delivery in deliveries]
    early = _read_many(deliverer, sorted({card for _, needed in wanted for card in needed}))
    for delivery, needed in wanted:
        _read_cards(deliverer, got, delivery, needed, early)
    return got


def _read_many(deliverer: Deliverer, cards: list[Pair]) -> dict[Pair, Found | None]:
    """``cards`` as the writer reads many at once; if that fails, none: each is read by
    itself then, and a card that cannot be read fails its own delivery alone (on
    PostgreSQL a failed statement ends the round's snapshot: its deliveries wait, and
    are decided again in a later round)."""
    if not cards:
        return {}
    try:
        return deliverer.files.read_many(cards)
    except Exception as e:
        logger.debug("Fan-out: %d cards read at once failed, each alone now: %s",
                     len(cards), e)
        return {}


def _undone(index: idx.SharingIndex, got: Gathered, deliveries: list[Delivery]) -> None:
    """The owner values recipients undid; those the owner has changed since are forgotten
    (the owner's new value is delivered like any other, see :mod:`.undone`)."""
    got.undone = index.history.undone_of((d.owner, d.recipient) for d in deliveries)
    stale = set()
    for (owner, _), values in got.undone.items():
        view = got.people[owner].view
        if view is not None:
            stale |= {v.id for v in values
                      if undone.changed(v, view, got.regions[owner])}
    if stale:
        index.history.forget_undone(stale)
        got.undone = {pair: kept for pair, values in got.undone.items()
                      if (kept := [v for v in values if v.id not in stale])}


def _read_cards(deliverer: Deliverer, got: Gathered, delivery: Delivery,
                cards: list[Pair], early: dict[Pair, Found | None]) -> None:
    """Read ``cards``, those the delivery's decision may need (:func:`.decide.cards_to_read`),
    once each (``early``: those read already)."""
    pair = (delivery.owner, delivery.recipient)
    for card in cards:
        if card in got.read or card in got.unreadable:
            continue
        with deliverer.files.quiet:
            pass  # wait while the last round's writer holds the storage lock
        try:
            if delivery.state == idx.WITHDRAWING:
                got.read[card] = early[card] if card in early else deliverer.files.read(*card)
                continue
            found = early.get(card) or deliverer.read(*card)
            link = got.links.get(pair)
            if link is not None and (found is None or not consent_links.holds(
                    link, parse_card(found[0]).first_value("UID"))):
                # read without the lock, a MOVE or PUT under way looks the same for a
                # moment: what the hooks left is looked at again under the lock
                with deliverer.files.shared():
                    now = deliverer.linked_or_gone(delivery.owner, delivery.recipient)
                if now is None:
                    got.link_gone.add(pair)
                    del got.links[pair]
                    continue
                got.links[pair] = now[0]
                card, found = (now[0].book, now[0].href), now[1]
            got.read[card] = found
        except Exception as e:  # that delivery fails (or waits) when it is decided
            got.unreadable[card] = e
