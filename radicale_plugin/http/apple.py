# SPDX-License-Identifier: GPL-3.0-or-later
"""Apple's "My Card" in DAV form, for the WSGI layer.

iOS and macOS Contacts send ``PROPPATCH`` on the address-book home (or one of the
user's books) with ``<CS:me-card><D:href>/alice/contacts/me.vcf</D:href></CS:me-card>``;
Radicale keeps only an element's text, so the layer designates the card through the
sharing API and answers the property ``200``, or ``403``/``409`` with the reason.
``PROPFIND`` returns the property as a percent-encoded ``<D:href>``, the way Apple
reads it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from urllib.parse import quote

from radicale import types
from radicale.log import logger

from radicale_plugin.http.answers import HREF, Response, reason, rewritten
from radicale_plugin.http.urls import local_path, prefix
from radicale_plugin.http.wrapped import Wrapped

CS = "http://calendarserver.org/ns/"
ME_CARD = "{%s}me-card" % CS


class AppleMyCard(Wrapped):
    """The layer's handling of Apple's ``CS:me-card`` property."""

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
        headers, answer = rewritten(headers, answer, lambda xml: _add_propstat(xml, ME_CARD, 200))
        return code, headers, answer

    def _designate(self, environ: types.WSGIEnviron, path: str, wanted: str | None
                   ) -> tuple[int, str]:
        status, me = self._api(environ, "GET", "/me")
        if status != 200:
            return status, str(me.get("error", ""))
        if path.strip("/").split("/")[0] != me.get("user"):
            return 403, ("the me card is set on your own address-book home (or one of your "
                         "books), not on /%s/" % path.strip("/"))
        card = None if wanted is None else local_path(environ, wanted)
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


def me_card_hrefs(response: ET.Element, mounted: str) -> bool:
    """A PROPFIND response's me card as Apple reads it (a ``<D:href>``); whether it changed."""
    changed = False
    for element in response.iter(ME_CARD):
        if element.text and element.text.strip() and not len(element):
            # percent-encoded like Radicale's own hrefs ("my card.vcf")
            ET.SubElement(element, HREF).text = quote(
                mounted + element.text.strip())
            element.text = None
            changed = True
    return changed


def home_or_book(path: str) -> bool:
    """An address-book home (one path segment) or a collection in it (two)."""
    return bool(re.fullmatch(r"/[^/]+/([^/]+/?)?", path))


def _safe_xml(body: bytes) -> ET.Element:
    """Parse a request body; refuse DTDs and entities (no entity expansion games)."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ValueError("DTDs and entities are not accepted")
    return ET.fromstring(body)


def _multistatus(environ: types.WSGIEnviron, path: str,
                 results: list[tuple[str, int, str]], extra: list[ET.Element]) -> Response:
    """A PROPPATCH 207 for properties the layer answered itself."""
    root = ET.Element("{DAV:}multistatus")
    response = ET.SubElement(root, "{DAV:}response")
    ET.SubElement(response, HREF).text = prefix(environ) + "/" + path.strip("/") + "/"
    for name, status, why in results:
        propstat = ET.SubElement(response, "{DAV:}propstat")
        ET.SubElement(ET.SubElement(propstat, "{DAV:}prop"), name)
        ET.SubElement(propstat, "{DAV:}status").text = "HTTP/1.1 " + reason(status)
        if why:
            ET.SubElement(propstat, "{DAV:}responsedescription").text = why
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return 207, {"Content-Type": "text/xml; charset=utf-8"}, body


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
    ET.SubElement(propstat, "{DAV:}status").text = "HTTP/1.1 " + reason(status)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
