# SPDX-License-Identifier: GPL-3.0-or-later
"""Offers: an owner's change waiting for the recipient's answer.

Under the policy ``ask`` a change becomes an offer showing exactly what it
would do: which of the recipient's cards (or a new contact), each value
before → after, the owner's account name and which of the owner's keys are
verified.  The recipient accepts (applied at once; the owner becomes
``auto`` unless it was "this time only"), postpones, refuses (this change
is dropped, the next one is offered again) or blocks the owner.  A newer
change replaces a pending offer.  Offers live in the index, so they
survive restarts; owners may make only so many new offers a day
(``mecard_offers_per_day``), except in their first share
(:func:`consent.in_first_share`): the rest wait, without a retry every hour,
until the day's oldest offer leaves the window; the fan-out logs them once
per round, and the owner's report says how many wait and until when.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from radicale.log import logger

from radicale_plugin import index as idx
from radicale_plugin import store
from radicale_plugin.consent.decisions import in_first_share, offer_state
from radicale_plugin.context import Context
from radicale_plugin.delivery.copies import Deliverer
from radicale_plugin.errors import BadRequest, Conflict, NotFound
from radicale_plugin.delivery.history import diff
from radicale_plugin.index import Delivery, Offer, Owner
from radicale_plugin.notify import events as notify_events
from radicale_plugin.delivery.reports import HELD_BACK
from radicale_plugin.owner.audiences import recipient_view
from radicale_plugin.recipient.placing import check_chosen_card, owner_keys, place_accepted
from radicale_plugin.vcard.codec import unescape
from radicale_plugin.vcard.view import View

#: How long an offer held back by the daily limit waits if the log tells no better time.
RETRY_AFTER_LIMIT = 3600.0
_DAY = datetime.timedelta(days=1)
#: The latest a recipient may postpone an offer to.
MAX_POSTPONE = datetime.timedelta(days=366)


def _iso(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).isoformat(timespec="seconds")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def parse_until(value: Any) -> datetime.datetime:
    """An ISO 8601 time in the future (UTC when no offset is given)."""
    if not isinstance(value, str) or len(value) > 40:
        raise BadRequest("'until' must be a time such as \"2026-12-01T09:00:00Z\"")
    try:
        when = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise BadRequest("'until' must be a time such as \"2026-12-01T09:00:00Z\", "
                         "not %r" % value) from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    now = _now()
    if when <= now:
        raise BadRequest("'until' must be in the future")
    if when - now > MAX_POSTPONE:
        raise BadRequest("an offer can be postponed by a year at most")
    return when


class Offers:
    """Making offers (the fan-out) and answering them (the recipient)."""

    def __init__(self, ctx: Context, deliverer: Deliverer) -> None:
        self._ctx = ctx
        self._deliverer = deliverer
        #: offers held back in the fan-out's round: per owner, how many and the next time
        self._held: dict[str, tuple[int, float]] = {}
        self._made = False  # a new offer was logged in the round

    def end_round(self) -> None:
        """After a round's offers (in its transaction): one log line for those held back,
        and the log of new offers purged of what no day's count needs any more."""
        held, self._held = self._held, {}
        if held:
            names = sorted(held, key=lambda o: -held[o][0])
            logger.warning(
                "Fan-out: %d offer(s) held back by the limit of %d new offers a day: %s",
                sum(n for n, _ in held.values()), self._ctx.settings.offers_per_day,
                ", ".join("%r %d (next at %s)" % (o, held[o][0], _iso(
                    datetime.datetime.fromtimestamp(held[o][1], datetime.timezone.utc)))
                    for o in names[:5]) + (" and %d more owners" % (len(names) - 5)
                                           if len(names) > 5 else ""))
        if self._made:
            self._made = False
            # a day is the longest window anyone asks about
            self._ctx.index.consent.purge_offer_log(_iso(_now() - 2 * _DAY))

    # -- the fan-out's side ---------------------------------------------------
    def make(self, owner: Owner, delivery: Delivery, card: tuple[str, str] | None) -> None:
        """Offer the owner's current change to the recipient (updates ``delivery``)."""
        self.make_many([(owner, delivery, card)])

    def make_many(self, wanted: list[tuple[Owner, Delivery, tuple[str, str] | None]]) -> None:
        """:meth:`make` for each (owner, delivery, card): a fan-out's part of offers read
        and written at once (a few statements, not a few an offer).  The deliveries are
        updated once every offer is written: if a statement fails, none is."""
        consent = self._ctx.index.consent
        existing = consent.offers_of((o.user, d.recipient) for o, d, _ in wanted)
        now = _now()
        firsts: dict[str, tuple[int, str]] = {}
        counts: dict[str, int] = {}  # new offers of the owner's day, this part's counted in
        puts: list[tuple[Offer, bool]] = []
        told: list[Offer] = []
        held: list[tuple[Owner, Delivery]] = []
        offered: list[Delivery] = []
        for owner, delivery, card in wanted:
            old = existing.get((owner.user, delivery.recipient))
            book, href = card if card is not None else (None, None)
            counted = True
            if old is None:
                first = firsts.get(owner.user) or consent.first_share(owner.user) or \
                    consent.start_first_share(owner.user, delivery.wanted_seq, _iso(now))
                firsts[owner.user] = first
                counted = not in_first_share(first, delivery.wanted_seq, now)
                if counted:
                    if owner.user not in counts:
                        counts[owner.user] = consent.new_offers_since(owner.user,
                                                                      _iso(now - _DAY))
                    if counts[owner.user] >= self._ctx.settings.offers_per_day:
                        held.append((owner, delivery))
                        continue
                    counts[owner.user] += 1
                offer = Offer(owner.user, delivery.recipient, delivery.wanted_seq,
                              idx.OFFER_PENDING, book, href, _iso(now))
            elif old.state == idx.OFFER_REFUSED and (
                    old.refused_seq >= delivery.wanted_seq
                    or self._as_refused(owner, delivery, old.refused_seq)):
                # refused, and this change brings the recipient nothing new (another
                # audience's field set changed, or the owner saved the same card again):
                # not asked again
                offered.append(delivery)
                continue
            else:
                postponed = old.state == idx.OFFER_POSTPONED
                same = old.seq == delivery.wanted_seq and old.state != idx.OFFER_REFUSED
                offer = Offer(owner.user, delivery.recipient, delivery.wanted_seq,
                              idx.OFFER_POSTPONED if postponed else idx.OFFER_PENDING, book,
                              href, old.created if same else _iso(now), old.first_offered,
                              old.until if postponed else None, old.refused_seq)
            puts.append((offer, counted))
            offered.append(delivery)
            if offer.state == idx.OFFER_PENDING and (old is None or old.seq != offer.seq
                                                     or old.state == idx.OFFER_REFUSED):
                told.append(offer)
        consent.put_offers(puts)
        for offer in told:
            notify_events.offer_made(self._ctx, offer.owner, offer.recipient, offer.seq)
        # written: now the deliveries (and the round's count of those held back)
        self._made = self._made or any(counted and (o.owner, o.recipient) not in existing
                                       for o, counted in puts)
        for delivery in offered:
            delivery.state, delivery.error = idx.OFFERED, ""
        oldest: dict[str, str | None] = {}
        for owner, delivery in held:
            self._hold(owner, delivery, now, oldest)
        if puts:
            logger.debug("%d offer(s) made: %s", len(puts), ", ".join(
                "%r's card to %r" % (o.owner, o.recipient) for o, _ in puts[:5]))

    def _as_refused(self, owner: Owner, delivery: Delivery, refused_seq: int) -> bool:
        """Whether the change ``delivery`` wants gives the recipient exactly what they
        refused (their audience's part of both, by the owner's field sets now)."""
        index = self._ctx.index
        refused = index.owners.view_at(owner.user, refused_seq)
        wanted = index.owners.view_at(owner.user, delivery.wanted_seq)
        if refused is None or wanted is None:
            return False
        return recipient_view(refused, owner, delivery.reasons).fingerprint() == \
            recipient_view(wanted, owner, delivery.reasons).fingerprint()

    def _hold(self, owner: Owner, delivery: Delivery, now: datetime.datetime,
              oldest: dict[str, str | None]) -> None:
        """Hold back a new offer of an owner who made their day's (updates ``delivery``):
        it waits until the day's oldest offer leaves the window, not an hour at a time.
        ``oldest``: that offer's time, by owner, as read by this part."""
        per_day = self._ctx.settings.offers_per_day
        if owner.user not in oldest:
            oldest[owner.user] = self._ctx.index.consent.oldest_new_offer_since(
                owner.user, _iso(now - _DAY))
        first = oldest[owner.user]
        try:
            due = (datetime.datetime.fromisoformat(first) + _DAY).timestamp() + 1 \
                if first else time.time() + RETRY_AFTER_LIMIT
        except ValueError:
            due = time.time() + RETRY_AFTER_LIMIT
        delivery.state, delivery.due = idx.PENDING, max(due, time.time() + 1)
        delivery.error = ("%s: you made %d new offers within a day, the most allowed; the "
                          "next go out at %s" % (
                              HELD_BACK, per_day, _iso(datetime.datetime.fromtimestamp(
                                  delivery.due, datetime.timezone.utc))))
        count, first_due = self._held.get(owner.user, (0, delivery.due))
        self._held[owner.user] = (count + 1, min(first_due, delivery.due))

    # -- the recipient's side -------------------------------------------------
    def offered_view(self, offer: Offer) -> View | None:
        """Exactly the view this offer shows (None: the owner's card is gone): the part of
        the owner's change meant for the recipient's audience (:mod:`.owner.audiences`)."""
        index = self._ctx.index
        owner = index.owners.get(offer.owner)
        if owner.view is None:
            return None
        view = index.owners.view_at(offer.owner, offer.seq)
        if view is None:
            return None
        delivery = index.outbox.delivery(offer.owner, offer.recipient)
        return recipient_view(view, owner, delivery.reasons if delivery else ())

    def open_offers(self, recipient: str, only: str | None = None,
                    into: str | None = None) -> list[dict[str, Any]]:
        """The recipient's open offers, each with exactly what accepting would change.

        ``only``: that owner's offer alone; ``into``: what accepting into that card of
        the recipient's (a path, or "new") would change, instead of the proposed card.
        """
        if into is not None and only is None:
            raise BadRequest("name the owner whose offer to show in that card: "
                             "/offers?owner=NAME&card=PATH")
        index = self._ctx.index
        out = []
        with self._ctx.storage.acquire_lock("r", recipient):
            for offer in index.consent.offers_for(recipient):
                if only is not None and offer.owner != only:
                    continue
                state = offer_state(offer)
                view = self.offered_view(offer)
                if state == idx.OFFER_REFUSED or view is None:
                    continue
                owner = index.owners.get(offer.owner)
                card = (offer.book, offer.href) if offer.book and offer.href else None
                if into is not None:
                    card = self._chosen_card(recipient, offer, into)
                elif card is not None and self._deliverer.card_text(*card) is None:
                    card = None  # the proposed card is gone: it would be a new contact
                delivery = index.outbox.delivery(offer.owner, recipient) or Delivery(
                    offer.owner, recipient, idx.OFFERED, offer.seq)
                try:
                    before, after = self._deliverer.preview(owner, delivery, view, card)
                except NotFound:
                    continue  # no address book left to put a new contact in
                out.append({
                    "owner": offer.owner, "seq": offer.seq, "state": state,
                    # the owner's display name as shared with this change (None: not shared)
                    "owner_name": unescape(view.of("FN")[0].value) if view.of("FN") else None,
                    "until": offer.until if state == idx.OFFER_POSTPONED else None,
                    "offered": offer.created,
                    "card": None if card is None else {
                        "path": "/%s/%s" % card,
                        "name": unescape(before.first_value("FN") or "") if before else ""},
                    "changes": [{"field": c.field, "before": c.before, "after": c.after}
                                for c in diff(before, after)],
                    "owner_keys": owner_keys(self._ctx, offer.owner, view),
                })
        return out

    def _open(self, recipient: str, owner: str) -> Offer:
        offer = self._ctx.index.consent.offer(owner, recipient)
        if offer is None or offer.state == idx.OFFER_REFUSED:
            raise NotFound("no offer from %r waits for you" % owner)
        return offer

    def accept(self, recipient: str, owner_name: str, card: str | None = None,
               once: bool = False, seq: int | None = None) -> dict[str, Any]:
        """Apply exactly the offered change now: into the proposed card, another, or a new one."""
        index = self._ctx.index
        with self._ctx.storage.acquire_lock("w", recipient):
            offer = self._open(recipient, owner_name)
            if seq is not None and seq != offer.seq:
                raise Conflict("the offer changed since you looked at it (it is now change "
                               "%d): look at it again" % offer.seq)
            view = self.offered_view(offer)
            if view is None:
                index.consent.drop_offer(offer.owner, recipient)
                raise Conflict("%s no longer shares a card" % offer.owner)
            owner = index.owners.get(offer.owner)
            target = self._chosen_card(recipient, offer, card)
            with place_accepted(self._ctx, self._deliverer, owner, recipient, offer.seq,
                                target, idx.LINK_ACCEPTED, view) as written:
                if not once:
                    index.consent.set_policy(recipient, offer.owner, "auto")
        logger.info("Recipient %r accepted %r's card%s", recipient, offer.owner,
                    " this time only" if once else "")
        return {"owner": offer.owner, "card": "/%s/%s" % written,
                "policy": self._ctx.policy(recipient, offer.owner)}

    def _chosen_card(self, recipient: str, offer: Offer, card: str | None
                     ) -> tuple[str, str] | None:
        index = self._ctx.index
        if card == "new":
            return None
        if card is None:
            if not (offer.book and offer.href):
                return None
            chosen = (offer.book, offer.href)
        else:
            chosen = store.split_card_path(recipient, card)
            # a card of one of their address books: never a calendar's item, nor one of
            # the files Radicale keeps beside the cards (their names start with a dot)
            if chosen[0] not in index.cards.books_of(recipient) or chosen[1].startswith("."):
                raise NotFound("you have no card %s" % card[:200])
        text = self._deliverer.card_text(*chosen)
        if text is None:
            if card is None:
                return None  # the proposed card is gone: a new contact
            raise NotFound("you have no card %s" % card[:200])
        return check_chosen_card(index, recipient, offer.owner, chosen)

    def postpone(self, recipient: str, owner_name: str, until: str) -> dict[str, Any]:
        """Offer it again at ``until``."""
        when = parse_until(until)
        index = self._ctx.index
        # under the storage lock: the fan-out must not re-make the offer meanwhile
        with self._ctx.storage.acquire_lock("w", recipient), index.transaction():
            offer = self._open(recipient, owner_name)
            offer.state, offer.until = idx.OFFER_POSTPONED, _iso(when)
            index.consent.put_offer(offer)
            notify_events.offer_postponed(self._ctx, offer.owner, recipient, offer.seq,
                                          when.timestamp())
        return {"owner": offer.owner, "state": idx.OFFER_POSTPONED, "until": offer.until}

    def refuse(self, recipient: str, owner_name: str) -> dict[str, Any]:
        """Drop this change; the owner's next change is offered again."""
        index = self._ctx.index
        with self._ctx.storage.acquire_lock("w", recipient), index.transaction():
            offer = self._open(recipient, owner_name)
            offer.state, offer.refused_seq, offer.until = idx.OFFER_REFUSED, offer.seq, None
            index.consent.put_offer(offer)
        logger.info("Recipient %r refused a change of %r's card", recipient, offer.owner)
        return {"owner": offer.owner, "state": idx.OFFER_REFUSED}

    def block(self, recipient: str, owner_name: str) -> dict[str, Any]:
        """Never take changes from this owner."""
        index = self._ctx.index
        with self._ctx.storage.acquire_lock("w", recipient), index.transaction():
            offer = self._open(recipient, owner_name)
            index.consent.set_policy(recipient, offer.owner, "block")
            index.consent.drop_offer(offer.owner, recipient)
            delivery = index.outbox.delivery(offer.owner, recipient)
            if delivery is not None:
                delivery.state, delivery.error = idx.BLOCKED, ""
                index.outbox.finish(delivery)
        logger.info("Recipient %r blocked %r", recipient, offer.owner)
        return {"owner": offer.owner, "policy": "block"}
