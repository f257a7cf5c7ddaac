# SPDX-License-Identifier: GPL-3.0-or-later
"""Withdrawal: an owner takes their values back out of recipients' copies, on request only.

Bob's card "Ally" for Alice carries his own nickname, note and work number
beside her number and e-mail; Carol got a copy the server created and typed
her own note and number into it.  Withdrawing removes Alice's values only.
"""
from __future__ import annotations

from tests.server import Client, fixture, settled
from tests.test_fanout_e2e import person

ALICE_TEL, ALICE_MAIL = "0101", "alice@example.org"
BOBS_OWN = ("FN:Ally", "NICKNAME:Sis", "NOTE:met at the climbing gym", "+1 202 555 0777",
            "CATEGORIES:Friends")
CAROLS_OWN = ("FN:Alice Archer", "NOTE:lent her my tent", "TEL;TYPE=HOME:+1 202 555 0333")


def states(owner: Client) -> dict[str, str]:
    return {r["user"]: r["state"] for r in owner.api_ok("GET", "/targets")["recipients"]}


def linked(client: Client) -> list[str]:
    return [link["owner"] for link in client.api_ok("GET", "/links")["links"]]


def sharing(server) -> tuple[Client, Client, Client, str]:
    """Alice's card in Bob's "Ally" and in a copy created for Carol, which Carol edited."""
    alice = person(server, "alice", "alice-me.vcf")
    bob, carol = person(server, "bob"), person(server, "carol")
    assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": ["user:bob", "user:carol"]})
    settled(alice)
    assert bob.copy_of("alice") == "ally.vcf"
    copy = carol.copy_of("alice")
    text = carol.card(copy).replace("END:VCARD", "NOTE:lent her my tent\r\n"
                                                 "TEL;TYPE=HOME:+1 202 555 0333\r\nEND:VCARD")
    assert carol.put(copy, text).status_code in (201, 204)
    for client, href in ((bob, "ally.vcf"), (carol, copy)):
        assert ALICE_TEL in client.card(href) and ALICE_MAIL in client.card(href)
    return alice, bob, carol, copy


def assert_withdrawn(text: str, kept: tuple[str, ...]) -> None:
    assert ALICE_TEL not in text and ALICE_MAIL not in text, text
    for value in kept:
        assert value in text, (value, text)


def test_removing_a_target_leaves_the_copy_until_the_owner_withdraws(server):
    alice, bob, carol, copy = sharing(server)
    before = bob.card("ally.vcf")
    alice.api_ok("POST", "/targets", {"remove": ["user:bob"]})
    settled(alice)
    assert states(alice)["bob"] == "stopped"
    assert bob.card("ally.vcf") == before
    assert linked(bob) == ["alice"]

    assert alice.api_ok("POST", "/withdraw", {"recipients": ["bob"]}) == {"withdrawn": ["bob"]}
    settled(alice)
    assert_withdrawn(bob.card("ally.vcf"), BOBS_OWN)
    assert states(alice) == {"bob": "withdrawn", "carol": "delivered"}
    assert linked(bob) == []
    assert ALICE_TEL in carol.card(copy)  # Carol is still a target
    entry = bob.api_ok("GET", "/history")["history"][0]
    assert (entry["owner"], entry["action"], entry["card"]) == (
        "alice", "withdraw", "/bob/contacts/ally.vcf")
    removed = {(c["field"], c["after"]) for c in entry["changes"]}
    assert removed == {("TEL", None), ("EMAIL", None)}
    befores = " ".join(c["before"] for c in entry["changes"])
    assert "(202) 555-0101" in befores and ALICE_MAIL in befores
    # a second withdrawal finds nothing left to do
    assert alice.api_ok("POST", "/withdraw", {"recipients": "all"}) == {"withdrawn": []}


def test_removing_targets_with_withdraw_takes_out_only_the_owners_values(server):
    alice, bob, carol, copy = sharing(server)
    alice.api_ok("POST", "/targets", {"remove": ["user:bob", "user:carol"], "withdraw": True})
    settled(alice)
    assert_withdrawn(bob.card("ally.vcf"), BOBS_OWN)
    assert_withdrawn(carol.card(copy), CAROLS_OWN)
    assert "N:Archer;Alice" in carol.card(copy)  # the card stays valid
    assert states(alice) == {"bob": "withdrawn", "carol": "withdrawn"}
    assert linked(bob) == [] and linked(carol) == []
    actions = [e["action"] for e in carol.api_ok("GET", "/history")["history"]]
    assert actions[0] == "withdraw" and "create" in actions
    (entry,) = [e for e in carol.api_ok("GET", "/history")["history"]
                if e["action"] == "withdraw"]
    assert {c["field"] for c in entry["changes"]} == {"TEL", "EMAIL"}
    assert all(c["before"] and c["after"] is None for c in entry["changes"])
    # later changes of Alice's card reach neither of them
    bob_text, carol_text = bob.card("ally.vcf"), carol.card(copy)
    alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))
    settled(alice)
    assert bob.card("ally.vcf") == bob_text and carol.card(copy) == carol_text


def test_unsharing_a_field_withdraws_its_values_only_when_asked(server):
    alice, bob, carol, copy = sharing(server)
    alice.api_ok("POST", "/shared-fields", {"fields": ["FN", "N", "TEL"]})
    settled(alice)
    assert ALICE_MAIL in bob.card("ally.vcf") and ALICE_MAIL in carol.card(copy)

    me = alice.api_ok("POST", "/shared-fields", {"fields": ["FN", "N"], "withdraw": True})
    assert me["withdrawn_fields"] == ["TEL"]
    settled(alice)
    for client, href, kept in ((bob, "ally.vcf", BOBS_OWN), (carol, copy, CAROLS_OWN)):
        text = client.card(href)
        assert ALICE_TEL not in text
        assert ALICE_MAIL in text  # unshared earlier without withdraw: left as it is
        for value in kept:
            assert value in text, (value, text)
    assert states(alice) == {"bob": "delivered", "carol": "delivered"}
    assert sorted(linked(bob) + linked(carol)) == ["alice", "alice"]


def test_forgetting_the_me_card_with_withdraw_takes_its_values_out_of_every_copy(server):
    alice, bob, carol, copy = sharing(server)
    me = alice.api_ok("POST", "/me-card", {"path": None, "withdraw": True})
    assert me["me_card"] is None
    settled(alice)
    assert_withdrawn(bob.card("ally.vcf"), BOBS_OWN)
    assert_withdrawn(carol.card(copy), CAROLS_OWN)
    assert states(alice) == {"bob": "withdrawn", "carol": "withdrawn"}
    assert linked(bob) == [] and linked(carol) == []


def test_deleting_the_me_card_then_withdrawing_all(server):
    alice, bob, carol, copy = sharing(server)
    assert alice.http.delete(server.url + "/alice/contacts/alice.vcf").status_code in (200, 204)
    settled(alice)
    assert ALICE_TEL in bob.card("ally.vcf")  # deleting alone leaves the copies
    assert sorted(alice.api_ok("POST", "/withdraw", {"recipients": "all"})["withdrawn"]) == [
        "bob", "carol"]
    settled(alice)
    assert_withdrawn(bob.card("ally.vcf"), BOBS_OWN)
    assert_withdrawn(carol.card(copy), CAROLS_OWN)


def test_withdraw_leaves_current_targets_and_strangers_alone(server):
    alice, bob, carol, copy = sharing(server)
    person(server, "dave")
    texts = (bob.card("ally.vcf"), carol.card(copy))
    for recipients in (["bob"], ["carol", "dave"], ["nobody"], [], "all"):
        assert alice.api_ok("POST", "/withdraw", {"recipients": recipients}) == {
            "withdrawn": []}, recipients
    for bad in ({}, {"recipients": "bob"}, {"recipients": [1]}, {"recipients": None}):
        assert alice.api("POST", "/withdraw", bad).status_code == 400, bad
    settled(alice)
    assert (bob.card("ally.vcf"), carol.card(copy)) == texts
    assert states(alice) == {"bob": "delivered", "carol": "delivered"}
    assert sorted(linked(bob) + linked(carol)) == ["alice", "alice"]


def test_withdrawal_does_not_write_into_the_book_of_a_recipient_who_blocks_the_owner(server):
    alice, bob, carol, copy = sharing(server)
    bob.api_ok("POST", "/policies", {"owner": "alice", "policy": "block"})
    token, _ = bob.sync()
    before = bob.card("ally.vcf")
    history = bob.api_ok("GET", "/history")["history"]
    alice.api_ok("POST", "/targets", {"targets": [], "withdraw": True})
    settled(alice)
    assert bob.card("ally.vcf") == before
    assert bob.sync(token) == (token, [])
    assert bob.api_ok("GET", "/history")["history"] == history
    assert_withdrawn(carol.card(copy), CAROLS_OWN)  # Carol does not block Alice
