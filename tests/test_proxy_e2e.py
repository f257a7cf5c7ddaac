# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end behind a reverse proxy that serves the server below ``/dav``.

The proxy is the test's own (:class:`PrefixProxy`), doing what
``config/nginx.conf.example`` and ``config/Caddyfile.example`` do: every
method is forwarded with its body and headers, ``/dav`` is stripped from the
path, ``X-Script-Name: /dav`` tells Radicale (and the WSGI layer) where it is
mounted, ``X-Forwarded-For`` and ``X-Forwarded-Proto`` say who asked and how
(``https``: the proxy ends TLS), and ``Host`` is passed on unchanged.
Clients speak only to the proxy.
"""
from __future__ import annotations

import http.client
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.server import Client, RadicaleServer, alices_new_number_reaches_bob, fixture
from tests.test_apple_my_card_e2e import FIND, ME, apple_patch, statuses
from tests.test_push_dav_e2e import FIND_PUSH, P, register_body
from tests.test_push_e2e import Subscriber, push_server, services  # noqa: F401 (fixture)

PREFIX = "/dav"
#: Hop-by-hop headers (RFC 9110, 7.6.1): a proxy does not pass them on.
HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
       "upgrade"}


class PrefixProxy:
    """A reverse proxy on 127.0.0.1 for ``backend``, below ``/dav``, as if it ended TLS."""

    def __init__(self, backend: str, proto: str = "https") -> None:
        target = urlsplit(backend)
        self.seen: list[tuple[str, str]] = []  # (method, path the backend got)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def __getattr__(self, name: str) -> Callable[[], None]:
                if name.startswith("do_"):  # every method: PROPFIND, REPORT, MKCOL, ...
                    return self._forward
                raise AttributeError(name)

            def _forward(self) -> None:
                if self.path != PREFIX and not self.path.startswith(PREFIX + "/"):
                    self._answer(404, {"Content-Type": "text/plain"}, b"not below /dav\n")
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP and not k.lower().startswith("x-")}
                # what the client says about the prefix or itself is never taken
                headers.update({"X-Script-Name": PREFIX,
                                "X-Forwarded-For": self.client_address[0],
                                "X-Forwarded-Proto": proto,
                                "Content-Length": str(len(body))})
                path = self.path[len(PREFIX):] or "/"
                proxy.seen.append((self.command, path))
                conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port,
                                                  timeout=60)
                try:
                    conn.request(self.command, path, body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                    got = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP]
                finally:
                    conn.close()
                self._answer(answer.status, got, data)

            def _answer(self, status: int, headers: Any, data: bytes) -> None:
                self.send_response(status)
                items = headers.items() if isinstance(headers, dict) else headers
                for name, value in items:
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.root = "http://127.0.0.1:%d" % self.port
        #: what clients are given: the server's root behind the proxy
        self.url = self.root + PREFIX
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def behind(tmp_path, services) -> Iterator[tuple[RadicaleServer, PrefixProxy]]:  # noqa: F811
    """A family server with push (to the test's push services), behind the proxy."""
    server = push_server(tmp_path, services).start()
    proxy = PrefixProxy(server.url)
    try:
        yield server, proxy
    finally:
        proxy.stop()
        server.stop()


def through(proxy: PrefixProxy, server: RadicaleServer, user: str) -> Client:
    """A user's client that knows only the proxy's URL (``https://host/dav`` in real life)."""
    client = Client(proxy.url, user, server.users[user], server)
    client.login()
    return client


def hrefs_of(response: requests.Response) -> list[str]:
    assert response.status_code == 207, (response.status_code, response.text)
    return [h.text or "" for h in ET.fromstring(response.content).iter("{DAV:}href")]


def test_carddav_hrefs_put_and_get_carry_the_prefix(behind):
    server, proxy = behind
    alice = through(proxy, server, "alice")
    assert alice.put("alice.vcf", fixture("alice-me.vcf")).status_code == 201
    assert "FN:Alice Archer" in alice.card("alice.vcf")
    assert ("PUT", "/alice/contacts/alice.vcf") in proxy.seen  # stripped on its way

    home = alice.http.request("PROPFIND", proxy.url + "/alice/", headers={"Depth": "1"})
    found = hrefs_of(home)
    assert "/dav/alice/" in found and "/dav/alice/contacts/" in found
    assert all(h.startswith("/dav/") for h in found), found
    book = alice.http.request("PROPFIND", proxy.url + "/alice/contacts/",
                              headers={"Depth": "1"})
    assert "/dav/alice/contacts/alice.vcf" in hrefs_of(book)
    # discovery as clients start it: the principal and the redirect of .well-known
    principal = alice.http.request(
        "PROPFIND", proxy.url + "/", headers={"Depth": "0"},
        data="<D:propfind xmlns:D='DAV:'><D:prop><D:current-user-principal/></D:prop>"
             "</D:propfind>")
    assert "/dav/alice/" in hrefs_of(principal)
    well_known = alice.http.get(proxy.url + "/.well-known/carddav", allow_redirects=False)
    assert well_known.status_code == 301 and well_known.headers["Location"] == "/dav/"
    # sync-collection, as DAVx5 and Thunderbird sync
    token, changed = alice.sync()
    assert token and changed == ["alice.vcf"]


def test_the_pages_and_the_api_work_below_the_prefix(behind):
    server, proxy = behind
    alice = through(proxy, server, "alice")
    root = requests.get(proxy.url + "/", allow_redirects=False)
    assert root.status_code in (302, 303) and root.headers["Location"].startswith("/dav/.web")
    page = requests.get(proxy.url + "/.web/")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert requests.get(proxy.url + "/.web/mecard/api/v1/me").status_code == 401

    alice.put("alice.vcf", fixture("alice-me.vcf"))
    me = alice.api_ok("POST", "/me-card", {"path": "/alice/contacts/alice.vcf"})
    assert me["me_card"] == "/alice/contacts/alice.vcf"
    # a browser page served through the proxy may change things: its Origin is the proxy's
    r = alice.http.post(proxy.url + "/.web/mecard/api/v1/privacy",
                        json={"discoverability": "contacts"},
                        headers={"Origin": proxy.root})
    assert r.status_code == 200, r.text
    r = alice.http.post(proxy.url + "/.web/mecard/api/v1/privacy",
                        json={"discoverability": "everyone"},
                        headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


def test_apples_my_card_takes_and_gives_hrefs_below_the_prefix(behind):
    server, proxy = behind
    alice = through(proxy, server, "alice")
    alice.put("mine.vcf", fixture("alice-me.vcf"))
    for href in ("/dav/alice/contacts/mine.vcf",                 # what iOS sends
                 proxy.url + "/alice/contacts/mine.vcf"):        # the full URL form (macOS)
        alice.api_ok("POST", "/me-card", {"path": None})
        r = alice.http.request("PROPPATCH", proxy.url + "/alice/", data=apple_patch(href),
                               headers={"Content-Type": "text/xml; charset=utf-8"})
        assert statuses(r)[ME][0] == "HTTP/1.1 200 OK", (href, r.text)
        assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/mine.vcf"

    r = alice.http.request("PROPFIND", proxy.url + "/alice/", data=FIND,
                           headers={"Depth": "0", "Content-Type": "text/xml"})
    assert r.status_code == 207, r.text
    element = ET.fromstring(r.content).find(".//" + ME)
    assert element is not None and element.find("{DAV:}href") is not None, r.text
    assert element.findtext("{DAV:}href") == "/dav/alice/contacts/mine.vcf"
    # the layer's own multistatus names the home below the prefix too
    refused = alice.http.request("PROPPATCH", proxy.url + "/alice/",
                                 data=apple_patch("/dav/alice/contacts/nope.vcf"),
                                 headers={"Content-Type": "text/xml; charset=utf-8"})
    assert statuses(refused)[ME][0].startswith("HTTP/1.1 409")
    assert hrefs_of(refused) == ["/dav/alice/"]


def test_push_properties_and_registration_location_are_below_the_prefix(behind, services):
    server, proxy = behind
    bob = through(proxy, server, "bob")
    r = bob.http.request("PROPFIND", proxy.url + "/bob/contacts/", data=FIND_PUSH,
                         headers={"Depth": "0", "Content-Type": "application/xml"})
    assert r.status_code == 207, r.text
    topic = ET.fromstring(r.content).find(".//" + P + "topic")
    assert topic is not None and topic.text == bob.api_ok(
        "GET", "/push/book?path=/bob/contacts/")["topic"]

    phone = Subscriber(services[0].url("/phone"))
    r = bob.http.post(proxy.url + "/bob/contacts/", data=register_body(phone),
                      headers={"Content-Type": "application/xml; charset=utf-8"})
    assert r.status_code == 201, r.text
    location = r.headers["Location"]
    # the proxy ends TLS: the client is given the https URL it reached, with the prefix
    assert location.startswith("https://127.0.0.1:%d/dav/.web/mecard/push/" % proxy.port), \
        location
    path = urlsplit(location).path
    assert len(bob.api_ok("GET", "/push/subscriptions")["subscriptions"]) == 1
    assert bob.http.delete(proxy.root + path).status_code == 204
    assert bob.api_ok("GET", "/push/subscriptions")["subscriptions"] == []


def test_a_change_made_through_the_proxy_reaches_the_recipient(behind):
    server, proxy = behind
    alice, bob = through(proxy, server, "alice"), through(proxy, server, "bob")
    for person, card in ((alice, "alice-me.vcf"), (bob, "bob-me.vcf")):
        assert person.put("%s.vcf" % person.user, fixture(card)).status_code == 201
        person.api_ok("POST", "/me-card", {"path": "/%s/contacts/%s.vcf"
                                           % (person.user, person.user)})
        person.verify_me_card()
    alices_new_number_reaches_bob(alice, bob)
    assert bob.copy_of("alice") == "ally.vcf"
