# SPDX-License-Identifier: GPL-3.0-or-later
"""The invite page: where a link (or QR code) an owner handed out lands.

Anybody holding the link sees the owner's card as it would arrive, and nothing
else; a token that is unknown, expired, revoked or used up gets the API's one
neutral refusal.  Those not signed in share one allowance of opens (the API's rate
limit per user); past it, the page asks them to sign in instead.  Accepting needs
the recipient signed in: "Sign in to accept" goes through ``/login?next=`` and back
here; then the recipient picks "a new contact" or one of their cards (``?card=``, a
GET that changes nothing) and presses Accept, which posts to ``/invite/TOKEN/accept``.
"""

from __future__ import annotations

from typing import Any

from radicale import types

from radicale_plugin.errors import SharingError, TooMany
from radicale_plugin.http.pages import shown
from radicale_plugin.http.pages.render import Request, page, render


@page(r"/invite/([A-Za-z0-9_-]{1,200})", login=False)
def invite(request: Request) -> types.WSGIResponse:
    """The owner's card as it would arrive; signed in: where it goes, and Accept."""
    token = request.match.group(1)
    call = "/invite/" + token
    chosen = request.query.get("card") or None if request.user else None
    choice_error = ""
    preview: dict[str, Any] | None = None
    if chosen is not None:
        try:
            preview = request.api.get(call, request.user, {"card": chosen})
        except SharingError as e:  # a card that cannot take it: say so beside the choice
            choice_error, chosen = str(e), None
    if preview is None:
        try:
            preview = request.api.get(call, request.user, {})
        except TooMany:
            if request.user:
                raise
            # those not signed in share one allowance of opens: signing in still works
            return render(request, "invite.html", token=token, invite=None,
                          next_page="/invite/" + token)
    cards = [] if not request.user else [
        c for c in request.api.get("/cards", request.user)["cards"]
        if not c["group"] and not c["me_card"]]
    return render(request, "invite.html", token=token, invite=preview,
                  changes=shown.changes(preview["changes"]),
                  expires_at=shown.when(preview.get("expires")), cards=cards,
                  chosen=chosen, choice_error=choice_error,
                  next_page="/invite/" + token)
