# SPDX-License-Identifier: GPL-3.0-or-later
"""Malformed requests and refused writes, end to end: a 4xx that says why, never a 500.

Stock Radicale 3.9 answers 500 to a MOVE whose Destination has a bad port or
is no URL, to an XML body with a DTD and to deeply nested XML, and 500 (not
its 408) to a PROPFIND or PROPPATCH whose body is shorter than its
Content-Length.  Through the WSGI layer each gets a 4xx with one line saying
what is wrong, for every method that carries such a body, and the server
serves the next request.  Where the answer is Radicale's own behaviour it is
kept and said so: a Destination on another host is Radicale's 502 ("Remote
destination not supported"), a short PUT body Radicale's 408.

A write the plugin refuses (a me card with two UIDs, a photo too large, a
whole book whose me card breaks the rules) is Radicale's 400, whose body now
holds the reason with the layer (under stock ``radicale``, only its log does).

Every server here runs the shipped defaults (no loosened fixture).
"""
from __future__ import annotations

import base64
import socket
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

import pytest
import requests

from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture

#: The server's read timeout in these tests (Radicale's default is 30 s).
TIMEOUT = 2


def start(tmp_path: Path, launcher: str = "radicale_plugin.serve", **options: str
          ) -> RadicaleServer:
    """A server with the shipped defaults, no gateways, and a short read timeout."""
    srv = RadicaleServer(tmp_path, USERS, mecard_smtp_host="", mecard_sms_command="",
                         **options)
    config = srv.root / "config"
    config.write_text(config.read_text().replace(
        "[server]\n", "[server]\ntimeout = %d\n" % TIMEOUT, 1))
    srv.launcher = launcher
    return srv.start()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory) -> Iterator[RadicaleServer]:
    """One server for the tests of ``srv``: they need nothing but Alice's home, made anew."""
    server = start(tmp_path_factory.mktemp("malformed"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def srv(module_server) -> RadicaleServer:
    """The module's server, Alice's home as on her first login: deleted (books, cards), made
    again with its predefined book at her next request.  Its log keeps every earlier test's
    requests, so ``still_serves`` finds a 500 of any of them."""
    client = module_server.client("alice")
    r = client.http.delete(client.url + "/alice/")
    assert r.status_code in (200, 204), (r.status_code, r.text)
    return module_server


def raw(server: RadicaleServer, method: str, path: str, headers: dict[str, bytes | str],
        body: bytes = b"", length: int | None = None, user: str = "alice"
        ) -> tuple[int, bytes, float]:
    """A request sent byte for byte (headers as given, even non-ASCII); (status, body, secs)."""
    auth = base64.b64encode(("%s:%s" % (user, USERS[user])).encode()).decode()
    lines = {"Host": "127.0.0.1:%d" % server.port, "Authorization": "Basic " + auth,
             "Content-Length": str(len(body) if length is None else length),
             "Connection": "close", **headers}
    head = ("%s %s HTTP/1.1\r\n" % (method, path)).encode() + b"".join(
        k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) + b"\r\n"
        for k, v in lines.items()) + b"\r\n"
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT + 30) as s:
        s.sendall(head + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2], \
        time.monotonic() - began


def still_serves(server: RadicaleServer, client: Client) -> None:
    """The next request is answered as usual, and the server never answered 500."""
    r = client.http.request("PROPFIND", client.url + client.book(), headers={"Depth": "0"})
    assert r.status_code == 207
    log = server.log.read_text(errors="replace")
    assert "500 Internal Server Error" not in log and "An exception occurred" not in log


def alice(server: RadicaleServer) -> Client:
    client = server.client("alice")
    client.login()
    return client


# -- MOVE with odd Destinations ------------------------------------------------------------

@pytest.mark.parametrize("destination, status, says", [
    ("*", 400, b"not a URL on this server"),
    ("", 400, b"needs a Destination"),
    ("http://127.0.0.1:99999/alice/contacts/y.vcf", 400, b"Port out of range"),
    ("http://127.0.0.1:abc/alice/contacts/y.vcf", 400, b"not a URL on this server"),
    ("http://[::1/alice/contacts/y.vcf", 400, b"not a URL on this server"),
    ("127.0.0.1:{port}/alice/contacts/y.vcf", 400, b"not a URL on this server"),  # no scheme
    ("alice/contacts/y.vcf", 400, b"not a URL on this server"),
    ("ftp://127.0.0.1:{port}/alice/contacts/y.vcf", 400, b"not a URL on this server"),
    (b"http://127.0.0.1:{port}/alice/contacts/\xff.vcf", 400, b"not UTF-8"),
    # Radicale's own answer, kept: it moves nothing to another server
    ("http://elsewhere.example/alice/contacts/y.vcf", 502, b"Remote destination"),
])
def test_a_move_to_no_url_of_this_server_is_refused_and_the_card_stays(
        srv, destination, status, says):
    client = alice(srv)
    assert client.put("x.vcf", fixture("alice-contact-bob.vcf")).status_code == 201
    if isinstance(destination, str):
        destination = destination.replace("{port}", str(srv.port))
    else:
        destination = destination.replace(b"{port}", str(srv.port).encode())
    got, body, _ = raw(srv, "MOVE", "/alice/contacts/x.vcf", {"Destination": destination})
    assert (got, says in body) == (status, True), (got, body)
    assert client.hrefs() == ["x.vcf"]
    still_serves(srv, client)


@pytest.mark.parametrize("destination, lands_at", [
    ("/alice/contacts/y.vcf", "y.vcf"),
    ("http://127.0.0.1:{port}/alice/contacts/y.vcf", "y.vcf"),
    ("http://127.0.0.1:{port}/alice/contacts/my%20card.vcf", "my card.vcf"),
    # raw UTF-8 in the header (not percent-encoded, as some clients send it)
    ("http://127.0.0.1:{port}/alice/contacts/m\u00fcller.vcf".encode(), "m\u00fcller.vcf"),
])
def test_a_move_within_this_server_still_works(srv, destination, lands_at):
    client = alice(srv)
    assert client.put("x.vcf", fixture("alice-contact-bob.vcf")).status_code == 201
    if isinstance(destination, str):
        destination = destination.replace("{port}", str(srv.port))
    else:
        destination = destination.replace(b"{port}", str(srv.port).encode())
    got, body, _ = raw(srv, "MOVE", "/alice/contacts/x.vcf", {"Destination": destination})
    assert got == 201, body
    assert [unquote(h) for h in client.hrefs()] == [lands_at]
    assert "UID:alice-contact-bob" in client.card(lands_at)
    still_serves(srv, client)


# -- XML bodies -----------------------------------------------------------------------------

DTD = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">]>'
       b'<d:propfind xmlns:d="DAV:"><d:prop><d:displayname/></d:prop></d:propfind>')
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY l0 "ha">'
          b'<!ENTITY l1 "&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;">]><l>&l1;</l>')
DEEP = b'<?xml version="1.0"?>' + b"<a>" * 100000 + b"</a>" * 100000
BROKEN = b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop>'

#: (method, path) of every request whose body Radicale parses as XML, and a push registration.
XML_REQUESTS = [("PROPFIND", "/alice/contacts/"), ("PROPPATCH", "/alice/contacts/"),
                ("PROPPATCH", "/alice/"), ("REPORT", "/alice/contacts/"),
                ("MKCOL", "/alice/newbook/"), ("POST", "/alice/contacts/")]


@pytest.mark.parametrize("body, says", [
    (DTD, b"DTDs and entities are not accepted"),
    (LAUGHS, b"DTDs and entities are not accepted"),
    (DEEP, b"nested deeper than"),
    (BROKEN, b"not well-formed"),
])
def test_an_xml_body_with_a_dtd_deep_nesting_or_broken_is_a_400_for_every_method(
        srv, body, says):
    client = alice(srv)
    for method, path in XML_REQUESTS:
        got, answer, _ = raw(srv, method, path, {"Content-Type": "application/xml",
                                                 "Depth": "0"}, body)
        assert (method, got, says in answer) == (method, 400, True), answer[:200]
    # nothing was made or changed by them
    assert client.http.request("PROPFIND", client.url + "/alice/newbook/",
                               headers={"Depth": "0"}).status_code == 404
    still_serves(srv, client)


def test_the_same_methods_with_a_sound_body_still_work(srv):
    """The positive control: real DAV bodies pass the layer's checks."""
    client = alice(srv)
    find = (b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:displayname/>'
            b'</d:prop></d:propfind>')
    patch = (b'<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:"><d:set><d:prop>'
             b'<d:displayname>Mine</d:displayname></d:prop></d:set></d:propertyupdate>')
    report = (b'<?xml version="1.0"?><d:sync-collection xmlns:d="DAV:"><d:sync-token/>'
              b'<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop>'
              b'</d:sync-collection>')
    mkcol = (b'<?xml version="1.0"?><d:mkcol xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:'
             b'carddav"><d:set><d:prop><d:resourcetype><d:collection/><c:addressbook/>'
             b'</d:resourcetype></d:prop></d:set></d:mkcol>')
    for method, path, body, status in (("PROPFIND", "/alice/contacts/", find, 207),
                                       ("PROPPATCH", "/alice/contacts/", patch, 207),
                                       ("REPORT", "/alice/contacts/", report, 207),
                                       ("MKCOL", "/alice/newbook/", mkcol, 201)):
        got, answer, _ = raw(srv, method, path, {"Content-Type": "application/xml",
                                                 "Depth": "0"}, body)
        assert got == status, (method, answer[:300])
    assert "Mine" in client.http.request("PROPFIND", client.url + "/alice/contacts/",
                                         data=find, headers={"Depth": "0"}).text
    still_serves(srv, client)


@pytest.mark.parametrize("method, path", [("PUT", "/alice/contacts/z.vcf"), *XML_REQUESTS])
def test_a_body_shorter_than_its_content_length_is_a_408_after_the_read_timeout(
        srv, method, path):
    """Radicale's own answer for PUT (408), now also for the bodies the layer reads."""
    client = alice(srv)
    got, answer, took = raw(srv, method, path, {"Content-Type": "application/xml",
                                                "Depth": "0"}, b"<a/>", length=100)
    assert got == 408, answer
    assert TIMEOUT - 0.5 < took < TIMEOUT + 10
    still_serves(srv, client)


@pytest.mark.parametrize("length, status, says", [
    ("twelve", 400, b"must be a number"),
    ("-5", 400, b"must be a number"),
    (str(64 * 1024 * 1024), 413, b"at most"),  # refused before a byte is read
])
def test_a_content_length_that_is_no_number_or_too_large_is_a_4xx(srv, length, status, says):
    client = alice(srv)
    for method, path in XML_REQUESTS:
        got, answer, took = raw(srv, method, path, {"Content-Type": "application/xml",
                                                    "Content-Length": length})
        assert (method, got, says in answer) == (method, status, True), answer
        assert took < TIMEOUT
    still_serves(srv, client)


# -- refused writes say why ---------------------------------------------------------------------

TWO_UIDS = fixture("alice-me.vcf").replace("UID:alice-me\r\n", "UID:alice-me\r\nUID:other\r\n")
PHOTO = "PHOTO;ENCODING=b;TYPE=PNG:" + base64.b64encode(b"\x89PNG" + b"x" * 4000).decode()
BIG_PHOTO = fixture("alice-me.vcf").replace("END:VCARD", PHOTO + "\r\nEND:VCARD")


def me(server: RadicaleServer) -> Client:
    client = alice(server)
    assert client.put("alice.vcf", fixture("alice-me.vcf")).status_code == 201
    client.api_ok("POST", "/me-card", {"path": "/alice/contacts/alice.vcf"})
    return client


def refusals_say_why(server: RadicaleServer) -> None:
    client = me(server)
    for text, why in ((TWO_UIDS, "exactly one UID"), (BIG_PHOTO, "KiB are accepted")):
        r = client.put("alice.vcf", text)
        assert r.status_code == 400 and why in r.text, (r.status_code, r.text)
        assert r.text.startswith("Bad Request: ")
        assert why in server.log.read_text(errors="replace")  # the log keeps it too
        # the whole book written at once: the same refusal, the same reason
        r = client.http.put(client.url + client.book(), data=text.encode(),
                            headers={"Content-Type": "text/vcard"})
        assert r.status_code == 400 and why in r.text, (r.status_code, r.text)
    assert "PHOTO" not in client.card("alice.vcf")
    # a refusal does not leak into the next request's answer; a sound card is stored
    r = client.put("other.vcf", fixture("alice-contact-bob.vcf"))
    assert r.status_code == 201 and r.text == ""
    assert client.put("bad.vcf", "not a vcard").text in ("Bad Request", "Bad Request\n")
    r = client.put("alice.vcf", fixture("alice-me-new-number.vcf"))
    assert r.status_code in (201, 204)


def test_a_refused_me_card_gets_a_400_that_says_why(tmp_path):
    server = start(tmp_path, mecard_max_photo="2048")
    try:
        refusals_say_why(server)
        still_serves(server, server.client("alice"))
    finally:
        server.stop()


def test_a_refusal_the_api_answers_itself_stays_its_json(tmp_path):
    """Designating a card through the API runs the storage hook that refuses what cannot
    be a me card: the API's own JSON answer, with the reason, reaches the client (it once
    became the layer's plain-text 400 meant for Radicale's bare one)."""
    server = start(tmp_path, mecard_max_photo="2048")
    try:
        client = me(server)
        for href, text in (("two.vcf", TWO_UIDS), ("photo.vcf", BIG_PHOTO)):
            other = text.replace("UID:alice-me", "UID:" + href)  # a contact may be so
            assert client.put(href, other).status_code == 201
        for path, status, why in (("/alice/contacts/two.vcf", 400, "exactly one UID"),
                                  ("/alice/contacts/photo.vcf", 413, "KiB are accepted"),
                                  ("", 400, "'path' is empty"), (" ", 400, "is empty")):
            r = client.api("POST", "/me-card", {"path": path})
            assert r.status_code == status, (path, r.status_code, r.text)
            assert r.headers["Content-Type"].startswith("application/json"), (path, r.text)
            assert why in r.json()["error"], (path, r.text)
        assert client.api_ok("GET", "/me")["me_card"] == "/alice/contacts/alice.vcf"
        # positive control: the same refusal at a PUT is Radicale's 400, with the reason
        r = client.put("alice.vcf", TWO_UIDS)
        assert r.status_code == 400 and r.text.startswith("Bad Request: ") \
            and "exactly one UID" in r.text, r.text
    finally:
        server.stop()


def test_under_stock_radicale_a_refused_me_card_is_refused_and_logged_with_its_reason(tmp_path):
    """No WSGI layer: ``radicale --config`` as installed by the README's two lines.  The
    plugin does not patch Radicale, so the answer is Radicale's own bare 400; the reason
    is in Radicale's log, and nothing is stored."""
    server = start(tmp_path, "radicale", mecard_max_photo="2048")
    try:
        client = me(server)
        for text, why in ((TWO_UIDS, "exactly one UID"), (BIG_PHOTO, "KiB are accepted")):
            r = client.put("alice.vcf", text)
            assert r.status_code == 400, (r.status_code, r.text)
            assert why in server.log.read_text(errors="replace")
        assert "PHOTO" not in client.card("alice.vcf")
        r = client.put("alice.vcf", fixture("alice-me-new-number.vcf"))
        assert r.status_code in (201, 204)  # positive control
    finally:
        server.stop()
