# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: target rules over an owner's book bigger than one page of the planning.

The fan-out evaluates the owner's rules over the book in pages
(:data:`radicale_plugin.owner.targets.PAGE` contacts at a time, so that a book of
100,000 contacts is never in memory whole): a group card in one page naming a contact in
another, a user found in two pages, and contacts past the first page select exactly as
in a small book.  The book grew while the server was stopped: the start-up check reads
it again in parts (:data:`radicale_plugin.delivery.card_index.PART` cards stored at a
time), and every part is there.  Shipped defaults (policy ``ask``, discoverability
``contacts``): the recipients keep a card for Alice, so she may find them; the copies wait
as offers.
"""
from __future__ import annotations

from pathlib import Path

from radicale_plugin.delivery.card_index import PART
from radicale_plugin.owner.targets import PAGE
from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture, settled, wait_until

DAVE_ME = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:dave-me\r\nFN:Dave Diver\r\nN:Diver;Dave;;;\r\n"
           "TEL;TYPE=CELL:+1 202 555 0104\r\nEND:VCARD\r\n")


def vcard(uid: str, name: str, *lines: str) -> str:
    return "\r\n".join(["BEGIN:VCARD", "VERSION:3.0", "UID:" + uid, "FN:" + name,
                        "N:;%s;;;" % name, *lines, "END:VCARD", ""])


def recipient(server: RadicaleServer, user: str, me_card: str) -> Client:
    """A user with a verified me card who keeps a card for Alice (so she may find them)."""
    client = server.client(user)
    client.login()
    assert client.put("%s.vcf" % user, me_card).status_code == 201
    client.api_ok("POST", "/me-card", {"path": client.book() + "%s.vcf" % user})
    client.verify_me_card()
    assert client.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
    return client


def selected(alice: Client) -> dict[str, list[str]]:
    return {r["user"]: r["reasons"] for r in settled(alice)["recipients"] if r["target"]}


def test_rules_over_a_book_of_several_pages_select_as_over_a_small_one(tmp_path: Path):
    server = RadicaleServer(tmp_path, USERS).start()  # shipped defaults
    try:
        alice = server.client("alice")
        alice.login()
        assert alice.put("alice.vcf", fixture("alice-me.vcf")).status_code == 201
        alice.api_ok("POST", "/me-card", {"path": alice.book() + "alice.vcf"})
        alice.verify_me_card()
        recipient(server, "bob", fixture("bob-me.vcf"))
        recipient(server, "carol", fixture("carol-me.vcf"))
        recipient(server, "dave", DAVE_ME)
        # Alice's book grows behind the server's back (as a restored backup would): the
        # start-up check reads it, pages hold PAGE cards in the order of their names
        server.stop(sink=False)
        book = tmp_path / "collections" / "collection-root" / "alice" / "contacts"
        for i in range(max(PAGE, PART) + 500):  # numbers of nobody here
            (book / ("m%05d.vcf" % i)).write_text(
                vcard("m%d" % i, "Stranger %d" % i, "TEL;TYPE=CELL:+1 303 555 %04d" % i))
        # page 1: Bob and Dave; past it: Carol, Dave again, and the group naming Bob
        (book / "a-bob.vcf").write_text(vcard("c-bob", "Bob", "TEL:202-555-0102"))
        (book / "b-dave.vcf").write_text(vcard("c-dave", "Dave", "TEL:202-555-0104"))
        (book / "n-carol.vcf").write_text(vcard("c-carol", "Carol", "TEL:(202) 555-0103",
                                                "CATEGORIES:Climbing"))
        (book / "y-dave.vcf").write_text(vcard("c-dave-work", "Dave at work",
                                               "TEL:+1 202 555 0104"))
        (book / "z-group.vcf").write_text(vcard("g-climbing", "Climbing", "KIND:group",
                                                "MEMBER:urn:uuid:c-bob"))
        server.start()
        wait_until(lambda: "changed outside the index were read again" in
                   server.log.read_text(), what="the start-up check reading Alice's book")

        # the group card (last page) names Bob (first page); Carol is in it by category
        alice.api_ok("POST", "/targets", {"targets": ["group:Climbing"]})
        assert selected(alice) == {"bob": ["group:Climbing (contact Bob)"],
                                   "carol": ["group:Climbing (contact Carol)"]}

        # every contact: Dave found in two pages is one recipient with both reasons
        alice.api_ok("POST", "/targets", {"targets": ["all"]})
        targets = selected(alice)
        assert sorted(targets) == ["bob", "carol", "dave"]
        assert targets["dave"] == ["all (contact Dave)", "all (contact Dave at work)"]

        # the named user still reaches; the rules over the book still run
        alice.api_ok("POST", "/targets", {"targets": ["user:dave", "group:Climbing"]})
        assert selected(alice) == {"dave": ["user:dave"],
                                   "bob": ["group:Climbing (contact Bob)"],
                                   "carol": ["group:Climbing (contact Carol)"]}
    finally:
        server.stop()
