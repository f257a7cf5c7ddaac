# SPDX-License-Identifier: GPL-3.0-or-later
"""WebDAV-Push without a server: the draft's XML, the allow-list and address checks, the
pinned HTTP client, the VAPID key file, the sender's coalescing, retries and lanes, and the
schema migration that adds the push tables."""
from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
import os
import socket
import sqlite3
import stat
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from radicale_plugin.push import dav as push_dav
from radicale_plugin.push import hosts as push_hosts
from radicale_plugin.push import http as push_http
from radicale_plugin.push import sender as push_sender
from radicale_plugin.push import retry as push_retry
from radicale_plugin.context import Context
from radicale_plugin.index import PushSubscription, SharingIndex
from radicale_plugin.push.keys import VapidKeys
from radicale_plugin.push.sender import PushSender
from radicale_plugin.settings import PLUGIN_CONFIG_SCHEMA, Settings
from radicale_plugin.index.sqlite import SQLiteIndex

NS = "{%s}" % push_dav.NS
KEY = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
SECRET = "BTBZMqHH6r4Tts7J_aSIgg"


def register_body(details: str = "", extra: str = "", resource: str = "https://up.example.net/"
                  "yohd4yai5Phiz1wi") -> bytes:
    """A registration like DAVx5's (no trigger, no content-encoding) plus ``details``."""
    return ("""<?xml version="1.0" encoding="utf-8"?>
<push-register xmlns="https://bitfire.at/webdav-push">
  <subscription><web-push-subscription>
    <push-resource>%s</push-resource>
    %s
  </web-push-subscription></subscription>%s
  <expires>Wed, 20 Dec 2023 10:03:31 GMT</expires>
</push-register>""" % (resource, details or (
        '<subscription-public-key type="p256dh">%s</subscription-public-key>'
        '<auth-secret>%s</auth-secret>' % (KEY, SECRET)), extra)).encode()


# -- push_dav -----------------------------------------------------------------------------

def test_a_registration_as_davx5_sends_it_gives_the_api_fields():
    body = register_body()
    assert push_dav.is_register(body)
    assert push_dav.parse_register(body) == {
        "push_resource": "https://up.example.net/yohd4yai5Phiz1wi", "public_key": KEY,
        "auth_secret": SECRET, "content_encoding": "aes128gcm",
        "expires": "Wed, 20 Dec 2023 10:03:31 GMT"}


def test_the_drafts_sample_registration_with_triggers_is_accepted():
    body = register_body(
        '<content-encoding>aes128gcm</content-encoding>'
        '<subscription-public-key type="p256dh">%s</subscription-public-key>'
        '<auth-secret>%s</auth-secret>' % (KEY, SECRET),
        '<trigger><content-update><depth xmlns="DAV:">infinity</depth></content-update>'
        '<property-update><depth xmlns="DAV:">0</depth></property-update></trigger>')
    assert push_dav.parse_register(body)["content_encoding"] == "aes128gcm"


@pytest.mark.parametrize("body, complaint", [
    (register_body("<auth-secret>%s</auth-secret>" % SECRET), "no <subscription-public-key>"),
    (register_body('<subscription-public-key>%s</subscription-public-key>' % KEY),
     "no <auth-secret>"),
    (register_body('<subscription-public-key type="p256ecdsa">%s</subscription-public-key>'
                   '<auth-secret>%s</auth-secret>' % (KEY, SECRET)), "type p256dh"),
    (register_body('<subscription-public-key>%s</subscription-public-key>'
                   '<auth-secret>%s</auth-secret>' % (KEY[:40], SECRET)), "uncompressed P-256"),
    (register_body('<subscription-public-key>%s</subscription-public-key>'
                   '<auth-secret>c2hvcnQ</auth-secret>' % KEY), "16 bytes"),
    (register_body('<subscription-public-key>%s!</subscription-public-key>'
                   '<auth-secret>%s</auth-secret>' % (KEY, SECRET)), "not base64url"),
    (register_body('<content-encoding>aesgcm</content-encoding>'
                   '<subscription-public-key>%s</subscription-public-key>'
                   '<auth-secret>%s</auth-secret>' % (KEY, SECRET)), "must be aes128gcm"),
    (register_body(resource=""), "no <push-resource>"),
    (register_body(extra="<trigger><property-update/></trigger>"), "no supported trigger"),
    (register_body().replace(b"Wed, 20 Dec 2023", b"someday"), "not an HTTP date"),
    (register_body().replace(b"web-push-subscription", b"other-subscription"),
     "Web Push transport only"),
    (b'<push-register xmlns="https://bitfire.at/webdav-push"/>', "exactly one <subscription>"),
    (b'<push-register xmlns="https://bitfire.at/webdav-push"><subscription>',
     "not well-formed"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
     b'<push-register xmlns="https://bitfire.at/webdav-push">&a;</push-register>',
     "DTD or entities"),
    (b'<propfind xmlns="DAV:"/>', "not a WebDAV-Push registration"),
    (b"x" * (push_dav.MAX_BODY + 1), "larger than"),
])
def test_a_malformed_registration_is_refused_in_one_line(body, complaint):
    with pytest.raises(ValueError) as refused:
        push_dav.parse_register(body)
    assert complaint in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("body, expected", [
    (register_body(), True),
    (b'<P:push-register xmlns:P="https://bitfire.at/webdav-push"><P:subscription>', True),
    (b'<!DOCTYPE x><push-register xmlns="https://bitfire.at/webdav-push"/>', True),
    (b'<push-register xmlns="DAV:"/>', False),
    (b'<propfind xmlns="DAV:"><prop/></propfind>', False),
    (b"not xml at all", False),
    (b"", False),
])
def test_is_register_looks_at_the_root_element_only(body, expected):
    assert push_dav.is_register(body) is expected


def test_the_registration_answer_is_201_with_location_and_expires():
    status, headers, body = push_dav.registration_answer(
        {"id": "x", "expires": "Wed, 20 Dec 2023 10:03:31 GMT"},
        "https://dav.example.org/.web/mecard/push/x")
    assert (status, body) == (201, b"")
    assert headers["Location"] == "https://dav.example.org/.web/mecard/push/x"
    assert headers["Expires"] == "Wed, 20 Dec 2023 10:03:31 GMT"


def test_the_properties_are_those_davx5_reads():
    found = push_dav.property_elements({"topic": "O7M1nQ7cKkKTKsoS_j6Z3w",
                                        "vapid_public_key": KEY, "transports": ["web-push"]})
    assert set(found) == {NS + "transports", NS + "topic", NS + "supported-triggers"}
    key = found[NS + "transports"].find("%sweb-push/%svapid-public-key" % (NS, NS))
    assert key is not None and key.get("type") == "p256ecdsa" and key.text == KEY
    assert found[NS + "topic"].text == "O7M1nQ7cKkKTKsoS_j6Z3w"
    assert found[NS + "supported-triggers"].findtext(
        "%scontent-update/{DAV:}depth" % NS) == "1"


@pytest.mark.parametrize("token", [None, "http://radicale.org/ns/sync/abc"])
def test_the_push_message_names_the_topic_and_a_content_update(token):
    message = ET.fromstring(push_dav.message_body("O7M1nQ7cKkKTKsoS_j6Z3w", token))
    assert message.tag == NS + "push-message"
    assert message.findtext(NS + "topic") == "O7M1nQ7cKkKTKsoS_j6Z3w"
    update = message.find(NS + "content-update")
    assert update is not None and update.findtext("{DAV:}sync-token") == token


def test_http_dates_round_trip():
    assert push_dav.parse_http_date("Wed, 20 Dec 2023 10:03:31 GMT") == 1703066611
    assert push_dav.http_date(1703066611) == "Wed, 20 Dec 2023 10:03:31 GMT"


# -- push_hosts ----------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://fcm.googleapis.com/fcm/send/abc:def",
    "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
    "https://web.push.apple.com/QGuQyavXutnMH",
    "https://ntfy.sh/upAbCdEf?up=1",
    "https://NTFY.SH./upAbCdEf",
])
def test_the_default_allow_list_admits_the_push_services_davx5_users_get(url):
    target = push_hosts.destination(url, push_hosts.DEFAULT_SERVICES)
    assert target.scheme == "https" and target.port == 443
    assert target.origin == "https://" + target.host


@pytest.mark.parametrize("url, why", [
    ("http://fcm.googleapis.com/fcm/send/x", "https://"),
    ("https://push.example.org/x", "does not send to the push service push.example.org"),
    ("https://ntfy.sh:8443/x", "ntfy.sh:8443"),
    ("https://user@ntfy.sh/x", "user name"),
    ("https://ntfy.sh/a b", "spaces"),
    ("ftp://ntfy.sh/x", "https://"),
    ("https:///x", "no host"),
    ("https://ntfy.sh:99999/x", "not a URL"),
    ("https://ntfy.sh/" + "x" * 3000, "longer than"),
    ("", "must be a URL"),
])
def test_push_resources_outside_the_allow_list_are_refused(url, why):
    with pytest.raises(push_hosts.PushRefused) as refused:
        push_hosts.destination(url, push_hosts.DEFAULT_SERVICES)
    assert why in str(refused.value)


def test_entries_name_ports_and_subdomains():
    allowed = ("push.example.org:8443", "*.up.example.net", "[::1]:8080")
    assert push_hosts.destination("https://push.example.org:8443/x", allowed).port == 8443
    assert push_hosts.destination("https://a.b.up.example.net/x", allowed).host == \
        "a.b.up.example.net"
    for refused in ("https://push.example.org/x", "https://up.example.net/x",
                    "https://evilup.example.net/x"):
        with pytest.raises(push_hosts.PushRefused):
            push_hosts.destination(refused, allowed)
    target = push_hosts.destination("http://[::1]:8080/p?q=1", allowed, insecure_loopback=True)
    assert (target.host, target.target, target.origin) == ("::1", "/p?q=1",
                                                            "http://[::1]:8080")


@pytest.mark.parametrize("entry", ["*ntfy.sh", "ntfy.*.sh", "ntfy.sh/path", "me@ntfy.sh",
                                   "ntfy.sh:port", "bücher.example"])
def test_bad_allow_list_entries_are_refused_when_the_config_is_read(entry):
    with pytest.raises(ValueError):
        PLUGIN_CONFIG_SCHEMA["storage"]["mecard_push_services"]["type"](entry)


PRIVATE = ["10.0.0.1", "172.16.5.4", "192.168.1.1", "127.0.0.1", "::1", "fe80::1%eth0",
           "169.254.169.254", "100.64.0.1", "224.0.0.1", "0.0.0.0", "240.0.0.1",
           "::ffff:127.0.0.1", "64:ff9b::a00:1", "fc00::1", "ff02::1", "::"]


@pytest.mark.parametrize("address", PRIVATE)
def test_addresses_that_are_not_public_are_refused(address):
    target = push_hosts.destination("https://ntfy.sh/x", push_hosts.DEFAULT_SERVICES)
    with pytest.raises(push_hosts.PushRefused) as refused:
        push_hosts.check_addresses(target, ["8.8.8.8", address])
    assert "not a public address" in str(refused.value)


def test_public_addresses_pass_and_the_test_setting_admits_loopback_only():
    target = push_hosts.destination("https://ntfy.sh/x", push_hosts.DEFAULT_SERVICES)
    assert push_hosts.check_addresses(target, ["8.8.8.8", "2606:4700::1111"]) == [
        "8.8.8.8", "2606:4700::1111"]
    assert push_hosts.check_addresses(target, ["127.0.0.1", "::1"], insecure_loopback=True)
    with pytest.raises(push_hosts.PushRefused):
        push_hosts.check_addresses(target, ["127.0.0.1", "10.0.0.1"], insecure_loopback=True)
    plain = push_hosts.destination("http://127.0.0.1:8080/x", ("127.0.0.1:8080",),
                                   insecure_loopback=True)
    assert push_hosts.check_addresses(plain, ["127.0.0.1"], insecure_loopback=True)
    # plain http only ever goes to loopback
    with pytest.raises(push_hosts.PushRefused) as refused:
        push_hosts.check_addresses(plain, ["8.8.8.8"], insecure_loopback=True)
    assert "plain http" in str(refused.value)
    with pytest.raises(push_hosts.PushRefused):
        push_hosts.destination("http://127.0.0.1:8080/x", ("127.0.0.1:8080",))
    assert push_hosts.is_public(ipaddress.ip_address("1.1.1.1"))


def test_resolve_checks_every_address_the_name_has(monkeypatch):
    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.0.10", port))]
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    target = push_hosts.destination("https://ntfy.sh/x", push_hosts.DEFAULT_SERVICES)
    with pytest.raises(push_hosts.PushRefused) as refused:
        push_http.resolve(target)
    assert "192.168.0.10" in str(refused.value)


# -- push_http -------------------------------------------------------------------------------

class Recorder(ThreadingHTTPServer):
    """Answers every POST with ``status`` (and a Location), keeping the Host headers."""

    def __init__(self, status: int = 201) -> None:
        self.hosts: list[str] = []
        self.status = status
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.hosts.append(self.headers["Host"])
                self.send_response(recorder.status)
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_the_post_goes_to_the_checked_address_and_names_the_host(recorder):
    port = recorder.server_address[1]
    # a name that resolves nowhere: only the pinned address can be reached
    target = push_hosts.Destination("http", "push.invalid", port, "/sub?x=1")
    answer = push_http.post(target, ["127.0.0.1"], {"TTL": "60"}, b"body", 5)
    assert answer.status == 201
    assert recorder.hosts == ["push.invalid:%d" % port]


def make_certificate(tmp_path: Path, name: str) -> tuple[str, str]:
    """A self-signed certificate for ``name``: (certificate file, key file)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_over_tls_the_pinned_address_must_show_the_host_names_certificate(tmp_path, recorder,
                                                                         monkeypatch):
    import ssl
    cert, key = make_certificate(tmp_path, "push.test")
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    recorder.socket = server_side.wrap_socket(recorder.socket, server_side=True)
    client_side = ssl.create_default_context(cafile=cert)
    monkeypatch.setattr(push_http, "_tls_context", lambda: client_side)
    port = recorder.server_address[1]
    good = push_hosts.Destination("https", "push.test", port, "/sub")
    assert push_http.post(good, ["127.0.0.1"], {}, b"x", 5).status == 201
    assert recorder.hosts == ["push.test:%d" % port]
    # the same address under another name: the certificate does not match, nothing is sent
    with pytest.raises(ssl.SSLCertVerificationError):
        push_http.post(push_hosts.Destination("https", "other.test", port, "/sub"),
                       ["127.0.0.1"], {}, b"x", 5)
    assert len(recorder.hosts) == 1


def test_a_redirect_is_an_answer_not_followed(recorder):
    recorder.status = 307
    target = push_hosts.Destination("http", "127.0.0.1", recorder.server_address[1], "/")
    assert push_http.post(target, ["127.0.0.1"], {}, b"", 5).status == 307
    assert len(recorder.hosts) == 1


def trickler(interval: float) -> socket.socket:
    """A service that answers one byte per ``interval`` seconds, forever."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)

    def serve() -> None:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        try:
            for byte in b"HTTP/1.1 201 Created\r\nX-Slow: " + b"x" * 10000:
                conn.sendall(bytes([byte]))
                time.sleep(interval)
        except OSError:
            pass
        finally:
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
    return sock


@pytest.mark.alone  # bounds how long it takes: nothing else may run
def test_a_service_that_trickles_bytes_is_cut_off_at_the_timeout():
    sock = trickler(0.1)
    try:
        target = push_hosts.Destination("http", "127.0.0.1", sock.getsockname()[1], "/")
        began = time.monotonic()
        with pytest.raises(Exception):
            push_http.post(target, ["127.0.0.1"], {}, b"x", 1.0)
        assert time.monotonic() - began < 3
    finally:
        sock.close()


def test_a_refused_connection_tries_the_next_address(recorder):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    target = push_hosts.Destination("http", "127.0.0.1", port, "/")
    with pytest.raises(OSError):
        push_http.post(target, ["127.0.0.1"], {}, b"", 2)


# -- push_keys ---------------------------------------------------------------------------------

def test_the_vapid_key_is_made_once_private_to_the_server_and_signs_tokens(tmp_path):
    path = tmp_path / "db" / ".mecard-vapid.pem"
    keys = VapidKeys(str(path))
    public = keys.public_key
    assert len(base64.urlsafe_b64decode(public + "==")) == 65
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert VapidKeys(str(path)).public_key == public  # read back, not made again
    header = keys.authorization("https://fcm.googleapis.com", "mailto:admin@example.org")
    assert Vapid02.verify(header)
    token = header.split("t=", 1)[1].split(",", 1)[0]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["aud"] == "https://fcm.googleapis.com"
    assert claims["sub"] == "mailto:admin@example.org"
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    assert header.split("k=", 1)[1] == public


# -- push_sender ------------------------------------------------------------------------------

class FakeService:
    """Stands in for push_http.post: records, answers ``answers[host]`` (default 201)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict, bytes, float]] = []
        self.answers: dict[str, list[int]] = {}
        self.hang: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def post(self, target, addresses, headers, body, timeout) -> push_http.Answer:
        if target.host in self.hang:
            self.hang[target.host].wait(timeout)
            raise TimeoutError("no answer")
        with self.lock:
            self.sent.append((target.host + target.target, dict(headers), body,
                              time.monotonic()))
            queue = self.answers.get(target.host)
            status = queue.pop(0) if queue else 201
        return push_http.Answer(status)

    def to(self, host: str) -> list[tuple[str, dict, bytes, float]]:
        with self.lock:
            return [s for s in self.sent if s[0].startswith(host)]


def wait_for(check, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out")


@pytest.fixture
def sender(tmp_path, monkeypatch) -> Iterator[tuple[PushSender, SharingIndex, FakeService]]:
    monkeypatch.setattr(push_retry, "BACKOFF", 0.05)  # the retry policy (push/retry.py)
    index = SQLiteIndex(str(tmp_path / "x.sqlite"))
    settings = Settings(database=str(tmp_path / "x.sqlite"),
                        push_services=("a.example.org", "b.example.org"), push_coalesce=0.3,
                        push_timeout=5, push_contact="mailto:admin@example.org")
    ctx = Context(storage=None, settings=settings, index=index)  # type: ignore[arg-type]
    fake = FakeService()
    keys = VapidKeys(str(tmp_path / "vapid.pem"))
    topics = {"alice/contacts": "TOPIC-A"}
    the_sender = PushSender(ctx, keys, lambda book: topics[book], fake.post,
                            lambda target, insecure: ["203.0.113.5"])
    the_sender.start()
    try:
        yield the_sender, index, fake
    finally:
        the_sender.stop()  # its thread must not look at the closed index
        index.close()


class Phone:
    """A subscriber's keys."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    def subscription(self, sub_id: str, resource: str, expires: float | None = None
                     ) -> PushSubscription:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return PushSubscription(sub_id, "alice", "alice/contacts", resource,
                                base64.urlsafe_b64encode(public).rstrip(b"=").decode(),
                                base64.urlsafe_b64encode(self.auth).rstrip(b"=").decode(),
                                expires or time.time() + 3600, "aes128gcm", time.time())


@pytest.mark.alone  # compares times: nothing else may run
def test_changes_in_a_burst_make_one_message_then_one_per_window(sender):
    the_sender, index, fake = sender
    # a window of 3 s: "at once" (well under half of it) and "after the window" stay
    # apart on a loaded machine, where a 0.3 s window made the first bound flaky
    window = 3.0
    the_sender._ctx.settings = dataclasses.replace(the_sender._ctx.settings,
                                                   push_coalesce=window)
    phone = Phone()
    index.push.put(phone.subscription("s1", "https://a.example.org/s1"))
    began = time.monotonic()
    for _ in range(20):
        the_sender.mark(["alice/contacts", "/alice/contacts/"])
    first = wait_for(lambda: fake.to("a.example.org"))
    assert first[0][3] - began < window / 2  # the first change goes at once
    body = http_ece.decrypt(first[0][2], private_key=phone.key, auth_secret=phone.auth,
                            version="aes128gcm")
    assert ET.fromstring(body).findtext(NS + "topic") == "TOPIC-A"
    assert first[0][1]["Topic"] == "TOPIC-A" and first[0][1]["Content-Encoding"] == "aes128gcm"
    for _ in range(20):
        the_sender.mark(["alice/contacts"])
        time.sleep(0.01)
    second = wait_for(lambda: fake.to("a.example.org")[1:])
    assert second[0][3] - first[0][3] >= window * 0.97  # not within the window
    time.sleep(0.5)
    assert len(fake.to("a.example.org")) == 2  # the burst made one message, not twenty
    the_sender.mark(["bob/contacts", "alice"])  # no subscription, no book: nothing
    time.sleep(0.4)
    assert len(fake.sent) == 2


def test_expired_removed_and_other_books_subscriptions_get_nothing(sender):
    the_sender, index, fake = sender
    index.push.put(Phone().subscription("old", "https://a.example.org/old",
                                        expires=time.time() - 1))
    index.push.put(Phone().subscription("gone", "https://a.example.org/gone"))
    index.push.remove("gone")
    index.push.put(Phone().subscription("live", "https://b.example.org/live"))
    the_sender.mark(["alice/contacts"])
    wait_for(lambda: fake.to("b.example.org"))
    time.sleep(0.3)
    assert [s[0] for s in fake.sent] == ["b.example.org/live"]


def test_404_and_410_drop_the_subscription_5xx_is_retried(sender):
    the_sender, index, fake = sender
    index.push.put(Phone().subscription("s404", "https://a.example.org/404"))
    index.push.put(Phone().subscription("s503", "https://b.example.org/503"))
    fake.answers = {"a.example.org": [404], "b.example.org": [503, 500, 201]}
    the_sender.mark(["alice/contacts"])
    wait_for(lambda: index.push.get("s404") is None)
    wait_for(lambda: the_sender.stats.sent == 1)
    assert len(fake.to("b.example.org")) == 3 and index.push.get("s503") is not None
    assert the_sender.stats.dropped == 1


def test_retries_end_after_max_attempts(sender):
    the_sender, index, fake = sender
    index.push.put(Phone().subscription("s", "https://a.example.org/s"))
    fake.answers = {"a.example.org": [500] * 10}
    the_sender.mark(["alice/contacts"])
    wait_for(lambda: the_sender.stats.failed == 1)
    assert len(fake.to("a.example.org")) == push_sender.MAX_ATTEMPTS
    assert index.push.get("s") is not None  # a failing service is no reason to drop it


@pytest.mark.alone  # bounds how long it takes: nothing else may run
def test_a_push_service_that_hangs_holds_up_no_other(sender):
    the_sender, index, fake = sender
    fake.hang["a.example.org"] = threading.Event()
    for n in range(2 * push_sender.THREADS_PER_SERVICE):
        index.push.put(Phone().subscription("dead%d" % n, "https://a.example.org/%d" % n))
    index.push.put(Phone().subscription("live", "https://b.example.org/live"))
    began = time.monotonic()
    the_sender.mark(["alice/contacts"])
    # held up, it would wait for the hung service (until the end of the test)
    sent = wait_for(lambda: fake.to("b.example.org"), 5)
    assert sent[0][3] - began < 4
    fake.hang["a.example.org"].set()


@pytest.mark.alone  # bounds how long it takes: nothing else may run
def test_marking_never_waits_for_sending(sender):
    the_sender, index, fake = sender
    fake.hang["a.example.org"] = threading.Event()
    index.push.put(Phone().subscription("dead", "https://a.example.org/dead"))
    began = time.monotonic()
    for n in range(1000):
        the_sender.mark(["alice/contacts", "u%d/contacts" % n])
    # waiting for the hung send would never end (the service hangs until the end); the
    # bound only has to tell "never" from "at once" on a loaded machine
    assert time.monotonic() - began < 5
    fake.hang["a.example.org"].set()


# -- the schema ---------------------------------------------------------------------------------

def test_a_version_2_database_gains_the_push_tables_and_keeps_its_data(tmp_path):
    path = tmp_path / "v2.sqlite"
    index = SQLiteIndex(str(path))
    index.owners.set_rules("alice", ["all"])
    index.close()
    with sqlite3.connect(path) as conn:  # as version 2 left it
        conn.execute("DROP TABLE push_subscriptions")
        conn.execute("DROP TABLE push_topics")
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    index = SQLiteIndex(str(path))
    try:
        assert index.owners.get("alice").rules == ["all"]
        assert index.push.ensure_topic("alice/contacts", "T") == "T"
        index.push.put(Phone().subscription("s", "https://a.example.org/s"))
        assert [s.id for s in index.push.of_user("alice", time.time())] == ["s"]
    finally:
        index.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SQLiteIndex.SCHEMA_VERSION
    conn.close()


def test_settings_read_the_push_options(tmp_path: Path):
    from radicale import config
    configuration = config.load([]).copy(PLUGIN_CONFIG_SCHEMA)
    configuration.update({"storage": {"filesystem_folder": str(tmp_path),
                                      "mecard_push_services": "ntfy.sh push.example.org:8443",
                                      "mecard_push_allow_insecure_loopback": "True"}},
                         "test", privileged=True)
    settings = Settings.from_configuration(configuration)
    assert settings.push_services == ("ntfy.sh", "push.example.org:8443")
    assert settings.push_allow_insecure_loopback is True
    assert settings.push_vapid_key == str(tmp_path / ".mecard-vapid.pem")
    assert settings.push_contact == "mailto:radicale-mecard@localhost"
    defaults = Settings.from_configuration(config.load([]).copy(PLUGIN_CONFIG_SCHEMA))
    assert defaults.push_services == push_hosts.DEFAULT_SERVICES
    assert defaults.push_allow_insecure_loopback is False
