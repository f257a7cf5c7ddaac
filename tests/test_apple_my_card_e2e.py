# SPDX-License-Identifier: GPL-3.0-or-later
"""Apple's "My Card" through the WSGI layer, under ``radicale_plugin.serve`` and a WSGI server.

iOS and macOS Contacts designate the me card with a PROPPATCH on the
address-book home whose ``CS:me-card`` holds a ``D:href``, and read it back
with PROPFIND; every refusal is a 403/409 for that property, never 200.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.conftest import FAMILY, USERS
from tests.server import Client, RadicaleServer, fixture, free_port
from tests.test_fanout_e2e import person

CS = "http://calendarserver.org/ns/"
ROOT = Path(__file__).resolve().parent.parent


def apple_patch(href: str | None, extra: str = "") -> str:
    """The PROPPATCH Apple's Contacts sends (``None``: the card is un-designated)."""
    action = ("<D:set><D:prop><CS:me-card><D:href>%s</D:href></CS:me-card>%s</D:prop></D:set>"
              % (href, extra) if href is not None else
              "<D:remove><D:prop><CS:me-card/></D:prop></D:remove>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<D:propertyupdate xmlns:D="DAV:" '
            'xmlns:CS="%s">%s</D:propertyupdate>' % (CS, action))


FIND = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:CS="%s"><D:prop>'
        '<CS:me-card/><D:displayname/></D:prop></D:propfind>' % CS)


def proppatch(url: str, user: str, body: str) -> requests.Response:
    return requests.request("PROPPATCH", url, data=body.encode(), auth=(user, user + "-pw"),
                            headers={"Content-Type": "text/xml; charset=utf-8"})


def statuses(r: requests.Response) -> dict[str, tuple[str, str]]:
    """Property name (Clark) → (HTTP status line, responsedescription) of a 207."""
    assert r.status_code == 207, (r.status_code, r.text)
    found = {}
    for propstat in ET.fromstring(r.content).iter("{DAV:}propstat"):
        status = propstat.findtext("{DAV:}status") or ""
        why = propstat.findtext("{DAV:}responsedescription") or ""
        for prop in propstat.iter("{DAV:}prop"):
            for element in prop:
                found[element.tag] = (status, why)
    return found


def me_card_href(url: str, user: str) -> str | None:
    r = requests.request("PROPFIND", url, data=FIND, auth=(user, user + "-pw"),
                         headers={"Depth": "0", "Content-Type": "text/xml"})
    assert r.status_code == 207, r.text
    for propstat in ET.fromstring(r.content).iter("{DAV:}propstat"):
        element = propstat.find("{DAV:}prop/{%s}me-card" % CS)
        if element is not None and "200" in (propstat.findtext("{DAV:}status") or ""):
            href = element.find("{DAV:}href")
            assert href is not None, "the me card must be a D:href: %s" % r.text
            assert not (element.text or "").strip()
            return href.text
    return None


ME = "{%s}me-card" % CS


def test_apples_exact_request_designates_the_me_card_and_propfind_returns_an_href(server):
    alice = person(server, "alice")
    alice.put("mine.vcf", fixture("alice-me.vcf"))
    r = proppatch(server.url + "/alice/", "alice", apple_patch("/alice/contacts/mine.vcf"))
    assert statuses(r)[ME][0] == "HTTP/1.1 200 OK"
    assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/mine.vcf"
    assert me_card_href(server.url + "/alice/", "alice") == "/alice/contacts/mine.vcf"

    # the full URL form, as macOS sends it, and a percent-encoded name
    alice.put("my card.vcf", fixture("alice-me.vcf").replace("alice-me", "alice-2"))
    r = proppatch(server.url + "/alice/", "alice",
                  apple_patch(server.url + "/alice/contacts/my%20card.vcf"))
    assert statuses(r)[ME][0] == "HTTP/1.1 200 OK"
    assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/my card.vcf"

    # the API's choice is what Apple reads
    alice.api_ok("POST", "/me-card", {"path": "/alice/contacts/mine.vcf"})
    assert me_card_href(server.url + "/alice/", "alice") == "/alice/contacts/mine.vcf"


def test_the_designated_card_is_shared_like_one_set_through_the_api(server):
    alice, bob = person(server, "alice"), person(server, "bob", "bob-me.vcf")
    bob.put("alice.vcf", fixture("bob-contact-alice.vcf"))
    alice.put("mine.vcf", fixture("alice-me.vcf"))
    r = proppatch(server.url + "/alice/", "alice", apple_patch("/alice/contacts/mine.vcf"))
    assert statuses(r)[ME][0] == "HTTP/1.1 200 OK"
    alice.verify_me_card()
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    alice.put("mine.vcf", fixture("alice-me-new-number.vcf"))
    deadline = time.monotonic() + 60
    while "+1 202 555 0199" not in bob.card("alice.vcf"):
        assert time.monotonic() < deadline, bob.card("alice.vcf")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def designated(tmp_path_factory) -> Iterator[tuple[RadicaleServer, Client]]:
    """Alice and Bob with their me cards, on one server (loosened as ``server``) for the
    refusals below: each checks that Alice's me card stayed, so the next one meets the same."""
    srv = RadicaleServer(tmp_path_factory.mktemp("apple"), USERS, **FAMILY).start()
    try:
        alice = person(srv, "alice", "alice-me.vcf")
        person(srv, "bob", "bob-me.vcf")
        yield srv, alice
    finally:
        srv.stop()


@pytest.mark.parametrize("href, status", [
    ("/bob/contacts/bob.vcf", "403"),              # another user's card
    ("/alice/contacts/nope.vcf", "409"),           # no such card
    ("/alice/nobook/x.vcf", "409"),                # no such book
    ("http://elsewhere.example/alice/contacts/alice.vcf", "409"),  # another server
    ("", "409"),                                   # empty
])
def test_a_me_card_that_cannot_be_set_is_refused_for_that_property(designated, href, status):
    server, alice = designated
    r = proppatch(server.url + "/alice/", "alice", apple_patch(href))
    got, why = statuses(r)[ME]
    assert got.startswith("HTTP/1.1 " + status), (got, why)
    assert why  # says what to fix
    assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/alice.vcf"


def test_a_group_card_cannot_be_the_me_card(server):
    alice = person(server, "alice", "alice-me.vcf")
    alice.put("family.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:fam\r\nFN:Family\r\n"
                            "X-ADDRESSBOOKSERVER-KIND:group\r\nEND:VCARD\r\n")
    r = proppatch(server.url + "/alice/", "alice", apple_patch("/alice/contacts/family.vcf"))
    assert statuses(r)[ME][0].startswith("HTTP/1.1 409")
    assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/alice.vcf"


def test_nobody_sets_the_me_card_of_someone_else(server):
    person(server, "alice", "alice-me.vcf")
    bob = person(server, "bob", "bob-me.vcf")
    r = proppatch(server.url + "/alice/", "bob", apple_patch("/bob/contacts/bob.vcf"))
    assert r.status_code in (403, 207)
    if r.status_code == 207:
        assert statuses(r)[ME][0].startswith("HTTP/1.1 403")
    assert bob.api_ok("GET", "/me")["me_card"] == "/bob/contacts/bob.vcf"
    assert proppatch(server.url + "/alice/", "mallory", apple_patch(None)).status_code == 401


def test_removing_the_property_forgets_the_me_card(server):
    alice = person(server, "alice", "alice-me.vcf")
    r = proppatch(server.url + "/alice/", "alice", apple_patch(None))
    assert statuses(r)[ME][0] == "HTTP/1.1 200 OK"
    assert alice.api_ok("GET", "/me")["me_card"] is None
    assert me_card_href(server.url + "/alice/", "alice") is None


def test_other_properties_in_the_same_request_succeed_or_fail_with_it(server):
    alice = person(server, "alice")
    alice.put("mine.vcf", fixture("alice-me.vcf"))
    name = "<D:displayname>Alice's home</D:displayname>"
    r = proppatch(server.url + "/alice/", "alice",
                  apple_patch("/alice/contacts/mine.vcf", name))
    got = statuses(r)
    assert got[ME][0] == got["{DAV:}displayname"][0] == "HTTP/1.1 200 OK"
    r = proppatch(server.url + "/alice/", "alice", apple_patch(
        "/alice/contacts/nope.vcf", "<D:displayname>Changed</D:displayname>"))
    got = statuses(r)
    assert got[ME][0].startswith("HTTP/1.1 409")
    assert got["{DAV:}displayname"][0].startswith("HTTP/1.1 424")  # all or nothing
    found = requests.request("PROPFIND", server.url + "/alice/", data=FIND,
                             auth=("alice", "alice-pw"), headers={"Depth": "0"})
    assert "Alice's home" in found.text and "Changed" not in found.text
    assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/mine.vcf"


def test_a_content_length_that_is_no_number_is_a_400_not_a_500(server):
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"PUT /alice/contacts/x.vcf HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Length: twelve\r\nContent-Type: text/vcard\r\n\r\n")
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 400") or head.startswith(b"HTTP/1.0 400"), head


@pytest.fixture
def wsgi_server(tmp_path) -> Iterator[RadicaleServer]:
    """The same server run by a WSGI server (the stdlib's) with the layer's entry point."""
    srv = RadicaleServer(tmp_path, {"alice": "alice-pw", "bob": "bob-pw"})
    port = free_port()
    srv.port, srv.url = port, "http://127.0.0.1:%d" % port
    code = ("import sys, wsgiref.simple_server as w\n"
            "from radicale_plugin.wsgi import application\n"
            "class Quiet(w.WSGIRequestHandler):\n"
            "    def log_message(self, *a): pass\n"
            "w.make_server('127.0.0.1', %d, application, handler_class=Quiet)"
            ".serve_forever()\n" % port)
    log = open(tmp_path / "wsgi.log", "ab")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT,
                               env={**os.environ, "RADICALE_CONFIG": str(tmp_path / "config")})
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "wsgi.log").read_text()
            try:
                requests.get(srv.url + "/.web/", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        yield srv
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_my_card_works_under_a_wsgi_server_too(wsgi_server):
    alice = person(wsgi_server, "alice")
    alice.put("mine.vcf", fixture("alice-me.vcf"))
    r = proppatch(wsgi_server.url + "/alice/", "alice", apple_patch("/alice/contacts/mine.vcf"))
    assert statuses(r)[ME][0] == "HTTP/1.1 200 OK"
    assert me_card_href(wsgi_server.url + "/alice/", "alice") == "/alice/contacts/mine.vcf"
    r = proppatch(wsgi_server.url + "/alice/", "alice", apple_patch("/bob/contacts/b.vcf"))
    assert statuses(r)[ME][0].startswith("HTTP/1.1 4")


def test_without_the_layer_apples_form_is_refused_not_answered_200(tmp_path):
    """Radicale run by its own launcher (no layer) gets the property empty: never a 200."""
    srv = RadicaleServer(tmp_path, {"alice": "alice-pw"})
    srv.launcher = "radicale"
    srv.start()
    try:
        alice = person(srv, "alice", "alice-me.vcf")
        alice.put("mine.vcf", fixture("alice-me.vcf").replace("alice-me", "alice-2"))
        r = proppatch(srv.url + "/alice/", "alice", apple_patch("/alice/contacts/mine.vcf"))
        # Radicale's own bare 400 (the plugin does not patch Radicale); its log says why
        assert r.status_code == 400, r.text
        assert "WSGI layer" in srv.log.read_text(errors="replace")
        assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/alice.vcf"
    finally:
        srv.stop()


def test_propfind_returns_the_me_cards_href_percent_encoded(public_server):
    """Shipped defaults.  A name with a space or an umlaut comes back the way Radicale writes
    every href (RFC 4918: a URI), and designating from it round-trips."""
    alice = public_server.client("alice")
    alice.login()
    for name, encoded in (("my card.vcf", "my%20card.vcf"),
                          ("m\u00fcller.vcf", "m%C3%BCller.vcf")):
        assert alice.put(name, fixture("alice-me.vcf")).status_code == 201
        alice.api_ok("POST", "/me-card", {"path": "/alice/contacts/" + name})
        href = me_card_href(public_server.url + "/alice/", "alice")
        assert href == "/alice/contacts/" + encoded
        # what Apple reads is what it sends back: it designates the same card
        r = proppatch(public_server.url + "/alice/", "alice", apple_patch(href))
        assert statuses(r)[ME][0] == "HTTP/1.1 200 OK"
        assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/" + name
        assert alice.http.delete(alice.url + alice.book() + encoded).status_code in (200, 204)


def test_apples_proppatch_sent_to_a_book_says_what_it_did(public_server):
    """Shipped defaults.  Sent to one of my books instead of my home, the me card is designated
    the same way (200 for the property); on someone else's book or home, 403 with the reason;
    never a silent 200."""
    alice = public_server.client("alice")
    alice.login()
    bob = public_server.client("bob")
    bob.login()
    assert alice.put("mine.vcf", fixture("alice-me.vcf")).status_code == 201
    r = proppatch(public_server.url + "/alice/contacts/", "alice",
                  apple_patch("/alice/contacts/mine.vcf"))
    assert statuses(r)[ME][0] == "HTTP/1.1 200 OK"
    assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/mine.vcf"
    assert me_card_href(public_server.url + "/alice/", "alice") == "/alice/contacts/mine.vcf"
    # a card that cannot be the me card: refused for that property, with the reason
    r = proppatch(public_server.url + "/alice/contacts/", "alice",
                  apple_patch("/alice/contacts/nope.vcf"))
    status, why = statuses(r)[ME]
    assert status.startswith("HTTP/1.1 409") and why
    # bob's book and home: 403 (Radicale's own, or the layer's with a reason), nothing set
    assert bob.put("bob.vcf", fixture("bob-me.vcf")).status_code == 201
    for path in ("/bob/contacts/", "/bob/"):
        r = proppatch(public_server.url + path, "alice", apple_patch("/alice/contacts/mine.vcf"))
        if r.status_code == 207:
            status, why = statuses(r)[ME]
            assert status.startswith("HTTP/1.1 403") and why, (path, status)
        else:
            assert r.status_code == 403, (path, r.status_code, r.text)
    assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/mine.vcf"
    assert bob.api_ok("GET", "/me")["me_card"] is None
    # removing it through the book forgets it, as on the home
    r = proppatch(public_server.url + "/alice/contacts/", "alice", apple_patch(None))
    assert statuses(r)[ME][0] == "HTTP/1.1 200 OK"
    assert alice.api_ok("GET", "/me")["me_card"] is None
