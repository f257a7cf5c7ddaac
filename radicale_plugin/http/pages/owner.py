# SPDX-License-Identifier: GPL-3.0-or-later
"""The owner's pages: my card (me card, keys, shared fields per audience, previews) and
who gets it (target rules, the resolved list with reasons and states, send now).

Every value shown is read through the JSON API (``request.api.get``), and every
change is a form the page script sends to the API.  The previews are the API's
``GET /preview`` answers as they are: the page computes no view of its own.
"""

from __future__ import annotations

from typing import Any

from radicale import types

from radicale_plugin.errors import SharingError
from radicale_plugin.http.pages.render import Request, page, render
from radicale_plugin.vcard.view import SHAREABLE_FIELDS

#: The fields offered as checkboxes, in the order people think of them.
FIELD_ORDER = ("FN", "N", "NICKNAME", "TEL", "EMAIL", "ADR", "ORG", "TITLE", "ROLE", "URL",
               "BDAY", "ANNIVERSARY", "PHOTO", "LOGO", "NOTE", "IMPP", "X-SOCIALPROFILE",
               "GENDER", "LANG", "TZ", "GEO", "KEY", "SOUND")

#: What each state of a recipient means, for the owner (delivery/reports.py makes them).
STATES = (
    ("delivered", "your latest change is in their address book"),
    ("behind", "they have an older version (see the reason); it is put right by itself"),
    ("pending", "waiting to be sent"),
    ("retrying", "sending failed for a passing reason; it is tried again"),
    ("offered", "they were asked whether they want your card and have not answered yet"),
    ("postponed", "they asked to be reminded later"),
    ("refused", "they said no to this version"),
    ("blocked", "they do not take cards from you"),
    ("failed", "it could not be delivered (see the reason)"),
)


def _fields() -> list[str]:
    rest = sorted(SHAREABLE_FIELDS - set(FIELD_ORDER))
    return [f for f in FIELD_ORDER if f in SHAREABLE_FIELDS] + rest


def _preview(request: Request, query: dict[str, str]) -> dict[str, Any]:
    """``GET /preview?rule=`` (or ``?recipient=``) as the API answers it, or why there is
    none (shown where the preview would be)."""
    try:
        return {**query, **request.api.get("/preview", request.user, query)}
    except SharingError as e:
        return {**query, "error": str(e)}


@page(r"/card")
def card(request: Request) -> types.WSGIResponse:
    """The me card, its keys, the shared fields per audience and what each audience gets."""
    me = request.api.get("/me", request.user)
    cards = request.api.get("/cards", request.user)["cards"]
    keys = request.api.get("/keys", request.user)["keys"]
    audiences = {a["rule"]: a.get("fields") for a in me.get("audiences") or []}
    rules = list(me["targets"])  # a field set belongs to a target rule (POST /audiences)
    previews = [_preview(request, {"rule": r}) for r in me["targets"]] if me["me_card"] else []
    # "what does this one person receive, and why": asked by name (a plain GET form)
    asked = request.query.get("recipient", "").strip()
    person = _preview(request, {"recipient": asked}) if asked and me["me_card"] else None
    current = next((c for c in cards if c["me_card"]), None)
    return render(request, "owner_card.html", me=me, current=current,
                  choices=[c for c in cards if not c["group"] and not c["copy_of"]],
                  keys=keys, rules=rules, audiences=audiences, previews=previews,
                  person=person, asked=asked, fields=_fields())


@page(r"/recipients")
def recipients(request: Request) -> types.WSGIResponse:
    """Target rules, who they select and why, each recipient's state, and send now."""
    me = request.api.get("/me", request.user)
    report = request.api.get("/targets", request.user)
    groups = request.api.get("/groups", request.user)["groups"]
    rules = set(report["targets"])
    return render(request, "owner_recipients.html", me=me, report=report,
                  addable=[g for g in groups if not g["targeted"]],
                  all_targeted="all" in rules, states=STATES)
