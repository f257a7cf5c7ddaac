# SPDX-License-Identifier: GPL-3.0-or-later
"""The WSGI layer: the few things Radicale keeps out of a plugin's reach.

Radicale hands storage plugins parsed values and web plugins only GET and
POST below ``/.web``.  Three things real phones need happen before that,
so this one thin layer wraps Radicale's WSGI application:

* **Apple's "My Card"**: iOS and macOS Contacts send
  ``PROPPATCH`` on the address-book home with
  ``<CS:me-card><D:href>/alice/contacts/me.vcf</D:href></CS:me-card>``.
  Radicale keeps only an element's text, so that form would arrive empty
  and be answered ``200 OK``.  The layer designates the card through the
  sharing API (same checks: a card of one of my own books) and answers the
  property ``200``, or ``403``/``409`` with the reason; ``PROPFIND`` returns
  the property as ``<D:href>``, the way Apple reads it.
* **WebDAV-Push** (draft-bitfire-webdav-push): the ``webdav-push``
  compliance class in the ``DAV:`` header, the ``transports`` and ``topic``
  properties of address books, registration by ``POST`` on a book and
  removal by ``DELETE`` of the registration URL.
* A ``Content-Length`` that is no number gets ``400`` (Radicale answers 500).

The layer decides nothing about who may do what: it turns these DAV forms
into internal requests to the sharing API (:mod:`radicale_plugin.web`), which
Radicale authenticates like any other request, and turns the API's JSON
answers back into DAV.  Everything else passes through untouched.

Entry points: ``radicale_plugin.wsgi:application`` for WSGI servers
(``RADICALE_CONFIG`` names the config file, as for ``radicale.application``),
and ``python -m radicale_plugin.serve --config FILE`` (``make run``), which
is Radicale's own HTTP server around this layer.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import xml.etree.ElementTree as ET
from http import client
from typing import Any, Callable, Iterable
from urllib.parse import unquote, urlencode, urlsplit

from radicale import types
from radicale.log import logger

from radicale_plugin import push_dav
from radicale_plugin.web import PREFIX as API

DAV = "DAV:"
CS = "http://calendarserver.org/ns/"
ME_CARD = "{%s}me-card" % CS
HREF = "{DAV:}href"
# where a push registration lives (Location of the registration), below Radicale's /.web
PUSH_PATH = "/.web/mecard/push/"
MAX_XML = 1024 * 1024  # DAV bodies the layer reads itself (Radicale's own limit is larger)

Response = tuple[int, dict[str, str], bytes]


def _reason(status: int) -> str:
    return "%d %s" % (status, client.responses.get(status, ""))


def _safe_xml(body: bytes) -> ET.Element:
    """Parse a request body; refuse DTDs and entities (no entity expansion games)."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ValueError("DTDs and entities are not accepted")
    return ET.fromstring(body)


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return status, {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}, (
        text + "\n").encode()


class Layer:
    """A WSGI application around Radicale's (see the module docstring)."""

    def __init__(self, app: Callable[[types.WSGIEnviron, types.WSGIStartResponse],
                                     Iterable[bytes]]) -> None:
        self._app = app

    # -- WSGI -------------------------------------------------------------------------
    def __call__(self, environ: types.WSGIEnviron,
                 start_response: types.WSGIStartResponse) -> Iterable[bytes]:
        try:
            answer = self._handle(environ)
        except _Passed as passed:
            answer = passed.response
        status, headers, body = answer
        if environ.get("REQUEST_METHOD", "").upper() != "HEAD":
            # the layer may have rewritten the body
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            headers["Content-Length"] = str(len(body))
        start_response(_reason(status), list(headers.items()))
        return [body]

    def _handle(self, environ: types.WSGIEnviron) -> Response:
        length = environ.get("CONTENT_LENGTH") or ""
        try:
            int(length or 0)
        except ValueError:
            why = "Content-Length must be a number of bytes, not %r" % length[:40]
            if (environ.get("PATH_INFO") or "").startswith(API):
                return 400, {"Content-Type": "application/json; charset=utf-8"}, (
                    json.dumps({"error": why}).encode())
            return _plain(400, why)
        method = environ.get("REQUEST_METHOD", "").upper()
        path = environ.get("PATH_INFO", "") or "/"
        if method == "PROPPATCH" and _home(path):
            body = self._body(environ)
            answer = self._proppatch(environ, path, body)
            return answer if answer is not None else self._pass(environ, body)
        if method == "POST" and not path.startswith("/.web") and _is_xml(environ):
            body = self._body(environ)
            if push_dav.is_register(body):
                return self._push_register(environ, path, body)
            return self._pass(environ, body)
        if method == "DELETE" and path.startswith(PUSH_PATH):
            return self._push_unregister(environ, path[len(PUSH_PATH):])
        if method == "PROPFIND":
            body = self._body(environ)
            status, headers, reply = self._pass(environ, body)
            if status == 207:
                headers, reply = _rewritten(
                    headers, reply, lambda xml: self._propfind(environ, body, xml))
            return status, _with_push_class(headers), reply
        if method == "OPTIONS":
            status, headers, reply = self._pass(environ, None)
            return status, _with_push_class(headers), reply
        return self._pass(environ, None)

    # -- calls of the wrapped application ---------------------------------------------
    def _body(self, environ: types.WSGIEnviron) -> bytes:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length < 0 or length > MAX_XML:
            raise _Passed(self._pass(environ, None))  # Radicale applies its own limit
        body = environ["wsgi.input"].read(length) if length else b""
        return body

    def _pass(self, environ: types.WSGIEnviron, body: bytes | None) -> Response:
        """The request as it came, answered by Radicale."""
        if body is not None:
            environ = {**environ, "wsgi.input": io.BytesIO(body),
                       "CONTENT_LENGTH": str(len(body))}
        return self._run(environ)

    def _run(self, environ: types.WSGIEnviron) -> Response:
        got: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], object]:
            got["status"], got["headers"] = int(status.split(None, 1)[0]), dict(headers)
            return lambda data: None
        parts = self._app(environ, start_response)
        try:
            body = b"".join(parts)
        finally:
            close = getattr(parts, "close", None)
            if close is not None:
                close()
        return got["status"], got["headers"], body

    def _api(self, environ: types.WSGIEnviron, method: str, call: str,
             data: dict | None = None, query: str = "") -> tuple[int, dict]:
        """An internal request to the sharing API, with the client's credentials."""
        raw = json.dumps(data).encode() if data is not None else b""
        sub = {**{k: v for k, v in environ.items() if k != "HTTP_ACCEPT_ENCODING"},
               "REQUEST_METHOD": method, "PATH_INFO": API + call,
               "QUERY_STRING": query, "wsgi.input": io.BytesIO(raw),
               "CONTENT_LENGTH": str(len(raw)),
               "CONTENT_TYPE": "application/json" if data is not None else ""}
        status, _headers, body = self._run(sub)
        try:
            answer = json.loads(body or b"{}")
        except ValueError:
            answer = {}
        return status, answer if isinstance(answer, dict) else {}

    # -- Apple's me card --------------------------------------------------------------
    def _proppatch(self, environ: types.WSGIEnviron, path: str, body: bytes
                   ) -> Response | None:
        """Handle a PROPPATCH that names the me card; None: not ours, pass it on."""
        try:
            root = _safe_xml(body)
        except (ET.ParseError, ValueError):
            return None  # Radicale answers malformed XML itself
        if root.tag != "{DAV:}propertyupdate" or root.find(".//" + ME_CARD) is None:
            return None
        wanted: str | None = None
        for action in root:
            for prop in action.findall("{DAV:}prop"):
                for element in prop.findall(ME_CARD):
                    if action.tag == "{DAV:}remove":
                        wanted = None
                    else:
                        href = element.find(HREF)
                        wanted = (href.text if href is not None else element.text) or ""
                    prop.remove(element)
        status, why = self._designate(environ, path, wanted)
        if status == 401:
            return None  # Radicale asks for credentials
        others = [p for a in root for p in a.findall("{DAV:}prop") if len(p)]
        if not others:
            return _multistatus(environ, path, [(ME_CARD, status, why)], [])
        if status != 200:
            # PROPPATCH is all or nothing: the other properties fail with it
            names = [child.tag for p in others for child in p]
            return _multistatus(environ, path, [(ME_CARD, status, why)] +
                                [(name, 424, "") for name in names], [])
        rest = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        code, headers, answer = self._pass(environ, rest)
        if code != 207:
            return code, headers, answer
        headers, answer = _rewritten(headers, answer, lambda xml: _add_propstat(xml, ME_CARD, 200))
        return code, headers, answer

    def _designate(self, environ: types.WSGIEnviron, path: str, wanted: str | None
                   ) -> tuple[int, str]:
        status, me = self._api(environ, "GET", "/me")
        if status != 200:
            return status, str(me.get("error", ""))
        if path.strip("/") != me.get("user"):
            return 403, "the me card is set on your own address-book home only"
        card = None if wanted is None else _local_path(environ, wanted)
        if wanted is not None and card is None:
            return 409, "the me card must be a card on this server"
        status, answer = self._api(environ, "POST", "/me-card", {"path": card})
        if status == 200:
            logger.info("Me card of %r set to %r by a PROPPATCH (Apple's My Card)",
                        me.get("user"), card)
            return 200, ""
        why = str(answer.get("error", ""))
        logger.info("PROPPATCH of the me card %r refused: %s", card, why)
        return (status if status in (401, 403, 429) else 409), why

    def _propfind(self, environ: types.WSGIEnviron, request: bytes, answer: bytes) -> bytes:
        """Answer the properties Radicale cannot: Apple's me card, push properties."""
        wants_me = b"me-card" in request
        wants_push = push_dav.NS.encode() in request
        if not (wants_me or wants_push):
            return answer
        try:
            root = ET.fromstring(answer)
        except ET.ParseError:
            return answer
        prefix = _prefix(environ)
        changed = False
        for response in root.findall("{DAV:}response"):
            if wants_me:
                for element in response.iter(ME_CARD):
                    if element.text and element.text.strip() and not len(element):
                        ET.SubElement(element, HREF).text = prefix + element.text.strip()
                        element.text = None
                        changed = True
            if wants_push:
                changed |= self._push_properties(environ, response)
        if not changed:
            return answer
        return ET.tostring(root, encoding="utf-8", xml_declaration=True)

    # -- WebDAV-Push ------------------------------------------------------------------
    def _push_register(self, environ: types.WSGIEnviron, path: str, body: bytes) -> Response:
        try:
            subscription = push_dav.parse_register(body)
        except (ET.ParseError, ValueError) as e:
            return _plain(400, "not a push registration: %s" % e)
        status, answer = self._api(environ, "POST", "/push/subscriptions",
                                   {"book": "/" + path.strip("/") + "/", **subscription})
        if status != 200:
            if status == 401:
                return self._challenge(environ)
            return _plain(status, str(answer.get("error", "")) or _reason(status))
        # the draft wants an absolute URL; the client DELETEs it to unsubscribe
        location = "%s://%s%s%s%s" % (_scheme(environ),
                                      environ.get("HTTP_HOST") or environ.get("SERVER_NAME"),
                                      _prefix(environ), PUSH_PATH, answer["id"])
        return push_dav.registration_answer(answer, location)

    def _push_unregister(self, environ: types.WSGIEnviron, ident: str) -> Response:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", ident):
            return _plain(404, "no such push subscription")
        status, answer = self._api(environ, "POST", "/push/subscriptions/%s/delete" % ident, {})
        if status == 200:
            return 204, {}, b""
        if status == 401:
            return self._challenge(environ)
        return _plain(status, str(answer.get("error", "")) or _reason(status))

    def _challenge(self, environ: types.WSGIEnviron) -> Response:
        """Radicale's own answer to a request without valid credentials (401 and its realm)."""
        return self._run({**environ, "REQUEST_METHOD": "PROPFIND", "PATH_INFO": "/",
                          "HTTP_DEPTH": "0", "wsgi.input": io.BytesIO(b""),
                          "CONTENT_LENGTH": "0"})

    def _push_properties(self, environ: types.WSGIEnviron, response: ET.Element) -> bool:
        """Fill the push properties Radicale listed as not found (404) for a book."""
        missing = [(propstat, prop, element)
                   for propstat in response.findall("{DAV:}propstat")
                   if "404" in (propstat.findtext("{DAV:}status") or "")
                   for prop in propstat.findall("{DAV:}prop")
                   for element in list(prop)
                   if element.tag.startswith("{%s}" % push_dav.NS)]
        href = response.findtext(HREF)
        if not missing or not href:
            return False
        book = _local_path(environ, href)
        if book is None:
            return False
        status, info = self._api(environ, "GET", "/push/book", query=urlencode({"path": book}))
        if status != 200:
            return False
        values = push_dav.property_elements(info)
        found = ET.Element("{DAV:}propstat")
        found_prop = ET.SubElement(found, "{DAV:}prop")
        for _propstat, holder, element in missing:
            value = values.get(element.tag)
            if value is not None:
                holder.remove(element)
                found_prop.append(value)
        if not len(found_prop):
            return False
        ET.SubElement(found, "{DAV:}status").text = "HTTP/1.1 200 OK"
        for propstat in response.findall("{DAV:}propstat"):
            emptied = propstat.find("{DAV:}prop")
            if emptied is not None and not len(emptied):
                response.remove(propstat)
        response.append(found)
        return True


class _Passed(Exception):
    """A request answered as it came (raised from deep in the layer)."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


def _home(path: str) -> bool:
    """An address-book home (principal collection): one path segment."""
    return bool(re.fullmatch(r"/[^/]+/?", path))


def _is_xml(environ: types.WSGIEnviron) -> bool:
    media = (environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
    return media in ("application/xml", "text/xml")


def _prefix(environ: types.WSGIEnviron) -> str:
    """Where Radicale is mounted: SCRIPT_NAME, or a reverse proxy's X-Script-Name."""
    prefix = environ.get("HTTP_X_SCRIPT_NAME") or environ.get("SCRIPT_NAME") or ""
    return "/" + prefix.strip("/") if prefix.strip("/") else ""


def _scheme(environ: types.WSGIEnviron) -> str:
    """The scheme the client used: a reverse proxy that ends TLS says so in
    X-Forwarded-Proto (the server itself then speaks plain http)."""
    forwarded = (environ.get("HTTP_X_FORWARDED_PROTO") or "").split(",")[0].strip().lower()
    return forwarded if forwarded in ("http", "https") else str(
        environ.get("wsgi.url_scheme", "http"))


def _local_path(environ: types.WSGIEnviron, href: str) -> str | None:
    """A client's href (absolute URL or path, under our prefix) as a path on this server."""
    try:
        parts = urlsplit(href.strip())
    except ValueError:
        return None
    host = (environ.get("HTTP_HOST") or "").lower()
    if parts.netloc and host and parts.netloc.lower() != host:
        return None
    path = unquote(parts.path)
    prefix = _prefix(environ)
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        path = path[len(prefix):]
    if not path.startswith("/") or "\x00" in path:
        return None
    return path


def _with_push_class(headers: dict[str, str]) -> dict[str, str]:
    """Add the webdav-push compliance class to a DAV: header."""
    for name in headers:
        if name.lower() == "dav" and push_dav.COMPLIANCE not in headers[name]:
            return {**headers, name: headers[name] + ", " + push_dav.COMPLIANCE}
    return headers


def _multistatus(environ: types.WSGIEnviron, path: str,
                 results: list[tuple[str, int, str]], extra: list[ET.Element]) -> Response:
    """A PROPPATCH 207 for properties the layer answered itself."""
    root = ET.Element("{DAV:}multistatus")
    response = ET.SubElement(root, "{DAV:}response")
    ET.SubElement(response, HREF).text = _prefix(environ) + "/" + path.strip("/") + "/"
    for name, status, why in results:
        propstat = ET.SubElement(response, "{DAV:}propstat")
        ET.SubElement(ET.SubElement(propstat, "{DAV:}prop"), name)
        ET.SubElement(propstat, "{DAV:}status").text = "HTTP/1.1 " + _reason(status)
        if why:
            ET.SubElement(propstat, "{DAV:}responsedescription").text = why
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return 207, {"Content-Type": "text/xml; charset=utf-8"}, body


def _rewritten(headers: dict[str, str], body: bytes, rewrite: Callable[[bytes], bytes]
               ) -> tuple[dict[str, str], bytes]:
    """A response body rewritten, through Radicale's gzip if it used it."""
    gzipped = any(k.lower() == "content-encoding" and v.lower() == "gzip"
                  for k, v in headers.items())
    try:
        plain = gzip.decompress(body) if gzipped else body
    except (OSError, EOFError):
        return headers, body
    new = rewrite(plain)
    if new is plain:
        return headers, body
    return headers, gzip.compress(new) if gzipped else new


def _add_propstat(body: bytes, name: str, status: int) -> bytes:
    """Radicale's PROPPATCH 207 with the layer's property added."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return body
    first = root.find("{DAV:}response")
    if first is None:
        return body
    propstat = ET.SubElement(first, "{DAV:}propstat")
    ET.SubElement(ET.SubElement(propstat, "{DAV:}prop"), name)
    ET.SubElement(propstat, "{DAV:}status").text = "HTTP/1.1 " + _reason(status)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def application(environ: types.WSGIEnviron,
                start_response: types.WSGIStartResponse) -> Iterable[bytes]:
    """Entry point for WSGI servers: Radicale's own entry point, wrapped by the layer."""
    return _LAYER(environ, start_response)


def _radicale(environ: types.WSGIEnviron,
              start_response: types.WSGIStartResponse) -> Iterable[bytes]:
    import radicale  # Radicale's entry point reads RADICALE_CONFIG on its first call
    return radicale.application(environ, start_response)


_LAYER = Layer(_radicale)
