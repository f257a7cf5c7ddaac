# SPDX-License-Identifier: GPL-3.0-or-later
"""WebDAV-Push (draft-bitfire-webdav-push) in DAV form, for the WSGI layer.

When push is on (``mecard_push_services`` not empty): the ``webdav-push``
compliance class in the ``DAV:`` header, the ``transports`` and ``topic``
properties of address books, registration by ``POST`` on a book (refusals are
403 with the draft's precondition: ``invalid-subscription``,
``push-not-available`` for no push or another user's book,
``no-supported-trigger``) and removal by ``DELETE`` of the registration URL.
The forms themselves are :mod:`radicale_plugin.push.dav`; the decisions are the
sharing API's.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

from radicale import types
from radicale.log import logger

from radicale_plugin.push import dav as push_dav
from radicale_plugin.http.answers import HREF, Response, plain, reason
from radicale_plugin.http.urls import local_path, prefix, scheme
from radicale_plugin.http.wrapped import Wrapped

# where a push registration lives (Location of the registration), below Radicale's /.web
PUSH_PATH = "/.web/mecard/push/"


class PushRoutes(Wrapped):
    """The layer's WebDAV-Push registration, removal and book properties."""

    def _push_register(self, environ: types.WSGIEnviron, path: str, body: bytes) -> Response:
        if not push_on():
            return refused(push_dav.PUSH_NOT_AVAILABLE, "this server offers no WebDAV-Push "
                                                        "(mecard_push_services is empty)")
        if not re.fullmatch(r"/[^/]+/[^/]+/?", path):
            return refused(push_dav.PUSH_NOT_AVAILABLE, "WebDAV-Push is offered on address "
                                                        "books, not on %s" % path)
        try:
            subscription = push_dav.parse_register(body)
        except push_dav.NoSupportedTrigger as e:
            return refused(push_dav.NO_SUPPORTED_TRIGGER, str(e))
        except ValueError as e:
            return refused(push_dav.INVALID_SUBSCRIPTION, "not a usable push registration: "
                                                          "%s" % e)
        status, answer = self._api(environ, "POST", "/push/subscriptions",
                                   {"book": "/" + path.strip("/") + "/", **subscription})
        if status != 200:
            why = str(answer.get("error", "")) or reason(status)
            if status == 401:
                return self._challenge(environ)
            if status == 403:
                return refused(push_dav.PUSH_NOT_AVAILABLE, why)
            if status == 400:
                return refused(push_dav.INVALID_SUBSCRIPTION, why)
            return plain(status, why)
        # the draft wants an absolute URL; the client DELETEs it to unsubscribe
        location = "%s://%s%s%s%s" % (scheme(environ),
                                      environ.get("HTTP_HOST") or environ.get("SERVER_NAME"),
                                      prefix(environ), PUSH_PATH, answer["id"])
        return push_dav.registration_answer(answer, location)

    def _push_unregister(self, environ: types.WSGIEnviron, ident: str) -> Response:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", ident):
            return plain(404, "no such push subscription")
        status, answer = self._api(environ, "POST", "/push/subscriptions/%s/delete" % ident, {})
        if status == 200:
            return 204, {}, b""
        if status == 401:
            return self._challenge(environ)
        return plain(status, str(answer.get("error", "")) or reason(status))

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
        book = local_path(environ, href)
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

    def _with_push_class(self, headers: dict[str, str]) -> dict[str, str]:
        return with_push_class(headers) if push_on() else headers


def push_on() -> bool:
    """Whether this process offers WebDAV-Push (the plugin's setting, once it is loaded)."""
    from radicale_plugin.service import SharingService  # loaded by Radicale at the start
    return any(s.push.offered for s in list(SharingService._services.values()))


def refused(conditions: str | tuple[str, ...], why: str) -> Response:
    """403 with the WebDAV-Push draft's precondition(s) and the reason."""
    logger.info("WebDAV-Push registration refused: %s", why)
    names = (conditions,) if isinstance(conditions, str) else conditions
    return 403, {"Content-Type": "application/xml; charset=utf-8"}, push_dav.error_body(
        names, why)


def with_push_class(headers: dict[str, str]) -> dict[str, str]:
    """Add the webdav-push compliance class to a DAV: header."""
    for name in headers:
        if name.lower() == "dav" and push_dav.COMPLIANCE not in headers[name]:
            return {**headers, name: headers[name] + ", " + push_dav.COMPLIANCE}
    return headers
