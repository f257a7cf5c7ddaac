# SPDX-License-Identifier: GPL-3.0-or-later
"""The WSGI layer's checks of malformed requests, where Radicale itself answers 500.

A ``Content-Length`` that is no number (400); an XML body (:data:`XML_METHODS`, a
push registration) with a DTD or entities or nested deeper than :data:`MAX_DEPTH`
(400), not well-formed (400), larger than :data:`MAX_XML` (413) or shorter than its
``Content-Length`` (408 after the server's read timeout); a MOVE whose
``Destination`` is no URL of this server's form (400; raw UTF-8 is percent-encoded
and passed on).  Each refusal is one line saying why (:class:`.answers.Passed`).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit
from xml.parsers import expat

from radicale import types
from radicale.log import logger

from radicale_plugin.http.answers import Passed, Response, plain
from radicale_plugin.http.web import PREFIX as API

#: Largest XML body of a DAV request (a REPORT of 50,000 hrefs is about 3 MB).
MAX_XML = 16 * 1024 * 1024
#: Deepest XML element nesting accepted (DAV requests need fewer than 10 levels).
MAX_DEPTH = 100
#: Methods whose body Radicale parses as XML: the layer checks it first.
XML_METHODS = ("PROPFIND", "PROPPATCH", "REPORT", "MKCOL", "MKCALENDAR")


def length_refusal(environ: types.WSGIEnviron) -> Response | None:
    """A 400 for a ``Content-Length`` that is no number of bytes (JSON for the API), or None."""
    length = environ.get("CONTENT_LENGTH") or ""
    try:
        if int(length or 0) < 0:
            raise ValueError(length)
    except ValueError:
        why = "Content-Length must be a number of bytes, not %r" % length[:40]
        if (environ.get("PATH_INFO") or "").startswith(API):
            return 400, {"Content-Type": "application/json; charset=utf-8"}, (
                json.dumps({"error": why}).encode())
        return plain(400, why)
    return None


def xml_body(environ: types.WSGIEnviron) -> bytes:
    """The XML body of a DAV request, read and checked (see the module docstring)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_XML:
        raise Passed(plain(413, "the XML body is %d bytes; at most %d are accepted"
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
        raise Passed(plain(408, "the request body did not arrive in time: its "
                                "Content-Length says %d bytes" % length))
    except (OSError, ValueError) as e:
        raise Passed(plain(400, "the request body could not be read: %s" % e))
    body = b"".join(parts)
    if got < length:
        raise Passed(plain(400, "the request body ended after %d bytes; its "
                                "Content-Length says %d" % (got, length)))
    problem = xml_problem(body)
    if problem is not None:
        logger.info("%s %r refused: %s", environ.get("REQUEST_METHOD"),
                    environ.get("PATH_INFO"), problem)
        raise Passed(plain(400, problem))
    return body


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


def checked_destination(environ: types.WSGIEnviron) -> types.WSGIEnviron:
    """A MOVE's environ, its ``Destination`` checked (raises Passed with a 400) and, when it
    holds raw UTF-8, percent-encoded the way Radicale reads it."""
    raw = environ.get("HTTP_DESTINATION") or ""
    if not raw.strip():
        raise Passed(plain(400, "MOVE needs a Destination header: the URL the card goes to"))
    try:
        text = raw.encode("latin-1").decode("utf-8")  # WSGI hands headers over as latin-1
    except UnicodeError:
        raise Passed(plain(400, "the Destination header is not UTF-8"))
    what = "the Destination %r is not a URL on this server such as " \
        "\"/alice/contacts/card.vcf\"" % text[:200]
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018  (raises ValueError for a port that is no port)
    except ValueError as e:
        raise Passed(plain(400, "%s (%s)" % (what, e)))
    if parts.scheme:
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise Passed(plain(400, what))
    elif parts.netloc or not parts.path.startswith("/"):
        raise Passed(plain(400, what))
    if text != raw or any(ord(c) < 33 or ord(c) == 127 for c in text.strip()):
        # what Radicale unquotes: the UTF-8 characters percent-encoded, nothing else changed
        encoded = quote(text.strip(), safe="".join(chr(c) for c in range(33, 127)))
        return {**environ, "HTTP_DESTINATION": encoded}
    return environ


def is_xml(environ: types.WSGIEnviron) -> bool:
    media = (environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
    return media in ("application/xml", "text/xml")
