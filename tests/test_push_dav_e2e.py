# SPDX-License-Identifier: GPL-3.0-or-later
"""WebDAV-Push as DAVx5 speaks it, through the WSGI layer: discovery, registration, removal.

The push service and the decryption are those of :mod:`tests.test_push_e2e`;
here every step goes through DAV requests instead of the JSON API.
"""
from __future__ import annotations

import email.utils
import time
import xml.etree.ElementTree as ET
from typing import Iterator

import pytest
import requests

from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture, wait_until
from tests.test_push_e2e import (PushService, Received, Subscriber, b64url,  # noqa: F401
                                 check_message, pair, services)

NS = "https://bitfire.at/webdav-push"
P = "{%s}" % NS


def register_body(subscriber: Subscriber, expires: str = "", extra: str = "") -> bytes:
    from cryptography.hazmat.primitives import serialization
    public = subscriber.key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return ('<?xml version="1.0" encoding="utf-8"?>\n<push-register xmlns="%s">'
            '<subscription><web-push-subscription>'
            '<push-resource>%s</push-resource>'
            '<content-encoding>aes128gcm</content-encoding>'
            '<subscription-public-key type="p256dh">%s</subscription-public-key>'
            '<auth-secret>%s</auth-secret>'
            '</web-push-subscription></subscription>%s%s</push-register>'
            % (NS, subscriber.resource, b64url(public), b64url(subscriber.auth),
               "<expires>%s</expires>" % expires if expires else "", extra)).encode()


def dav(client: Client, method: str, path: str, body: bytes = b"", **headers: str
        ) -> requests.Response:
    return client.http.request(method, client.url + path, data=body,
                               headers={"Content-Type": "application/xml; charset=utf-8",
                                        **headers})


FIND_PUSH = ('<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:p="%s"><d:prop>'
             '<p:transports/><p:topic/><p:supported-triggers/><d:sync-token/>'
             '</d:prop></d:propfind>' % NS).encode()


def push_properties(client: Client, path: str) -> dict[str, ET.Element]:
    r = dav(client, "PROPFIND", path, FIND_PUSH, Depth="0")
    assert r.status_code == 207, r.text
    found = {}
    for propstat in ET.fromstring(r.content).iter("{DAV:}propstat"):
        if "200" in (propstat.findtext("{DAV:}status") or ""):
            prop = propstat.find("{DAV:}prop")
            for element in (prop if prop is not None else []):
                found[element.tag] = element
    return found


def test_a_book_advertises_push_and_its_properties_match_the_api(pair):
    server, alice, bob = pair
    r = bob.http.options(server.url + "/bob/contacts/")
    assert "webdav-push" in r.headers["DAV"] and "addressbook" in r.headers["DAV"]
    props = push_properties(bob, "/bob/contacts/")
    info = bob.api_ok("GET", "/push/book?path=/bob/contacts/")
    assert props[P + "topic"].text == info["topic"]
    key = props[P + "transports"].find(P + "web-push/" + P + "vapid-public-key")
    assert key is not None and key.get("type") == "p256ecdsa"
    assert key.text == info["vapid_public_key"]
    assert props[P + "supported-triggers"].find(P + "content-update") is not None
    assert "{DAV:}sync-token" in props  # Radicale's own properties are still there
    # gzip, as phones ask for it, gives the same answer
    r = dav(bob, "PROPFIND", "/bob/contacts/", FIND_PUSH, Depth="0",
            **{"Accept-Encoding": "gzip"})
    assert info["topic"] in r.text
    # every book has its own random topic; nobody reads the topic of another's book
    bob.mkbook("work")
    assert push_properties(bob, "/bob/work/")[P + "topic"].text != info["topic"]
    assert dav(alice, "PROPFIND", "/bob/contacts/", FIND_PUSH, Depth="0").status_code in (
        403, 404)


def test_a_phone_registers_gets_pushes_and_unregisters_through_dav(pair, services):
    server, alice, bob = pair
    healthy = services[0]
    phone = Subscriber(healthy.url("/phone"))
    wanted = email.utils.formatdate(time.time() + 3 * 24 * 3600, usegmt=True)
    r = dav(bob, "POST", "/bob/contacts/", register_body(phone, wanted))
    assert r.status_code == 201, r.text
    location = r.headers["Location"]
    assert location.startswith(server.url + "/") and r.headers["Expires"]
    assert [s["push_resource"] for s in bob.api_ok("GET", "/push/subscriptions")[
        "subscriptions"]] == [phone.resource]
    info = bob.api_ok("GET", "/push/book?path=/bob/contacts/")

    healthy.clear()
    assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code in (201, 204)
    got = wait_until(lambda: healthy.to("/phone"), 30, "the push to Bob's phone")
    check_message(got[0], phone, info, healthy.port)

    # Alice can neither remove Bob's registration nor register on his book
    path = location[len(server.url):]
    assert dav(alice, "DELETE", path).status_code == 404
    assert dav(alice, "POST", "/bob/contacts/", register_body(
        Subscriber(healthy.url("/alice-spy")))).status_code == 403
    anonymous = requests.delete(location)
    assert anonymous.status_code == 401
    assert len(bob.api_ok("GET", "/push/subscriptions")["subscriptions"]) == 1

    assert dav(bob, "DELETE", path).status_code == 204
    assert bob.api_ok("GET", "/push/subscriptions")["subscriptions"] == []
    assert dav(bob, "DELETE", path).status_code == 404
    healthy.clear()
    assert alice.put("alice.vcf", fixture("alice-me.vcf")).status_code in (201, 204)
    time.sleep(3)
    assert healthy.to("/phone") == [] and healthy.to("/alice-spy") == []


def precondition(r: requests.Response) -> tuple[int, set[str], str]:
    """(status, the draft's precondition elements, the reason) of a refused registration."""
    root = ET.fromstring(r.content)
    assert root.tag == "{DAV:}error", r.text
    return r.status_code, {e.tag[len(P):] for e in root if e.tag.startswith(P)}, \
        root.findtext("{DAV:}responsedescription") or ""


@pytest.mark.parametrize("body, says", [
    (b"<push-register xmlns='%s'/>" % NS.encode(), "subscription"),
    (b"<push-register xmlns='%s'><subscription><web-push-subscription><push-resource>"
     b"https://x.example/p</push-resource></web-push-subscription></subscription>"
     b"</push-register>" % NS.encode(), "public-key"),
    (b"<push-register xmlns='%s'><subscription><other-subscription/></subscription>"
     b"</push-register>" % NS.encode(), "Web Push transport only"),
])
def test_a_broken_subscription_is_a_403_invalid_subscription_that_says_what_is_wrong(
        pair, body, says):
    server, alice, bob = pair
    status, conditions, why = precondition(dav(bob, "POST", "/bob/contacts/", body))
    assert (status, conditions) == (403, {"invalid-subscription"}) and says in why, why
    assert bob.api_ok("GET", "/push/subscriptions")["subscriptions"] == []


@pytest.mark.parametrize("body, says", [
    (b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><push-register xmlns='%s'/>"
     % NS.encode(), b"DTD"),
    (b"<push-register xmlns='%s'><subscription>" % NS.encode(), b"not well-formed"),
])
def test_a_registration_that_is_no_xml_is_a_400_that_says_so(pair, body, says):
    server, alice, bob = pair
    r = dav(bob, "POST", "/bob/contacts/", body)
    assert r.status_code == 400 and says.lower() in r.content.lower(), r.text
    assert bob.api_ok("GET", "/push/subscriptions")["subscriptions"] == []


def test_only_unsupported_triggers_are_a_403_no_supported_trigger(pair, services):
    server, alice, bob = pair
    phone = Subscriber(services[0].url("/props"))
    only_properties = ('<trigger><property-update><depth xmlns="DAV:">0</depth>'
                       '</property-update></trigger>')
    status, conditions, why = precondition(dav(bob, "POST", "/bob/contacts/", register_body(
        phone, extra=only_properties)))
    # the draft's prose says no-supported-trigger, its schema no-trigger-supported: both
    assert status == 403 and "no-supported-trigger" in conditions, conditions
    assert "no-trigger-supported" in conditions and "content updates" in why
    assert bob.api_ok("GET", "/push/subscriptions")["subscriptions"] == []
    # content updates among them: registered (the rest is ignored, as the draft says)
    both = ('<trigger><content-update><depth xmlns="DAV:">1</depth></content-update>'
            '<property-update><depth xmlns="DAV:">0</depth></property-update></trigger>')
    assert dav(bob, "POST", "/bob/contacts/", register_body(phone, extra=both)
               ).status_code == 201


def test_a_registration_on_another_users_book_is_a_403_push_not_available(pair, services):
    server, alice, bob = pair
    spy = Subscriber(services[0].url("/alice-spy"))
    for path in ("/bob/contacts/", "/bob/nosuchbook/"):  # existing or not: the same answer
        status, conditions, why = precondition(dav(alice, "POST", path, register_body(spy)))
        assert (status, conditions) == (403, {"push-not-available"}), why
        assert "your own address books" in why
    # on one's home (no book): push is not offered there
    status, conditions, _ = precondition(dav(alice, "POST", "/alice/", register_body(spy)))
    assert (status, conditions) == (403, {"push-not-available"})
    assert bob.api_ok("GET", "/push/subscriptions")["subscriptions"] == []
    assert alice.api_ok("GET", "/push/subscriptions")["subscriptions"] == []
    # the positive control: on her own book it registers
    assert dav(alice, "POST", "/alice/contacts/", register_body(spy)).status_code == 201


def test_registrations_to_push_services_the_admin_did_not_allow_are_refused(pair):
    server, alice, bob = pair
    for resource in ("https://push.evil.example/x", "http://10.1.2.3/x",
                     "https://127.0.0.1:1/x", "file:///etc/passwd"):
        r = dav(bob, "POST", "/bob/contacts/", register_body(Subscriber(resource)))
        assert precondition(r)[:2] == (403, {"invalid-subscription"}), (resource, r.text)
    assert bob.api_ok("GET", "/push/subscriptions")["subscriptions"] == []


def test_a_form_on_another_site_cannot_register(pair, services):
    """A cross-site HTML form can send text/plain only, and says where it comes from."""
    server, alice, bob = pair
    body = register_body(Subscriber(services[0].url("/csrf")))
    r = dav(bob, "POST", "/bob/contacts/", body, **{"Content-Type": "text/plain"})
    assert r.status_code >= 400
    r = dav(bob, "POST", "/bob/contacts/", body, Origin="https://evil.example")
    assert r.status_code == 403
    assert bob.api_ok("GET", "/push/subscriptions")["subscriptions"] == []


# -- the draft's details, on a server with the shipped defaults -------------------------------

@pytest.fixture
def phones(tmp_path, services) -> Iterator[tuple[RadicaleServer, Client, PushService]]:
    """Bob alone on a server with the shipped defaults and no gateways.  Loosened for push
    only: the test's push service on 127.0.0.1 is allowed (the test-only option), as a real
    server allows the public push services by default."""
    healthy = services[0]
    server = RadicaleServer(tmp_path, USERS, mecard_smtp_host="", mecard_sms_command="",
                            mecard_push_services="127.0.0.1:%d" % healthy.port,
                            mecard_push_allow_insecure_loopback="True").start()
    try:
        bob = server.client("bob")
        bob.login()
        yield server, bob, healthy
    finally:
        server.stop()


def registered(server: RadicaleServer, client: Client, subscriber: Subscriber,
               book: str = "") -> str:
    """Register through DAV as DAVx5 does; the registration URL (Location)."""
    r = dav(client, "POST", book or client.book(), register_body(subscriber))
    assert r.status_code == 201, r.text
    return r.headers["Location"]


def message_token(received: Received, subscriber: Subscriber) -> str | None:
    message = ET.fromstring(subscriber.decrypt(received.body))
    return message.findtext("%scontent-update/{DAV:}sync-token" % P)


CARD = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:%s\r\nFN:%s\r\nTEL:+1 202 555 01%02d\r\n"
        "END:VCARD\r\n")


def test_the_phone_that_made_the_change_is_not_pushed(phones):
    server, bob, service = phones
    phone, tablet = Subscriber(service.url("/phone")), Subscriber(service.url("/tablet"))
    at_phone, at_tablet = registered(server, bob, phone), registered(server, bob, tablet)
    changes = iter(range(1, 99))

    def change(**headers: str) -> None:
        time.sleep(1)  # past the coalescing window of the last change
        service.clear()
        n = next(changes)
        assert bob.put("c%d.vcf" % n, CARD % ("c%d" % n, "Carl %d" % n, n),
                       **headers).status_code == 201

    # the phone saves a card and names its own registration: only the tablet hears of it
    change(**{"Push-Dont-Notify": '"%s"' % at_phone})
    wait_until(lambda: service.to("/tablet"), 15, "the push to the tablet")
    time.sleep(1.5)
    assert service.to("/phone") == []
    # both named (one header line each, as the draft allows), or "*": nobody is told
    for value in ('"%s", "%s"' % (at_phone, at_tablet), "*"):
        change(**{"Push-Dont-Notify": value})
        time.sleep(2)
        assert service.received == [], value
    # a DELETE is a change like any other
    time.sleep(1)
    service.clear()
    r = bob.http.delete(bob.url + bob.book() + "c1.vcf",
                        headers={"Push-Dont-Notify": '"%s"' % at_tablet})
    assert r.status_code in (200, 204)
    wait_until(lambda: service.to("/phone"), 15, "the push to the phone")
    time.sleep(1.5)
    assert service.to("/tablet") == []
    # invalid values are ignored (the draft says so), unknown registrations name nobody
    for value in ("garbage", '"https://elsewhere.example/.web/mecard/push/nosuch"'):
        change(**{"Push-Dont-Notify": value})
        wait_until(lambda: service.to("/phone") and service.to("/tablet"), 15, value)
    # the positive control: without the header, both are told
    change()
    wait_until(lambda: service.to("/phone") and service.to("/tablet"), 15, "both pushes")


def test_a_message_carries_the_books_sync_token(phones):
    server, bob, service = phones
    phone = Subscriber(service.url("/phone"))
    registered(server, bob, phone)
    before, _ = bob.sync()
    for n in (1, 2):
        time.sleep(1)
        service.clear()
        assert bob.put("c%d.vcf" % n, CARD % ("c%d" % n, "Carl", n)).status_code == 201
        got = wait_until(lambda: service.to("/phone"), 15, "the push")
        token = message_token(got[-1], phone)
        now, changed = bob.sync(before)
        # the token of the book as it is after the change: a phone that synced it skips it
        assert token == now and token != before and changed == ["c%d.vcf" % n]
        assert bob.sync(token) == (token, [])
        before = token


def test_unsent_messages_survive_a_restart(phones):
    server, bob, service = phones
    phone = Subscriber(service.url("/phone"))
    registered(server, bob, phone)
    service.status["/phone"] = 503  # the push service is down: the server retries later
    assert bob.put("c1.vcf", CARD % ("c1", "Carl", 1)).status_code == 201
    wait_until(lambda: service.to("/phone"), 15, "the first attempt")
    server.kill()  # kill -9 while the message waits for its retry
    service.clear()
    service.status["/phone"] = 201
    server.start()
    got = wait_until(lambda: service.to("/phone"), 30, "the message after the restart")
    token, _ = bob.sync()
    assert message_token(got[0], phone) == token
    assert "message(s) not sent before the restart" in server.log.read_text(errors="replace")
    time.sleep(3)
    assert len(service.to("/phone")) == 1  # sent once, then forgotten


def test_a_deleted_books_subscriptions_go_with_it(phones):
    server, bob, service = phones
    bob.mkbook("work")
    phone, other = Subscriber(service.url("/work-phone")), Subscriber(service.url("/other"))
    location = registered(server, bob, phone, "/bob/work/")
    registered(server, bob, other)  # on bob's contacts: it stays
    topic = push_properties(bob, "/bob/work/")[P + "topic"].text
    service.clear()
    assert bob.http.delete(bob.url + "/bob/work/").status_code in (200, 204)
    # the removal is a content update: one last message, then nothing
    got = wait_until(lambda: service.to("/work-phone"), 15, "the last message")
    message = ET.fromstring(phone.decrypt(got[0].body))
    assert message.findtext(P + "topic") == topic
    assert [s["book"] for s in bob.api_ok("GET", "/push/subscriptions")["subscriptions"]] == [
        "/bob/contacts/"]
    assert dav(bob, "DELETE", location[len(server.url):]).status_code == 404
    # a new book of the same name is a new book: a new topic, no subscribers
    bob.mkbook("work")
    assert push_properties(bob, "/bob/work/")[P + "topic"].text != topic
    time.sleep(1)
    service.clear()
    assert bob.put("w.vcf", CARD % ("w", "Wendy", 3), book="work").status_code == 201
    time.sleep(2)
    assert service.to("/work-phone") == []
    # the positive control: the other book's phone still hears of its changes
    assert bob.put("c.vcf", CARD % ("c", "Carl", 4)).status_code == 201
    wait_until(lambda: service.to("/other"), 15, "the push for contacts")


def test_the_dav_header_says_webdav_push_only_when_push_is_on(tmp_path, phones):
    server, bob, service = phones
    assert "webdav-push" in bob.http.options(server.url + "/bob/contacts/").headers["DAV"]
    (tmp_path / "off").mkdir()
    off = RadicaleServer(tmp_path / "off", USERS, mecard_smtp_host="", mecard_sms_command="",
                         mecard_push_services="")
    off.start()
    try:
        carol = off.client("carol")
        carol.login()
        for r in (carol.http.options(off.url + "/carol/contacts/"),
                  dav(carol, "PROPFIND", "/carol/contacts/", FIND_PUSH, Depth="0")):
            assert "webdav-push" not in r.headers.get("DAV", ""), r.headers
            assert "addressbook" in r.headers.get("DAV", "")
        assert P + "topic" not in push_properties(carol, "/carol/contacts/")
        status, conditions, why = precondition(dav(carol, "POST", "/carol/contacts/",
                                                   register_body(Subscriber(
                                                       service.url("/x")))))
        assert (status, conditions) == (403, {"push-not-available"}) and "no WebDAV-Push" in why
    finally:
        off.stop()
