# SPDX-License-Identifier: GPL-3.0-or-later
"""A recipient's policies: how each owner's changes arrive (auto, ask, block).

Setting one is the recipient's fresh choice: what it held back (blocked,
failed, offered — and delivered, whose state must now say ``blocked``) is
decided again by the fan-out, and a copy the recipient deleted may be
created again.  It runs under the storage lock so that the fan-out cannot
finish an older decision over it.
"""

from __future__ import annotations

from radicale.log import logger

from radicale_plugin import index as idx
from radicale_plugin.context import Context
from radicale_plugin.consent.links import Links

_REDECIDED = (idx.BLOCKED, idx.FAILED, idx.OFFERED, idx.DELIVERED)


class Policies:
    """Recipients' choices towards owners."""

    def __init__(self, ctx: Context, links: Links) -> None:
        self._ctx = ctx
        self._links = links

    def set(self, recipient: str, owner: str, policy: str | None) -> None:
        """Set (None: remove) the recipient's policy towards ``owner`` (``*``: their default)."""
        index = self._ctx.index
        with self._ctx.storage.acquire_lock("w", recipient), index.transaction():
            index.consent.set_policy(recipient, owner, policy)
            one = None if owner == "*" else owner
            self._links.forget_deleted(recipient, one)
            index.outbox.reopen_for(recipient, one, _REDECIDED)
            if one is not None and policy in ("auto", "ask") and index.owners.get(one).view:
                # naming the owner makes their user:NAME rule reach the recipient (see
                # Targets.seen_by_name): the owner's targets are planned again
                index.outbox.requeue(one)
        logger.info("Recipient %r set policy %s towards %s", recipient, policy,
                    "everybody" if owner == "*" else repr(owner))
        self._ctx.wake()
