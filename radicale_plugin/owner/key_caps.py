# SPDX-License-Identifier: GPL-3.0-or-later
"""The caps on a me card's keys: at most ``mecard_max_card_keys`` numbers and e-mails on
a me card, and at most ``mecard_new_keys_per_day`` new to it a day; new keys count
against the user's ``/resolve`` budget too (for :mod:`.me_cards`, on every path that
writes or designates a me card).
"""

from __future__ import annotations

import time

from radicale_plugin.context import Context
from radicale_plugin.consent.discovery import Discovery
from radicale_plugin.errors import TooLarge, TooMany
from radicale_plugin.vcard.codec import Card
from radicale_plugin.vcard.matching import card_keys
from radicale_plugin.vcard.view import shared_view

#: The window of ``mecard_new_keys_per_day``, in seconds.
NEW_KEYS_WINDOW = 86400


class KeyCaps:
    """Bounds the numbers and e-mails of a user's me card (see the module docstring)."""

    def __init__(self, ctx: Context, discovery: Discovery) -> None:
        self._ctx = ctx
        self._discovery = discovery

    def check_keys(self, user: str, card: Card, charge: bool = True) -> None:
        """Bound the numbers and e-mails a me card carries, and those new to it per day.

        A real person has a handful; a card of hundreds is a list of guesses.
        New keys count against the user's ``/resolve`` budget too: the copies
        may tell (at most) what ``/resolve`` would (a designation, which
        pays for every key of the card, asks not to ``charge`` twice).
        """
        settings = self._ctx.settings
        index = self._ctx.index
        keys = card_keys(card, self._ctx.region(user, shared_view(
            card, index.owners.get(user).shared_fields)).code)
        if len(keys) > settings.max_card_keys:
            raise TooLarge("the card carries %d phone numbers and e-mails; a me card may "
                           "carry at most %d" % (len(keys), settings.max_card_keys))
        recent = index.keys.claimed_since(user, time.time() - NEW_KEYS_WINDOW)
        current = {k.key for k in index.keys.of_user(user) if k.on_card or k.verified}
        new = keys - current - recent
        if not new:
            return
        if len(recent | new) > settings.new_keys_per_day:
            raise TooMany("%d phone numbers or e-mails are new to your me card, and %d were "
                          "added within the last day; at most %d new ones a day are accepted: "
                          "add the rest tomorrow" % (len(new), len(recent),
                                                     settings.new_keys_per_day),
                          NEW_KEYS_WINDOW / settings.new_keys_per_day)
        if charge:
            self._discovery.charge(user, len(new))
