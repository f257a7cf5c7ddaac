# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: an owner's own copies tell him nothing about other users' keys.

The attack (issue 17): Mallory puts candidate numbers on his me card, targets a
second account of his that accepts him, and reads the copy: a number missing
from it was somebody's.  Now the copy carries his numbers as plain values (they
link and match nothing unless verified for him), leaves out only what
``/resolve`` would tell him anyway, and a me card carries a bounded number of
numbers and e-mails, with a bounded number of new ones a day.
"""
from __future__ import annotations

import re
from typing import Iterator

import pytest

from tests.conftest import USERS
from tests.server import Client, RadicaleServer, settled
from tests.test_fanout_e2e import person
from tests.test_trust_attacks_e2e import numbers, vcard

ALL_USERS = {**USERS, "mallory": "mallory-pw", "helper": "helper-pw"}
OWN = "TEL;TYPE=CELL:+1 202 555 0666"
VICTIMS = {"alice": "2025550101", "bob": "2025550102", "carol": "2025550103"}
DECOYS = ["20255501%02d" % n for n in range(50, 56)]


@pytest.fixture
def shipped(tmp_path) -> Iterator[RadicaleServer]:
    server = RadicaleServer(tmp_path, ALL_USERS).start()
    try:
        yield server
    finally:
        server.stop()


def mallory_with_helper(server: RadicaleServer) -> tuple[Client, Client]:
    """Mallory (his own number verified) and his second account, which accepts him."""
    mallory = person(server, "mallory")
    assert mallory.put("me.vcf", vcard("mallory-me", "Mallory", OWN)).status_code == 201
    mallory.api_ok("POST", "/me-card", {"path": "/mallory/contacts/me.vcf"})
    mallory.verify_me_card()
    helper = person(server, "helper")
    # the helper knows Mallory's verified number: the copy goes into this card (a link)
    assert helper.put("mal.vcf", vcard("helpers-mal", "Mal", "TEL:202-555-0666")
                      ).status_code == 201
    helper.api_ok("POST", "/policies", {"owner": "mallory", "policy": "auto"})
    mallory.api_ok("POST", "/targets", {"targets": ["user:helper"]})
    return mallory, helper


def test_the_copy_oracle_finds_nobody_who_hides(shipped):
    alice = person(shipped, "alice", "alice-me.vcf")   # verified 0101; will hide: nobody
    person(shipped, "bob", "bob-me.vcf")               # verified 0102; contacts (default)
    carol = person(shipped, "carol", "carol-me.vcf")   # verified 0103; everyone
    alice.api_ok("POST", "/privacy", {"discoverability": "nobody"})
    carol.api_ok("POST", "/privacy", {"discoverability": "everyone"})
    mallory, helper = mallory_with_helper(shipped)
    candidates = list(VICTIMS.values()) + DECOYS
    assert mallory.put("me.vcf", vcard("mallory-me", "Mallory", OWN, *(
        "TEL:+1 %s" % n for n in candidates))).status_code == 204
    report = settled(mallory)
    assert {r["user"]: r["state"] for r in report["recipients"]} == {"helper": "delivered"}

    # positive control: the copy went into the helper's card by Mallory's verified number
    assert helper.copy_of("mallory") == "mal.vcf"
    copy = numbers(helper.card("mal.vcf"))
    missing = set(candidates) - copy
    # hidden users (nobody, contacts) are not told apart from numbers of nobody at all;
    # what is left out is exactly what /resolve tells Mallory anyway
    assert missing == {VICTIMS["carol"]}, copy
    resolved = mallory.api_ok("POST", "/resolve", {"keys": ["tel:+1" + n for n in candidates]})
    assert {k[6:] for k in resolved} == missing

    # the plain values match nothing: Alice's number in the helper's copy of Mallory is no
    # sign that the helper knows Alice, so Alice may not even see the helper
    alice.api_ok("POST", "/targets", {"targets": ["user:helper"]})
    report = settled(alice)
    assert report["recipients"] == [] and report["skipped"][0]["rule"] == "user:helper"
    assert sorted(helper.hrefs()) == ["mal.vcf"]
    assert all(o["owner"] != "alice" for o in helper.api_ok("GET", "/offers")["offers"])


def test_the_answer_is_the_same_after_a_hidden_user_verifies_a_claimed_number(shipped):
    mallory, helper = mallory_with_helper(shipped)
    assert mallory.put("me.vcf", vcard("mallory-me", "Mallory", OWN, "TEL:+1 202 555 0104")
                       ).status_code == 204
    settled(mallory)
    before = helper.card("mal.vcf")
    assert "2025550104" in numbers(before)
    # Dave (contacts: hidden from Mallory) verifies the number Mallory claims
    dave = person(shipped, "dave")
    assert dave.put("me.vcf", vcard("dave-me", "Dave", "TEL:2025550104")).status_code == 201
    dave.api_ok("POST", "/me-card", {"path": "/dave/contacts/me.vcf"})
    dave.verify_me_card()
    settled(mallory)
    assert helper.card("mal.vcf") == before
    assert mallory.api_ok("POST", "/resolve", {"keys": ["tel:+12025550104"]}) == {}


def test_a_me_card_carries_a_bounded_number_of_keys_and_of_new_ones_a_day(shipped):
    mallory, helper = mallory_with_helper(shipped)
    me = mallory.card("me.vcf")
    many = [OWN] + ["TEL:+1 202 555 %04d" % n for n in range(1000, 1020)]  # 21 keys
    # CardDAV: refused before it is stored
    r = mallory.put("me.vcf", vcard("mallory-me", "Mallory", *many))
    assert 400 <= r.status_code < 500, r.status_code
    assert mallory.card("me.vcf") == me
    # the API says what to fix
    r = mallory.api("POST", "/me-card/content", {"card": vcard("mallory-me", "Mallory", *many)})
    assert r.status_code == 413 and "at most 20" in r.json()["error"], r.text
    # designating such a card, too
    assert mallory.put("big.vcf", vcard("big", "Mallory", *many)).status_code == 201
    r = mallory.api("POST", "/me-card", {"path": "/mallory/contacts/big.vcf"})
    assert r.status_code == 413 and "at most 20" in r.json()["error"], r.text
    assert mallory.api_ok("GET", "/me")["me_card"] == "/mallory/contacts/me.vcf"

    # 19 new numbers (with his own one: 20 new today) are accepted ...
    first = many[:20]
    mallory.api_ok("POST", "/me-card/content", {"card": vcard("mallory-me", "Mallory", *first)})
    # ... one more new one is not, by either path, until tomorrow
    more = [OWN, "TEL:+1 202 555 0999"]
    r = mallory.api("POST", "/me-card/content", {"card": vcard("mallory-me", "Mallory", *more)})
    assert r.status_code == 429 and "new ones a day" in r.json()["error"], r.text
    assert int(r.headers["Retry-After"]) >= 1
    r = mallory.put("me.vcf", vcard("mallory-me", "Mallory", *more))
    assert 400 <= r.status_code < 500
    # positive control: numbers he had today come back freely, and go out
    back = first[:6]
    mallory.api_ok("POST", "/me-card/content", {"card": vcard("mallory-me", "Mallory", *back)})
    assert mallory.put("me.vcf", vcard("mallory-me", "Mallory Mills", *back)).status_code == 204
    settled(mallory)
    copy = helper.card("mal.vcf")
    assert "FN:Mallory Mills" in copy or "Mal" in copy
    assert {re.sub(r"\D", "", line)[-10:] for line in back} <= numbers(copy)
