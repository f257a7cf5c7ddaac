# SPDX-License-Identifier: GPL-3.0-or-later
"""What a change did to a card, value by value (the history's diff), pure."""

from __future__ import annotations

from radicale_plugin.delivery.history import diff
from radicale_plugin.index import Change
from radicale_plugin.vcard.codec import parse_card


def card(*lines: str, version: str = "3.0", uid: str = "x", rev: str = "") -> str:
    head = ["BEGIN:VCARD", "VERSION:" + version, "UID:" + uid]
    if rev:
        head.append("REV:" + rev)
    return "\r\n".join(head + list(lines) + ["END:VCARD"]) + "\r\n"


def changes(before: str | None, after: str) -> list[Change]:
    return diff(parse_card(before) if before is not None else None, parse_card(after))


def test_a_replaced_number_is_one_change_from_before_to_after():
    assert changes(card("FN:Ally", "TEL;TYPE=WORK:0777", "TEL;TYPE=CELL:+1 202 555 0101"),
                   card("FN:Ally", "TEL;TYPE=WORK:0777", "TEL;TYPE=CELL:+1 202 555 0199")) == [
        Change("TEL", "TEL;TYPE=CELL:+1 202 555 0101", "TEL;TYPE=CELL:+1 202 555 0199")]


def test_replaced_values_of_one_field_are_paired_in_order():
    assert changes(card("FN:A", "TEL:1", "TEL:2", "TEL:3"), card("FN:A", "TEL:2", "TEL:8",
                                                                 "TEL:9")) == [
        Change("TEL", "TEL:1", "TEL:8"), Change("TEL", "TEL:3", "TEL:9")]


def test_a_parameter_change_is_a_change():
    assert changes(card("FN:A", "TEL;TYPE=CELL:1"), card("FN:A", "TEL;TYPE=HOME:1")) == [
        Change("TEL", "TEL;TYPE=CELL:1", "TEL;TYPE=HOME:1")]


def test_additions_have_no_before():
    assert changes(card("FN:A", "TEL:1"), card("FN:A", "TEL:1", "TEL:2", "EMAIL:a@example.org")
                   ) == [Change("TEL", None, "TEL:2"), Change("EMAIL", None, "EMAIL:a@example.org")]


def test_removals_have_no_after():
    assert changes(card("FN:A", "NICKNAME:Sis", "TEL:1", "TEL:2"), card("FN:A", "TEL:2")) == [
        Change("NICKNAME", "NICKNAME:Sis", None), Change("TEL", "TEL:1", None)]


def test_more_removed_than_added_pairs_what_it_can():
    assert changes(card("FN:A", "TEL:1", "TEL:2"), card("FN:A", "TEL:3")) == [
        Change("TEL", "TEL:1", "TEL:3"), Change("TEL", "TEL:2", None)]


def test_a_new_card_is_all_additions_without_bookkeeping():
    assert changes(None, card("FN:Alice Archer", "N:Archer;Alice;;;", "TEL:1",
                              "PRODID:-//radicale-mecard//copy//EN", rev="20260101T000000Z")) == [
        Change("FN", None, "FN:Alice Archer"), Change("N", None, "N:Archer;Alice;;;"),
        Change("TEL", None, "TEL:1")]


def test_bookkeeping_lines_are_not_changes():
    before = card("FN:A", "PRODID:-//Apple//EN", "TEL:1", rev="20250101T000000Z", uid="a")
    after = card("FN:A", "PRODID:-//radicale-mecard//copy//EN", "TEL:1", version="4.0",
                 rev="20260101T000000Z", uid="b")
    assert changes(before, after) == []


def test_an_unchanged_card_has_no_changes():
    text = card("FN:Ally", "item1.TEL:1", "item1.X-ABLABEL:mobile", "NOTE:a\\, b")
    assert changes(text, text) == []


def test_the_same_value_folded_differently_is_not_a_change():
    note = "NOTE:" + "climbing gym on tuesdays " * 6
    folded_at_75 = card("FN:A", note[:75] + "\r\n " + note[75:])
    folded_at_40 = card("FN:A", note[:40] + "\r\n " + note[40:110] + "\r\n " + note[110:])
    assert changes(folded_at_75, folded_at_40) == []
    added = changes(card("FN:A"), folded_at_40)
    assert added == [Change("NOTE", None, note)]  # kept as one unfolded line


def test_a_grouped_line_keeps_its_group_in_the_change():
    assert changes(card("FN:A", "item1.TEL:1"), card("FN:A", "item1.TEL:2")) == [
        Change("TEL", "item1.TEL:1", "item1.TEL:2")]


def test_a_removed_duplicate_line_is_a_removal():
    # the merge drops a second line carrying the same value: the history must show it,
    # or an undo cannot put it back (and the recipient sees an update that changed nothing)
    assert changes(card("FN:A", "TEL:1", "EMAIL:a@example.org", "TEL:1"),
                   card("FN:A", "TEL:1", "EMAIL:a@example.org")) == [
        Change("TEL", "TEL:1", None)]
    assert changes(card("FN:A", "TEL:1"), card("FN:A", "TEL:1", "TEL:1")) == [
        Change("TEL", None, "TEL:1")]
