# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: a real Radicale with the plugin, spoken to over CardDAV and the API."""
from __future__ import annotations

import pytest

from tests.server import Client, RadicaleServer, fixture, settled

ME_CARDS = {"alice": "alice-me.vcf", "bob": "bob-me.vcf", "carol": "carol-me.vcf"}
#: the fan-out on both storages: files and PostgreSQL (conftest's ``backend``)
pytestmark = pytest.mark.both_backends


def person(server: RadicaleServer, user: str, me_card: str | None = None,
           verified: bool = True) -> Client:
    """A user who logged in once (home and 'contacts' book exist) and designated a me card.

    Its numbers and e-mails are verified (codes by SMS and e-mail) unless ``verified`` is False.
    """
    client = server.client(user)
    client.login()
    if me_card:
        assert client.put("%s.vcf" % user, fixture(me_card)).status_code == 201
        client.api_ok("POST", "/me-card", {"path": client.book() + "%s.vcf" % user})
        if verified:
            client.verify_me_card()
    return client


@pytest.fixture
def trio(server):
    """Alice (owner) with contacts for Bob and Carol; Bob already has a card for Alice."""
    return make_trio(server)


def make_trio(server: RadicaleServer) -> tuple[Client, Client, Client]:
    """``trio`` on the given server (``test_bad_input_e2e`` shares one among its tests)."""
    alice, bob, carol = (person(server, u, ME_CARDS[u]) for u in ("alice", "bob", "carol"))
    assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
    assert alice.put("c-bob.vcf", fixture("alice-contact-bob.vcf")).status_code == 201
    assert alice.put("c-carol.vcf", fixture("alice-contact-carol.vcf")).status_code == 201
    return alice, bob, carol


def test_owner_put_reaches_the_recipient_as_exactly_one_changed_card(trio):
    alice, bob, carol = trio
    alice.api_ok("POST", "/targets", {"targets": ["all"]})
    settled(alice)
    token, _ = bob.sync()
    etag, ctag = bob.get("ally.vcf").headers["ETag"], bob.ctag()

    assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code in (201, 204)
    report = settled(alice)

    _, changed = bob.sync(token)
    assert changed == ["ally.vcf"]
    assert bob.get("ally.vcf").headers["ETag"] != etag
    assert bob.ctag() != ctag
    copy = bob.card("ally.vcf")
    assert "+1 202 555 0199" in copy and "0101" not in copy
    states = {r["user"]: r["state"] for r in report["recipients"]}
    assert states == {"bob": "delivered", "carol": "delivered"}
    assert bob.copy_of("alice") == "ally.vcf"


def test_recipient_keeps_own_nickname_note_and_extra_number(trio):
    alice, bob, _ = trio
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))
    settled(alice)
    copy = bob.card("ally.vcf")
    for kept in ("NICKNAME:Sis", "NOTE:met at the climbing gym", "+1 202 555 0777",
                 "FN:Ally", "CATEGORIES:Friends"):
        assert kept in copy
    assert "private note" not in copy and "Main St" not in copy  # not shared


def test_new_copy_is_created_when_the_recipient_has_none(trio):
    alice, _, carol = trio
    alice.api_ok("POST", "/targets", {"targets": ["user:carol"]})
    settled(alice)
    copy = carol.card(carol.copy_of("alice"))
    assert "FN:Alice Archer" in copy and "alice@example.org" in copy
    assert "VERSION:3.0" in copy


def test_same_put_twice_does_not_move_the_recipient_sync_token(trio):
    alice, bob, _ = trio
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))
    settled(alice)
    token, _ = bob.sync()
    etag = bob.get("ally.vcf").headers["ETag"]
    alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))
    # a change of an unshared field is not a change for recipients either
    alice.put("alice.vcf", fixture("alice-me-new-number.vcf").replace("private note", "other"))
    settled(alice)
    assert bob.sync(token) == (token, [])
    assert bob.get("ally.vcf").headers["ETag"] == etag


def test_blocked_owner_changes_nothing(trio):
    alice, bob, _ = trio
    bob.api_ok("POST", "/policies", {"owner": "alice", "policy": "block"})
    alice.api_ok("POST", "/targets", {"targets": ["all"]})
    before = bob.card("ally.vcf")
    token, _ = bob.sync()
    alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))
    report = settled(alice)
    assert {r["user"]: r["state"] for r in report["recipients"]}["bob"] == "blocked"
    assert bob.card("ally.vcf") == before
    assert bob.sync(token)[1] == []
    # unblocking delivers the pending change
    bob.api_ok("POST", "/policies", {"owner": "alice", "policy": "auto"})
    settled(alice)
    assert "+1 202 555 0199" in bob.card("ally.vcf")


def test_default_policy_block_writes_nowhere_until_the_recipient_allows(tmp_path,
                                                                       storage_options):
    from tests.conftest import USERS
    server = RadicaleServer(tmp_path, USERS, mecard_default_policy="block",
                            **storage_options).start()
    try:
        alice = person(server, "alice", "alice-me.vcf")
        carol = person(server, "carol", "carol-me.vcf")
        # Carol knows Alice's verified number, so Alice may see her (shipped discoverability
        # `contacts`); Dave does not: under the default block he is as hidden as a name
        # that is nobody here (issue 17 §3), never reported "blocked"
        card = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c-al\r\nFN:Al\r\nTEL:202 555 0101\r\n"
                "END:VCARD\r\n")
        assert carol.put("al.vcf", card).status_code == 201
        before = carol.card("al.vcf")
        person(server, "dave")
        alice.api_ok("POST", "/targets", {"targets": ["user:carol", "user:dave", "user:nobody"]})
        report = settled(alice)
        assert {r["user"]: r["state"] for r in report["recipients"]} == {"carol": "blocked"}
        hidden = {s["contact"]: {k: v.replace(s["contact"], "NAME") for k, v in s.items()}
                  for s in report["skipped"]}
        assert hidden.keys() == {"dave", "nobody"} and hidden["dave"] == hidden["nobody"]
        assert carol.hrefs() == ["al.vcf", "carol.vcf"] and carol.card("al.vcf") == before
        assert carol.api_ok("GET", "/links")["links"] == []
        carol.api_ok("POST", "/policies", {"owner": "*", "policy": "auto"})
        settled(alice)
        assert carol.copy_of("alice") == "al.vcf" and "alice@example.org" in carol.card("al.vcf")
        assert carol.hrefs() == ["al.vcf", "carol.vcf"]
    finally:
        server.stop()


def test_groups_in_every_encoding_and_all_select_the_right_recipients(server):
    alice = person(server, "alice", "alice-me.vcf")
    for user in ("bob", "carol", "dave", "erin"):
        person(server, user)
    for user, tel in (("dave", "202 555 0104"), ("erin", "202 555 0105")):
        client = server.client(user)
        client.put("me.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:%s\r\nFN:%s\r\nTEL:%s\r\n"
                   "END:VCARD\r\n" % (user, user, tel))
        client.api_ok("POST", "/me-card", {"path": client.book() + "me.vcf"})
        client.verify_me_card()
    for user in ("bob", "carol"):
        client = server.client(user)
        client.put("me.vcf", fixture(ME_CARDS[user]))
        client.api_ok("POST", "/me-card", {"path": client.book() + "me.vcf"})
        client.verify_me_card()
    contacts = {
        # vCard 4 group card + MEMBER
        "c-bob.vcf": "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:c-bob\r\nFN:Bob\r\nTEL:2025550102\r\nEND:VCARD\r\n",
        "g-family.vcf": "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:g-family\r\nKIND:group\r\nFN:Family\r\n"
                        "MEMBER:urn:uuid:c-bob\r\nEND:VCARD\r\n",
        # Apple group card
        "c-carol.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c-carol\r\nFN:Carol\r\nEMAIL:carol@example.org\r\nEND:VCARD\r\n",
        "g-work.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:g-work\r\nX-ADDRESSBOOKSERVER-KIND:group\r\n"
                      "FN:Work\r\nN:Work;;;;\r\nX-ADDRESSBOOKSERVER-MEMBER:urn:uuid:c-carol\r\nEND:VCARD\r\n",
        # CATEGORIES
        "c-dave.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c-dave\r\nFN:Dave\r\nTEL:+1 202 555 0104\r\n"
                      "CATEGORIES:Climbing\r\nEND:VCARD\r\n",
        # ambiguous: Erin's number and Bob's
        "c-both.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c-both\r\nFN:Home line\r\nTEL:202 555 0105\r\n"
                      "TEL:202 555 0102\r\nEND:VCARD\r\n",
    }
    for href, text in contacts.items():
        assert alice.put(href, text).status_code == 201, href

    def chosen(*rules: str) -> tuple[list[str], list[str]]:
        alice.api_ok("POST", "/targets", {"targets": list(rules)})
        report = alice.api_ok("GET", "/targets")
        return (sorted(r["user"] for r in report["recipients"] if r["target"]),
                [s["contact"] for s in report["skipped"] if "user" not in s])

    assert chosen("group:Family") == (["bob"], [])
    settled(alice)
    assert chosen("group:Work") == (["carol"], [])
    # a recipient who is no longer a target is skipped too, with the reason
    (gone,) = [s for s in alice.api_ok("GET", "/targets")["skipped"] if "user" in s]
    assert (gone["user"], gone["contact"], gone["rule"]) == ("bob", "Bob", "group:Family")
    assert gone["reason"] == "you removed group:Family from your targets"
    assert chosen("group:climbing") == (["dave"], [])
    # "Home line" has Erin's number and Bob's: of the two, Bob already holds Alice's copy
    # (a contact matching two users with no such tie is skipped: tests/test_matching.py)
    assert chosen("all") == (["bob", "carol", "dave"], [])
    assert chosen("group:Family", "user:erin") == (["bob", "erin"], [])
    report = settled(alice)
    states = {r["user"]: r["state"] for r in report["recipients"]}
    assert states["bob"] == states["erin"] == "delivered"
    # no longer targets: stopped if an earlier plan reached them (rules are read when a
    # change goes out, so quick successive edits may never have planned them)
    assert states.get("carol") in (None, "stopped") and states.get("dave") in (None, "stopped")
