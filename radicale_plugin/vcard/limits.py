# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks a me card must pass, the same through CardDAV and through the API.  Pure."""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from dataclasses import dataclass

from radicale_plugin.errors import BadCard, TooLarge
from radicale_plugin.vcard.groups import is_group
from radicale_plugin.vcard.codec import Card, read_card
from radicale_plugin.vcard.view import BINARY_FIELDS

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Limits:
    """Sizes a me card may have (configurable, see ``settings``)."""

    max_properties: int = 500
    max_photo: int = 1024 * 1024   # decoded bytes of one PHOTO/LOGO/SOUND/KEY


def check_me_card(text: str, limits: Limits) -> Card:
    """Parse and check a me card; :class:`BadCard` or :class:`TooLarge` say what to fix."""
    if _CONTROL.search(text):
        raise BadCard("the card contains control characters (such as NUL); remove them")
    card = read_card(text)
    uids = card.get("UID")
    if len(uids) != 1 or not uids[0].value.strip():
        raise BadCard("a me card needs exactly one UID line, found %d" % len(uids))
    if not card.get("FN"):
        raise BadCard("a vCard needs an FN line (the name to show)")
    version = card.first_value("VERSION")
    if version not in ("3.0", "4.0"):
        raise BadCard("VERSION must be 3.0 or 4.0, not %r" % version)
    if is_group(card):
        raise BadCard("a contact group cannot be a me card: choose the card of a person")
    if len(card.lines) > limits.max_properties:
        raise TooLarge("the card has %d properties; at most %d are accepted"
                       % (len(card.lines), limits.max_properties))
    for line in card.lines:
        if line.name in BINARY_FIELDS:
            size = binary_size(line.value, bool({e.upper() for e in line.param("ENCODING")}
                                                & {"B", "BASE64"}))
            if size > limits.max_photo:
                raise TooLarge("%s is %d KiB; at most %d KiB are accepted: use a smaller image"
                               % (line.name, size // 1024, limits.max_photo // 1024))
    return card


def binary_size(value: str, encoded: bool = False) -> int:
    """Bytes an inline value carries: base64 (``ENCODING=b``), a ``data:`` URI; 0 for a URL."""
    if encoded:
        return _base64_size(value)
    if value[:5].lower() == "data:":
        head, comma, payload = value[5:].partition(",")
        if not comma:
            return len(value.encode())
        if head.lower().endswith(";base64"):
            return _base64_size(payload)
        return len(urllib.parse.unquote_to_bytes(payload))
    return 0  # a URL: nothing inline


def _base64_size(text: str) -> int:
    compact = re.sub(r"\s+", "", text)
    try:
        return len(base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True))
    except (binascii.Error, ValueError):
        return len(compact.encode())  # not base64: count what is there
