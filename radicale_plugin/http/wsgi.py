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
  property ``200``, or ``403``/``409`` with the reason; the same PROPPATCH
  on one of the user's address books designates the card the same way (a
  book of someone else: 403 with the reason).  ``PROPFIND`` returns the
  property as a percent-encoded ``<D:href>``, the way Apple reads it.
* **WebDAV-Push** (draft-bitfire-webdav-push), when push is on
  (``mecard_push_services`` not empty): the ``webdav-push`` compliance class
  in the ``DAV:`` header, the ``transports`` and ``topic`` properties of
  address books, registration by ``POST`` on a book (refusals are 403 with the
  draft's precondition: ``invalid-subscription``, ``push-not-available`` for
  no push or another user's book, ``no-supported-trigger``), removal by
  ``DELETE`` of the registration URL, and ``Push-Dont-Notify`` on any request
  (the subscriptions it names are not told of the request's changes).
* **Malformed requests** get a 4xx with one line saying why, where Radicale
  itself answers 500: a ``Content-Length`` that is no number (400), an XML
  body (PROPFIND, PROPPATCH, REPORT, MKCOL, MKCALENDAR, a push registration)
  with a DTD or entities or nested deeper than :data:`MAX_DEPTH` (400), not
  well-formed (400), larger than :data:`MAX_XML` (413) or shorter than its
  ``Content-Length`` (408 after the server's read timeout, as Radicale answers
  a PUT), and a MOVE whose ``Destination`` is no URL of this server's form
  (``*``, no scheme, a bad port: 400; raw UTF-8 is percent-encoded and
  passed on).  A ``Destination`` on another host keeps Radicale's own answer
  (502, "Remote destination not supported"), and a short PUT body Radicale's
  own 408.
* **Refusals**: the reason a storage hook refused a write reaches the body
  of Radicale's 400 (:mod:`radicale_plugin.http.refusals`; without this layer the
  reason is only in Radicale's log).

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
from urllib.parse import quote, unquote, urlencode, urlsplit
from xml.parsers import expat

from radicale import types
from radicale.log import logger

from radicale_plugin.push import dav as push_dav
from radicale_plugin.push import sender as push_sender
from radicale_plugin.http import refusals
from radicale_plugin.http.web import PREFIX as API

DAV = "DAV:"
CS = "http://calendarserver.org/ns/"
ME_CARD = "{%s}me-card" % CS
HREF = "{DAV:}href"
# where a push registration lives (Location of the registration), below Radicale's /.web
PUSH_PATH = "/.web/mecard/push/"
#: Largest XML body of a DAV request (a REPORT of 50,000 hrefs is about 3 MB).
MAX_XML = 16 * 1024 * 1024
#: Deepest XML element nesting accepted (DAV requests need fewer than 10 levels).
MAX_DEPTH = 100
#: Methods whose body Radicale parses as XML: the layer checks it first.
XML_METHODS = ("PROPFIND", "PROPPATCH", "REPORT", "MKCOL", "MKCALENDAR")

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
            if int(length or 0) < 0:
                raise ValueError(length)
        except ValueError:
            why = "Content-Length must be a number of bytes, not %r" % length[:40]
            if (environ.get("PATH_INFO") or "").startswith(API):
                return 400, {"Content-Type": "application/json; charset=utf-8"}, (
                    json.dumps({"error": why}).encode())
            return _plain(400, why)
        skip = push_dav.dont_notify(environ.get("HTTP_PUSH_DONT_NOTIFY"), PUSH_PATH)
        with push_sender.dont_notify(skip):
            return self._route(environ)

    def _route(self, environ: types.WSGIEnviron) -> Response:
        method = environ.get("REQUEST_METHOD", "").upper()
        path = environ.get("PATH_INFO", "") or "/"
        if method == "MOVE":
            return self._pass(_checked_destination(environ), None)
        if method == "PROPPATCH" and _home_or_book(path):
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
            return status, self._with_push_class(headers), reply
        if method in XML_METHODS:
            return self._pass(environ, self._body(environ))
        if method == "OPTIONS":
            status, headers, reply = self._pass(environ, None)
            return status, self._with_push_class(headers), reply
        return self._pass(environ, None)

    def _with_push_class(self, headers: dict[str, str]) -> dict[str, str]:
        return _with_push_class(headers) if _push_on() else headers

    # -- calls of the wrapped application ---------------------------------------------
    def _body(self, environ: types.WSGIEnviron) -> bytes:
        """The XML body of a DAV request, read and checked (see the module docstring)."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_XML:
            raise _Passed(_plain(413, "the XML body is %d bytes; at most %d are accepted"
                                 % (length, MAX_XML)))
        stream = environ["wsgi.input"]
        parts: list[bytes] = []
        got = 0
        try:
            while got < length:
                part = stream.read(length - got)
                if not part:
                    break
                parts.append(part)
                got += len(part)
        except TimeoutError:
            raise _Passed(_plain(408, "the request body did not arrive in time: its "
                                      "Content-Length says %d bytes" % length))
        except (OSError, ValueError) as e:
            raise _Passed(_plain(400, "the request body could not be read: %s" % e))
        body = b"".join(parts)
        if got < length:
            raise _Passed(_plain(400, "the request body ended after %d bytes; its "
                                      "Content-Length says %d" % (got, length)))
        problem = xml_problem(body)
        if problem is not None:
            logger.info("%s %r refused: %s", environ.get("REQUEST_METHOD"),
                        environ.get("PATH_INFO"), problem)
            raise _Passed(_plain(400, problem))
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
        refusals.take()  # a request starts with no refusal noted for this thread
        parts = self._app(environ, start_response)
        try:
            body = b"".join(parts)
        finally:
            close = getattr(parts, "close", None)
            if close is not None:
                close()
        refused = refusals.take()
        if refused is None:
            return got["status"], got["headers"], body
        logger.info("%s %r refused: %s", environ.get("REQUEST_METHOD", ""),
                    environ.get("PATH_INFO", ""), refused)
        status_text, headers, answers = refusals.answer(
            str(got["status"]), list(got["headers"].items()), [body], refused)
        return (int(status_text.split(None, 1)[0]), dict(headers),
                b"".join(answers or ()))

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
        if path.strip("/").split("/")[0] != me.get("user"):
            return 403, ("the me card is set on your own address-book home (or one of your "
                         "books), not on /%s/" % path.strip("/"))
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
                        # percent-encoded like Radicale's own hrefs ("my card.vcf")
                        ET.SubElement(element, HREF).text = quote(
                            prefix + element.text.strip())
                        element.text = None
                        changed = True
            if wants_push:
                changed |= self._push_properties(environ, response)
        if not changed:
            return answer
        return ET.tostring(root, encoding="utf-8", xml_declaration=True)

    # -- WebDAV-Push ------------------------------------------------------------------
    def _push_register(self, environ: types.WSGIEnviron, path: str, body: bytes) -> Response:
        if not _push_on():
            return _refused(push_dav.PUSH_NOT_AVAILABLE, "this server offers no WebDAV-Push "
                                                         "(mecard_push_services is empty)")
        if not re.fullmatch(r"/[^/]+/[^/]+/?", path):
            return _refused(push_dav.PUSH_NOT_AVAILABLE, "WebDAV-Push is offered on address "
                                                         "books, not on %s" % path)
        try:
            subscription = push_dav.parse_register(body)
        except push_dav.NoSupportedTrigger as e:
            return _refused(push_dav.NO_SUPPORTED_TRIGGER, str(e))
        except ValueError as e:
            return _refused(push_dav.INVALID_SUBSCRIPTION, "not a usable push registration: "
                                                           "%s" % e)
        status, answer = self._api(environ, "POST", "/push/subscriptions",
                                   {"book": "/" + path.strip("/") + "/", **subscription})
        if status != 200:
            why = str(answer.get("error", "")) or _reason(status)
            if status == 401:
                return self._challenge(environ)
            if status == 403:
                return _refused(push_dav.PUSH_NOT_AVAILABLE, why)
            if status == 400:
                return _refused(push_dav.INVALID_SUBSCRIPTION, why)
            return _plain(status, why)
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


def _home_or_book(path: str) -> bool:
    """An address-book home (one path segment) or a collection in it (two)."""
    return bool(re.fullmatch(r"/[^/]+/([^/]+/?)?", path))


def _push_on() -> bool:
    """Whether this process offers WebDAV-Push (the plugin's setting, once it is loaded)."""
    from radicale_plugin.service import SharingService  # loaded by Radicale at the start
    return any(s.push.offered for s in list(SharingService._services.values()))


def _refused(conditions: str | tuple[str, ...], why: str) -> Response:
    """403 with the WebDAV-Push draft's precondition(s) and the reason."""
    logger.info("WebDAV-Push registration refused: %s", why)
    names = (conditions,) if isinstance(conditions, str) else conditions
    return 403, {"Content-Type": "application/xml; charset=utf-8"}, push_dav.error_body(
        names, why)


class _Refused(Exception):
    pass


def xml_problem(body: bytes) -> str | None:
    """What is wrong with an XML request body (a DTD, entities, nesting deeper than
    :data:`MAX_DEPTH`, not well-formed), or None.  Streams: nothing is built."""
    if not body.strip():
        return None
    parser = expat.ParserCreate()
    depth = 0

    def start(name: str, attributes: Any) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise _Refused("the XML body is nested deeper than %d elements" % MAX_DEPTH)

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    def dtd(*_args: Any) -> None:
        raise _Refused("DTDs and entities are not accepted in a request body")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = dtd
    parser.EntityDeclHandler = dtd
    try:
        parser.Parse(body, True)
    except _Refused as e:
        return str(e)
    except expat.ExpatError as e:
        return "the request body is not well-formed XML (%s)" % e
    return None


def _checked_destination(environ: types.WSGIEnviron) -> types.WSGIEnviron:
    """A MOVE's environ, its ``Destination`` checked (raises _Passed with a 400) and, when it
    holds raw UTF-8, percent-encoded the way Radicale reads it."""
    raw = environ.get("HTTP_DESTINATION") or ""
    if not raw.strip():
        raise _Passed(_plain(400, "MOVE needs a Destination header: the URL the card goes to"))
    try:
        text = raw.encode("latin-1").decode("utf-8")  # WSGI hands headers over as latin-1
    except UnicodeError:
        raise _Passed(_plain(400, "the Destination header is not UTF-8"))
    what = "the Destination %r is not a URL on this server such as " \
        "\"/alice/contacts/card.vcf\"" % text[:200]
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018  (raises ValueError for a port that is no port)
    except ValueError as e:
        raise _Passed(_plain(400, "%s (%s)" % (what, e)))
    if parts.scheme:
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise _Passed(_plain(400, what))
    elif parts.netloc or not parts.path.startswith("/"):
        raise _Passed(_plain(400, what))
    if text != raw or any(ord(c) < 33 or ord(c) == 127 for c in text.strip()):
        # what Radicale unquotes: the UTF-8 characters percent-encoded, nothing else changed
        encoded = quote(text.strip(), safe="".join(chr(c) for c in range(33, 127)))
        return {**environ, "HTTP_DESTINATION": encoded}
    return environ


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
