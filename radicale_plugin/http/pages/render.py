# SPDX-License-Identifier: GPL-3.0-or-later
"""The pages' common ground: routes, the request a page handler gets, rendering.

Templates are Jinja2 with auto-escaping; every answer carries
:data:`SECURITY_HEADERS` (no inline script, no framing, no referrer).
"""

from __future__ import annotations

import dataclasses
import re
from http import client
from typing import Any, Callable
from urllib.parse import quote

import jinja2
from radicale import types

from radicale_plugin.errors import SharingError
from radicale_plugin.http.api import Api
from radicale_plugin.http.pages import shown

#: Where the pages live (the API is under ``api/v1`` below it).
ROOT = "/.web/mecard"

#: No inline script or style, nothing from elsewhere, never inside another site's frame.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # page URLs may carry an invite or unsubscribe token: never hand it to another site
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclasses.dataclass
class Request:
    """What a page handler gets: who asks, what they asked, and the API to read through."""

    user: str               # "" for nobody signed in (only pages with login=False see it)
    path: str               # below ROOT, e.g. "/updates/alice"
    match: re.Match         # the route's pattern matched against ``path``
    query: dict[str, str]
    base: str               # the server's root path prefix as the request reached it
    api: Api

    @property
    def root(self) -> str:
        """The pages' root URL path (for links)."""
        return self.base + ROOT


Handler = Callable[[Request], types.WSGIResponse]


@dataclasses.dataclass(frozen=True)
class Route:
    """One page: its path pattern (below ROOT) and whether it needs a signed-in user."""

    pattern: re.Pattern
    handler: Handler
    login: bool


#: Every page, in the order they are tried.
ROUTES: list[Route] = []


def page(pattern: str, login: bool = True) -> Callable[[Handler], Handler]:
    """Register a page handler for the paths (below ROOT) that ``pattern`` matches whole."""
    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(re.compile(pattern), handler, login))
        return handler
    return register


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("radicale_plugin.http.pages", "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["q"] = lambda value: quote(str(value), safe="")
_ENV.filters["label"] = shown.label
_ENV.filters["shown_value"] = lambda text, field: shown.value(field, text)


def render(request: Request, template: str, status: int = client.OK,
           **context: Any) -> types.WSGIResponse:
    """The page ``template`` filled with ``context`` (auto-escaped), with the security headers."""
    body = _ENV.get_template(template).render(
        root=request.root, web=request.base + "/.web", user=request.user, page=request.path,
        **context)
    return status, {"Content-Type": "text/html; charset=utf-8", **SECURITY_HEADERS}, \
        body.encode(), None


def redirect(request: Request, to: str) -> types.WSGIResponse:
    """See other: ``to`` is a path below ROOT."""
    return client.SEE_OTHER, {"Location": request.root + to, **SECURITY_HEADERS}, b"", None


def problem(request: Request, error: SharingError) -> types.WSGIResponse:
    """A refusal as a page, with the status the API would give."""
    return render(request, "problem.html", error.status, message=str(error))
