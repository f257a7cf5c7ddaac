# SPDX-License-Identifier: GPL-3.0-or-later
"""WebDAV-Push as DAVx5 speaks it, through the WSGI layer: discovery, registration, removal.

The push service and the decryption are those of :mod:`tests.test_push_e2e`;
here every step goes through DAV requests instead of the JSON API.
"""
from __future__ import annotations

import email.utils
import time
import xml.etree.ElementTree as ET
import pytest
import requests

from tests.server import Client, fixture, wait_until
from tests.test_push_e2e import (Subscriber, b64url, check_message, pair,  # noqa: F401
                                 services)

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
        Subscriber(healthy.url("/alice-spy")))).status_code in (403, 404)
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


@pytest.mark.parametrize("body, says", [
    (b"<push-register xmlns='%s'/>" % NS.encode(), b"subscription"),
    (b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><push-register xmlns='%s'/>"
     % NS.encode(), b"DTD"),
    (b"<push-register xmlns='%s'><subscription><web-push-subscription><push-resource>"
     b"https://x.example/p</push-resource></web-push-subscription></subscription>"
     b"</push-register>" % NS.encode(), b"public-key"),
])
def test_a_malformed_registration_is_a_400_that_says_what_is_wrong(pair, body, says):
    server, alice, bob = pair
    r = dav(bob, "POST", "/bob/contacts/", body)
    assert r.status_code == 400 and says.lower() in r.content.lower(), r.text
    assert bob.api_ok("GET", "/push/subscriptions")["subscriptions"] == []


def test_registrations_to_push_services_the_admin_did_not_allow_are_refused(pair):
    server, alice, bob = pair
    for resource in ("https://push.evil.example/x", "http://10.1.2.3/x",
                     "https://127.0.0.1:1/x", "file:///etc/passwd"):
        r = dav(bob, "POST", "/bob/contacts/", register_body(Subscriber(resource)))
        assert 400 <= r.status_code < 500, (resource, r.status_code, r.text)
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
