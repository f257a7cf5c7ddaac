# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure rules behind "changing your number never cuts your people off": who is kept,
what a dropped recipient's reason says, what an owner is told about unverified keys."""
from __future__ import annotations

import pytest

from radicale_plugin.index import Delivery, IndexedCard, Key
from radicale_plugin.consent.keeping import keeps
from radicale_plugin.owner.key_notices import unverified
from radicale_plugin.delivery.reports import dropped
from radicale_plugin.owner.rules import group_names


@pytest.mark.parametrize("made_by", ["accepted", "invited", "verified", "migrated"])
def test_a_link_the_recipient_made_keeps_them_whatever_the_owners_keys(made_by):
    for policy in ("auto", "ask"):
        assert keeps(made_by, True, policy, False, "contacts")
        assert keeps(made_by, True, policy, True, "everyone")


def test_a_copy_the_server_made_keeps_only_a_recipient_who_named_the_owner():
    assert not keeps("created", True, "auto", False, "contacts")  # the admin's word only
    assert keeps("created", True, "auto", True, "contacts")       # his own policy for her
    assert not keeps("invented", True, "auto", False, "contacts")  # unknown kinds likewise


@pytest.mark.parametrize("card_exists, policy, discoverability", [
    (False, "auto", "contacts"),   # the recipient deleted the copy
    (True, "block", "contacts"),   # the recipient blocks the owner
    (True, "auto", "nobody"),      # keeping would tell the owner which keys are theirs
])
def test_nobody_is_kept_who_left_or_hides(card_exists, policy, discoverability):
    for made_by, named in (("accepted", True), ("verified", False), ("created", True)):
        assert not keeps(made_by, card_exists, policy, named, discoverability)


def delivery(recipient: str, reasons: list[str], state: str = "stopped") -> Delivery:
    return Delivery("alice", recipient, state, 3, reasons=reasons)


def test_every_recipient_no_longer_a_target_is_listed_with_a_reason():
    deliveries = [delivery("bob", ["group:Family (contact Bob)"]),
                  delivery("carol", ["all (contact Carol K.)"]),
                  delivery("dave", ["chosen for this update"], "delivered"),
                  delivery("erin", [], "delivered"),
                  delivery("frank", ["all (contact Frank)"], "delivered")]
    gone = {g["user"]: g for g in dropped(deliveries, {"frank": ["all (contact Frank)"]},
                                          ["all"])}
    assert sorted(gone) == ["bob", "carol", "dave", "erin"]
    assert gone["bob"] == {"contact": "Bob", "user": "bob", "rule": "group:Family",
                           "reason": "you removed group:Family from your targets"}
    assert (gone["carol"]["contact"], gone["carol"]["rule"]) == ("Carol K.", "all")
    assert gone["carol"]["reason"].startswith("no contact of yours that all covers stands "
                                              "for them now")
    assert "user:carol" in gone["carol"]["reason"]
    assert "by name" in gone["dave"]["reason"] and gone["dave"]["contact"] == "dave"
    assert "by name" not in gone["erin"]["reason"] and "user:erin" in gone["erin"]["reason"]
    # a user:NAME rule that reaches nobody is reported once, by the rule
    named = [{"contact": "bob", "rule": "user:bob", "reason": "no user you may see here"}]
    assert "bob" not in {g["user"] for g in dropped(deliveries, {}, ["user:bob"], named)}


def key(name: str, on_card: bool, verified: str | None = None, lost: str | None = None) -> Key:
    return Key("alice", name, on_card, verified, lost)


def test_the_owner_is_told_of_each_unverified_key_on_the_me_card():
    keys = [key("tel:+4915111112222", True), key("tel:+12025550101", False, "2026-01-01"),
            key("mailto:alice@example.org", True, "2026-01-01"),
            key("mailto:alice@new.example", True),
            key("tel:+12025550199", True, "2026-01-01", lost="2026-02-01")]
    notes = {u["key"]: u["notice"] for u in unverified(keys)}
    assert sorted(notes) == ["mailto:alice@new.example", "tel:+12025550199",
                             "tel:+4915111112222"]
    assert notes["tel:+4915111112222"] == (
        "your number +4915111112222 is not verified: people who know you only by it cannot "
        "be found; verify it (mecard-bridge verify +4915111112222)")
    assert notes["mailto:alice@new.example"].startswith("your e-mail alice@new.example is "
                                                        "not verified")


def test_group_names_are_group_cards_as_written_and_categories():
    cards = [IndexedCard("a/c", "1.vcf", "1", False, frozenset(), "Bob",
                         frozenset({"family", "climbing"})),
             IndexedCard("a/c", "2.vcf", "2", True, frozenset(), "Family")]
    assert group_names(cards) == {"family": "Family", "climbing": "climbing"}
