# SPDX-License-Identifier: GPL-3.0-or-later
"""WebDAV-Push's XML: the registration a client POSTs, the properties, the push message.  Pure.

WebDAV-Push is the draft at https://github.com/bitfireAT/webdav-push
(draft-bitfire-webdav-push), as DAVx5 implements it with dav4jvm.  All its
elements are in the namespace :data:`NS`.  What this module reads and writes:

* **Service detection** (PROPFIND on an address book):
  ``transports`` (with ``web-push`` and its ``vapid-public-key type="p256ecdsa"``),
  ``topic`` and ``supported-triggers`` (content updates of the book's cards,
  ``{DAV:}depth`` 1).  ``webdav-push`` goes into the ``DAV:`` header.
* **Registration**: a POST to the book whose root is ``push-register``, holding
  ``subscription/web-push-subscription`` with ``push-resource``,
  ``subscription-public-key type="p256dh"``, ``auth-secret`` and optionally
  ``content-encoding`` (only ``aes128gcm``), an optional ``trigger`` and an
  optional ``expires`` (IMF-fixdate).  DAVx5 sends no ``trigger`` and no
  ``content-encoding``: they default to content updates and ``aes128gcm``.
  The answer is 201 with ``Location`` (the registration URL) and ``Expires``.
* **Push message**: ``push-message`` with the book's ``topic`` and a
  ``content-update`` (holding ``{DAV:}sync-token`` when one is given).
* **Refusals**: 403 with a ``{DAV:}error`` naming the draft's precondition:
  ``invalid-subscription`` (a subscription that cannot be used),
  ``push-not-available`` (no push here, or not the user's book),
  ``no-supported-trigger`` (only triggers this server does not offer).
* **Push-Dont-Notify**: the registration URLs (or ``*``) a client names with
  the request that makes a change; those subscriptions are not told of it.

The server only ever sends encrypted messages (the draft requires RFC 8291
with Web Push), so a registration without the subscription's public key and
auth secret is refused.  Bodies with a DTD or entities are refused: nothing
here needs them, and they are how XML parsers are attacked.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.utils
import re
import urllib.parse
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

NS = "https://bitfire.at/webdav-push"
COMPLIANCE = "webdav-push"
DAV = "DAV:"

#: Largest registration body read (a real one is well under 1 KB).
MAX_BODY = 65536
#: The only content encoding of RFC 8291 that the draft allows.
ENCODING = "aes128gcm"
#: What this server pushes: changes of the cards of the subscribed book.
SUPPORTED_TRIGGERS = (("content-update", "1"),)


#: The draft's preconditions (403 with ``{DAV:}error``) for a registration refused.
INVALID_SUBSCRIPTION = "invalid-subscription"
PUSH_NOT_AVAILABLE = "push-not-available"
#: The draft's prose names it ``no-supported-trigger``, its RELAX NG schema
#: ``no-trigger-supported``: both are sent, so that a client reading either finds it.
NO_SUPPORTED_TRIGGER = ("no-supported-trigger", "no-trigger-supported")


class NoSupportedTrigger(ValueError):
    """A registration whose triggers are all unsupported (403 ``no-supported-trigger``)."""


def _q(name: str, ns: str = NS) -> str:
    return "{%s}%s" % (ns, name)


def _refuse_dtd(body: bytes) -> None:
    lowered = body[:MAX_BODY + 1].lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise ValueError("XML with a DTD or entities is not accepted")


def _parse(body: bytes) -> ET.Element:
    if len(body) > MAX_BODY:
        raise ValueError("the request body is larger than %d bytes" % MAX_BODY)
    _refuse_dtd(body)
    try:
        return ET.fromstring(body)
    except ET.ParseError as e:
        raise ValueError("the request body is not well-formed XML (%s)" % e) from e


def is_register(body: bytes) -> bool:
    """Whether ``body`` is a WebDAV-Push registration (its root is ``push-register``).

    Only the root's start tag is read, so that a malformed registration is
    still recognised and :func:`parse_register` can say what is wrong with it.
    """
    if not isinstance(body, (bytes, bytearray)) or not body.strip():
        return False
    try:
        _refuse_dtd(bytes(body))
    except ValueError:
        # refused by parse_register with that reason, if it claims to be a registration
        return b"push-register" in body and NS.encode() in body
    parser: ET.XMLPullParser = ET.XMLPullParser(events=("start",))
    try:
        parser.feed(bytes(body[:MAX_BODY]))
        # typeshed types the events as 1-tuples; they are (event, element)
        for _, element in parser.read_events():  # type: ignore[misc]
            return isinstance(element, ET.Element) and element.tag == _q("push-register")
    except ET.ParseError:
        return False
    return False


def b64url_decode(value: str, what: str) -> bytes:
    """The bytes of base64url ``value`` (padded or not); ValueError naming ``what``."""
    text = value.strip()
    if not text or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                 "0123456789-_=" for c in text):
        raise ValueError("%s is not base64url" % what)
    try:
        return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except (binascii.Error, ValueError) as e:
        raise ValueError("%s is not base64url" % what) from e


def check_public_key(value: str) -> str:
    """``value`` if it reads as an uncompressed P-256 point (65 bytes, first 0x04)."""
    raw = b64url_decode(value, "the subscription's public key")
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("the subscription's public key must be an uncompressed P-256 key "
                         "(65 bytes, base64url), not %d bytes" % len(raw))
    return value.strip().rstrip("=")


def check_auth_secret(value: str) -> str:
    """``value`` if it reads as the 16-byte authentication secret of RFC 8291."""
    raw = b64url_decode(value, "the auth secret")
    if len(raw) != 16:
        raise ValueError("the auth secret must be 16 bytes (base64url), not %d" % len(raw))
    return value.strip().rstrip("=")


def parse_http_date(value: str) -> float:
    """An IMF-fixdate (RFC 9110, e.g. ``Wed, 20 Dec 2023 10:03:31 GMT``) in seconds since 1970."""
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError) as e:
        raise ValueError("%r is not an HTTP date such as 'Wed, 20 Dec 2023 10:03:31 GMT'"
                         % value[:80]) from e
    if parsed.tzinfo is None:  # "-0000" or no zone: RFC 5322 says UTC
        return parsed.replace(tzinfo=datetime.timezone.utc).timestamp()
    return parsed.timestamp()


def http_date(when: float) -> str:
    """``when`` (seconds since 1970) as an IMF-fixdate."""
    return email.utils.formatdate(when, usegmt=True)


def _text(parent: ET.Element, name: str) -> str | None:
    found = parent.find(_q(name))
    return None if found is None else (found.text or "").strip()


def parse_register(body: bytes) -> dict:
    """The fields of ``POST /push/subscriptions`` from a ``push-register`` body (no ``book``).

    ``{"push_resource", "public_key", "auth_secret", "content_encoding"}`` and
    ``"expires"`` when the client asked for one.  Raises ValueError with one
    line saying what is wrong.
    """
    root = _parse(body)
    if root.tag != _q("push-register"):
        raise ValueError("the body is not a WebDAV-Push registration (<push-register "
                         "xmlns=\"%s\">)" % NS)
    subscriptions = root.findall(_q("subscription"))
    if len(subscriptions) != 1:
        raise ValueError("a registration holds exactly one <subscription>")
    web_push = subscriptions[0].findall(_q("web-push-subscription"))
    if len(web_push) != 1:
        raise ValueError("the <subscription> holds no <web-push-subscription>: this server "
                         "supports the Web Push transport only")
    details = web_push[0]
    resource = _text(details, "push-resource")
    if not resource:
        raise ValueError("the <web-push-subscription> has no <push-resource>")
    key_element = details.find(_q("subscription-public-key"))
    if key_element is None or not (key_element.text or "").strip():
        raise ValueError("the <web-push-subscription> has no <subscription-public-key>: this "
                         "server sends encrypted messages only (RFC 8291)")
    if key_element.get("type", "p256dh") != "p256dh":
        raise ValueError("the subscription's public key must be of type p256dh, not %r"
                         % key_element.get("type"))
    secret = _text(details, "auth-secret")
    if not secret:
        raise ValueError("the <web-push-subscription> has no <auth-secret>")
    encoding = _text(details, "content-encoding") or ENCODING
    if encoding != ENCODING:
        raise ValueError("the content encoding must be %s, not %r" % (ENCODING, encoding[:40]))
    trigger = root.find(_q("trigger"))
    if trigger is not None and trigger.find(_q("content-update")) is None:
        raise NoSupportedTrigger("no supported trigger: this server pushes content updates "
                                 "(<content-update>) only")
    data = {"push_resource": resource, "public_key": check_public_key(key_element.text or ""),
            "auth_secret": check_auth_secret(secret), "content_encoding": encoding}
    expires = _text(root, "expires")
    if expires:
        parse_http_date(expires)
        data["expires"] = expires
    return data


def registration_answer(data: dict, location: str) -> tuple[int, dict[str, str], bytes]:
    """The DAV answer to a registration that ``POST /push/subscriptions`` answered ``data``.

    201 Created, the registration URL in ``Location`` (absolute, as the draft
    requires: ``location`` is used as given) and the expiry granted in ``Expires``.
    """
    return 201, {"Location": location, "Expires": str(data["expires"])}, b""


def property_elements(info: dict) -> dict[str, ET.Element]:
    """The PROPFIND properties of a book, from the answer of ``GET /push/book``.

    Keyed by Clark name: ``{NS}transports``, ``{NS}topic``, ``{NS}supported-triggers``.
    """
    transports = ET.Element(_q("transports"))
    if "web-push" in info.get("transports", ["web-push"]):
        web_push = ET.SubElement(transports, _q("web-push"))
        if info.get("vapid_public_key"):
            key = ET.SubElement(web_push, _q("vapid-public-key"), {"type": "p256ecdsa"})
            key.text = str(info["vapid_public_key"])
    topic = ET.Element(_q("topic"))
    topic.text = str(info["topic"])
    triggers = ET.Element(_q("supported-triggers"))
    for name, depth in SUPPORTED_TRIGGERS:
        ET.SubElement(ET.SubElement(triggers, _q(name)), _q("depth", DAV)).text = depth
    return {e.tag: e for e in (transports, topic, triggers)}


def error_body(conditions: tuple[str, ...], reason: str) -> bytes:
    """A ``{DAV:}error`` naming the draft's precondition(s), with the reason for a person."""
    return ('<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:" xmlns:P="%s">%s'
            '<D:responsedescription>%s</D:responsedescription></D:error>\n'
            % (NS, "".join("<P:%s/>" % c for c in conditions), escape(reason))).encode("utf-8")


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def dont_notify(value: str | None, marker: str) -> frozenset[str] | str | None:
    """The ``Push-Dont-Notify`` header: ``"*"``, the subscription ids its registration URLs
    name (URLs whose path holds ``marker`` then the id), or None.

    The header is ``1#quoted-string / "*"`` (several header lines arrive joined by
    commas); invalid values are ignored, as the draft requires.
    """
    if value is None or not value.strip():
        return None
    if value.strip() == "*":
        return "*"
    ids = set()
    for quoted in _QUOTED.findall(value):
        url = re.sub(r"\\(.)", r"\1", quoted).strip()
        try:
            path = urllib.parse.urlsplit(url).path
        except ValueError:
            continue
        head, found, ident = path.rpartition(marker)
        if found and re.fullmatch(r"[A-Za-z0-9_-]{1,100}", ident):
            ids.add(ident)
    return frozenset(ids) or None


def message_body(topic: str, sync_token: str | None = None) -> bytes:
    """The ``push-message`` sent (encrypted) to the push service when the book changed.

    Written out, not serialised by ElementTree: its namespace prefixes are
    process-wide (Radicale registers "" for ``DAV:``), so the output would
    depend on who imported what.
    """
    token = ("<D:sync-token>%s</D:sync-token>" % escape(sync_token)) if sync_token else ""
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<push-message xmlns="%s" xmlns:D="DAV:"><topic>%s</topic>'
            '<content-update>%s</content-update></push-message>'
            % (NS, escape(topic), token)).encode("utf-8")
