# SPDX-License-Identifier: GPL-3.0-or-later
"""One delivery decided from plain data (:mod:`radicale_plugin.delivery.decide`).

No server, no index, no files: each test hands the decision what a round would have
gathered (the owner, the recipient's policies, the link, the cards carrying the
owner's keys, the cards' texts) and reads the verdict.  The end-to-end tests
(``test_fanout_e2e.py``, ``test_offers_e2e.py``, ``test_rollback_e2e.py``, ...) prove
the worker writes what these verdicts say.
"""

from __future__ import annotations

import dataclasses

import pytest

from radicale_plugin.consent.decisions import FIT_LINK, FIT_PROPOSE
from radicale_plugin.delivery.decide import (BLOCKED_ACTION, NO_BOOK, NOT_ALLOWED, NOTHING,
                                             OFFER, REMOVED, WRITE, Facts, cards_to_read,
                                             decide, place)
from radicale_plugin.index.records import (BLOCKED, DELIVERED, FAILED, LINK_CREATED,
                                           LINK_VERIFIED, PENDING, ROLLED_BACK, STOPPED,
                                           WITHDRAWING, WITHDRAWN, Delivery, IndexedCard, Link,
                                           Owner)
from radicale_plugin.vcard.view import DEFAULT_SHARED_FIELDS, Entry, View

OLD, NEW = "tel:+12025550111", "tel:+12025550122"
BOOK = "bob/contacts"
ALLY = (BOOK, "ally.vcf")


def view(number: str) -> View:
    return View((Entry("FN", "Alice Archer"), Entry("TEL", number, ("cell",))),
                DEFAULT_SHARED_FIELDS)


def text(number: str, extra: str = "NOTE:Bob's own note") -> str:
    return ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ally-uid\r\nFN:Alice Archer\r\n"
            "N:;;;;\r\nTEL;TYPE=CELL:%s\r\n%s\r\nEND:VCARD\r\n" % (number, extra))


ALICE = Owner("alice", "alice/contacts", "me.vcf", "me-uid", view=view("+1 202 555 0122"),
              card_view=view("+1 202 555 0122"), seq=2)
LINK = Link("alice", "bob", BOOK, "ally.vcf", LINK_CREATED, "2026-01-01T00:00:00+00:00",
            "ally-uid")


def facts(policy: str | None = "auto", state: str = PENDING, **changes) -> Facts:
    """Alice's change 2 (her new number) for Bob, who holds her copy (linked) with her old
    number and a note of his own, unless ``changes`` say otherwise."""
    delivery = Delivery("alice", "bob", state, 2, delivered_seq=1,
                        delivered_view=view("+1 202 555 0111"),
                        written_values={("TEL", OLD), ("FN", "alice archer")})
    base = Facts(delivery, ALICE, ALICE.view, {"alice": policy} if policy else {},
                 link=LINK, me_card=(BOOK, "bob.vcf"), verified=frozenset({OLD, NEW}),
                 read={ALLY: (text("+1 202 555 0111"), (1, 2, 3))},
                 owned=frozenset({("TEL", OLD), ("TEL", NEW)}))
    return dataclasses.replace(base, **changes)


def unlinked(policy: str | None, *cards: IndexedCard, **changes) -> Facts:
    """Bob has no linked card for Alice: ``cards`` carry her verified keys."""
    changes.setdefault("holders", {OLD: "alice", NEW: "alice"})
    return facts(policy, link=None, cards=list(cards), **changes)


def card(href: str, *keys: str, is_group: bool = False) -> IndexedCard:
    return IndexedCard(BOOK, href, href + "-uid", is_group, frozenset(keys))


# -- linked: the recipient's policy decides ---------------------------------------------

def test_auto_writes_the_change_into_the_linked_card_keeping_the_recipients_lines():
    verdict = decide(facts("auto"))
    assert (verdict.action, verdict.state, verdict.card, verdict.link) == (
        WRITE, DELIVERED, ALLY, None)
    written = verdict.after.serialize()
    assert "+1 202 555 0122" in written and "+1 202 555 0111" not in written
    assert "NOTE:Bob's own note" in written
    assert verdict.found == facts().read[ALLY]      # the rename checks the card is as read


def test_ask_offers_the_change_naming_the_linked_card():
    verdict = decide(facts("ask"))
    assert (verdict.action, verdict.card, verdict.after) == (OFFER, ALLY, None)


def test_the_servers_default_applies_without_a_policy_of_the_recipient():
    assert decide(facts(None)).action == OFFER                          # shipped: ask
    assert decide(facts(None, default_policy="auto")).action == WRITE
    assert decide(facts(None, preauthorized=True)).action == WRITE      # the admin's word
    assert decide(facts(None, policies={"*": "block"})).action == BLOCKED_ACTION


def test_ask_writes_nothing_new_when_the_card_already_says_it_all():
    already = {ALLY: (text("+1 202 555 0122"), (1, 2, 3))}
    verdict = decide(facts("ask", read=already))
    assert (verdict.action, verdict.state) == (WRITE, DELIVERED)  # no offer of nothing
    assert verdict.after.serialize() == already[ALLY][0]


def test_block_leaves_the_copy_alone():
    verdict = decide(facts("block"))
    assert (verdict.action, verdict.state, verdict.error) == (BLOCKED_ACTION, BLOCKED, "")


def test_a_deleted_linked_card_is_not_recreated():
    verdict = decide(facts("auto", link=None, link_gone=True))
    assert (verdict.action, verdict.state, verdict.error) == (NOTHING, FAILED, REMOVED)


def test_a_recipient_without_an_address_book_gets_nothing():
    verdict = decide(facts("auto", has_book=False))
    assert (verdict.action, verdict.state, verdict.error) == (NOTHING, FAILED, NO_BOOK)


def test_a_me_card_gone_stops_the_delivery():
    verdict = decide(facts("auto", view=None))
    assert (verdict.action, verdict.state) == (NOTHING, STOPPED)
    assert cards_to_read(facts("auto", view=None)) == []      # not even the linked card read
    assert cards_to_read(facts("auto")) == [ALLY]


def test_a_linked_card_that_could_not_be_read_raises_its_error():
    error = OSError("the book's folder is busy")
    with pytest.raises(OSError):
        decide(facts("auto", read={}, unreadable={ALLY: error}))
    # a block decides without the card: still raised, as the card is read first
    with pytest.raises(OSError):
        decide(facts("block", read={}, unreadable={ALLY: error}))


# -- rollback repair, withdrawal -------------------------------------------------------

def test_a_rolled_back_copy_is_repaired_without_a_second_offer():
    verdict = decide(facts("ask", state=ROLLED_BACK))
    assert (verdict.action, verdict.state, verdict.card) == (WRITE, DELIVERED, ALLY)
    assert "+1 202 555 0122" in verdict.after.serialize()
    assert decide(facts("block", state=ROLLED_BACK)).action == BLOCKED_ACTION


def test_a_withdrawal_removes_the_owners_values_from_the_linked_card():
    verdict = decide(facts("ask", state=WITHDRAWING))
    assert (verdict.action, verdict.state, verdict.kind, verdict.link) == (
        WRITE, WITHDRAWN, "withdraw", None)
    written = verdict.after.serialize()
    assert "TEL" not in written and "NOTE:Bob's own note" in written


@pytest.mark.parametrize("changes", [{"policy": "block"}, {"link": None},
                                     {"read": {ALLY: None}}])
def test_a_withdrawal_without_a_card_to_touch_only_ends_the_delivery(changes):
    policy = changes.pop("policy", "auto")
    verdict = decide(facts(policy, state=WITHDRAWING, **changes))
    assert (verdict.action, verdict.state, verdict.error) == (NOTHING, WITHDRAWN, "")


# -- without a link: the cards carrying the owner's keys --------------------------------

def test_auto_links_and_writes_a_card_whose_keys_are_all_the_owners():
    ally = card("ally.vcf", OLD)
    verdict = decide(unlinked("auto", ally))
    assert (verdict.action, verdict.card, verdict.link) == (WRITE, ALLY, LINK_VERIFIED)
    assert "+1 202 555 0122" in verdict.after.serialize()
    assert cards_to_read(unlinked("auto", ally)) == [ALLY]


def test_auto_offers_a_card_that_only_partly_proves_to_be_the_owners():
    # another number on it is on somebody's me card, verified for nobody
    partly = card("ally.vcf", OLD, "tel:+12025550199")
    placed = place(unlinked("auto", partly, claimed=frozenset({"tel:+12025550199"})))
    assert [c.fit for c in placed.candidates] == [FIT_PROPOSE]
    verdict = decide(unlinked("auto", partly, claimed=frozenset({"tel:+12025550199"}),
                              read={}))
    assert (verdict.action, verdict.card) == (OFFER, ALLY)      # decided without reading it
    assert cards_to_read(unlinked("auto", partly,
                                  claimed=frozenset({"tel:+12025550199"}))) == []


def test_auto_creates_a_new_card_when_no_card_fits():
    verdict = decide(unlinked("auto"))
    assert (verdict.action, verdict.card, verdict.link, verdict.after) == (
        WRITE, None, LINK_CREATED, None)             # its place is found when it is written
    # a card with a key verified for somebody else is no candidate
    other = card("x.vcf", OLD, "tel:+12025550177")
    assert decide(unlinked("auto", other, holders={OLD: "alice",
                                                   "tel:+12025550177": "carol"})).card is None


def test_ask_offers_a_linkable_card_and_a_new_contact():
    verdict = decide(unlinked("ask", card("ally.vcf", OLD), read={
        ALLY: (text("+1 202 555 0111"), (1, 2, 3))}))
    assert (verdict.action, verdict.card) == (OFFER, ALLY)
    chosen = decide(unlinked("ask", policies={"alice": "ask"}))
    assert (chosen.action, chosen.card) == (OFFER, None)       # a new contact


def test_a_stranger_may_not_even_offer():
    verdict = decide(unlinked(None))
    assert (verdict.action, verdict.state) == (NOT_ALLOWED, FAILED)
    assert "no offer can be made" in verdict.error


@pytest.mark.parametrize("skipped", [
    card("bob.vcf", OLD),                      # the recipient's me card
    card("fam.vcf", OLD, is_group=True),       # a group
])
def test_a_me_card_or_a_group_never_holds_a_copy(skipped):
    placed = place(unlinked("auto", skipped))
    assert placed.candidates == [] and placed.owner_key_in_books


def test_a_card_linked_to_another_owner_is_no_candidate_and_no_sign_of_knowing():
    carols = card("c.vcf", OLD)
    other = Link("carol", "bob", BOOK, "c.vcf", LINK_CREATED)
    placed = place(unlinked(None, carols, links_at={(BOOK, "c.vcf"): other}))
    assert placed.candidates == [] and not placed.owner_key_in_books
    assert decide(unlinked(None, carols, links_at={(BOOK, "c.vcf"): other})).action \
        == NOT_ALLOWED
    # positive control: the same card, not linked, lets Alice make an offer
    assert decide(unlinked(None, carols, read={})).action == OFFER
