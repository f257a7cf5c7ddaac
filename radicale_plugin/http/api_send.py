# SPDX-License-Identifier: GPL-3.0-or-later
"""``POST /send``: send the current me card now, to every target or to chosen people.

The patent's "update all" / "update some" without changing the card: a new job
for the owner's current view goes into the outbox (as after a change), for
everyone the target rules select, or only for the people named.  Names go the
way ``POST /me-card/content``'s ``only`` goes (:meth:`Targets.seen_by_name`):
a name that is no user and a user the owner may not see are left out alike,
and the answer is the same for both (it repeats the names asked for).  A copy
that already holds the current change is not written again; one that is behind,
failed or stopped is.
"""

from __future__ import annotations

from typing import Any

from radicale.log import logger

from radicale_plugin.errors import BadRequest, Conflict
from radicale_plugin.service import SharingService

#: Most names one call may carry (each counts against the look-up budget too).
MAX_NAMES = 1000

_ADVICE = "give {\"recipients\": \"all\"} or {\"recipients\": [\"bob\", ...]}"


def _recipients(data: dict) -> list[str] | None:
    """None for everyone, else the names asked for (deduplicated, in order)."""
    value = data.get("recipients")
    if value == "all":
        return None
    if value == []:
        raise BadRequest("choose at least one person, or send to \"all\"")
    if not isinstance(value, list) or not all(
            isinstance(v, str) and 0 < len(v) <= 256 for v in value):
        raise BadRequest(_ADVICE)
    if len(value) > MAX_NAMES:
        raise BadRequest("at most %d names per call (%d given); or send to \"all\""
                         % (MAX_NAMES, len(value)))
    return list(dict.fromkeys(value))


def send(service: SharingService, user: str, data: dict) -> dict[str, Any]:
    """Queue the current me card for ``data["recipients"]`` (see the module's doc)."""
    names = _recipients(data)
    index = service.index
    if index.owners.get(user).view is None:
        raise Conflict("you share no card yet: choose your me card first (POST /me-card)")
    only: list[str] | None = None
    if names is not None:
        # counted like keys in /resolve: a way to ask about names is a way to probe them
        service.discovery.charge(user, len(names))
        only = sorted(service.targets.seen_by_name(user, set(names)))
    with index.transaction():
        if only != []:
            index.outbox.requeue(user)
            if only is not None:
                index.outbox.restrict(user, only)
    service.ctx.wake()
    logger.info("Owner %r sends their card now to %s", user,
                "all targets" if only is None else "%d chosen" % len(only))
    return {"recipients": "all" if names is None else names,
            "seq": index.owners.get(user).seq}
