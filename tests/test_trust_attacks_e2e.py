# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: the attacks of issue 6, each against a real server, each refused.

Mallory is an ordinary user.  Before keys were verified and recipients asked,
he could rewrite Bob's "Alice" card by putting Alice's number on his own me
card, silence Alice by claiming Bob's number, plant cards in strangers'
books, re-publish what Alice shared with Bob only, map numbers to users
through ``/resolve`` and get a web page to change settings with the
browser's remembered password.  Every test here would have succeeded as an
attack against that code and must fail now.
"""
from __future__ import annotations

import contextlib
import json
import re
from typing import Iterator

import pytest

from tests.conftest import FAMILY, USERS
from tests.server import Client, RadicaleServer, fixture, settled
from tests.test_fanout_e2e import person

USERS_M = {**USERS, "mallory": "mallory-pw"}
ALICE_TEL, BOB_TEL, MALLORY_TEL, MALLORY_TEL2 = ("2025550101", "2025550102", "2025550666",
                                                  "2025550667")
API = "/.web/mecard/api/v1"
#: every attack against both storages: files and PostgreSQL (conftest's ``backend``)
pytestmark = pytest.mark.both_backends


def vcard(uid: str, fn: str, *lines: str) -> str:
    return "\r\n".join(("BEGIN:VCARD", "VERSION:3.0", "UID:" + uid, "FN:" + fn,
                        "N:;%s;;;" % fn, *lines, "END:VCARD", ""))


def mallory_card(fn: str = "Mallory Mills", *lines: str) -> str:
    return vcard("mallory-me", fn, "TEL;TYPE=CELL:+1 202 555 0666", *lines)


def numbers(card: str) -> set[str]:
    """The last ten digits of every TEL of a card."""
    return {re.sub(r"\D", "", line.split(":", 1)[1])[-10:]
            for line in card.splitlines() if re.match(r"(item\d+\.)?TEL[;:]", line, re.I)}


def emails(card: str) -> set[str]:
    return {line.split(":", 1)[1].strip().lower()
            for line in card.splitlines() if re.match(r"(item\d+\.)?EMAIL[;:]", line, re.I)}


def designate(server: RadicaleServer, user: str, text: str, verify: bool = True) -> Client:
    """A user whose me card is ``text`` (stored as me.vcf), its keys verified if asked."""
    client = person(server, user)
    assert client.put("me.vcf", text).status_code == 201
    client.api_ok("POST", "/me-card", {"path": client.book() + "me.vcf"})
    if verify:
        client.verify_me_card()
    return client


def offer_from(recipient: Client, owner: str) -> dict | None:
    return {o["owner"]: o for o in recipient.api_ok("GET", "/offers")["offers"]}.get(owner)


def accept(recipient: Client, owner: str) -> dict | None:
    """Accept the owner's offer if there is one; return it."""
    offer = offer_from(recipient, owner)
    if offer is not None:
        recipient.api_ok("POST", "/offers/%s/accept" % owner, {})
    return offer


def rows(report: dict) -> dict[str, dict]:
    return {r["user"]: r for r in report["recipients"]}


@contextlib.contextmanager
def running(tmp_path, **options: str) -> Iterator[RadicaleServer]:
    srv = RadicaleServer(tmp_path, USERS_M, **options).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=["family", "shipped"])
def any_server(request, tmp_path, storage_options) -> Iterator[tuple[RadicaleServer, str]]:
    """A family server (pre-authorised, discoverable) and one with the shipped defaults."""
    with running(tmp_path, **(FAMILY if request.param == "family" else {}),
                 **storage_options) as srv:
        yield srv, request.param


@pytest.fixture
def shipped(tmp_path, storage_options) -> Iterator[RadicaleServer]:
    with running(tmp_path, **storage_options) as srv:
        yield srv


@pytest.fixture
def family(tmp_path, storage_options) -> Iterator[RadicaleServer]:
    with running(tmp_path, **FAMILY, **storage_options) as srv:
        yield srv


# -- hijacking somebody else's card in a third user's book --------------------

#: variant: (Mallory's me card while he claims Alice's keys, and after he "changes the number")
HIJACKS = {
    "number": (mallory_card("Mallory Mills", "TEL;TYPE=HOME:202.555.0101"),
               mallory_card("Mallory Mills", "TEL;TYPE=HOME:+1 202 555 0667")),
    "e-mail": (mallory_card("Mallory Mills", "EMAIL:ALICE@Example.org"),
               mallory_card("Mallory Mills", "EMAIL:mallory@evil.example")),
    "all-rule": (mallory_card("Mallory Mills", "TEL;TYPE=HOME:(202) 555-0101"),
                 mallory_card("Mallory Mills", "TEL;TYPE=HOME:+1 202 555 0667")),
    "linked-card": (mallory_card("Alice Archer", "TEL:+12025550101", "EMAIL:alice@example.org"),
                    mallory_card("Alice Archer", "TEL:+12025550667",
                                 "EMAIL:mallory@evil.example")),
    "fn-rename": (mallory_card("Ally", "TEL:(202) 555-0101"),
                  mallory_card("Mallory was here", "TEL:+1 202 555 0667")),
}


@pytest.mark.parametrize("variant", HIJACKS)
def test_claiming_alices_keys_never_changes_bobs_card_for_alice(any_server, variant):
    server, mode = any_server
    alice = person(server, "alice", "alice-me.vcf")
    bob = person(server, "bob", "bob-me.vcf")
    mallory = designate(server, "mallory", mallory_card())
    assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
    # Bob knows Mallory, so Mallory may write (family) or offer (shipped) into Bob's book
    assert bob.put("mal.vcf", vcard("bobs-mal", "Mal", "TEL:202-555-0666")).status_code == 201
    if variant == "linked-card":
        alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
        settled(alice)
        accept(bob, "alice")
        assert bob.copy_of("alice") == "ally.vcf"
    rules = ["user:bob"]
    if variant == "all-rule":
        assert mallory.put("c-bob.vcf", fixture("alice-contact-bob.vcf")).status_code == 201
        bob.api_ok("POST", "/privacy", {"discoverability": "everyone"})
        rules = ["all"]
    mallory.api_ok("POST", "/targets", {"targets": rules})
    ally = bob.card("ally.vcf")
    attack, switch = HIJACKS[variant]

    for card in (attack, switch):
        assert mallory.put("me.vcf", card).status_code == 204
        # plan again, even where his shared view did not change
        mallory.api_ok("POST", "/targets", {"targets": rules})
        report = settled(mallory)
        # the attack did reach Bob's book: Mallory's own card, never Bob's "Ally"
        assert rows(report)["bob"]["state"] in ("delivered", "offered"), report
        offer = accept(bob, "mallory")
        assert offer is None or offer["card"]["path"] == "/bob/contacts/mal.vcf", offer
        settled(mallory)
        assert bob.card("ally.vcf") == ally
    assert ALICE_TEL in numbers(ally) and "alice@example.org" in emails(ally)
    assert not {MALLORY_TEL, MALLORY_TEL2} & numbers(ally)
    assert all(e["owner"] == "alice" for e in bob.api_ok("GET", "/history")["history"]
               if e["card"] == "/bob/contacts/ally.vcf")
    for href in set(bob.hrefs()) - {"ally.vcf", "bob.vcf"}:  # Mallory's card: nothing of Alice's
        other = bob.card(href)
        assert ALICE_TEL not in numbers(other) and "alice@example.org" not in emails(other)

    # while Mallory claims Alice's keys again, Alice's own update still reaches "Ally"
    assert mallory.put("me.vcf", attack).status_code == 204
    mallory.api_ok("POST", "/targets", {"targets": rules})
    settled(mallory)
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code == 204
    assert rows(settled(alice))["bob"]["state"] in ("delivered", "offered")
    offer = accept(bob, "alice")
    assert offer is None or offer["card"]["path"] == "/bob/contacts/ally.vcf", offer
    if mode == "family":
        assert offer is None
    updated = bob.card("ally.vcf")
    assert "2025550199" in numbers(updated) and ALICE_TEL not in numbers(updated)
    assert not {MALLORY_TEL, MALLORY_TEL2} & numbers(updated)
    assert "NICKNAME:Sis" in updated and bob.copy_of("alice") == "ally.vcf"


# -- silencing: claiming a recipient's number ---------------------------------

def test_claiming_a_recipients_keys_does_not_silence_updates_to_them(any_server):
    server, mode = any_server
    alice = person(server, "alice", "alice-me.vcf")
    bob = person(server, "bob", "bob-me.vcf")
    carol = person(server, "carol", "carol-me.vcf")
    bob.put("ally.vcf", fixture("bob-contact-alice.vcf"))
    carol.put("c-alice.vcf", vcard("carols-alice", "Alice", "EMAIL:alice@example.org"))
    alice.put("c-bob.vcf", fixture("alice-contact-bob.vcf"))      # 202-555-0102, Family
    alice.put("c-carol.vcf", fixture("alice-contact-carol.vcf"))  # CAROL@example.org
    mallory = designate(server, "mallory", mallory_card())
    assert mallory.put("me.vcf", mallory_card(
        "Mallory Mills", "TEL:+1 202 555 0102", "EMAIL:carol@example.org")).status_code == 204
    claims = {k["key"]: k["state"] for k in mallory.api_ok("GET", "/keys")["keys"]}
    assert claims["tel:+12025550102"] == claims["mailto:carol@example.org"] == "unverified"

    alice.api_ok("POST", "/targets", {"targets": ["group:Family"]})
    report = alice.api_ok("GET", "/targets")
    assert [r["user"] for r in report["recipients"] if r["target"]] == ["bob"]
    assert report["skipped"] == []
    alice.api_ok("POST", "/targets", {"targets": ["all"]})
    report = settled(alice)
    assert report["skipped"] == []
    states = {u: r["state"] for u, r in rows(report).items() if r["target"]}
    assert set(states) == {"bob", "carol"}
    assert set(states.values()) <= {"delivered", "offered"}, states
    if mode == "family":
        assert set(states.values()) == {"delivered"}
    for recipient, card in ((bob, "ally.vcf"), (carol, "c-alice.vcf")):
        accept(recipient, "alice")
        assert recipient.copy_of("alice") == card
    assert "mallory" not in json.dumps(report)


def test_claiming_a_number_on_bobs_card_for_alice_does_not_divert_her_updates(any_server):
    server, _ = any_server
    alice = person(server, "alice", "alice-me.vcf")
    bob = person(server, "bob", "bob-me.vcf")
    bob.put("ally.vcf", fixture("bob-contact-alice.vcf"))  # also Alice's work number 0777
    mallory = designate(server, "mallory", mallory_card())
    assert mallory.put("me.vcf", mallory_card("Mallory Mills", "TEL:+1 202 555 0777")
                       ).status_code == 204
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))
    settled(alice)
    # "Ally" only partly matches now: Bob is asked about it, and gets no duplicate of Alice
    assert sorted(bob.hrefs()) == ["ally.vcf", "bob.vcf"]
    offer = offer_from(bob, "alice")
    assert offer is not None and offer["card"]["path"] == "/bob/contacts/ally.vcf", offer


# -- planting cards in strangers' books (shipped defaults) --------------------

BANK = vcard("bank-me", "Totally Your Bank", "TEL:+1 202 555 0666",
             "NOTE:Your account is locked: log in at http://evil.example/bank")


@pytest.mark.parametrize("variant", ["user-rule", "all-rule-undiscoverable",
                                     "all-rule-discoverable", "claims-a-number-bob-knows"])
def test_a_stranger_cannot_plant_a_card_in_a_book(shipped, variant):
    bob = person(shipped, "bob", "bob-me.vcf")
    bob.put("ally.vcf", fixture("bob-contact-alice.vcf"))  # nobody verified Alice's number
    mallory = designate(shipped, "mallory", BANK)          # his own number is verified
    mallory.api_ok("POST", "/shared-fields", {"fields": ["FN", "N", "TEL", "EMAIL", "NOTE"]})
    rules = ["user:bob"]
    if variant == "claims-a-number-bob-knows":
        assert mallory.put("me.vcf", BANK.replace(
            "END:VCARD", "TEL:(202) 555-0101\r\nEND:VCARD")).status_code == 204
    elif variant.startswith("all-rule"):
        mallory.put("c-bob.vcf", fixture("alice-contact-bob.vcf"))
        rules = ["all"]
        if variant == "all-rule-discoverable":
            bob.api_ok("POST", "/privacy", {"discoverability": "everyone"})
    hrefs, (token, _) = bob.hrefs(), bob.sync()

    mallory.api_ok("POST", "/targets", {"targets": rules})
    report = settled(mallory)
    if variant == "all-rule-undiscoverable":
        assert report["recipients"] == [] and report["skipped"] == []
        assert "bob" not in json.dumps(report)
    elif rules == ["user:bob"]:
        # named, but Bob may not be seen by Mallory: the same answer as for no user at all
        assert report["recipients"] == [], report
        assert [(s["rule"], s["reason"][:24]) for s in report["skipped"]] == [
            ("user:bob", "no user you may see here")]
    else:
        row = rows(report)["bob"]
        assert row["state"] == "failed" and row["reason"], row
    assert bob.hrefs() == hrefs and bob.sync(token)[1] == []
    assert bob.api_ok("GET", "/offers")["offers"] == []
    assert all("Totally" not in bob.card(h) and "evil.example" not in bob.card(h)
               for h in bob.hrefs())


def test_only_owners_the_recipient_knows_or_allowed_can_make_offers(shipped):
    bob = person(shipped, "bob", "bob-me.vcf")
    carol = person(shipped, "carol", "carol-me.vcf")
    dave = designate(shipped, "dave", vcard("dave-me", "Dave Doe", "TEL:+1 202 555 0104"))
    # Mallory's verified number is not in Bob's books; the number of Carol's he claims is
    mallory = designate(shipped, "mallory", mallory_card())
    assert mallory.put("me.vcf", mallory_card("Carol Cook", "TEL:(202) 555-0103")
                       ).status_code == 204
    bob.put("c-carol.vcf", vcard("bobs-carol", "Carol", "TEL:202-555-0103"))
    bob.api_ok("POST", "/policies", {"owner": "dave", "policy": "ask"})
    for owner in (carol, dave, mallory):
        owner.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    reports = {o.user: settled(o) for o in (carol, dave, mallory)}

    # Bob may not be seen by Mallory: his user:bob rule reaches nobody
    assert "bob" not in rows(reports["mallory"])
    assert reports["mallory"]["skipped"][0]["reason"].startswith("no user you may see here")
    assert rows(reports["carol"])["bob"]["state"] == rows(reports["dave"])["bob"]["state"] \
        == "offered"
    assert sorted(bob.hrefs()) == ["bob.vcf", "c-carol.vcf"]
    offers = {o["owner"]: o for o in bob.api_ok("GET", "/offers")["offers"]}
    assert set(offers) == {"carol", "dave"}
    assert offers["carol"]["card"]["path"] == "/bob/contacts/c-carol.vcf"
    assert offers["dave"]["card"] is None  # a new contact, as Bob allowed Dave to ask


# -- re-publishing what somebody shared with me ---------------------------------

@pytest.fixture
def shared(family) -> tuple[Client, Client, Client]:
    """Alice shares with Bob (into his "Ally") and Carol (a new card); Bob shares with Carol."""
    alice = person(family, "alice", "alice-me.vcf")
    bob = person(family, "bob", "bob-me.vcf")
    carol = person(family, "carol", "carol-me.vcf")
    bob.put("ally.vcf", fixture("bob-contact-alice.vcf"))
    alice.api_ok("POST", "/targets", {"targets": ["user:bob", "user:carol"]})
    bob.api_ok("POST", "/targets", {"targets": ["user:carol"]})
    settled(alice)
    settled(bob)
    assert bob.copy_of("alice") == "ally.vcf"
    return alice, bob, carol


def me_card_patch(client: Client, path: str) -> int:
    """Apple's PROPPATCH of the me card: the status of that property (207) or of the request."""
    body = ('<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" '
            'xmlns:CS="http://calendarserver.org/ns/"><D:set><D:prop>'
            '<CS:me-card><D:href>%s</D:href></CS:me-card></D:prop></D:set>'
            '</D:propertyupdate>' % path)
    r = client.http.request("PROPPATCH", client.url + "/%s/" % client.user, data=body,
                            headers={"Content-Type": "application/xml"})
    if r.status_code != 207:
        return r.status_code
    status = re.search(r"HTTP/1\.1 (\d{3})", r.text)
    assert status, r.text
    return int(status.group(1))


def assert_not_republished(bob: Client, carol: Client) -> None:
    """Carol's copy of Bob holds Bob's number and nothing of Alice's."""
    settled(bob)
    copy = carol.card(carol.copy_of("bob"))
    assert BOB_TEL in numbers(copy) and ALICE_TEL not in numbers(copy)
    assert "alice@example.org" not in emails(copy) and "Ally" not in copy


def test_a_copy_of_somebodys_card_cannot_become_my_me_card(shared):
    _, bob, carol = shared
    for client in (bob, carol):  # a copy linked to a card of mine, and one the server created
        copy = "/%s/contacts/%s" % (client.user, client.copy_of("alice"))
        mine = "/%s/contacts/%s.vcf" % (client.user, client.user)
        r = client.api("POST", "/me-card", {"path": copy})
        assert r.status_code == 409 and "alice" in r.json()["error"], r.text
        assert 400 <= me_card_patch(client, copy) < 500
        assert client.api_ok("GET", "/me")["me_card"] == mine
    # nor by giving the copy the me card's UID over CardDAV (directly, or after renaming it)
    for href, uid in (("ally.vcf", "bob-me"), ("bob.vcf", "bob-old"), ("ally.vcf", "bob-me")):
        bob.put(href, re.sub(r"UID:[^\r\n]*", "UID:" + uid, bob.card(href)))
    assert bob.api_ok("GET", "/me")["me_card"] == "/bob/contacts/bob.vcf"
    assert bob.copy_of("alice") == "ally.vcf"
    assert_not_republished(bob, carol)


def test_a_card_carrying_a_discoverable_users_keys_cannot_become_my_me_card(shared):
    _, bob, carol = shared
    cards = {"copied.vcf": re.sub(r"UID:[^\r\n]*", "UID:b2", bob.card("ally.vcf")),
             "mail.vcf": vcard("b3", "Bob Baker", "TEL:+1 202 555 0102",
                               "EMAIL:Alice@Example.org")}
    for href, text in cards.items():
        assert bob.put(href, text).status_code == 201
        r = bob.api("POST", "/me-card", {"path": "/bob/contacts/" + href})
        assert r.status_code == 409, r.text
        assert 400 <= me_card_patch(bob, "/bob/contacts/" + href) < 500
        assert bob.api_ok("GET", "/me")["me_card"] == "/bob/contacts/bob.vcf"
    assert_not_republished(bob, carol)


def test_keys_of_an_undiscoverable_user_on_my_me_card_are_not_passed_on(shared):
    alice, bob, carol = shared
    alice.api_ok("POST", "/privacy", {"discoverability": "nobody"})
    mine = vcard("bob-2", "Bob Baker", "TEL:+1 202 555 0102", "TEL:(202) 555-0101",
                 "EMAIL:alice@example.org")
    assert bob.put("bob2.vcf", mine).status_code == 201
    bob.api_ok("POST", "/me-card", {"path": "/bob/contacts/bob2.vcf"})  # nothing to tell
    assert_not_republished(bob, carol)
    # an edit of the me card (CardDAV and API) does not pass them on either
    edited = mine.replace("END:VCARD", "TEL:202.555.0101\r\nEMAIL:bob@new.example\r\nEND:VCARD")
    assert bob.put("bob2.vcf", edited).status_code == 204
    assert_not_republished(bob, carol)
    assert "bob@new.example" in emails(carol.card(carol.copy_of("bob")))
    bob.api_ok("POST", "/me-card/content", {"card": edited.replace("new.example", "newer.example")})
    assert_not_republished(bob, carol)
    assert "bob@newer.example" in emails(carol.card(carol.copy_of("bob")))


def test_pasting_a_copy_into_my_me_card_passes_none_of_its_keys_on(shared):
    _, bob, carol = shared
    pasted = re.sub(r"UID:[^\r\n]*", "UID:bob-me", bob.card("ally.vcf"))
    assert bob.put("bob.vcf", pasted).status_code == 204
    bob.api_ok("POST", "/me-card/content", {"card": pasted.replace("Ally", "Ally B.")})
    settled(bob)
    copy = carol.card(carol.copy_of("bob"))
    # the paste did go out, but none of the numbers and e-mails on Bob's copy of Alice's
    # card (Bob's own work number for her, verified by nobody, neither)
    assert "FN:Ally B." in copy and "2025550777" not in numbers(copy)
    assert ALICE_TEL not in numbers(copy) and "alice@example.org" not in emails(copy)


def test_a_number_stops_being_passed_on_once_its_holder_verifies_it(family, shared):
    _, bob, carol = shared
    # Bob puts Dave's number on his me card before Dave ever verified it: a claim, passed on
    assert bob.put("bob.vcf", fixture("bob-me.vcf").replace(
        "END:VCARD", "TEL:+1 202 555 0104\r\nEND:VCARD")).status_code == 204
    settled(bob)
    assert "2025550104" in numbers(carol.card(carol.copy_of("bob")))
    designate(family, "dave", vcard("dave-me", "Dave Doe", "TEL:+1 202 555 0104"))
    settled(bob)
    copy = carol.card(carol.copy_of("bob"))
    assert "2025550104" not in numbers(copy) and BOB_TEL in numbers(copy)


# -- enumeration: which numbers belong to which users ---------------------------

def test_resolve_refuses_bulk_lookups_and_then_slows_down(tmp_path, storage_options):
    with running(tmp_path, mecard_resolve_max_keys="10", mecard_resolve_per_hour="30",
                 mecard_max_body="8388608", **storage_options) as server:
        person(server, "alice", "alice-me.vcf")
        # a me card without numbers: designating it costs nothing of the budget below
        mallory = designate(server, "mallory", vcard("mallory-me", "Mallory"), verify=False)
        area_code = ["tel:+1202555%04d" % n for n in range(10000)] * 10  # 100,000 keys
        r = mallory.api("POST", "/resolve", {"keys": area_code})
        assert r.status_code == 400 and "at most 10" in r.json()["error"]
        assert list(r.json()) == ["error"]
        for n in range(3):
            keys = ["tel:+1202555%04d" % k for k in range(100 + 10 * n, 110 + 10 * n)]
            assert mallory.api("POST", "/resolve", {"keys": keys}).status_code == 200
        r = mallory.api("POST", "/resolve", {"keys": ["tel:+12025550101"]})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert list(r.json()) == ["error"]
        # designating a card full of numbers asks the same question: the same budget
        assert mallory.put("probe.vcf", vcard("probe", "Probe", "TEL:+1 202 555 0101")
                           ).status_code == 201
        r = mallory.api("POST", "/me-card", {"path": "/mallory/contacts/probe.vcf"})
        assert r.status_code == 429, r.text
        assert mallory.api_ok("GET", "/me")["me_card"] == "/mallory/contacts/me.vcf"


def test_only_discoverable_verified_holders_are_revealed(shipped):
    person(shipped, "alice", "alice-me.vcf")                        # discoverability: nobody
    person(shipped, "bob", "bob-me.vcf")                            # contacts; no Mallory
    carol = person(shipped, "carol", "carol-me.vcf")                # everyone
    dave = designate(shipped, "dave", vcard("dave-me", "Dave", "TEL:+1 202 555 0104"))
    designate(shipped, "erin", vcard("erin-me", "Erin", "TEL:+1 202 555 0105"), verify=False)
    mallory = designate(shipped, "mallory", mallory_card())
    shipped.client("alice").api_ok("POST", "/privacy", {"discoverability": "nobody"})
    carol.api_ok("POST", "/privacy", {"discoverability": "everyone"})
    shipped.client("erin").api_ok("POST", "/privacy", {"discoverability": "everyone"})
    dave.put("c-mal.vcf", vcard("daves-mal", "Mal", "TEL:202 555 0666"))  # Dave knows Mallory
    keys = ["tel:+12025550101", "mailto:alice@example.org", "tel:+12025550102",
            "mailto:bob@example.org", "tel:+12025550103", "tel:+12025550104",
            "tel:+12025550105"]
    for n, key in enumerate(keys):
        mallory.put("n%d.vcf" % n, vcard("n%d" % n, "Number %d" % n,
                                         ("EMAIL:" + key[7:]) if key.startswith("mailto:")
                                         else "TEL:" + key[4:]))
    # one contact with two hidden users' numbers, one with a hidden and a visible one
    mallory.put("mix1.vcf", vcard("mix1", "Mix 1", "TEL:2025550101", "TEL:2025550102"))
    mallory.put("mix2.vcf", vcard("mix2", "Mix 2", "TEL:2025550101", "TEL:2025550103"))
    mallory.api_ok("POST", "/targets", {"targets": ["all"]})

    def revealed() -> tuple[dict, set[str], str]:
        report = mallory.api_ok("GET", "/targets")
        return (mallory.api_ok("POST", "/resolve", {"keys": keys}),
                {r["user"] for r in report["recipients"] if r["target"]}, json.dumps(report))

    found, targeted, text = revealed()
    assert found == {"tel:+12025550103": ["carol"], "tel:+12025550104": ["dave"]}
    assert targeted == {"carol", "dave"}
    assert not any(name in text for name in ("alice", "bob", "erin"))
    # each user's choice, changed, is honoured at once
    shipped.client("alice").api_ok("POST", "/privacy", {"discoverability": "everyone"})
    dave.api_ok("POST", "/privacy", {"discoverability": "nobody"})
    found, targeted, text = revealed()
    assert found == {"tel:+12025550101": ["alice"], "mailto:alice@example.org": ["alice"],
                     "tel:+12025550103": ["carol"]}
    assert targeted == {"alice", "carol"} and "bob" not in text and "erin" not in text
    # designating a card asks the same question, and gets the same answers
    mallory.put("probe1.vcf", vcard("probe1", "Probe", "TEL:2025550102", "TEL:2025550104",
                                    "TEL:2025550105"))
    mallory.put("probe2.vcf", vcard("probe2", "Probe", "TEL:2025550103"))
    assert mallory.api("POST", "/me-card", {"path": "/mallory/contacts/probe1.vcf"}
                       ).status_code == 200
    r = mallory.api("POST", "/me-card", {"path": "/mallory/contacts/probe2.vcf"})
    assert r.status_code == 409 and "tel:+12025550103" in r.json()["error"]


def test_verification_answers_the_same_whoever_holds_the_key(shipped):
    person(shipped, "alice", "alice-me.vcf")  # verified +1 202 555 0101, alice@example.org
    mallory = designate(shipped, "mallory", mallory_card(
        "Mallory Mills", "EMAIL:mallory@evil.example"))
    assert mallory.put("me.vcf", mallory_card(
        "Mallory Mills", "EMAIL:mallory@evil.example", "TEL:202 555 0101", "TEL:202 555 0188",
        "EMAIL:alice@example.org", "EMAIL:nobody@example.org")).status_code == 204
    theirs, nobodys, mine = (["tel:+12025550101", "mailto:alice@example.org"],
                             ["tel:+12025550188", "mailto:nobody@example.org"],
                             ["tel:+12025550666", "mailto:mallory@evil.example"])

    def keys() -> dict[str, dict]:
        return {k["key"]: {f: v for f, v in k.items() if f != "key"}
                for k in mallory.api_ok("GET", "/keys")["keys"]}

    listed = keys()
    for other, nobody in zip(theirs, nobodys):
        assert listed[other] == listed[nobody] == {"state": "unverified", "on_me_card": True,
                                                  "verified": None, "moved": None}
    answers = {}
    for key in theirs + nobodys + mine:
        r = mallory.api("POST", "/keys/verify", {"key": key})
        answers[key] = (r.status_code, {f: v for f, v in r.json().items() if f != "key"})
    assert len(set(json.dumps(a, sort_keys=True) for a in answers.values())) == 1, answers
    assert answers[theirs[0]][0] == 200
    wrong = {k: mallory.api("POST", "/keys/confirm", {"key": k, "code": "000000"})
             for k in (theirs[0], nobodys[0])}
    assert len({(r.status_code, r.text) for r in wrong.values()}) == 1
    listed = keys()
    for other, nobody in zip(theirs, nobodys):
        assert listed[other] == listed[nobody] and listed[other]["state"] == "pending"


# -- cross-site requests --------------------------------------------------------

def test_a_form_on_another_web_site_cannot_change_anything(shipped):
    alice = person(shipped, "alice", "alice-me.vcf")
    before = alice.api_ok("GET", "/me")
    url = alice.url + API
    attempts = {"/targets": {"targets": ["all"]}, "/privacy": {"discoverability": "everyone"},
                "/policies": {"owner": "*", "policy": "auto"}, "/me-card": {"path": None}}
    boundary = "xyzzy"
    for call, data in attempts.items():
        text = json.dumps(data)
        # what an HTML form can send: the JSON hidden in a field, or no type at all
        for media, body in (("application/x-www-form-urlencoded", text),
                            ("text/plain", text),
                            ("multipart/form-data; boundary=" + boundary,
                             "--%s\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n%s\r\n"
                             "--%s--\r\n" % (boundary, text, boundary)),
                            (None, text)):
            headers = {"Content-Type": media} if media else {}
            r = alice.http.post(url + call, data=body.encode(), headers=headers)
            assert r.status_code == 415, (call, media, r.status_code)
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Origin": "http://127.0.0.1:1"},
                        {"Origin": "http://127.0.0.1:%d.evil.example" % shipped.port},
                        {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
            r = alice.http.post(url + call, json=data, headers=headers)
            assert r.status_code == 403, (call, headers, r.status_code)
    assert alice.api_ok("GET", "/me") == before
    assert "Access-Control-Allow-Origin" not in alice.http.get(
        url + "/me", headers={"Origin": "http://evil.example"}).headers
    # the server's own pages, and clients that send no Origin, still work
    r = alice.http.post(url + "/privacy", json={"discoverability": "everyone"},
                        headers={"Origin": shipped.url, "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200 and alice.api_ok("GET", "/privacy") == {
        "discoverability": "everyone"}
    alice.api_ok("POST", "/targets", {"targets": ["all"]})
    assert alice.api_ok("GET", "/me")["targets"] == ["all"]
