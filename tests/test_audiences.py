# SPDX-License-Identifier: GPL-3.0-or-later
"""Which field set a recipient gets: the most specific rule's, equal ones united.  Pure."""
from __future__ import annotations

import pytest

from radicale_plugin.errors import BadRequest
from radicale_plugin.index.records import Owner
from radicale_plugin.owner import audiences as aud
from radicale_plugin.vcard.codec import parse_card
from radicale_plugin.vcard.view import shared_view

ME = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:alice-me\r\nFN:Alice Archer\r\nN:Archer;Alice;;;\r\n"
      "TEL;TYPE=CELL:+1 202 555 0101\r\nTEL;TYPE=WORK:+1 202 555 0111\r\n"
      "EMAIL:alice@example.org\r\nADR;TYPE=HOME:;;1 Main St;Springfield;;12345;USA\r\n"
      "BDAY:1990-04-01\r\nTITLE:Chief Climber\r\nNOTE:private\r\nEND:VCARD\r\n")
RULES = ["all", "group:Family", "group:Work", "user:dave"]
FAMILY = ("FN", "N", "TEL", "ADR", "BDAY")
WORK = ("FN", "N", "TITLE")


def owner(**sets: tuple[str, ...] | None) -> Owner:
    """Alice sharing FN, N, TEL, EMAIL; ``sets``: rule (``group_Family``) -> fields."""
    o = Owner("alice", rules=list(RULES))
    for name, fields in sets.items():
        rule = name.replace("_", ":", 1)
        o.audiences = aud.to_json(aud.set_audience(aud.owner_audiences(o), rule, fields,
                                                   o.shared_fields, False))
    return o


def whole_view(o: Owner):
    return shared_view(parse_card(ME), aud.fields_in_use(o), aud.withdrawn_in_use(o))


def test_a_rule_without_a_set_of_its_own_gets_the_shared_fields():
    choice = aud.choose(["all"], owner(group_Family=FAMILY))
    assert choice.fields == ("FN", "N", "TEL", "EMAIL") and choice.rules == ("all",)
    assert "shared fields" in choice.reason


def test_a_group_comes_before_all_and_a_named_person_before_a_group():
    o = owner(group_Family=FAMILY, all=("FN", "N", "EMAIL"), user_dave=("FN", "EMAIL"))
    family = aud.choose(["all", "group:Family"], o)
    assert family.fields == FAMILY and family.rules == ("group:Family",)
    assert family.others == ("all",) and "before all" in family.reason
    dave = aud.choose(["group:Family", "user:dave", "all"], o)
    assert dave.fields == ("FN", "EMAIL") and dave.rules == ("user:dave",)
    assert set(dave.others) == {"group:Family", "all"}


def test_equally_specific_rules_give_the_union_of_their_sets():
    choice = aud.choose(["group:Work", "group:Family"], owner(group_Family=FAMILY,
                                                             group_Work=WORK))
    assert set(choice.fields) == set(FAMILY) | set(WORK)
    assert choice.rules == ("group:Family", "group:Work") and "union" in choice.reason
    # a group without a set of its own adds the shared fields to the union
    plain = aud.choose(["group:Work", "group:Family"], owner(group_Family=FAMILY))
    assert set(plain.fields) == set(FAMILY) | {"EMAIL"}


def test_a_recipient_no_rule_selects_gets_the_shared_fields():
    choice = aud.choose([], owner(group_Family=FAMILY))
    assert choice.fields == ("FN", "N", "TEL", "EMAIL") and choice.rules == ()


def test_reasons_name_their_rules_even_when_a_contact_name_looks_like_one():
    rules = ["all", "group:Family", "group:Family (contact X", "user:bob"]
    assert aud.rule_of_reason("group:Family (contact Bob)", rules) == "group:Family"
    assert aud.rule_of_reason("group:Family (contact X (contact Y)", rules) == \
        "group:Family (contact X"
    assert aud.rule_of_reason("all (contact Carol)", rules) == "all"
    assert aud.rule_of_reason("user:bob", rules) == "user:bob"
    assert aud.rule_of_reason("user:bobby", rules) is None
    assert aud.rule_of_reason("chosen for this update", rules) is None
    assert aud.selected_by(["group:Family (contact Bob)", "all (contact Bob)",
                            "chosen for this update"], rules) == ["group:Family", "all"]


def test_the_audience_view_carries_its_fields_only():
    o = owner(group_Family=FAMILY, all=("FN", "N", "EMAIL"))
    view = whole_view(o)
    assert {"ADR", "BDAY", "EMAIL", "TEL"} <= {e.name for e in view.entries}
    assert "TITLE" not in {e.name for e in view.entries}  # no audience gets it
    bob = aud.recipient_view(view, o, ["group:Family (contact Bob)", "all (contact Bob)"])
    assert {e.name for e in bob.entries} == {"FN", "N", "TEL", "ADR", "BDAY"}
    assert bob.touched() == FAMILY
    carol = aud.recipient_view(view, o, ["all (contact Carol)"])
    assert {e.name for e in carol.entries} == {"FN", "N", "EMAIL"}


def test_without_audiences_every_recipient_gets_the_shared_view_unchanged():
    o = owner()
    view = whole_view(o)
    assert aud.recipient_view(view, o, ["all (contact Bob)"]) == view
    assert aud.recipient_view(view, o, []) == view


def test_withdrawing_a_field_from_an_audience_withdraws_it_from_its_copies_only():
    o = owner(group_Family=FAMILY)
    after = aud.set_audience(aud.owner_audiences(o), "group:Family",
                             ("FN", "N", "TEL", "BDAY"), o.shared_fields, withdraw=True)
    assert after["group:Family"].withdrawn == ("ADR",)
    o.audiences = aud.to_json(after)
    view = whole_view(o)
    bob = aud.recipient_view(view, o, ["group:Family (contact Bob)"])
    assert "ADR" in bob.withdrawn and "ADR" not in bob.fields
    carol = aud.recipient_view(view, o, ["all (contact Carol)"])
    assert "ADR" not in carol.touched()
    # without withdraw the values handed out stay (nothing withdrawn), and giving the
    # field back ends its withdrawal
    kept = aud.set_audience(aud.owner_audiences(owner(group_Family=FAMILY)), "group:Family",
                            ("FN", "N"), o.shared_fields, withdraw=False)
    assert kept["group:Family"].withdrawn == ()
    back = aud.set_audience(after, "group:Family", FAMILY, o.shared_fields, withdraw=False)
    assert back["group:Family"].withdrawn == ()
    # back to the shared fields: the entry goes unless something is being withdrawn
    assert aud.set_audience(back, "group:Family", None, o.shared_fields, False) == {}


def test_a_set_for_a_rule_the_owner_has_not_is_refused_with_advice():
    with pytest.raises(BadRequest, match="not one of your target rules.*POST /targets"):
        aud.find_rule("group:Nope", RULES)
    with pytest.raises(BadRequest, match="unknown target rule"):
        aud.find_rule("friends", RULES)
    assert aud.find_rule("group:family", RULES) == "group:Family"  # a group's name: any case
    assert aud.find_rule("user:dave", RULES) == "user:dave"
    with pytest.raises(BadRequest):
        aud.find_rule("user:Dave", RULES)  # user names are exact


@pytest.mark.parametrize("fields", [["FN", "UID"], ["FN", "X-ADDRESSBOOKSERVER-KIND"], [],
                                    "FN", [1], ["FN"] * 65])
def test_field_sets_are_checked_like_the_shared_fields(fields):
    with pytest.raises(BadRequest):
        aud.check_audience_fields(fields)


def test_field_sets_are_normalised_like_the_shared_fields():
    assert aud.check_audience_fields(["fn", " tel ", "FN", "X-Custom"]) == ("FN", "TEL",
                                                                            "X-CUSTOM")
    assert aud.check_audience_fields(None) is None
