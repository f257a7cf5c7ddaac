# SPDX-License-Identifier: GPL-3.0-or-later
"""The home page (what waits for me, where to go) and signing in."""

from __future__ import annotations

import re

from radicale import httputils, types

from radicale_plugin.http.pages.render import Request, page, redirect, render


@page(r"/?")
def home(request: Request) -> types.WSGIResponse:
    """What waits for the signed-in user, and the way to every other page."""
    offers = request.api.get("/offers", request.user)["offers"]
    me = request.api.get("/me", request.user)
    return render(request, "home.html", offers=offers, me=me)


@page(r"/login", login=False)
def login(request: Request) -> types.WSGIResponse:
    """Ask the browser to sign in (Radicale's login), then go back to ``next``.

    ``next`` is a page of ours only (a path below the pages' root): never a way to
    send someone signed in to another site.
    """
    if not request.user:
        return httputils.NOT_ALLOWED  # Radicale answers 401: the browser asks for the password
    target = request.query.get("next", "/")
    if not re.fullmatch(r"/[A-Za-z0-9._~%/-]{0,300}(\?[A-Za-z0-9._~%=&-]{0,300})?", target) \
            or target.startswith("//") or "/../" in target + "/":
        target = "/"
    return redirect(request, target)
