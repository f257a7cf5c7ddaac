# SPDX-License-Identifier: GPL-3.0-or-later
"""The recipient's settings page: policies, discoverability and notifications.

Lists every owner who ever offered me a change or wrote to my cards (from the
offers, the history, my links and my policies), each with a policy to choose.
Each setting is its own form posting to the JSON API (``/policies``,
``/privacy``, ``/notifications``).
"""

from __future__ import annotations

from typing import Any

from radicale import types

from radicale_plugin.errors import NotFound
from radicale_plugin.http.pages.render import Request, page, render

#: The policies a person chooses from, as the page words them.
POLICY_WORDS = (("auto", "Take their changes automatically"),
                ("ask", "Ask me each time"),
                ("block", "Never take their changes"))
DISCOVERABILITY_WORDS = (
    ("everyone", "Everyone on this server may find me by my number or e-mail"),
    ("contacts", "Only people whose number or e-mail is in my contacts may find me"),
    ("nobody", "Nobody may find me (invites still work)"))
EMAIL_WORDS = (("offers", "E-mail me when an update waits for my answer"),
               ("offers-and-changes", "E-mail me of updates, and of changes made to my cards"),
               ("none", "No e-mail: I look at these pages myself"))


def _notifications(request: Request) -> dict[str, Any] | None:
    """My notification settings; None where the server has no such call."""
    try:
        found: dict[str, Any] = request.api.get("/notifications", request.user)
    except NotFound:
        return None
    return found


@page(r"/settings")
def settings(request: Request) -> types.WSGIResponse:
    """My default and per-owner policies, my discoverability, my notifications."""
    api, user = request.api, request.user
    policies = api.get("/policies", user)
    mine: dict[str, str] = policies["policies"]
    owners = set(mine) - {"*"}
    owners |= {o["owner"] for o in api.get("/offers", user, {})["offers"]}
    owners |= {e["owner"] for e in api.get("/history", user, {"limit": "1000"})["history"]}
    owners |= {link["owner"] for link in api.get("/links", user)["links"]}
    return render(request, "settings.html",
                  default_policy=policies["default_policy"], own_default=mine.get("*"),
                  owners=[{"name": o, "policy": mine.get(o)} for o in sorted(owners)],
                  policy_words=POLICY_WORDS,
                  discoverability=api.get("/privacy", user)["discoverability"],
                  discoverability_words=DISCOVERABILITY_WORDS,
                  notifications=_notifications(request), email_words=EMAIL_WORDS)
