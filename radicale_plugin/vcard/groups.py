# SPDX-License-Identifier: GPL-3.0-or-later
"""Contacts and groups as vCards encode them.  Pure.

A group is a card of kind group, in either encoding: vCard 4 ``KIND:group`` with
``MEMBER`` lines, or Apple's ``X-ADDRESSBOOKSERVER-KIND:group`` with
``X-ADDRESSBOOKSERVER-MEMBER``; a contact may also carry ``CATEGORIES``.
"""

from __future__ import annotations

from radicale_plugin.vcard.codec import Card, split_list, unescape


def is_group(card: Card) -> bool:
    kind = (card.first_value("KIND") or card.first_value("X-ADDRESSBOOKSERVER-KIND") or "")
    return kind.strip().lower() == "group"


def contact_name(card: Card) -> str:
    return unescape(card.first_value("FN") or card.first_value("UID") or "?")


def categories(card: Card) -> set[str]:
    """The card's CATEGORIES, case-folded."""
    found: set[str] = set()
    for line in card.get("CATEGORIES"):
        found.update(c.casefold() for c in split_list(line.value) if c)
    return found


def members(card: Card) -> list[str]:
    """A group card's members as written (``urn:uuid:...``, ``mailto:``, ``tel:``)."""
    return [ln.value for ln in card.lines if ln.name in ("MEMBER", "X-ADDRESSBOOKSERVER-MEMBER")]
