# SPDX-License-Identifier: GPL-3.0-or-later
"""Normal forms of phone numbers and e-mail addresses, and contact keys.

A contact *resolves* to a user when one of its keys (normalised TEL or
EMAIL values) equals a key on that user's me card.  Numbers become E.164
(``tel:+4915112345678``) using a default region for national forms;
e-mails are case-folded (``mailto:bob@example.org``).  The same functions
serve the server and the bridge, so both select the same people.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Iterable, Mapping

import phonenumbers

from radicale_plugin.vcard.codec import Card, unescape

_DIGITS = re.compile(r"[^0-9+]")


@lru_cache(maxsize=65536)
def phone_key(raw: str, region: str = "US") -> str | None:
    """``tel:+E164`` for a number as people write it, or None if it has no digits.

    A number that phonenumbers cannot parse keeps its digits (and a leading
    ``+``), so two cards spelling it the same way still match.
    """
    text = raw.strip()
    if text.lower().startswith("tel:"):
        text = text[4:].split(";", 1)[0]
    try:
        number = phonenumbers.parse(text, region.upper() or None)
        if phonenumbers.is_possible_number(number):
            return "tel:" + phonenumbers.format_number(
                number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    digits = _DIGITS.sub("", text)
    if not digits.strip("+"):
        return None
    return "tel:" + digits


def email_key(raw: str) -> str | None:
    """``mailto:`` plus the case-folded address, or None if it is not one."""
    text = unescape(raw).strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    if "@" not in text:
        return None
    return "mailto:" + text.casefold()


def line_key(name: str, value: str, region: str) -> str | None:
    """The key of one TEL or EMAIL value; None for other properties."""
    if name == "TEL":
        return phone_key(unescape(value), region)
    if name == "EMAIL":
        return email_key(value)
    return None


def card_keys(card: Card, region: str) -> set[str]:
    """Every key (normalised number or e-mail) found on ``card``."""
    keys = set()
    for line in card.lines:
        key = line_key(line.name, line.value, region)
        if key:
            keys.add(key)
    return keys


def resolve_contact(linked: str | None, keys: Iterable[str], holders: Mapping[str, str],
                    visible: Callable[[str], bool],
                    claimants: Mapping[str, set[str]] | None = None,
                    has_copy: Callable[[str], bool] = lambda user: False) -> set[str]:
    """The users a contact of the owner's book stands for.

    A contact card that holds a user's copy (it is *linked* to them) stands
    for that user.  Otherwise: the users its keys are *verified* for, as far
    as the owner may discover them; of several, the one who already holds
    the owner's copy (``has_copy``).  Only where no key of the contact is
    verified for anybody may an unverified claim count, and only the claim
    of a user who already holds the owner's copy: it reveals the owner's
    card to nobody new.  So claiming somebody's number neither reaches
    their friends nor silences them.
    """
    if linked is not None:
        return {linked}
    keys = set(keys)
    if any(k in holders for k in keys):
        verified = {holders[k] for k in keys if k in holders and visible(holders[k])}
        if len(verified) > 1:  # asked only then: a look-up in the index for the fan-out
            holding = {u for u in verified if has_copy(u)}
            if len(holding) == 1:
                return holding
        return verified
    if claimants is None:
        return set()
    return {u for k in keys for u in claimants.get(k, ()) if has_copy(u)}
