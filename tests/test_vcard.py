# SPDX-License-Identifier: GPL-3.0-or-later
import pytest

from radicale_plugin.errors import BadCard
from radicale_plugin.vcard.codec import fold, parse_card, parse_line


def test_untouched_card_serializes_byte_for_byte():
    text = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:x\r\nFN:Zoë\r\n"
            "item1.TEL;TYPE=\"cell,voice\":+1 202 555 0101\r\nitem1.X-ABLabel:mobile\r\n"
            "PHOTO:data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAD\r\n"
            " UlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\r\nEND:VCARD\r\n")
    assert parse_card(text).serialize() == text


def test_quoted_parameter_may_hold_a_colon():
    line = parse_line('ADR;LABEL="1 Main St: back door";TYPE=home:;;1 Main St;;;;')
    assert line.name == "ADR"
    assert line.value == ";;1 Main St;;;;"
    assert line.param("LABEL") == ['"1 Main St: back door"']


def test_long_lines_fold_at_75_octets_without_splitting_characters():
    folded = fold("NOTE:" + "é" * 100)
    assert all(len(p.encode()) <= 75 for p in folded.split("\r\n"))
    assert folded.replace("\r\n ", "") == "NOTE:" + "é" * 100


@pytest.mark.parametrize("text, problem", [
    ("BEGIN:VCARD\r\nFN:x\r\n", "missing END:VCARD"),
    ("FN:x\r\n", "outside"),
    ("BEGIN:VCARD\r\nFN x\r\nEND:VCARD\r\n", "without a colon"),
    ("", "no vCard"),
])
def test_malformed_cards_say_what_is_wrong(text, problem):
    with pytest.raises(BadCard, match=problem):
        parse_card(text)
