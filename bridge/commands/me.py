# SPDX-License-Identifier: GPL-3.0-or-later
"""The owner's me card and the region national numbers are read in, as commands need them."""

from __future__ import annotations

import argparse

from radicale_plugin.errors import BadCard
from radicale_plugin.vcard.codec import Card, parse_card, unescape

from bridge.client import Server
from bridge.errors import UserError
from bridge.region import Region, choose_region


def me_card(server: Server) -> tuple[str | None, Card | None]:
    """(path, card) of the owner's me card, or (None, None)."""
    path, text = server.me_card()
    if path is None or text is None:
        return None, None
    try:
        return path, parse_card(text)
    except BadCard as e:
        raise UserError("your me card %s cannot be read (%s): fix it in your contacts app"
                        % (path, e)) from e


def region_for(args: argparse.Namespace, server: Server, explicit: tuple[str, str] | None
            ) -> Region:
    """The region national numbers are read in (see :mod:`bridge.region`)."""
    if explicit:
        return choose_region(explicit, [], None)
    _, card = me_card(server)
    numbers = [unescape(line.value) for line in card.get("TEL")] if card else []
    mine = server.me().get("region") or {}
    return choose_region(None, numbers, server.me().get("default_region"),
                         setting=mine.get("code") if mine.get("source") == "setting" else None)
