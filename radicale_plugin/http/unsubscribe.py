# SPDX-License-Identifier: GPL-3.0-or-later
"""The one-click unsubscribe link of notification e-mails: ``/.web/mecard/unsubscribe/TOKEN``.

No login: the signed token is the only authority, and it can do nothing but set its
user's e-mail notifications to none (:mod:`radicale_plugin.notify.tokens`).  ``GET``
shows a small fixed page with one button — opening the link changes nothing, since
mail scanners open links — and the button ``POST``\\ s; so do mail programs that honour
``List-Unsubscribe-Post`` (RFC 8058: a form body ``List-Unsubscribe=One-Click``, or a
JSON body ``{"List-Unsubscribe": "One-Click"}``).  A changed, expired or other token is
refused (403, 410) and changes nothing.  The pages show no card data at all.
"""

from __future__ import annotations

import html
import json
import re
from http import client
from urllib.parse import parse_qs

from radicale import types
from radicale.log import logger

from radicale_plugin.errors import BadRequest, SharingError
from radicale_plugin.service import SharingService

#: Where the links point (below Radicale's base prefix).
ROOT = "/.web/mecard/unsubscribe"
_PATH = re.compile(re.escape(ROOT) + r"/([^/]{1,1000})/?")
#: Largest body read.
MAX_BODY = 4096

HEADERS = {
    "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    # the one button of this page must not be clickable through another site's frame, in
    # browsers that know no frame-ancestors either (as the other pages say)
    "X-Frame-Options": "DENY",
}
#: The JSON answers: the page's headers but its type (the URL carries the token too).
JSON_HEADERS = {**HEADERS, "Content-Type": "application/json; charset=utf-8"}

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>%(title)s</title></head>
<body><main><h1>%(title)s</h1>%(body)s</main></body></html>
"""


def is_route(path: str) -> bool:
    return path == ROOT or path.startswith(ROOT + "/")


def _page(status: int, title: str, body: str) -> types.WSGIResponse:
    text = _PAGE % {"title": html.escape(title), "body": body}
    return status, dict(HEADERS), text.encode(), None


def _one_click(environ: types.WSGIEnviron) -> bool:
    """Whether the body says ``List-Unsubscribe=One-Click`` (form, multipart or JSON)."""
    try:
        length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_BODY)
    except ValueError:
        return False
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    media = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    text = raw.decode("utf-8", errors="replace")
    if media == "application/json":
        try:
            data = json.loads(text or "{}")
        except ValueError:
            return False
        return isinstance(data, dict) and data.get("List-Unsubscribe") == "One-Click"
    if media == "multipart/form-data":
        return bool(re.search(r'name="List-Unsubscribe"\r?\n\r?\nOne-Click\r?\n', text))
    return "One-Click" in parse_qs(text).get("List-Unsubscribe", [])


def answer(service: SharingService, environ: types.WSGIEnviron, method: str, path: str
           ) -> types.WSGIResponse:
    """GET: the page with its button; POST: unsubscribe (or say why not)."""
    match = _PATH.fullmatch(path)
    token = match.group(1) if match else ""
    wants_json = environ.get("CONTENT_TYPE", "").lower().startswith("application/json")
    try:
        if method != "POST":
            service.notify.check_token(token)
            return _page(client.OK, "Stop notification e-mails?", (
                "<p>You will get no more e-mails about cards people share with you. Offers "
                "still wait for you on the sharing pages.</p>"
                "<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" "
                "value=\"One-Click\"><button type=\"submit\">Stop e-mails</button></form>"))
        if not _one_click(environ):
            raise BadRequest("send the body List-Unsubscribe=One-Click to unsubscribe")
        service.notify.unsubscribe(token)
    except SharingError as e:
        logger.info("Unsubscribe link refused: %s", e)
        if wants_json:
            body = json.dumps({"error": str(e)}).encode()
            return e.status, dict(JSON_HEADERS), body, None
        return _page(e.status, "This link does not work", "<p>%s</p>" % html.escape(str(e)))
    if wants_json:
        return client.OK, dict(JSON_HEADERS), b'{"email": "none"}', None
    return _page(client.OK, "No more notification e-mails", (
        "<p>Done: you will get no more e-mails about cards people share with you. You can "
        "turn them on again in your settings.</p>"))
