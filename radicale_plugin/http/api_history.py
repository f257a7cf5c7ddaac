# SPDX-License-Identifier: GPL-3.0-or-later
"""The API's history and undo calls (the recipient's side; docs/api.md).

``GET /history[?owner=NAME][&limit=N]``: the changes the sharing code made to my
cards, newest first, each with ``undone`` (a time, or null) and ``undoable``;
``POST /history/ID/undo``: undo one of them
(:class:`radicale_plugin.recipient.undo.Undo`).  Only the caller's own entries:
another user's ID is answered like one that does not exist.
"""

from __future__ import annotations

import re
from typing import Any

from radicale import pathutils

from radicale_plugin.errors import BadRequest
from radicale_plugin.recipient.undo import MAX_LIMIT
from radicale_plugin.service import SharingService

#: The undo call's path; the ID is checked by :func:`entry_id`.
UNDO_CALL = re.compile(r"/history/([^/]*)/undo")


def entry_id(text: str) -> int:
    """A history entry's ID from the URL, or :class:`BadRequest` saying what one looks like."""
    if not re.fullmatch(r"[0-9]{1,18}", text) or int(text) < 1:
        raise BadRequest("%r is not a change's ID: use the \"id\" of an entry of GET /history, "
                         "e.g. POST /history/12/undo" % text[:40])
    return int(text)


class HistoryApi:
    """GET /history and POST /history/ID/undo."""

    def __init__(self, service: SharingService) -> None:
        self._s = service

    def get(self, user: str, query: dict[str, str]) -> dict[str, Any]:
        owner = query.get("owner")
        if owner is not None and (not owner or len(owner) > 256 or owner.startswith(".")
                                  or not pathutils.is_safe_path_component(owner)):
            raise BadRequest("'owner' must be a user name, e.g. /history?owner=alice")
        text = query.get("limit", "100")
        if not re.fullmatch(r"[0-9]{1,6}", text) or not 1 <= int(text) <= MAX_LIMIT:
            raise BadRequest("'limit' must be a number from 1 to %d" % MAX_LIMIT)
        return {"history": self._s.undo.history(user, owner, int(text))}

    def post(self, call: str, user: str, data: dict) -> Any | None:
        """The answer to a history call; None: ``call`` is none of them."""
        match = UNDO_CALL.fullmatch(call)
        if match is None:
            return None
        return self._s.undo.undo(user, entry_id(match.group(1)))
