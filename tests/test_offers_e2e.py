# SPDX-License-Identifier: GPL-3.0-or-later
"""Offers under the shipped default policy (ask): what the recipient sees and each answer.

Bob has a card "Ally" for Alice with her e-mail but not her number; Alice
shares her me card with him, so her number is offered to him as exactly
one added line.  The owner only ever learns a state, never Bob's card.
"""
from __future__ import annotations

import datetime

from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture, settled, wait_until
from tests.test_fanout_e2e import person

ALLY = fixture("bob-contact-alice.vcf").replace("TEL;TYPE=CELL:(202) 555-0101\r\n", "")
NUMBER = "TEL;TYPE=CELL:+1 202 555 0101"
NEW_NUMBER = "TEL;TYPE=CELL:+1 202 555 0199"
ALICE_NEW = fixture("alice-me-new-number.vcf")


def rows(owner: Client) -> dict[str, dict]:
    """The owner's GET /targets by recipient; it never names or shows the recipient's card."""
    r = owner.api("GET", "/targets")
    assert r.status_code == 200, r.text
    for secret in ("Ally", "ally.vcf", "/contacts/", "Sis", "climbing"):
        assert secret not in r.text, "the owner sees %r of the recipient's card" % secret
    return {row["user"]: row for row in r.json()["recipients"]}


def state(owner: Client, recipient: str) -> str:
    return rows(owner)[recipient]["state"]


def offers(client: Client) -> list[dict]:
    return client.api_ok("GET", "/offers")["offers"]


def answer(client: Client, owner: str, action: str, data: dict | None = None):
    return client.api("POST", "/offers/%s/%s" % (owner, action), data or {})


def in_seconds(seconds: float) -> str:
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return when.isoformat(timespec="seconds")


def offered(server: RadicaleServer) -> tuple[Client, Client]:
    """Alice shares with Bob; her number waits for his answer as an offer."""
    assert ALLY != fixture("bob-contact-alice.vcf")
    alice = person(server, "alice", "alice-me.vcf")
    bob = person(server, "bob")
    assert bob.put("ally.vcf", ALLY).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    return alice, bob


def test_change_is_offered_with_exact_before_and_after_and_nothing_is_written(public_server):
    alice, bob = offered(public_server)
    assert state(alice, "bob") == "offered"
    assert "0101" not in bob.card("ally.vcf")
    (offer,) = offers(bob)
    assert offer["owner"] == "alice" and offer["state"] == "pending" and offer["until"] is None
    assert offer["card"] == {"path": "/bob/contacts/ally.vcf", "name": "Ally"}
    assert offer["changes"] == [{"field": "TEL", "before": None, "after": NUMBER}]
    assert {k["key"]: k["verified"] for k in offer["owner_keys"]} == {
        "tel:+12025550101": True, "mailto:alice@example.org": True}
    assert isinstance(offer["seq"], int) and offer["offered"]
    assert bob.api_ok("GET", "/links")["links"] == []


def test_accepting_applies_now_and_the_owners_next_change_is_written_without_asking(
        public_server):
    alice, bob = offered(public_server)
    seq = offers(bob)[0]["seq"]
    result = answer(bob, "alice", "accept", {"seq": seq})
    assert result.status_code == 200, result.text
    assert result.json() == {"owner": "alice", "card": "/bob/contacts/ally.vcf",
                             "policy": "auto"}
    copy = bob.card("ally.vcf")
    for kept in (NUMBER, "alice@example.org", "FN:Ally", "NICKNAME:Sis",
                 "NOTE:met at the climbing gym", "+1 202 555 0777"):
        assert kept in copy
    assert "Main St" not in copy and "private note" not in copy
    assert offers(bob) == []
    (link,) = bob.api_ok("GET", "/links")["links"]
    assert (link["owner"], link["card"], link["made_by"]) == (
        "alice", "/bob/contacts/ally.vcf", "accepted")
    assert bob.api_ok("GET", "/policies")["policies"] == {"alice": "auto"}
    assert state(alice, "bob") == "delivered"

    alice.put("alice.vcf", ALICE_NEW)
    settled(alice)
    assert offers(bob) == []
    copy = bob.card("ally.vcf")
    assert NEW_NUMBER in copy and "0101" not in copy and "NICKNAME:Sis" in copy
    assert state(alice, "bob") == "delivered"


def test_accepting_this_time_only_offers_the_next_change_again(public_server):
    alice, bob = offered(public_server)
    result = answer(bob, "alice", "accept", {"once": True})
    assert result.status_code == 200, result.text
    assert result.json()["policy"] == "ask"
    assert NUMBER in bob.card("ally.vcf")
    assert "alice" not in bob.api_ok("GET", "/policies")["policies"]

    alice.put("alice.vcf", ALICE_NEW)
    settled(alice)
    assert state(alice, "bob") == "offered"
    (offer,) = offers(bob)
    assert offer["card"]["path"] == "/bob/contacts/ally.vcf"
    assert offer["changes"] == [{"field": "TEL", "before": NUMBER, "after": NEW_NUMBER}]
    assert NUMBER in bob.card("ally.vcf") and "0199" not in bob.card("ally.vcf")


def test_accepting_into_another_card_of_mine_moves_the_copy_there(public_server):
    alice, bob = offered(public_server)
    work = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:alice-at-work\r\nFN:Alice at work\r\nEND:VCARD\r\n"
    assert bob.put("work.vcf", work).status_code == 201
    result = answer(bob, "alice", "accept", {"card": "/bob/contacts/work.vcf"})
    assert result.status_code == 200, result.text
    assert result.json()["card"] == "/bob/contacts/work.vcf"
    chosen = bob.card("work.vcf")
    assert NUMBER in chosen and "alice@example.org" in chosen and "FN:Alice at work" in chosen
    assert NUMBER not in bob.card("ally.vcf")
    (link,) = bob.api_ok("GET", "/links")["links"]
    assert (link["card"], link["made_by"]) == ("/bob/contacts/work.vcf", "accepted")
    # the next change goes to the chosen card only
    alice.put("alice.vcf", ALICE_NEW)
    settled(alice)
    assert NEW_NUMBER in bob.card("work.vcf") and "0199" not in bob.card("ally.vcf")


def test_accepting_as_a_new_contact_creates_a_card(public_server):
    alice, bob = offered(public_server)
    ally = bob.card("ally.vcf")
    result = answer(bob, "alice", "accept", {"card": "new"})
    assert result.status_code == 200, result.text
    created = result.json()["card"]
    assert created.startswith("/bob/contacts/") and created != "/bob/contacts/ally.vcf"
    copy = bob.card(created.rsplit("/", 1)[1])
    assert "FN:Alice Archer" in copy and NUMBER in copy and "alice@example.org" in copy
    assert bob.card("ally.vcf") == ally
    assert len(bob.hrefs()) == 2
    (link,) = bob.api_ok("GET", "/links")["links"]
    assert link["card"] == created and link["made_by"] == "created"


def test_accept_refuses_cards_that_cannot_hold_the_owners_copy(public_server):
    alice, bob = offered(public_server)
    # Bob's own me card, a group, and Carol's copy (Bob lets Carol's updates in)
    bob.put("bob.vcf", fixture("bob-me.vcf"))
    bob.api_ok("POST", "/me-card", {"path": "/bob/contacts/bob.vcf"})
    bob.put("group.vcf", "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:g\r\nKIND:group\r\nFN:Friends\r\n"
                         "MEMBER:urn:uuid:bobs-card-for-alice\r\nEND:VCARD\r\n")
    carol = person(public_server, "carol", "carol-me.vcf")
    bob.api_ok("POST", "/policies", {"owner": "carol", "policy": "auto"})
    carol.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(carol)
    carols_copy = "/bob/contacts/" + bob.copy_of("carol")
    before = {href: bob.card(href) for href in bob.hrefs()}
    carols_book = carol.card("carol.vcf")
    seq = offers(bob)[0]["seq"]

    refused = {
        carols_copy: 409,                          # holds another owner's copy
        "/bob/contacts/bob.vcf": 409,              # my own me card
        "/bob/contacts/group.vcf": 409,            # a group
        "/bob/contacts/nobody.vcf": 404,           # no such card
        "/carol/contacts/carol.vcf": 403,          # somebody else's book
        "/bob/../carol/contacts/carol.vcf": 403,   # the same, through ..
    }
    for card, status in refused.items():
        r = answer(bob, "alice", "accept", {"card": card})
        assert r.status_code == status, (card, r.status_code, r.text)
    for bad in ({"seq": seq - 1}, {"seq": seq + 1}):
        r = answer(bob, "alice", "accept", bad)
        assert r.status_code == 409, (bad, r.status_code, r.text)
    for bad in ({"seq": "1"}, {"once": "yes"}, {"card": 7}):
        assert answer(bob, "alice", "accept", bad).status_code == 400, bad

    assert {href: bob.card(href) for href in bob.hrefs()} == before
    assert carol.card("carol.vcf") == carols_book
    assert [o["seq"] for o in offers(bob)] == [seq]
    assert [link["owner"] for link in bob.api_ok("GET", "/links")["links"]] == ["carol"]
    assert "alice" not in bob.api_ok("GET", "/policies")["policies"]
    assert state(alice, "bob") == "offered"
    # nobody can answer an offer made to somebody else, nor one that does not exist
    assert answer(carol, "alice", "accept").status_code == 404
    assert answer(bob, "dave", "accept").status_code == 404
    assert offers(bob) and NUMBER not in bob.card("ally.vcf")


def test_newer_changes_replace_the_offer_and_an_accept_of_the_old_one_is_refused(
        public_server):
    alice, bob = offered(public_server)
    first = offers(bob)[0]["seq"]
    alice.put("alice.vcf", ALICE_NEW)
    alice.put("alice.vcf", fixture("alice-me.vcf").replace("0101", "0188"))
    settled(alice)
    (offer,) = offers(bob)
    assert offer["seq"] > first
    assert offer["changes"] == [{"field": "TEL", "before": None,
                                 "after": "TEL;TYPE=CELL:+1 202 555 0188"}]
    assert {k["key"]: k["verified"] for k in offer["owner_keys"]} == {
        "tel:+12025550188": False, "mailto:alice@example.org": True}

    stale = answer(bob, "alice", "accept", {"seq": first})
    assert stale.status_code == 409, stale.text
    assert "0188" not in bob.card("ally.vcf") and offers(bob)
    assert answer(bob, "alice", "accept", {"seq": offer["seq"]}).status_code == 200
    copy = bob.card("ally.vcf")
    assert "+1 202 555 0188" in copy and "0199" not in copy and "0101" not in copy


def test_postponed_offer_waits_until_its_time_then_is_pending_again(public_server):
    alice, bob = offered(public_server)
    for bad in (in_seconds(-60), "tomorrow", in_seconds(400 * 86400)):
        assert answer(bob, "alice", "postpone", {"until": bad}).status_code == 400, bad
    r = answer(bob, "alice", "postpone", {"until": in_seconds(86400)})
    assert r.status_code == 200, r.text
    (offer,) = offers(bob)
    assert offer["state"] == "postponed" and offer["until"]
    assert state(alice, "bob") == "postponed"
    # a change meanwhile replaces the offer and keeps it postponed
    alice.put("alice.vcf", ALICE_NEW)
    settled(alice)
    (offer,) = offers(bob)
    assert offer["state"] == "postponed"
    assert offer["changes"] == [{"field": "TEL", "before": None, "after": NEW_NUMBER}]
    assert state(alice, "bob") == "postponed"

    r = answer(bob, "alice", "postpone", {"until": in_seconds(4)})
    assert r.status_code == 200, r.text
    until = datetime.datetime.fromisoformat(r.json()["until"])
    wait_until(lambda: offers(bob)[0]["state"] == "pending", 60, "the postponement to end")
    assert datetime.datetime.now(datetime.timezone.utc) >= until
    (offer,) = offers(bob)
    assert offer["until"] is None
    assert state(alice, "bob") == "offered"
    assert "0199" not in bob.card("ally.vcf")


def test_refused_change_is_dropped_and_the_next_change_is_offered_again(public_server):
    alice, bob = offered(public_server)
    r = answer(bob, "alice", "refuse")
    assert r.status_code == 200, r.text
    assert offers(bob) == []
    assert state(alice, "bob") == "refused"
    assert answer(bob, "alice", "accept").status_code == 404  # nothing left to accept
    assert NUMBER not in bob.card("ally.vcf")

    alice.put("alice.vcf", ALICE_NEW)
    settled(alice)
    assert state(alice, "bob") == "offered"
    (offer,) = offers(bob)
    assert offer["changes"] == [{"field": "TEL", "before": None, "after": NEW_NUMBER}]
    assert "0199" not in bob.card("ally.vcf")


def test_blocking_drops_the_offer_and_every_later_change(public_server):
    alice, bob = offered(public_server)
    token, _ = bob.sync()
    r = answer(bob, "alice", "block")
    assert r.status_code == 200, r.text
    assert offers(bob) == []
    assert bob.api_ok("GET", "/policies")["policies"] == {"alice": "block"}
    assert state(alice, "bob") == "blocked"

    alice.put("alice.vcf", ALICE_NEW)
    settled(alice)
    assert state(alice, "bob") == "blocked"
    assert offers(bob) == []
    assert bob.sync(token) == (token, [])


def test_offers_survive_a_restart_and_kill_9(public_server):
    alice, bob = offered(public_server)
    before = offers(bob)
    assert len(before) == 1
    public_server.stop(sink=False)
    public_server.start()
    assert offers(bob) == before
    public_server.kill()
    public_server.start()
    assert offers(bob) == before
    assert state(alice, "bob") == "offered"
    r = answer(bob, "alice", "accept", {"seq": before[0]["seq"]})
    assert r.status_code == 200, r.text
    assert NUMBER in bob.card("ally.vcf")
    assert offers(bob) == []


def test_offer_of_a_new_contact_needs_the_recipients_consent_and_shows_the_new_card(
        public_server):
    alice = person(public_server, "alice", "alice-me.vcf")
    carol = person(public_server, "carol")
    # Dave claims a number Carol has in her book, without verifying it
    dave = person(public_server, "dave")
    dave.put("dave.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:dave\r\nFN:Dave\r\n"
                         "TEL:+1 202 555 0104\r\nEND:VCARD\r\n")
    dave.api_ok("POST", "/me-card", {"path": "/dave/contacts/dave.vcf"})
    carol.put("d.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:d\r\nFN:D\r\nTEL:202 555 0104\r\n"
                       "END:VCARD\r\n")
    for owner in (alice, dave):
        owner.api_ok("POST", "/targets", {"targets": ["user:carol"]})
        settled(owner)
        # Carol may not be seen by either: user:carol reaches nobody
        assert "carol" not in rows(owner)
        assert owner.api_ok("GET", "/targets")["skipped"][0]["reason"].startswith(
            "no user you may see here")
    assert offers(carol) == []
    assert carol.hrefs() == ["d.vcf"]

    # Carol chooses to be asked by Alice: now Alice may offer her card as a new contact
    carol.api_ok("POST", "/policies", {"owner": "alice", "policy": "ask"})
    settled(alice)
    assert state(alice, "carol") == "offered"
    (offer,) = offers(carol)
    assert offer["owner"] == "alice" and offer["card"] is None
    assert all(c["before"] is None for c in offer["changes"])
    assert sorted(c["after"] for c in offer["changes"]) == sorted([
        "FN:Alice Archer", "N:Archer;Alice;;;", NUMBER, "EMAIL;TYPE=INTERNET:alice@example.org"])
    assert carol.hrefs() == ["d.vcf"]

    r = answer(carol, "alice", "accept")
    assert r.status_code == 200, r.text
    created = r.json()["card"].rsplit("/", 1)[1]
    assert "FN:Alice Archer" in carol.card(created) and NUMBER in carol.card(created)
    assert [link["made_by"] for link in carol.api_ok("GET", "/links")["links"]] == ["created"]
    assert state(alice, "carol") == "delivered"


def test_the_owners_first_share_is_not_held_back_by_the_daily_limit(tmp_path):
    # a limit of 1 new offer a day: the first share still reaches both people who know her
    # (a later change keeps the limit: see test_offer_cap_e2e)
    server = RadicaleServer(tmp_path, USERS, mecard_offers_per_day="1").start()
    try:
        alice = person(server, "alice", "alice-me.vcf")
        bob, carol = person(server, "bob"), person(server, "carol")
        for recipient in (bob, carol):
            assert recipient.put("ally.vcf", ALLY).status_code == 201
        alice.api_ok("POST", "/targets", {"targets": ["user:bob", "user:carol"]})

        def both_offered() -> dict | None:
            found = rows(alice)
            states = sorted(found[u]["state"] for u in ("bob", "carol") if u in found)
            return found if states == ["offered", "offered"] else None
        wait_until(both_offered, 60, "both offers made")
        assert alice.api_ok("GET", "/targets")["held_back"] is None
        for recipient in (bob, carol):
            (offer,) = offers(recipient)
            assert offer["owner"] == "alice"
    finally:
        server.stop()
