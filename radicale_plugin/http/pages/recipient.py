# SPDX-License-Identifier: GPL-3.0-or-later
"""The recipient's pages: updates waiting for my answer, and the history of my cards.

``/updates`` lists every pending or postponed offer; ``/updates/OWNER`` shows one
(the page an e-mail links to) and, with ``?card=PATH`` or ``?card=new``, what
accepting into another card of mine would do instead.  ``/history`` lists the
changes the sharing code made to my cards, with an undo button each.  A GET
never changes anything (mail scanners open links): every answer is a button
whose form posts to the JSON API, and accepting sends the ``seq`` shown, so it
applies exactly what the page showed.
"""

from __future__ import annotations

from typing import Any

from radicale import types

from radicale_plugin.errors import SharingError
from radicale_plugin.http.pages import shown
from radicale_plugin.http.pages.render import Request, page, render


def _offer(raw: dict[str, Any]) -> dict[str, Any]:
    """An offer of the API, with its values and times ready to show."""
    return {**raw, "shown": shown.changes(raw["changes"]), "offered_at": shown.when(
        raw.get("offered")), "until_at": shown.when(raw.get("until"))}


def _my_cards(request: Request) -> list[dict[str, Any]]:
    """The cards of mine an owner's copy may go into: contacts, not groups or my me card."""
    return [c for c in request.api.get("/cards", request.user)["cards"]
            if not c["group"] and not c["me_card"]]


@page(r"/updates")
def updates(request: Request) -> types.WSGIResponse:
    """Every offer waiting for my answer."""
    offers = request.api.get("/offers", request.user, {})["offers"]
    return render(request, "updates.html", offers=[_offer(o) for o in offers],
                  cards=_my_cards(request) if offers else [], chosen=None, choice_error="")


@page(r"/updates/([^/]+)")
def offer(request: Request) -> types.WSGIResponse:
    """One owner's offer; ``?card=`` previews it in another card of mine (or a new one)."""
    owner = request.match.group(1)
    chosen = request.query.get("card") or None
    choice_error = ""
    offers: list[dict[str, Any]] = []
    if chosen is not None:
        try:
            offers = request.api.get("/offers", request.user,
                                     {"owner": owner, "card": chosen})["offers"]
        except SharingError as e:  # a card that cannot take it: say so beside the choice
            choice_error, chosen = str(e), None
    if chosen is None:
        offers = request.api.get("/offers", request.user, {"owner": owner})["offers"]
    return render(request, "offer.html", owner=owner, offers=[_offer(o) for o in offers],
                  cards=_my_cards(request) if offers else [], chosen=chosen,
                  choice_error=choice_error)


@page(r"/history")
def history(request: Request) -> types.WSGIResponse:
    """Changes made to my cards, newest first; ``?owner=`` keeps one owner's."""
    everything = request.api.get("/history", request.user, {"limit": "1000"})["history"]
    owners = sorted({e["owner"] for e in everything})
    owner = request.query.get("owner") or None
    entries = everything if owner is None else request.api.get(
        "/history", request.user, {"owner": owner, "limit": "1000"})["history"]
    shown_entries = [{**e, "shown": shown.changes(e["changes"]),
                      "at": shown.when(e["time"]), "undone_at": shown.when(e.get("undone"))}
                     for e in entries if owner is None or e["owner"] == owner]
    return render(request, "history.html", entries=shown_entries, owners=owners, owner=owner)
