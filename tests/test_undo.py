# SPDX-License-Identifier: GPL-3.0-or-later
"""Undo, the pure parts: putting a history entry's values back into a card as it is now
(delivery/revert.py), and later merges leaving the undone owner values out
(delivery/undone.py)."""

from __future__ import annotations

from radicale_plugin.delivery import revert as rv
from radicale_plugin.delivery.history import diff
from radicale_plugin.delivery.undone import apply, changed, value_key
from radicale_plugin.index import Change, UndoneValue
from radicale_plugin.vcard.codec import parse_card
from radicale_plugin.vcard.merge import Previous, merge
from radicale_plugin.vcard.view import View, shared_view

US = ("US", "US")
OLD, NEW, NEWER = "TEL;TYPE=CELL:+1 202 555 0101", "TEL;TYPE=CELL:+1 202 555 0199", \
    "TEL;TYPE=CELL:+1 202 555 0155"


def card(*lines: str) -> str:
    return "\r\n".join(["BEGIN:VCARD", "VERSION:3.0", "UID:x"] + list(lines)
                       + ["END:VCARD"]) + "\r\n"


def undone_text(text: str, *changes: Change) -> rv.Reverted:
    return rv.revert(parse_card(text), changes, US)


def test_undo_puts_the_earlier_value_back_in_place_and_keeps_every_other_line():
    done = undone_text(card("FN:Ally", NEW, "NOTE:my own note, edited since"),
                       Change("TEL", OLD, NEW))
    assert done.card.serialize() == card("FN:Ally", OLD, "NOTE:my own note, edited since")
    assert done.put_back == [Change("TEL", OLD, NEW)] and done.left == []


def test_an_added_value_is_taken_out_and_a_removed_one_comes_back():
    done = undone_text(card("FN:Ally", NEW, "EMAIL:b@example.org"),
                       Change("TEL", None, NEW), Change("EMAIL", "EMAIL:a@example.org", None))
    assert done.card.serialize() == card("FN:Ally", "EMAIL:b@example.org",
                                         "EMAIL:a@example.org")


def test_a_value_i_changed_since_is_mine_and_is_not_put_back():
    text = card("FN:Ally", "TEL;TYPE=CELL:+1 202 555 0123")
    done = undone_text(text, Change("TEL", OLD, NEW))
    assert done.card.serialize() == text and done.put_back == []
    assert done.left == [(Change("TEL", OLD, NEW), rv.CHANGED_SINCE)]


def test_a_value_re_saved_in_another_form_by_a_phone_is_still_found():
    done = undone_text(card("FN:Ally", "TEL;type=cell:(202) 555-0199"),
                       Change("TEL", OLD, NEW))
    assert done.card.serialize() == card("FN:Ally", OLD)


def test_a_single_valued_field_i_filled_since_keeps_my_value():
    text = card("FN:Ally", "NOTE:mine")
    done = undone_text(text, Change("NOTE", "NOTE:the owner's", None))
    assert done.card.serialize() == text and done.left[0][1] == rv.TAKEN_SINCE


def test_a_card_never_loses_its_name_to_an_undo():
    text = card("FN:Alice Archer", NEW)
    done = undone_text(text, Change("FN", None, "FN:Alice Archer"), Change("TEL", None, NEW))
    assert done.card.serialize() == card("FN:Alice Archer")
    assert done.left == [(Change("FN", None, "FN:Alice Archer"), rv.NEEDS_NAME)]


def test_an_earlier_value_already_back_is_not_doubled():
    done = undone_text(card("FN:Ally", OLD, NEW), Change("TEL", OLD, NEW))
    assert done.card.serialize() == card("FN:Ally", OLD)


def test_undo_touches_rev_only_when_it_changes_something():
    text = card("FN:Ally", "REV:20200101T000000Z", "TEL:+1 202 555 0123")
    assert undone_text(text, Change("TEL", OLD, NEW)).card.serialize() == text
    changed_rev = undone_text(card("FN:Ally", "REV:20200101T000000Z", NEW),
                              Change("TEL", OLD, NEW)).card.first_value("REV")
    assert changed_rev != "20200101T000000Z"


def test_undoing_the_diff_of_a_change_gives_the_card_back():
    before = parse_card(card("FN:Ally", OLD, "TEL;TYPE=WORK:+1 202 555 0777", "NOTE:x"))
    after = parse_card(card("FN:Alice", NEW, "TEL;TYPE=WORK:+1 202 555 0777",
                            "EMAIL:a@example.org", "NOTE:x"))
    done = rv.revert(after, diff(before, after), US)
    assert done.card.serialize() == before.serialize() and not done.left


# -- later deliveries ------------------------------------------------------------------

def owner_view(*lines: str) -> View:
    return shared_view(parse_card(card("FN:Alice Archer", *lines)), ("FN", "TEL", "EMAIL"))


def tel_undone(kept: str = OLD, undone: str = NEW) -> UndoneValue:
    return UndoneValue("alice", "bob", "TEL", value_key("TEL", undone, "US"), kept, 7, 1)


def previous_of(*views: View) -> Previous:
    values = frozenset(v for view in views for v in view.values("US"))
    return Previous(views[-1].entries, values)


def test_a_later_merge_leaves_the_undone_value_out_and_keeps_the_value_put_back():
    first, second = owner_view(OLD), owner_view(NEW, "EMAIL:new@example.org")
    copy = parse_card(card("FN:Ally", OLD, "EMAIL:a@example.org", "NOTE:mine"))
    prev = previous_of(first, owner_view(NEW, "EMAIL:a@example.org"))
    without = merge(copy, second, prev, "US")
    assert NEW in without.serialize() and OLD not in without.serialize()  # the control
    kept = apply(second, prev, [tel_undone()], "US")
    merged = merge(copy, kept.view, kept.previous, "US").serialize()
    assert OLD in merged and NEW not in merged and "EMAIL:new@example.org" in merged
    assert "NOTE:mine" in merged


def test_once_the_owner_changes_the_undone_value_it_no_longer_applies():
    newer = owner_view(NEWER)
    assert changed(tel_undone(), newer, "US") and not changed(tel_undone(), owner_view(NEW),
                                                               "US")
    prev = previous_of(owner_view(OLD), owner_view(NEW))
    kept = apply(newer, prev, [tel_undone()], "US")
    assert kept.view == newer and kept.previous == prev
    merged = merge(parse_card(card("FN:Ally", OLD)), kept.view, kept.previous, "US")
    assert merged.get("TEL")[0].value == "+1 202 555 0155"


def test_an_undone_removal_keeps_the_value_put_back_until_the_owner_has_it_again():
    removal = UndoneValue("alice", "bob", "EMAIL", "", "EMAIL:a@example.org", 7, 2)
    view = owner_view(OLD)
    prev = previous_of(owner_view(OLD, "EMAIL:a@example.org"), view)
    kept = apply(view, prev, [removal], "US")
    merged = merge(parse_card(card("FN:Ally", OLD, "EMAIL:a@example.org")), kept.view,
                   kept.previous, "US").serialize()
    assert "EMAIL:a@example.org" in merged
    assert changed(removal, owner_view(OLD, "EMAIL:a@example.org"), "US")


def test_values_recorded_as_lines_are_keyed_like_the_owners_view():
    assert value_key("TEL", "TEL;VALUE=uri:tel:+1-202-555-0199", "US") == \
        value_key("TEL", NEW, "US") == value_key("TEL", "TEL:(202) 555-0199", "US")
    assert value_key("TEL", None, "US") == "" and value_key("TEL", "no colon", "US") == ""
