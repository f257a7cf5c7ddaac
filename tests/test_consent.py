# SPDX-License-Identifier: GPL-3.0-or-later
"""Consent, pure: whose policy wins, who may make an offer, which card fits, what to do."""

from __future__ import annotations

import pytest

from radicale_plugin.consent.decisions import (ASK, AUTO, BLOCK, BLOCKED, FIT_LINK, FIT_PROPOSE,
                                     NOT_ALLOWED, OFFER, WRITE, Candidate, Decision,
                                     Preauthorization, card_fit, decide, effective_policy,
                                     chosen, may_offer)

A, B = "tel:+12025550101", "mailto:alice@example.org"   # verified for alice
WORK = "tel:+12025550777"                               # nobody's
CAROLS = "tel:+12025550103"                             # verified for carol
HOLDERS = {A: "alice", B: "alice", CAROLS: "carol"}


# -- whose policy -----------------------------------------------------------------

@pytest.mark.parametrize("policies, preauthorized, expected", [
    ({"alice": BLOCK, "*": AUTO}, True, BLOCK),   # the recipient's word on this owner first
    ({"alice": AUTO, "*": BLOCK}, False, AUTO),
    ({"alice": ASK}, True, ASK),                  # ...even against the admin's pre-authorisation
    ({"*": BLOCK}, True, BLOCK),                  # then the recipient's own default
    ({"*": ASK, "carol": AUTO}, True, ASK),
    ({"carol": BLOCK}, True, AUTO),               # then the admin's pre-authorisation
    ({}, True, AUTO),
    ({"carol": AUTO}, False, "server-default"),   # then the server's default
    ({}, False, "server-default"),
])
def test_effective_policy_order(policies, preauthorized, expected):
    assert effective_policy(policies, "alice", preauthorized, "server-default") == expected


# -- who may make an offer ------------------------------------------------------------

@pytest.mark.parametrize("policies, preauthorized, key_in_books, linked", [
    ({}, False, False, True),               # a card already holds the owner's copy
    ({}, False, True, False),               # one of the owner's verified keys is in the books
    ({}, True, False, False),               # the admin pre-authorised the pair
    ({"alice": ASK}, False, False, False),  # the recipient set a policy for this owner
])
def test_an_owner_the_recipient_knows_may_make_an_offer(policies, preauthorized,
                                                          key_in_books, linked):
    assert may_offer(chosen(policies, "alice", preauthorized), key_in_books, linked)


@pytest.mark.parametrize("policies", [{}, {"*": ASK}, {"carol": ASK}, {"*": AUTO}])
def test_a_stranger_may_not_make_an_offer(policies):
    assert not may_offer(chosen(policies, "alice", False), False, False)


# -- which card fits -------------------------------------------------------------------

@pytest.mark.parametrize("keys, claimed", [
    ({A}, set()),
    ({A, B}, set()),
    ({A, WORK}, set()),                   # a key nobody claims does not match anybody
    ({A, B}, {A, B}),                     # the owner's own claims, verified
])
def test_a_card_whose_matching_keys_are_all_verified_for_the_owner_is_linked(keys, claimed):
    assert card_fit(keys, "alice", HOLDERS, claimed) == FIT_LINK


@pytest.mark.parametrize("claimed", [
    {WORK},    # somebody claims the work number (maybe a colleague, maybe a liar)
    {WORK, A},
])
def test_a_card_with_a_key_claimed_but_not_verified_is_only_proposed(claimed):
    assert card_fit({A, WORK}, "alice", HOLDERS, claimed) == FIT_PROPOSE


@pytest.mark.parametrize("keys, claimed", [
    ({A, CAROLS}, set()),                 # carries a key verified for somebody else
    ({A, B, CAROLS}, {A}),
    ({CAROLS}, set()),
    ({WORK}, {WORK}),                     # no key verified for the owner
    ({WORK}, set()),
    (set(), set()),
])
def test_a_card_with_no_key_of_the_owner_or_a_key_of_somebody_else_never_fits(keys, claimed):
    assert card_fit(keys, "alice", HOLDERS, claimed) is None


# -- what to do ------------------------------------------------------------------------

LINKED = ("bob/contacts", "ally.vcf")
AUTO_LINK = Candidate("bob/contacts", "a.vcf", FIT_LINK, 2)
AUTO_LINK_WEAK = Candidate("bob/contacts", "z.vcf", FIT_LINK, 1)
PROPOSABLE = Candidate("bob/contacts", "p.vcf", FIT_PROPOSE, 3)
PROPOSABLE_WEAK = Candidate("bob/work", "q.vcf", FIT_PROPOSE, 1)


@pytest.mark.parametrize("linked, candidates", [
    (LINKED, [AUTO_LINK]), (None, [AUTO_LINK, PROPOSABLE]), (None, [])])
@pytest.mark.parametrize("allowed", [True, False])
def test_block_wins_over_everything(linked, candidates, allowed):
    decision = decide(BLOCK, linked, candidates, allowed)
    assert decision.action == BLOCKED and decision.card is None and decision.reason


@pytest.mark.parametrize("linked, candidates, allowed, expected", [
    # the linked card, and no other
    (LINKED, [AUTO_LINK, PROPOSABLE], False, Decision(WRITE, LINKED)),
    # a card whose matching keys are all the owner's is linked; the best match wins
    (None, [AUTO_LINK_WEAK, PROPOSABLE, AUTO_LINK], True,
     Decision(WRITE, ("bob/contacts", "a.vcf"), link="verified")),
    # a card that only partly proves to be the owner's is offered, never written
    # without the recipient's yes, nor duplicated by a new contact
    (None, [PROPOSABLE_WEAK, PROPOSABLE], True, Decision(OFFER, ("bob/contacts", "p.vcf"))),
    (None, [PROPOSABLE], False, Decision(OFFER, ("bob/contacts", "p.vcf"))),
    (None, [], False, Decision(WRITE, None, link="created")),
])
def test_auto(linked, candidates, allowed, expected):
    assert decide(AUTO, linked, candidates, allowed) == expected


@pytest.mark.parametrize("linked, candidates, allowed, expected", [
    (LINKED, [AUTO_LINK, PROPOSABLE], True, Decision(OFFER, LINKED)),
    (LINKED, [], False, Decision(OFFER, LINKED)),  # a link lets the owner offer
    (None, [PROPOSABLE, AUTO_LINK_WEAK], True,
     Decision(OFFER, ("bob/contacts", "z.vcf"), link="verified")),
    (None, [PROPOSABLE_WEAK, PROPOSABLE], True, Decision(OFFER, ("bob/contacts", "p.vcf"))),
    (None, [], True, Decision(OFFER, None)),        # offered as a new contact
])
def test_ask(linked, candidates, allowed, expected):
    assert decide(ASK, linked, candidates, allowed) == expected


@pytest.mark.parametrize("candidates", [[], [AUTO_LINK], [PROPOSABLE]])
def test_ask_without_being_allowed_to_offer_is_not_allowed_and_says_why(candidates):
    decision = decide(ASK, None, candidates, False)
    assert (decision.action, decision.card, decision.link) == (NOT_ALLOWED, None, None)
    assert "verify your keys" in decision.reason


# -- the admin's pre-authorisation ---------------------------------------------------------

@pytest.mark.parametrize("text, everyone, groups", [
    ("", False, set()),
    ("  ", False, set()),
    ("*", True, set()),
    ("group:family", False, {"family"}),
    ("group:family, group:friends", False, {"family", "friends"}),
    ("group:family;group:friends,", False, {"family", "friends"}),
    (" group: family , * ", True, {"family"}),
])
def test_preauthorization_parse(text, everyone, groups):
    parsed = Preauthorization.parse(text)
    assert (parsed.everyone, set(parsed.groups)) == (everyone, groups)


@pytest.mark.parametrize("text", ["family", "group:", "user:bob", "all", "group:family, bob"])
def test_preauthorization_parse_refuses_what_it_does_not_know(text):
    with pytest.raises(ValueError):
        Preauthorization.parse(text)


GROUPS = {"alice": {"family", "climbing"}, "bob": {"family"}, "carol": {"climbing"},
          "dave": set()}


@pytest.mark.parametrize("text, owner, recipient, expected", [
    ("*", "alice", "dave", True),
    ("", "alice", "bob", False),
    ("group:family", "alice", "bob", True),
    ("group:family", "bob", "alice", True),
    ("group:family", "alice", "carol", False),   # both in groups, but not in a named one
    ("group:family", "carol", "bob", False),     # one of them outside the group
    ("group:family", "alice", "dave", False),
    ("group:family, group:climbing", "alice", "carol", True),
    ("group:work", "alice", "bob", False),
])
def test_preauthorization_between(text, owner, recipient, expected):
    assert Preauthorization.parse(text).between(owner, recipient,
                                                lambda u: GROUPS[u]) is expected
