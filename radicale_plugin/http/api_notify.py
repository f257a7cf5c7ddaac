# SPDX-License-Identifier: GPL-3.0-or-later
"""The notification calls of the sharing API (registered in :mod:`.api`).

``GET /notifications``: what I hear of by e-mail (``offers``, ``offers-and-changes``,
``none``), the address it goes to, my verified e-mail addresses (the only ones it may go
to), whether I chose or it is the server's default, and the digest's minutes.
``POST /notifications`` ``{"email": ..., "address": "mailto:..." | null}`` changes it
(the address must be one of my verified e-mail keys; null: the first of them).
"""

from __future__ import annotations

from typing import Any

from radicale_plugin.errors import BadRequest
from radicale_plugin.service import SharingService


class NotifyApi:
    """GET and POST ``/notifications`` for the signed-in user."""

    def __init__(self, service: SharingService) -> None:
        self._s = service

    def get(self, user: str) -> dict[str, Any]:
        return self._s.notify.report(user)

    def post(self, user: str, data: dict) -> dict[str, Any]:
        if "email" not in data:
            raise BadRequest("give {\"email\": \"offers\" | \"offers-and-changes\" | "
                             "\"none\"} and, if you wish, {\"address\": \"mailto:...\"} (one "
                             "of your verified e-mail addresses)")
        unknown = sorted(set(data) - {"email", "address"})
        if unknown:
            raise BadRequest("unknown field(s) %s: give \"email\" and \"address\"" % ", ".join(
                repr(u[:40]) for u in unknown[:5]))
        return self._s.notify.choose(user, data["email"], data.get("address"))
