# SPDX-License-Identifier: GPL-3.0-or-later
"""The owner's invites page: create one (its link and QR code shown once), who used
each, revoke.

The list is ``GET /invites``; creating is ``POST /invites`` and its answer (the
link, shown this once only) is shown by ``static/invites.js``, which asks
``POST /invites/qr`` for the link's QR code (an SVG made by ``segno``).
"""

from __future__ import annotations

from radicale import types

from radicale_plugin.http.pages.render import Request, page, render

#: How long a new invite may be used, as offered on the page (seconds).
LIFETIMES = (("a day", 86400), ("a week", 7 * 86400), ("30 days", 30 * 86400))


@page(r"/invites")
def invites(request: Request) -> types.WSGIResponse:
    """My invites and the form for a new one."""
    me = request.api.get("/me", request.user)
    mine = request.api.get("/invites", request.user)["invites"]
    return render(request, "invites.html", me=me, invites=mine, lifetimes=LIFETIMES)
