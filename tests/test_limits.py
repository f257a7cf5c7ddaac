# SPDX-License-Identifier: GPL-3.0-or-later
"""The checks every me card must pass (CardDAV and API alike), pure."""

from __future__ import annotations

import base64

import pytest

from radicale_plugin.errors import BadCard, TooLarge
from radicale_plugin.vcard.limits import Limits, check_me_card

LIMITS = Limits(max_properties=20, max_photo=1000)


def me_card(*lines: str, head: tuple[str, ...] = ("VERSION:3.0", "UID:alice-me",
                                                    "FN:Alice Archer")) -> str:
    return "\r\n".join(("BEGIN:VCARD",) + head + lines + ("END:VCARD",)) + "\r\n"


def b64(size: int) -> str:
    return base64.b64encode(bytes(range(256)) * (size // 256) + bytes(size % 256)).decode()


def folded(line: str) -> str:
    return "\r\n ".join(line[i:i + 74] for i in range(0, len(line), 74))


def test_a_plain_me_card_passes():
    card = check_me_card(me_card("N:Archer;Alice;;;", "TEL;TYPE=CELL:+1 202 555 0101"), LIMITS)
    assert card.first_value("UID") == "alice-me"
    assert check_me_card(me_card(head=("VERSION:4.0", "UID:u", "FN:A")), LIMITS).version == "4.0"


@pytest.mark.parametrize("head", [
    ("VERSION:3.0", "UID:one", "UID:two", "FN:A"),
    ("VERSION:3.0", "UID:same", "UID:same", "FN:A"),
    ("VERSION:3.0", "FN:A"),
    ("VERSION:3.0", "UID:", "FN:A"),
    ("VERSION:3.0", "UID:  ", "FN:A"),
])
def test_a_me_card_needs_exactly_one_uid(head):
    with pytest.raises(BadCard, match="UID"):
        check_me_card(me_card(head=head), LIMITS)


def test_a_me_card_needs_a_name_to_show():
    with pytest.raises(BadCard, match="FN"):
        check_me_card(me_card("N:Archer;Alice;;;", head=("VERSION:3.0", "UID:u")), LIMITS)


@pytest.mark.parametrize("version", ["VERSION:2.1", "VERSION:5.0", "VERSION:", None])
def test_a_me_card_needs_version_3_or_4(version):
    head = (("VERSION:%s" % version[8:],) if version else ()) + ("UID:u", "FN:A")
    with pytest.raises(BadCard, match="VERSION"):
        check_me_card(me_card(head=head), LIMITS)


@pytest.mark.parametrize("control", ["\x00", "\x01", "\x08", "\x0b", "\x1b", "\x7f"])
def test_control_characters_are_refused(control):
    with pytest.raises(BadCard, match="control"):
        check_me_card(me_card("NOTE:hello%sworld" % control), LIMITS)


def test_tabs_and_line_ends_are_not_control_characters():
    check_me_card(me_card("NOTE:tab\there").replace("\r\n", "\n"), LIMITS)


def test_two_cards_or_none_are_refused():
    with pytest.raises(BadCard):
        check_me_card(me_card() + me_card(), LIMITS)
    with pytest.raises(BadCard):
        check_me_card("FN:A\r\n", LIMITS)


def test_too_many_properties_are_refused():
    at_limit = ["TEL:+1 202 555 %04d" % i for i in range(17)]  # 3 + 17 = 20 lines
    check_me_card(me_card(*at_limit), LIMITS)
    with pytest.raises(TooLarge, match="21 properties"):
        check_me_card(me_card(*at_limit, "EMAIL:a@example.org"), LIMITS)


@pytest.mark.parametrize("line", [
    "PHOTO;ENCODING=b;TYPE=JPEG:%s",          # vCard 3.0
    "PHOTO;ENCODING=BASE64;TYPE=PNG:%s",
    "PHOTO:data:image/jpeg;base64,%s",        # vCard 4.0
    "LOGO:data:image/png;base64,%s",
    "SOUND;ENCODING=b:%s",
    "KEY:data:application/pgp-keys;base64,%s",
])
def test_a_photo_or_other_binary_value_too_large_is_refused(line):
    with pytest.raises(TooLarge, match="smaller"):
        check_me_card(me_card(folded(line % b64(1001))), LIMITS)
    check_me_card(me_card(folded(line % b64(1000))), LIMITS)  # the limit itself is fine


SVG = "<svg xmlns='http://www.w3.org/2000/svg'>" + "<circle r='1'/>" * 100 + "</svg>"


@pytest.mark.parametrize("line", [
    "PHOTO;ENCODING=b;TYPE=JPEG:x:" + b64(1500),     # base64 behind a made-up URL scheme
    "LOGO;ENCODING=BASE64:data:" + b64(1500),
    "PHOTO:data:image/svg+xml," + SVG,               # data: URIs that are not base64
    "PHOTO:data:image/svg+xml;charset=utf-8," + SVG.replace("<", "%3C"),
    "PHOTO;VALUE=uri:data:," + "<>" * 800,
])
def test_a_photo_too_large_is_refused_whatever_form_its_inline_data_takes(line):
    assert len(SVG) > LIMITS.max_photo
    with pytest.raises(TooLarge):
        check_me_card(me_card(folded(line)), LIMITS)


def test_a_large_photo_is_counted_decoded_not_as_text():
    # 1000 bytes are 1336 characters of base64: the decoded size is what counts
    check_me_card(me_card(folded("PHOTO;ENCODING=b;TYPE=JPEG:%s" % b64(1000))), LIMITS)
    with pytest.raises(TooLarge):
        check_me_card(me_card(folded("PHOTO;ENCODING=b;TYPE=JPEG:%s" % b64(1001).rstrip("="))),
                      LIMITS)


@pytest.mark.parametrize("line", [
    "PHOTO;VALUE=uri:https://example.org/%s.jpg",
    "PHOTO:https://example.org/%s.jpg",
    "LOGO;VALUE=URL:http://example.org/%s.png",
])
def test_photos_by_url_are_fine(line):
    check_me_card(me_card(folded(line % ("x" * 5000))), LIMITS)
