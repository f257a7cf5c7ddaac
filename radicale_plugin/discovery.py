# SPDX-License-Identifier: GPL-3.0-or-later
"""Discoverability: who may learn that a number or e-mail belongs to a user here.

Each user chooses: ``everyone``, ``contacts`` (users whose verified keys are
in the user's own books) or ``nobody``.  Everything that maps keys to users
goes through here — ``/resolve``, target rules, error messages — and only
keys *verified* for a user ever resolve to them: an unverified claim maps
to nobody, so claiming somebody's number reveals nothing and silences
nobody.  Answers are rate-limited per user.
"""

from __future__ import annotations

import math
import time
from typing import Iterable

from radicale_plugin.context import Context
from radicale_plugin.errors import BadRequest, TooMany
from radicale_plugin.ratelimit import RateLimiter
from radicale_plugin.records import LINK_CREATED


class Discovery:
    """Maps keys to users for a viewer, as far as the users allow."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        per_hour = ctx.settings.resolve_per_hour
        self._limiter = RateLimiter(per_hour, per_hour)

    def can_discover(self, viewer: str, holder: str) -> bool:
        """Whether ``viewer`` may learn that ``holder``'s keys are ``holder``'s."""
        if viewer == holder:
            return True
        index = self._ctx.index
        choice = self._ctx.discoverability(index.owners.get(holder))
        if choice == "everyone":
            return True
        if choice == "nobody":
            return False
        mine = index.keys.verified(viewer)
        for card in index.cards.cards_with_keys(holder, mine) if mine else ():
            link = index.links.at(card.book, card.href)
            # a copy the server created for the viewer is no sign the holder knows them
            if link is None or link.owner != viewer or link.made_by != LINK_CREATED:
                return True
        return False

    def visible_holders(self, viewer: str, keys: Iterable[str]) -> dict[str, str]:
        """Key → user, for keys verified for a user the viewer may discover."""
        holders = self._ctx.index.keys.holders(keys)
        allowed: dict[str, bool] = {}
        out = {}
        for key, holder in holders.items():
            if holder not in allowed:
                allowed[holder] = self.can_discover(viewer, holder)
            if allowed[holder]:
                out[key] = holder
        return out

    def charge(self, viewer: str, amount: int) -> None:
        """Count ``amount`` keys against the viewer's budget; :class:`TooMany` when spent."""
        wait = math.ceil(self._limiter.take(viewer, amount, time.monotonic()))
        if wait:
            raise TooMany("too many numbers and e-mails looked up; at most %d an hour: try "
                          "again in %d seconds" % (self._ctx.settings.resolve_per_hour, wait),
                          wait)

    def resolve(self, viewer: str, keys: list[str]) -> dict[str, list[str]]:
        """``/resolve``: which user each key is verified for, if the viewer may know."""
        limit = self._ctx.settings.resolve_max_keys
        if len(keys) > limit:
            raise BadRequest("at most %d keys per call (%d given); split the list"
                             % (limit, len(keys)))
        wanted = set(keys)
        self.charge(viewer, len(wanted))
        found = self.visible_holders(viewer, wanted)
        return {k: [found[k]] for k in sorted(found)}
