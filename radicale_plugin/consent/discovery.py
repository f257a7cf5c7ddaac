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
from radicale_plugin.consent.ratelimit import RateLimiter


class Discovery:
    """Maps keys to users for a viewer, as far as the users allow."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        per_hour = ctx.settings.resolve_per_hour
        # shared by every process (the index's buckets): a second process is no second allowance
        self._limiter = RateLimiter(per_hour, per_hour, ctx.index.limits, "resolve")

    def visible_users(self, viewer: str, users: Iterable[str]) -> set[str]:
        """Those of ``users`` who let ``viewer`` learn that their keys are theirs."""
        users = set(users)
        index = self._ctx.index
        chosen = index.owners.discoverability_of(users - {viewer})
        default = self._ctx.settings.default_discoverability
        choice = {u: chosen.get(u, default) for u in users - {viewer}}
        visible = {u for u, c in choice.items() if c == "everyone"} | (users & {viewer})
        asking = {u for u, c in choice.items() if c == "contacts"}
        mine = index.keys.verified(viewer) if asking else set()
        if mine:
            # a copy the server created for the viewer is no sign the user knows them
            visible |= index.cards.users_knowing(mine, asking, viewer)
        return visible

    def can_discover(self, viewer: str, holder: str) -> bool:
        """Whether ``viewer`` may learn that ``holder``'s keys are ``holder``'s."""
        return holder in self.visible_users(viewer, {holder})

    def visible_holders(self, viewer: str, keys: Iterable[str]) -> dict[str, str]:
        """Key → user, for keys verified for a user the viewer may discover."""
        holders = self._ctx.index.keys.holders(keys)
        visible = self.visible_users(viewer, holders.values())
        return {k: u for k, u in holders.items() if u in visible}

    def charge(self, viewer: str, amount: int) -> None:
        """Count ``amount`` keys against the viewer's budget; :class:`TooMany` when spent."""
        wait = math.ceil(self._limiter.take(viewer, amount, time.time()))
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
