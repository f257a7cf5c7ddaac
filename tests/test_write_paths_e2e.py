# SPDX-License-Identifier: GPL-3.0-or-later
"""Every write path that can change a me card: whole-book PUT, MOVE, DELETE."""
from __future__ import annotations

from tests.server import fixture, settled
from tests.test_fanout_e2e import trio  # noqa: F401  (fixture)


def test_whole_book_put_of_the_owners_book_fans_out(trio, server):
    alice, bob, _ = trio
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    book = "".join(fixture(f) for f in ("alice-me-new-number.vcf", "alice-contact-bob.vcf"))
    r = alice.http.put(server.url + "/alice/contacts/", data=book.encode(),
                       headers={"Content-Type": "text/vcard"})
    assert r.status_code in (201, 204), r.text
    settled(alice)
    assert "+1 202 555 0199" in bob.card("ally.vcf")
    # the me card was found again by its UID in the rewritten book
    assert alice.api_ok("GET", "/me")["me_card"].startswith("/alice/contacts/")


def test_moved_me_card_is_followed_and_still_shared(trio, server):
    alice, bob, _ = trio
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    r = alice.http.request("MOVE", server.url + "/alice/contacts/alice.vcf",
                           headers={"Destination": server.url + "/alice/contacts/me.vcf"})
    assert r.status_code in (201, 204), r.text
    assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/me.vcf"
    alice.put("me.vcf", fixture("alice-me-new-number.vcf"))
    settled(alice)
    assert "+1 202 555 0199" in bob.card("ally.vcf")


def test_deleting_the_me_card_stops_updates_and_keeps_copies(trio):
    alice, bob, _ = trio
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    copy = bob.card("ally.vcf")
    assert alice.http.delete(alice.url + "/alice/contacts/alice.vcf").status_code in (200, 204)
    assert alice.api_ok("GET", "/me")["me_card"] is None
    alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))  # an ordinary card now
    report = settled(alice)
    assert bob.card("ally.vcf") == copy
    assert {r["user"]: r["state"] for r in report["recipients"]}["bob"] in ("delivered", "stopped")


def test_removing_a_target_stops_updates_and_keeps_the_copy(trio):
    alice, bob, _ = trio
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    alice.api_ok("POST", "/targets", {"remove": ["user:bob"]})
    copy = bob.card("ally.vcf")
    alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))
    report = settled(alice)
    assert bob.card("ally.vcf") == copy
    assert report["recipients"][0]["state"] == "stopped"
