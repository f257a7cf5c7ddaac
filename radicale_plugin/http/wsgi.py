# SPDX-License-Identifier: GPL-3.0-or-later
"""The WSGI layer: the few things Radicale keeps out of a plugin's reach.

Radicale hands storage plugins parsed values and web plugins only GET and
POST below ``/.web``.  Three things real phones need happen before that,
so this one thin layer wraps Radicale's WSGI application:

* **Apple's "My Card"** (:mod:`.apple`): iOS and macOS Contacts send
  ``PROPPATCH`` on the address-book home with
  ``<CS:me-card><D:href>/alice/contacts/me.vcf</D:href></CS:me-card>``.
  Radicale keeps only an element's text, so that form would arrive empty
  and be answered ``200 OK``.  The layer designates the card through the
  sharing API (same checks: a card of one of my own books) and answers the
  property ``200``, or ``403``/``409`` with the reason; the same PROPPATCH
  on one of the user's address books designates the card the same way (a
  book of someone else: 403 with the reason).  ``PROPFIND`` returns the
  property as a percent-encoded ``<D:href>``, the way Apple reads it.
* **WebDAV-Push** (draft-bitfire-webdav-push, :mod:`.push_dav_routes`), when push is on
  (``mecard_push_services`` not empty): the ``webdav-push`` compliance class
  in the ``DAV:`` header, the ``transports`` and ``topic`` properties of
  address books, registration by ``POST`` on a book (refusals are 403 with the
  draft's precondition: ``invalid-subscription``, ``push-not-available`` for
  no push or another user's book, ``no-supported-trigger``), removal by
  ``DELETE`` of the registration URL, and ``Push-Dont-Notify`` on any request
  (the subscriptions it names are not told of the request's changes).
* **Malformed requests** (:mod:`.request_checks`) get a 4xx with one line saying why, where Radicale
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
* **Database conflicts** (:mod:`.retry`): a request PostgreSQL ended as a deadlock's
  victim (or unserialisable, or out of ``lock_timeout``) is run again whole, and
  answered 503 with ``Retry-After`` if it keeps losing: never 500.

The layer decides nothing about who may do what: it turns these DAV forms
into internal requests to the sharing API (:mod:`radicale_plugin.web`), which
Radicale authenticates like any other request (:mod:`.wrapped`), and turns the
API's JSON answers back into DAV.  Everything else passes through untouched.
This module routes each request to the part that handles it.

Entry points: ``radicale_plugin.wsgi:application`` for WSGI servers
(``RADICALE_CONFIG`` names the config file, as for ``radicale.application``),
and ``python -m radicale_plugin.serve --config FILE`` (``make run``), which
is Radicale's own HTTP server around this layer.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Iterable

from radicale import types

from radicale_plugin.push import dav as push_dav
from radicale_plugin.push import sender as push_sender
from radicale_plugin.http.answers import Passed, Response, reason, rewritten
from radicale_plugin.http.apple import ME_CARD, AppleMyCard, home_or_book, me_card_hrefs
from radicale_plugin.http.push_dav_routes import PUSH_PATH, PushRoutes
from radicale_plugin.http.retry import retrying
from radicale_plugin.http.request_checks import (MAX_DEPTH, MAX_XML, XML_METHODS,
                                                 checked_destination, is_xml, length_refusal,
                                                 xml_body, xml_problem)
from radicale_plugin.http.urls import prefix

__all__ = ["Layer", "application", "Response", "ME_CARD", "PUSH_PATH", "MAX_XML",
           "MAX_DEPTH", "XML_METHODS", "xml_problem"]


class Layer(AppleMyCard, PushRoutes):
    """A WSGI application around Radicale's (see the module docstring)."""

    # -- WSGI -------------------------------------------------------------------------
    def __call__(self, environ: types.WSGIEnviron,
                 start_response: types.WSGIStartResponse) -> Iterable[bytes]:
        status, headers, body = retrying(environ, self._answer)
        if environ.get("REQUEST_METHOD", "").upper() != "HEAD":
            # the layer may have rewritten the body
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            headers["Content-Length"] = str(len(body))
        start_response(reason(status), list(headers.items()))
        return [body]

    def _answer(self, environ: types.WSGIEnviron) -> Response:
        try:
            return self._handle(environ)
        except Passed as passed:
            return passed.response

    def _handle(self, environ: types.WSGIEnviron) -> Response:
        refused = length_refusal(environ)
        if refused is not None:
            return refused
        skip = push_dav.dont_notify(environ.get("HTTP_PUSH_DONT_NOTIFY"), PUSH_PATH)
        with push_sender.dont_notify(skip):
            return self._route(environ)

    def _route(self, environ: types.WSGIEnviron) -> Response:
        method = environ.get("REQUEST_METHOD", "").upper()
        path = environ.get("PATH_INFO", "") or "/"
        if method == "MOVE":
            return self._pass(checked_destination(environ), None)
        if method == "PROPPATCH" and home_or_book(path):
            body = xml_body(environ)
            answer = self._proppatch(environ, path, body)
            return answer if answer is not None else self._pass(environ, body)
        if method == "POST" and not path.startswith("/.web") and is_xml(environ):
            body = xml_body(environ)
            if push_dav.is_register(body):
                return self._push_register(environ, path, body)
            return self._pass(environ, body)
        if method == "DELETE" and path.startswith(PUSH_PATH):
            return self._push_unregister(environ, path[len(PUSH_PATH):])
        if method == "PROPFIND":
            body = xml_body(environ)
            status, headers, reply = self._pass(environ, body)
            if status == 207:
                headers, reply = rewritten(
                    headers, reply, lambda xml: self._propfind(environ, body, xml))
            return status, self._with_push_class(headers), reply
        if method in XML_METHODS:
            return self._pass(environ, xml_body(environ))
        if method == "OPTIONS":
            status, headers, reply = self._pass(environ, None)
            return status, self._with_push_class(headers), reply
        return self._pass(environ, None)

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
        mounted = prefix(environ)
        changed = False
        for response in root.findall("{DAV:}response"):
            if wants_me:
                changed |= me_card_hrefs(response, mounted)
            if wants_push:
                changed |= self._push_properties(environ, response)
        if not changed:
            return answer
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
