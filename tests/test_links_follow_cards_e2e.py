# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: a link belongs to the card, and a card holding a copy is never a me card.

Issue 17 §2: Bob deleted Alice's copy and later stored "Mom" at the same href;
Alice's next change merged her numbers into Mom.  Now the link ends with the
card — deleted, overwritten by a MOVE, given another UID, or replaced while
the server was stopped — Alice's state says Bob removed the copy, and her next
change makes a new card or an offer as Bob's policy says, never a write into
whatever sits at that href.

Issue 13 §8: Bob could re-publish what Alice shared with him only, by making
her copy his me card through another book, a UID and a MOVE.  Every path is
refused here (MOVE, PUT with the copy's UID, COPY, designation through the API
and Apple's PROPPATCH), each with its positive control: a copy moved within
Bob's own books keeps its link, and Bob's real me card still reaches Carol.

Every server here has the shipped defaults (policy ``ask``, discoverability
``contacts``, nobody pre-authorised).  Where a test needs ``auto`` it comes
from a recipient's own answer (accepting an offer) or policy, as it would.
"""
from __future__ import annotations

import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.server import Client, RadicaleServer, fixture, settled, wait_until
from tests.test_apple_my_card_e2e import apple_patch, me_card_href, proppatch, statuses
from tests.test_fanout_e2e import person

ALLY = fixture("bob-contact-alice.vcf").replace("TEL;TYPE=CELL:(202) 555-0101\r\n", "")
ALICE_NEW = fixture("alice-me-new-number.vcf")
NEW_NUMBER = "+1 202 555 0199"
REMOVED = "the recipient removed your card from their address book"
CS_ME = "{http://calendarserver.org/ns/}me-card"


def vcard(uid: str, fn: str, *lines: str) -> str:
    return "\r\n".join(("BEGIN:VCARD", "VERSION:3.0", "UID:" + uid, "FN:" + fn,
                        "N:;%s;;;" % fn, *lines, "END:VCARD", ""))


MOM = vcard("moms-uid", "Mom", "TEL;TYPE=HOME:+1 202 555 0404", "NOTE:call on Sundays")


def uid_of(text: str) -> str:
    found = re.search(r"^UID:(.*?)\r?$", text, re.M)
    assert found, text
    return found.group(1)


def links(client: Client) -> dict[str, str]:
    return {k["owner"]: k["card"] for k in client.api_ok("GET", "/links")["links"]}


def row(owner: Client, user: str) -> dict:
    return {r["user"]: r for r in owner.api_ok("GET", "/targets")["recipients"]}[user]


def offers(client: Client) -> dict[str, dict]:
    return {o["owner"]: o for o in client.api_ok("GET", "/offers")["offers"]}


def move(client: Client, source: str, destination: str, overwrite: bool = True
         ) -> requests.Response:
    return client.http.request("MOVE", client.url + source, headers={
        "Destination": client.url + destination, "Overwrite": "T" if overwrite else "F"})


def delete(client: Client, path: str) -> None:
    assert client.http.delete(client.url + path).status_code in (200, 204)


def folder(server: RadicaleServer, book: str) -> Path:
    return server.root / "collections" / "collection-root" / book


def accepted(server: RadicaleServer, once: bool = False) -> tuple[Client, Client]:
    """Alice shares with Bob, who keeps a card "Ally" for her and accepts her offer (from now
    on: his policy for her becomes ``auto``; ``once``: it stays the shipped ``ask``)."""
    alice = person(server, "alice", "alice-me.vcf")
    bob = person(server, "bob", "bob-me.vcf")
    assert bob.put("ally.vcf", ALLY).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    bob.api_ok("POST", "/offers/alice/accept", {"once": once})
    assert links(bob) == {"alice": "/bob/contacts/ally.vcf"}
    assert row(alice, "bob")["state"] == "delivered"
    return alice, bob


def alice_changes(alice: Client) -> None:
    assert alice.put("alice.vcf", ALICE_NEW).status_code == 204
    settled(alice)


def assert_mom_untouched(bob: Client, href: str = "ally.vcf") -> None:
    mom = bob.card(href)
    assert "FN:Mom" in mom and "0404" in mom and "NOTE:call on Sundays" in mom, mom
    assert "0199" not in mom and "0101" not in mom and "alice" not in mom.lower(), mom


def assert_new_card_for_alice(bob: Client, not_at: str) -> None:
    """Alice's change went into a card of its own, linked to her (Bob's policy is auto)."""
    card = links(bob)["alice"]
    assert card != not_at
    assert NEW_NUMBER in bob.card(card.rsplit("/", 1)[1], card.split("/")[2])
    assert row(alice_of(bob), "bob")["state"] == "delivered"


def alice_of(bob: Client) -> Client:
    assert bob.server is not None
    return bob.server.client("alice")


# -- issue 17: the link ends with its card --------------------------------------------

@pytest.mark.parametrize("copy", ["accepted card", "created copy"])
def test_a_deleted_copy_ends_its_link_and_the_card_later_stored_there_is_never_written(
        public_server, copy):
    alice, bob = accepted(public_server)
    href = "ally.vcf"
    if copy == "created copy":
        delete(bob, "/bob/contacts/ally.vcf")  # ends the first link; Bob's policy is auto:
        alice_changes(alice)                   # her next change is a card of its own
        href = links(bob)["alice"].rsplit("/", 1)[1]
        assert href != "ally.vcf" and NEW_NUMBER in bob.card(href)
    delete(bob, "/bob/contacts/" + href)
    # the owner's state says so at once, without any change of hers
    gone = row(alice, "bob")
    assert (gone["state"], gone["reason"]) == ("failed", REMOVED)
    assert "alice" not in links(bob)

    assert bob.put(href, MOM).status_code == 201
    before = set(bob.hrefs())
    alice.put("alice.vcf", ALICE_NEW.replace("FN:Alice Archer", "FN:Alice Archer-Lee"))
    settled(alice)
    assert_mom_untouched(bob, href)
    # Bob accepted her card "from now on" (auto): her change is a card of its own again
    assert_new_card_for_alice(bob, not_at="/bob/contacts/" + href)
    assert len(set(bob.hrefs()) - before) <= 1


def test_under_ask_the_change_after_a_deleted_copy_is_offered_or_nothing(public_server):
    alice, bob = accepted(public_server, once=True)  # Bob's policy for Alice stays "ask"
    delete(bob, "/bob/contacts/ally.vcf")
    assert bob.put("ally.vcf", MOM).status_code == 201
    alice_changes(alice)
    assert_mom_untouched(bob)
    # Bob's books hold no key of hers any more: she may not find him, let alone make an
    # offer (nothing happens, and her report says why)
    state = row(alice, "bob")
    assert state["state"] in ("stopped", "failed") and state["reason"], state
    assert offers(bob) == {} and links(bob) == {}
    # positive control: once he keeps a card for her again, her next change is offered
    # for that card, and Mom stays Mom
    assert bob.put("ally-again.vcf", ALLY.replace("bobs-card-for-alice", "again")
                   ).status_code == 201
    assert alice.put("alice.vcf", fixture("alice-me.vcf")).status_code == 204
    settled(alice)
    offer = offers(bob)["alice"]
    assert offer["card"]["path"] == "/bob/contacts/ally-again.vcf"
    bob.api_ok("POST", "/offers/alice/accept", {})
    assert "0101" in bob.card("ally-again.vcf")
    assert_mom_untouched(bob)


def test_a_move_over_the_copy_ends_its_link(public_server):
    alice, bob = accepted(public_server)
    bob.mkbook("family")
    # Radicale lets a MOVE overwrite only a card with the same UID
    mom = MOM.replace("moms-uid", uid_of(bob.card("ally.vcf")))
    assert bob.put("mom.vcf", mom, "family").status_code == 201
    assert move(bob, "/bob/family/mom.vcf", "/bob/contacts/ally.vcf").status_code == 204
    gone = row(alice, "bob")
    assert (gone["state"], gone["reason"]) == ("failed", REMOVED)
    alice_changes(alice)
    assert "Mom" in bob.card("ally.vcf") and "0199" not in bob.card("ally.vcf")
    assert_new_card_for_alice(bob, not_at="/bob/contacts/ally.vcf")


@pytest.mark.parametrize("kept", [False, True])
def test_a_put_that_changes_the_copys_uid_ends_its_link(public_server, kept):
    alice, bob = accepted(public_server)
    # one card: stock Radicale itself refuses a PUT that changes an existing card's UID
    assert bob.put("ally.vcf", MOM).status_code == 409
    assert links(bob) == {"alice": "/bob/contacts/ally.vcf"}
    # a whole book: the link follows the card with the copy's UID wherever it now is
    # (positive control), or ends if no card has it
    cards = [bob.card("bob.vcf"), MOM] + ([bob.card("ally.vcf")] if kept else [])
    r = bob.http.put(bob.url + "/bob/contacts/", data="".join(cards).encode(),
                     headers={"Content-Type": "text/vcard"})
    assert r.status_code in (201, 204), r.text
    assert bob.api_ok("GET", "/me")["me_card"] is not None
    if kept:
        href = links(bob)["alice"].rsplit("/", 1)[1]
        assert "FN:Ally" in bob.card(href) and row(alice, "bob")["state"] == "delivered"
        alice_changes(alice)
        assert NEW_NUMBER in bob.card(href) and "NICKNAME:Sis" in bob.card(href)
        return
    gone = row(alice, "bob")
    assert (gone["state"], gone["reason"]) == ("failed", REMOVED)
    moms = next(h for h in bob.hrefs() if "FN:Mom" in bob.card(h))
    alice_changes(alice)
    assert_mom_untouched(bob, moms)
    assert_new_card_for_alice(bob, not_at="/bob/contacts/" + moms)


def test_an_edit_of_the_copy_keeps_its_link(public_server):
    """Positive control: Bob's own edit of the copy (same UID) is his, and the link stays."""
    alice, bob = accepted(public_server)
    edited = bob.card("ally.vcf").replace("NOTE:met at the climbing gym", "NOTE:new gym")
    assert bob.put("ally.vcf", edited).status_code == 204
    assert links(bob) == {"alice": "/bob/contacts/ally.vcf"}
    alice_changes(alice)
    copy = bob.card("ally.vcf")
    assert NEW_NUMBER in copy and "NOTE:new gym" in copy


def test_a_copy_deleted_or_replaced_while_the_server_was_stopped_ends_its_link(
        public_server):
    alice, bob = accepted(public_server)
    carol = person(public_server, "carol", "carol-me.vcf")
    carol.api_ok("POST", "/policies", {"owner": "alice", "policy": "auto"})  # carol's choice
    alice.api_ok("POST", "/targets", {"targets": ["user:bob", "user:carol"]})
    alice.put("alice.vcf", fixture("alice-me.vcf").replace("Alice Archer", "Alice A."))
    settled(alice)
    carols = links(carol)["alice"].rsplit("/", 1)[1]

    public_server.stop(sink=False)
    # replaced (as a restore or a sync tool would: a new file renamed over it), and deleted
    mom = folder(public_server, "bob/contacts") / ".mom.tmp"
    mom.write_text(MOM)
    mom.replace(folder(public_server, "bob/contacts") / "ally.vcf")
    (folder(public_server, "carol/contacts") / carols).unlink()
    public_server.start()

    wait_until(lambda: all(row(alice, u)["reason"] == REMOVED for u in ("bob", "carol")),
               what="the links of cards changed while the server was stopped to end")
    assert links(bob) == {} and links(carol) == {}
    alice_changes(alice)
    assert_mom_untouched(bob)
    assert_new_card_for_alice(bob, not_at="/bob/contacts/ally.vcf")
    assert NEW_NUMBER in carol.card(links(carol)["alice"].rsplit("/", 1)[1])


def test_a_copy_moved_within_the_recipients_books_keeps_its_link(public_server):
    """Positive control: links follow MOVEs within the recipient's own books."""
    alice, bob = accepted(public_server)
    bob.mkbook("family")
    assert move(bob, "/bob/contacts/ally.vcf", "/bob/family/sis.vcf").status_code == 201
    assert links(bob) == {"alice": "/bob/family/sis.vcf"}
    assert row(alice, "bob")["state"] == "delivered"
    alice_changes(alice)
    assert NEW_NUMBER in bob.card("sis.vcf", "family")
    assert bob.hrefs() == ["bob.vcf"]  # no second card for her


def test_copies_moved_while_the_fan_out_writes_keep_their_links(tmp_path):
    """A MOVE renames the file before its hook moves the link: the fan-out, which reads
    cards without the lock, must not take that moment for a deleted copy (it once ended
    the link, and the moved card was never written again)."""
    recipients = ["r%d" % i for i in range(8)]
    # small rounds, a gap after each rename: the fan-out reads while the MOVEs go on
    server = RadicaleServer(tmp_path, {"alice": "alice-pw", **{u: u + "-pw" for u in recipients}},
                            mecard_batch_size="2", mecard_lock_hold="0",
                            mecard_lock_gap="0.01").start()
    try:
        alice = person(server, "alice", "alice-me.vcf")
        clients = {u: person(server, u) for u in recipients}
        for client in clients.values():  # each recipient's own choice
            client.api_ok("POST", "/policies", {"owner": "alice", "policy": "auto"})
        alice.api_ok("POST", "/targets", {"targets": ["user:" + u for u in recipients]})
        settled(alice)
        where = {u: links(c)["alice"] for u, c in clients.items()}

        def move_back_and_forth(user: str) -> None:
            client = clients[user]
            for _ in range(6):
                to = client.book() + ("a.vcf" if where[user].endswith("/b.vcf") else "b.vcf")
                assert move(client, where[user], to).status_code == 201
                where[user] = to
                time.sleep(random.uniform(0, 0.02))

        for round_ in range(4):
            number = "+1 202 555 %04d" % (300 + round_)
            with ThreadPoolExecutor(len(recipients)) as pool:  # .result() re-raises
                jobs = [pool.submit(move_back_and_forth, u) for u in recipients]
                assert alice.put("alice.vcf", fixture("alice-me.vcf").replace(
                    "+1 202 555 0101", number)).status_code == 204
                for job in jobs:
                    job.result(120)
            settled(alice)
            for user, client in clients.items():
                assert links(client) == {"alice": where[user]}, (round_, user)
                assert client.hrefs() == [where[user].rsplit("/", 1)[1]], (round_, user)
                assert number in client.card(where[user].rsplit("/", 1)[1]), (round_, user)
                assert row(alice, user)["state"] == "delivered", (round_, user)
    finally:
        server.stop()


# -- issue 13 §8: a copy is never a me card -----------------------------------------------

@pytest.fixture
def republishing(public_server) -> tuple[Client, Client, Client]:
    """Alice shares with Bob only; Bob shares his own me card with Carol, who keeps a card
    for him and takes his changes as they come (her own policy)."""
    alice, bob = accepted(public_server)
    carol = person(public_server, "carol", "carol-me.vcf")
    assert carol.put("bobby.vcf", vcard("bobby", "Bobby", "TEL:+1 202 555 0102")
                     ).status_code == 201
    carol.api_ok("POST", "/policies", {"owner": "bob", "policy": "auto"})
    bob.api_ok("POST", "/targets", {"targets": ["user:carol"]})
    settled(bob)
    assert "bob@example.org" in carol.card(links(carol)["bob"].rsplit("/", 1)[1]).lower()
    bob.mkbook("second")
    return alice, bob, carol


def assert_not_republished(alice: Client, bob: Client, carol: Client) -> None:
    """Carol's copy of Bob holds Bob's own values, nothing of Alice's; Alice's copy stays
    linked to Bob's card for her and her next change still arrives there (control)."""
    settled(bob)
    copy = carol.card(links(carol)["bob"].rsplit("/", 1)[1])
    assert "0102" in copy and "alice" not in copy.lower() and "Ally" not in copy
    assert links(bob)["alice"] == "/bob/contacts/ally.vcf"
    alice_changes(alice)
    assert NEW_NUMBER in bob.card("ally.vcf")
    settled(bob)
    assert "0199" not in carol.card(links(carol)["bob"].rsplit("/", 1)[1])


def test_a_me_card_cannot_take_the_uid_of_a_copy(republishing):
    """The attack's first step: a me card in another book with the copy's UID."""
    alice, bob, carol = republishing
    uid = uid_of(bob.card("ally.vcf"))
    assert bob.put("me.vcf", vcard(uid, "Bob Baker", "TEL:+1 202 555 0102"),
                   "second").status_code == 201
    # designation through the API and through Apple's PROPPATCH
    r = bob.api("POST", "/me-card", {"path": "/bob/second/me.vcf"})
    assert r.status_code == 409 and "alice" in r.json()["error"], r.text
    r = proppatch(bob.url + "/bob/", "bob", apple_patch("/bob/second/me.vcf"))
    status, why = statuses(r)[CS_ME]
    assert " 409 " in status and "alice" in why
    assert bob.api_ok("GET", "/me")["me_card"] == "/bob/contacts/bob.vcf"
    # nor can the real me card be given that UID by a PUT (stock Radicale refuses any PUT
    # that changes a card's UID; a MOVE onto a me card is refused by the plugin, see below)
    r = bob.put("bob.vcf", vcard(uid, "Bob Baker", "TEL:+1 202 555 0102"))
    assert r.status_code == 409, (r.status_code, r.text)
    assert uid_of(bob.card("bob.vcf")) == "bob-me"
    # positive control: a deliberate me card in the second book is designated and fans out
    assert bob.put("real.vcf", vcard("bob-2", "Bob Baker", "TEL:+1 202 555 0102",
                                     "EMAIL:bob.second@example.org"), "second").status_code == 201
    bob.api_ok("POST", "/me-card", {"path": "/bob/second/real.vcf"})
    settled(bob)
    assert "bob.second@example.org" in carol.card(links(carol)["bob"].rsplit("/", 1)[1])
    assert_not_republished(alice, bob, carol)


def test_a_copy_cannot_be_moved_onto_a_me_card(public_server):
    """The MOVE itself: a me card made with the copy's UID before the copy was linked."""
    alice = person(public_server, "alice", "alice-me.vcf")
    bob = person(public_server, "bob")
    bob.mkbook("second")
    assert bob.put("ally.vcf", ALLY).status_code == 201
    me = vcard("bobs-card-for-alice", "Bob Baker", "TEL:+1 202 555 0102")
    assert bob.put("me.vcf", me, "second").status_code == 201
    bob.api_ok("POST", "/me-card", {"path": "/bob/second/me.vcf"})
    bob.verify_me_card()
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    bob.api_ok("POST", "/offers/alice/accept", {})
    assert links(bob) == {"alice": "/bob/contacts/ally.vcf"}

    r = move(bob, "/bob/contacts/ally.vcf", "/bob/second/me.vcf")
    assert r.status_code == 400 and "alice" in r.text, (r.status_code, r.text)
    assert "Bob Baker" in bob.card("me.vcf", "second") and "0101" in bob.card("ally.vcf")
    assert links(bob) == {"alice": "/bob/contacts/ally.vcf"}
    assert me_card_href(bob.url + "/bob/", "bob") == "/bob/second/me.vcf"
    # Radicale has no COPY: it answers 405 and nothing is written anywhere
    r = bob.http.request("COPY", bob.url + "/bob/contacts/ally.vcf",
                         headers={"Destination": bob.url + "/bob/second/copy.vcf"})
    assert r.status_code == 405, (r.status_code, r.text)
    assert bob.hrefs("second") == ["me.vcf"]
    # positive control: her changes still reach the copy where it is
    alice_changes(alice)
    assert NEW_NUMBER in bob.card("ally.vcf")
    assert "0199" not in bob.card("me.vcf", "second")


def test_a_linked_card_cannot_be_designated(republishing):
    alice, bob, carol = republishing
    r = bob.api("POST", "/me-card", {"path": "/bob/contacts/ally.vcf"})
    assert r.status_code == 409 and "alice" in r.json()["error"], r.text
    status, why = statuses(proppatch(bob.url + "/bob/", "bob",
                                     apple_patch("/bob/contacts/ally.vcf")))[CS_ME]
    assert " 409 " in status and "alice" in why
    # moved into the second book first: still the copy, still refused
    assert move(bob, "/bob/contacts/ally.vcf", "/bob/second/ally.vcf").status_code == 201
    r = bob.api("POST", "/me-card", {"path": "/bob/second/ally.vcf"})
    assert r.status_code == 409, r.text
    assert bob.api_ok("GET", "/me")["me_card"] == "/bob/contacts/bob.vcf"
    assert move(bob, "/bob/second/ally.vcf", "/bob/contacts/ally.vcf").status_code == 201
    assert_not_republished(alice, bob, carol)


def test_a_me_card_where_the_server_would_create_a_copy_is_never_written(public_server):
    """A me card at the href a new copy would get (it can be computed) stays Bob's own:
    the copy goes to a card of its own, and the me card is never linked."""
    from radicale_plugin.vcard.merge import copy_uid
    alice = person(public_server, "alice", "alice-me.vcf")
    bob = person(public_server, "bob")
    carol = person(public_server, "carol", "carol-me.vcf")
    href = copy_uid("alice", "bob") + ".vcf"
    assert bob.put(href, vcard("bob-me", "Bob Baker", "TEL:+1 202 555 0102")).status_code == 201
    bob.api_ok("POST", "/me-card", {"path": "/bob/contacts/" + href})
    bob.verify_me_card()
    assert bob.put("ally.vcf", ALLY).status_code == 201  # so that Alice may offer at all
    carol.api_ok("POST", "/policies", {"owner": "bob", "policy": "auto"})  # carol's choice
    bob.api_ok("POST", "/targets", {"targets": ["user:carol"]})
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    bob.api_ok("POST", "/offers/alice/accept", {"card": "new"})
    card = links(bob)["alice"]
    assert card not in ("/bob/contacts/" + href, "/bob/contacts/ally.vcf")
    assert bob.api_ok("GET", "/me")["me_card"] == "/bob/contacts/" + href
    assert "alice" not in bob.card(href).lower() and "0101" not in bob.card(href)
    alice_changes(alice)
    assert NEW_NUMBER in bob.card(card.rsplit("/", 1)[1])
    settled(bob)
    copy = carol.card(links(carol)["bob"].rsplit("/", 1)[1])
    assert "0102" in copy and "alice" not in copy.lower()


# -- issue 13 §7: a MOVEd me card keeps Apple's My Card pointing at it --------------------

def test_a_moved_me_card_keeps_my_card_pointing_at_it(public_server):
    bob = person(public_server, "bob", "bob-me.vcf")
    carol = person(public_server, "carol", "carol-me.vcf")
    carol.api_ok("POST", "/policies", {"owner": "bob", "policy": "auto"})  # carol's choice
    bob.api_ok("POST", "/targets", {"targets": ["user:carol"]})
    settled(bob)
    assert me_card_href(bob.url + "/bob/", "bob") == "/bob/contacts/bob.vcf"
    bob.mkbook("second")
    assert move(bob, "/bob/contacts/bob.vcf", "/bob/second/me.vcf").status_code == 201
    assert me_card_href(bob.url + "/bob/", "bob") == "/bob/second/me.vcf"
    assert bob.api_ok("GET", "/me")["me_card"] == "/bob/second/me.vcf"
    # and the moved me card is still shared
    text = bob.card("me.vcf", "second").replace("Bob Baker", "Robert Baker")
    assert bob.put("me.vcf", text, "second").status_code == 204
    settled(bob)
    assert "Robert Baker" in carol.card(links(carol)["bob"].rsplit("/", 1)[1])
    # moved within its book too
    assert move(bob, "/bob/second/me.vcf", "/bob/second/bob.vcf").status_code == 201
    assert me_card_href(bob.url + "/bob/", "bob") == "/bob/second/bob.vcf"
