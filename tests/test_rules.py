# SPDX-License-Identifier: GPL-3.0-or-later
import pytest

from radicale_plugin.errors import BadRequest
from radicale_plugin.vcard.matching import resolve_contact
from radicale_plugin.owner.rules import Book, evaluate, parse_rule
from radicale_plugin.vcard.codec import parse_cards

CONTACTS = """BEGIN:VCARD
VERSION:3.0
UID:c-bob
FN:Bob
TEL:202-555-0102
CATEGORIES:Family,Climbing
END:VCARD
BEGIN:VCARD
VERSION:4.0
UID:c-carol
FN:Carol
EMAIL:carol@example.org
END:VCARD
BEGIN:VCARD
VERSION:3.0
UID:c-dave
FN:Dave
EMAIL:dave@example.org
END:VCARD
BEGIN:VCARD
VERSION:3.0
UID:c-shared
FN:Bob and Carol
TEL:202-555-0102
EMAIL:carol@example.org
END:VCARD
BEGIN:VCARD
VERSION:3.0
UID:c-stranger
FN:Stranger
TEL:202-555-0999
END:VCARD
BEGIN:VCARD
VERSION:4.0
UID:g-work
KIND:group
FN:Work
MEMBER:urn:uuid:c-carol
END:VCARD
BEGIN:VCARD
VERSION:3.0
UID:g-book-club
X-ADDRESSBOOKSERVER-KIND:group
FN:Book Club
X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:c-dave
END:VCARD
"""

HOLDERS = {"tel:+12025550102": "bob", "mailto:carol@example.org": "carol",
           "mailto:dave@example.org": "dave", "tel:+12025550101": "alice"}


def select(*rules: str):
    book = Book(parse_cards(CONTACTS), "US")
    return evaluate([parse_rule(r) for r in rules], book,
                    lambda c: resolve_contact(None, c.keys, HOLDERS, lambda u: True), "alice",
                    {"bob", "carol", "dave", "erin"})


def test_all_selects_every_contact_that_is_a_user_and_skips_the_ambiguous_one():
    selection = select("all")
    assert sorted(selection.targets) == ["bob", "carol", "dave"]
    assert [s["contact"] for s in selection.skipped] == ["Bob and Carol"]
    assert "bob, carol" in selection.skipped[0]["reason"]


@pytest.mark.parametrize("rule, users", [
    ("group:family", ["bob"]),          # CATEGORIES, case-insensitive
    ("group:Work", ["carol"]),          # vCard 4 KIND:group + MEMBER
    ("group:Book Club", ["dave"]),      # Apple X-ADDRESSBOOKSERVER-*
    ("group:Nobody", []),
    ("user:erin", ["erin"]),
])
def test_each_group_encoding_selects_its_members(rule, users):
    assert sorted(select(rule).targets) == users


def test_union_of_rules_keeps_every_reason():
    selection = select("group:Family", "user:bob")
    assert selection.targets["bob"] == ["group:Family (contact Bob)", "user:bob"]


def test_unknown_user_is_reported_not_targeted():
    selection = select("user:zed")
    assert selection.targets == {}
    assert selection.skipped[0]["reason"].startswith("no user you may see here")


@pytest.mark.parametrize("text", ["everyone", "group:", "user", "frequency:3", 7])
def test_unknown_rules_are_refused(text):
    with pytest.raises(BadRequest, match="target rule"):
        parse_rule(text)
