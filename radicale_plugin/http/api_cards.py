# SPDX-License-Identifier: GPL-3.0-or-later
"""Read-only calls for the owner's pages: my cards, and the groups in my books.

``GET /cards`` lists the signed-in user's own cards (in their own books only:
path, display name, whether it is a group, whose copy it holds, whether it is
the me card), so a page can offer them as the me card.  ``GET /groups`` lists
the groups and categories found in the user's contacts (what ``group:NAME``
target rules may name), with the contacts each holds.  Both come from the
card-key index (no book is read, no lock is taken) and say nothing of anybody
else's data.
"""

from __future__ import annotations

from typing import Any, Callable

from radicale_plugin.owner.rules import group_names
from radicale_plugin.service import SharingService


def cards(service: SharingService, user: str) -> dict[str, Any]:
    """The user's cards, groups last, each by its display name."""
    index = service.index
    owner = index.owners.get(user)
    copies = {(link.book, link.href): link.owner for link in index.links.under(user)
              if link.recipient == user}
    mine = sorted((c for c in index.cards.cards_of(user) if c.user == user),
                  key=lambda c: (c.is_group, c.name.casefold(), c.book, c.href))
    return {"cards": [{"path": "/%s/%s" % (c.book, c.href), "fn": c.name, "group": c.is_group,
                       "copy_of": copies.get((c.book, c.href)),
                       "me_card": (c.book, c.href) == (owner.book, owner.href)}
                      for c in mine]}


def groups(service: SharingService, user: str) -> dict[str, Any]:
    """Groups and categories of the user's contacts (not of the me card)."""
    index = service.index
    owner = index.owners.get(user)
    mine = [c for c in index.cards.cards_of(user)
            if c.user == user and (c.book, c.href) != (owner.book, owner.href)]
    names = group_names(mine)
    rules = {r.casefold() for r in owner.rules}
    return {"groups": [{"name": name, "rule": "group:" + name,
                        "targeted": ("group:" + name).casefold() in rules}
                       for name in sorted(names.values(), key=str.casefold)]}


def routes(service: SharingService) -> dict[str, Callable[[str], Any]]:
    """The GET calls of this module, for :class:`radicale_plugin.http.api.Api`."""
    return {"/cards": lambda u: cards(service, u), "/groups": lambda u: groups(service, u)}
