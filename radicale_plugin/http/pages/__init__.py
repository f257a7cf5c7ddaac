# SPDX-License-Identifier: GPL-3.0-or-later
"""Pages for people: the sharing as web pages beside Radicale's own web interface.

Server-rendered HTML under ``/.web/mecard/`` (Jinja2 templates with
auto-escaping: everything a card carries is shown as text, never as markup),
behind Radicale's own login (the browser's HTTP Basic login Radicale asks for;
a page without a user answers ``NOT_ALLOWED`` and Radicale turns that into 401).
Pages only read; every change a page offers is a ``fetch`` of the JSON API
(``static/mecard.js``), with the API's own same-origin and JSON checks, so
nothing the pages can do is missing from the API.  Responses forbid inline
script and framing (:data:`SECURITY_HEADERS`).

May import: ``http.api`` and the parts below ``http``; nothing imports it but
``http.web``.  One module per group of pages (``recipient``, ``owner``,
``invites``); each adds its routes through :func:`render.page`.
"""

from __future__ import annotations

import importlib.resources
import re
from http import client

from radicale import httputils, types

from radicale_plugin.errors import SharingError
from radicale_plugin.http.api import Api
# the page modules register their routes on import
from radicale_plugin.http.pages import home  # noqa: F401
# the recipient's pages: updates, history, settings, the invite landing
from radicale_plugin.http.pages import invite_landing, recipient, recipient_settings  # noqa: F401
from radicale_plugin.http.pages import invites, owner  # noqa: F401  (the owner's pages)
from radicale_plugin.http.pages.render import ROOT, ROUTES, SECURITY_HEADERS, Request, problem

__all__ = ["ROOT", "answer"]

#: "No such page": with the pages' headers (no framing, no sniffing), as every page answer.
NOT_FOUND: types.WSGIResponse = (
    client.NOT_FOUND, {"Content-Type": "text/plain; charset=utf-8", **SECURITY_HEADERS},
    b"There is no such page here.", None)

_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".svg": "image/svg+xml", ".png": "image/png"}


def _static(name: str) -> types.WSGIResponse:
    suffix = name[name.rfind("."):] if "." in name else ""
    resource = importlib.resources.files(__name__).joinpath("static", name)
    if not re.fullmatch(r"[a-z0-9-]+\.[a-z]+", name) or suffix not in _STATIC_TYPES \
            or not resource.is_file():
        return NOT_FOUND
    return client.OK, {"Content-Type": _STATIC_TYPES[suffix], "Cache-Control": "max-age=300",
                       "X-Content-Type-Options": "nosniff"}, resource.read_bytes(), None


def answer(api: Api, path: str, user: str, query: dict[str, str], base: str
           ) -> types.WSGIResponse:
    """The page at ``path`` (which starts with ROOT) for ``user``, or 404."""
    below = path[len(ROOT):] or "/"
    if below.startswith("/static/"):
        return _static(below[len("/static/"):])
    for route in ROUTES:
        match = route.pattern.fullmatch(below)
        if match is None:
            continue
        if route.login and not user:
            return httputils.NOT_ALLOWED  # Radicale answers 401 and asks to log in
        request = Request(user, below, match, query, base, api)
        try:
            return route.handler(request)
        except SharingError as e:
            return problem(request, e)
    return NOT_FOUND
