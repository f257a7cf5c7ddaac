# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: WebDAV-Push from a real server to push services started by the test.

The push services listen on 127.0.0.1 (the server is told so with the test
setting ``mecard_push_allow_insecure_loopback``); each subscription is made
with a key pair and auth secret of the test's own, so the test decrypts what
arrives exactly as a phone would (RFC 8291) and checks the VAPID signature
(RFC 8292) against the key the server advertises.
"""
from __future__ import annotations

import base64
import email.utils
import json
import socket
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from tests.conftest import FAMILY, USERS
from tests.server import Client, RadicaleServer, fixture, settled, wait_until
from tests.test_fanout_e2e import person

NS = "{https://bitfire.at/webdav-push}"
#: push on both storages: files and PostgreSQL (conftest's ``backend``)
pytestmark = pytest.mark.both_backends


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class PushService:
    """A push service on 127.0.0.1 that keeps every POST and answers ``status[path]`` (201)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status: dict[str, int] = {}
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with service.lock:
                    service.received.append(Received(self.path, dict(self.headers), body,
                                                     time.monotonic()))
                self.send_response(service.status.get(self.path, 201))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def clear(self) -> None:
        with self.lock:
            self.received.clear()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class DeadService:
    """Accepts connections on 127.0.0.1 and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)  # held open, never answered

    def url(self, path: str) -> str:
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


@dataclass
class Subscriber:
    """What a phone keeps for one subscription: its key pair and auth secret."""

    resource: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: __import__("os").urandom(16))

    def registration(self, book: str, **extra: str) -> dict:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"book": book, "push_resource": self.resource, "public_key": b64url(public),
                "auth_secret": b64url(self.auth), **extra}

    def decrypt(self, body: bytes) -> bytes:
        return http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth,
                                version="aes128gcm")


@pytest.fixture
def services() -> Iterator[tuple[PushService, DeadService, PushService]]:
    healthy, dead, gone = PushService(), DeadService(), PushService()
    gone.status["/gone"] = 410
    try:
        yield healthy, dead, gone
    finally:
        for s in (healthy, dead, gone):
            s.stop()


def push_server(tmp_path, services, **options: str) -> RadicaleServer:
    healthy, dead, gone = services
    allowed = " ".join("127.0.0.1:%d" % s.port for s in services) + " 10.1.2.3"
    return RadicaleServer(tmp_path, USERS, **FAMILY, mecard_push_services=allowed,
                          mecard_push_allow_insecure_loopback="True",
                          mecard_push_timeout="30", **options)


@pytest.fixture
def pair(tmp_path, services, storage_options
         ) -> Iterator[tuple[RadicaleServer, Client, Client]]:
    """Alice shares her card with Bob, who has a contact for her; the fan-out has settled."""
    server = push_server(tmp_path, services, **storage_options).start()
    try:
        alice, bob = person(server, "alice", "alice-me.vcf"), person(server, "bob", "bob-me.vcf")
        assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
        alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
        settled(alice)
        yield server, alice, bob
    finally:
        server.stop()


def register(client: Client, subscriber: Subscriber, book: str = "", **extra: str) -> dict:
    return client.api_ok("POST", "/push/subscriptions",
                         subscriber.registration(book or client.book(), **extra))


def check_message(received: Received, subscriber: Subscriber, info: dict, port: int) -> None:
    """Decrypt the message as the phone would; check it names the book; check VAPID."""
    assert received.headers["Content-Encoding"] == "aes128gcm"
    assert received.headers["Topic"] == info["topic"]
    assert int(received.headers["TTL"]) > 0
    message = ET.fromstring(subscriber.decrypt(received.body))
    assert message.tag == NS + "push-message"
    assert message.findtext(NS + "topic") == info["topic"]
    assert message.find(NS + "content-update") is not None
    authorization = received.headers["Authorization"]
    assert authorization.startswith("vapid t=")
    token, key = (p.split("=", 1)[1] for p in authorization[6:].split(","))
    assert key == info["vapid_public_key"]
    assert Vapid02.verify(authorization), "the VAPID signature does not verify"
    claims = json.loads(unb64url(token.split(".")[1]))
    assert claims["aud"] == "http://127.0.0.1:%d" % port
    assert claims["sub"].startswith(("mailto:", "https:"))
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600


def test_the_recipients_phone_gets_an_encrypted_push_when_the_owner_changes_her_card(
        pair, services):
    server, alice, bob = pair
    healthy = services[0]
    info = bob.api_ok("GET", "/push/book?path=/bob/contacts/")
    assert info["transports"] == ["web-push"] and len(info["topic"]) <= 32
    assert len(unb64url(info["vapid_public_key"])) == 65
    live, soon, deleted = (Subscriber(healthy.url(p)) for p in ("/live", "/soon", "/deleted"))
    answer = register(bob, live)
    assert answer["book"] == "/bob/contacts/" and answer["push_resource"] == live.resource
    register(bob, soon, expires=email.utils.formatdate(time.time() + 2, usegmt=True))
    bye = register(bob, deleted)
    assert bob.api_ok("POST", "/push/subscriptions/%s/delete" % bye["id"], {}) == {
        "deleted": True}
    time.sleep(2.5)  # "soon" expires
    assert [s["push_resource"] for s in bob.api_ok("GET", "/push/subscriptions")[
        "subscriptions"]] == [live.resource]
    healthy.clear()

    put_at = time.monotonic()
    assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code in (201, 204)
    got = wait_until(lambda: healthy.to("/live"), 30, "the push to Bob's phone")
    print("\npush latency from the owner's PUT: %.0f ms" % ((got[0].at - put_at) * 1000))
    settled(alice)
    assert "+1 202 555 0199" in bob.card("ally.vcf")  # the copy the fan-out rewrote
    check_message(got[0], live, info, healthy.port)
    time.sleep(1.5)  # what else would have been sent, has been
    assert healthy.to("/soon") == [] and healthy.to("/deleted") == []
    assert len(healthy.to("/live")) == 1  # one change, one message


def test_a_dead_push_service_delays_nothing_and_a_gone_subscription_is_dropped(
        pair, services):
    server, alice, bob = pair
    healthy, dead, gone = services
    info = bob.api_ok("GET", "/push/book?path=/bob/contacts/")
    live = Subscriber(healthy.url("/live"))
    for subscriber in (Subscriber(dead.url("/dead")), live, Subscriber(gone.url("/gone"))):
        register(bob, subscriber)
    healthy.clear()

    put_at = time.monotonic()
    assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code in (201, 204)
    assert time.monotonic() - put_at < 5  # the request never waits for push
    got = wait_until(lambda: healthy.to("/live"), 30, "the push to the healthy service")
    # the dead service holds its connection for mecard_push_timeout (30 s): not this one
    assert got[0].at - put_at < 15
    check_message(got[0], live, info, healthy.port)
    wait_until(lambda: dead.connections, 10, "the attempt at the dead service")

    def dropped() -> bool:
        listed = bob.api_ok("GET", "/push/subscriptions")["subscriptions"]
        return all(not s["push_resource"].endswith("/gone") for s in listed)
    wait_until(dropped, 30, "the subscription the push service called gone")
    assert gone.to("/gone")
    # another change still reaches the healthy service while the dead one hangs
    healthy.clear()
    assert alice.put("alice.vcf", fixture("alice-me.vcf")).status_code in (201, 204)
    wait_until(lambda: healthy.to("/live"), 15, "the second push")


@pytest.fixture
def capped(tmp_path, services, storage_options
           ) -> Iterator[tuple[RadicaleServer, Client, Client]]:
    server = push_server(tmp_path, services, mecard_push_per_book="2",
                         mecard_push_per_user="3", **storage_options).start()
    try:
        bob, carol = server.client("bob"), server.client("carol")
        bob.login()
        carol.login()
        yield server, bob, carol
    finally:
        server.stop()


def test_registrations_are_refused_for_other_services_addresses_books_and_beyond_the_caps(
        capped, services):
    server, bob, carol = capped
    healthy = services[0]
    mine = Subscriber(healthy.url("/bob-1"))
    first = register(bob, mine)

    def refused(client: Client, data: dict) -> tuple[int, str]:
        r = client.api("POST", "/push/subscriptions", data)
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        return r.status_code, r.json()["error"]

    # push services the admin did not allow, plain http, private addresses
    for url, why in (("https://push.example.org/x", "does not send to"),
                     ("http://10.1.2.3/x", "plain http"),
                     ("https://10.1.2.3/x", "not a public address"),
                     ("https://user:pw@127.0.0.1:%d/x" % healthy.port, "user name")):
        status, error = refused(bob, Subscriber(url).registration(bob.book()))
        assert why in error, error
    # broken keys, an expiry in the past
    data = Subscriber(healthy.url("/x")).registration(bob.book())
    assert "public key" in refused(bob, {**data, "public_key": b64url(b"\x04" + b"1" * 64)})[1]
    assert "auth secret" in refused(bob, {**data, "auth_secret": "abc"})[1]
    assert "past" in refused(bob, {**data, "expires": "Wed, 20 Dec 2023 10:03:31 GMT"})[1]

    # only the owner of a book registers, lists and removes: another user's book is a 403,
    # whether it exists or not (the answer tells nothing about bob's books)
    for book in ("/bob/contacts/", "/bob/nosuchbook/"):
        assert refused(carol, Subscriber(healthy.url("/c")).registration(book))[0] == 403
        assert carol.api("GET", "/push/book?path=%s" % book).status_code == 403
    assert carol.api("POST", "/push/subscriptions/%s/delete" % first["id"], {}
                     ).status_code == 404
    assert carol.api_ok("GET", "/push/subscriptions") == {"subscriptions": []}
    assert bob.api("POST", "/push/subscriptions/nosuchid/delete", {}).status_code == 404
    assert bob.api("GET", "/push/book?path=/bob/nosuchbook/").status_code == 404
    assert bob.api("GET", "/push/book?path=/bob/").status_code == 400
    assert [s["id"] for s in bob.api_ok("GET", "/push/subscriptions")["subscriptions"]] == [
        first["id"]]

    # the caps: 2 per book, 3 per user; renewing is no new subscription
    register(bob, Subscriber(healthy.url("/bob-2")))
    status, error = refused(bob, Subscriber(healthy.url("/bob-3")).registration(bob.book()))
    assert status == 409 and "most allowed" in error
    renewed = register(bob, mine)
    assert renewed["id"] == first["id"]
    bob.mkbook("other")
    register(bob, Subscriber(healthy.url("/bob-4")), "/bob/other/")
    status, error = refused(bob, Subscriber(healthy.url("/bob-5")).registration("/bob/other/"))
    assert status == 409 and "you have 3" in error
