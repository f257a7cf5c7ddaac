# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: calls that name a user tell no more than ``/resolve`` would.

``POST /policies``, ``user:NAME`` target rules and ``/me-card/content`` with
``only`` answer the same for a name that is no user as for a user the caller may
not see (discoverability), and count against the ``/resolve`` budget.  A user the
caller may see still works.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.conftest import USERS
from tests.server import Client, RadicaleServer, settled
from tests.test_fanout_e2e import person
from tests.test_trust_attacks_e2e import vcard

NAME = "NAME"


@pytest.fixture
def shipped(tmp_path) -> Iterator[RadicaleServer]:
    server = RadicaleServer(tmp_path, USERS).start()
    try:
        yield server
    finally:
        server.stop()


def people(server: RadicaleServer) -> tuple[Client, Client, Client]:
    """Alice; Bob, who may not be seen by her (contacts, and no card for her); Carol, who
    has Alice's verified number in her book, so Alice may see her."""
    alice = person(server, "alice", "alice-me.vcf")
    bob = person(server, "bob", "bob-me.vcf")
    carol = person(server, "carol", "carol-me.vcf")
    assert carol.put("c-alice.vcf", vcard("carols-alice", "Alice", "TEL:202-555-0101")
                     ).status_code == 201
    return alice, bob, carol


def answer(client: Client, call: str, data: dict, name: str) -> tuple[int, str]:
    """Status and body, with the name asked about written as NAME."""
    r = client.api("POST", call, data)
    return r.status_code, r.text.replace(name, NAME)


def test_a_name_that_is_no_user_and_a_hidden_user_get_the_same_answers(shipped):
    alice, bob, carol = people(shipped)
    me = alice.card("alice.vcf")
    # each answer lists the one policy just set: it is undone before the next name
    policies = {}
    for n in ("zed", "bob"):
        policies[n] = answer(alice, "/policies", {"owner": n, "policy": "block"}, n)
        alice.api_ok("POST", "/policies", {"owner": n, "policy": None})
    assert policies["zed"] == policies["bob"] and policies["zed"][0] == 200

    targets, reports, contents = {}, {}, {}
    for n in ("zed", "bob"):
        targets[n] = answer(alice, "/targets", {"targets": ["user:" + n]}, n)
        report = settled(alice)
        reports[n] = str({k: v for k, v in report.items() if k != "seq"}).replace(n, NAME)
        contents[n] = answer(alice, "/me-card/content", {"card": me, "only": [n]}, n)
    assert targets["zed"] == targets["bob"] and targets["zed"][0] == 200
    assert reports["zed"] == reports["bob"]
    assert "no user you may see here" in reports["bob"] and "'recipients': []" in reports["bob"]
    assert contents["zed"] == contents["bob"] and contents["zed"][0] == 200
    assert bob.api_ok("GET", "/offers")["offers"] == []
    assert all("Alice" not in bob.card(h) for h in bob.hrefs() if h != "bob.vcf")

    # positive control: Carol, whom Alice may see, is named, targeted and offered the card
    alice.api_ok("POST", "/policies", {"owner": "carol", "policy": "auto"})
    assert alice.api_ok("GET", "/policies")["policies"] == {"carol": "auto"}
    alice.api_ok("POST", "/targets", {"targets": ["user:carol"]})
    report = settled(alice)
    assert [r["user"] for r in report["recipients"]] == ["carol"] and report["skipped"] == []
    assert report["recipients"][0]["state"] == "offered"
    assert [o["owner"] for o in carol.api_ok("GET", "/offers")["offers"]] == ["alice"]


def test_a_hidden_user_who_chose_the_owner_is_reached_by_name(shipped):
    alice, bob, _ = people(shipped)
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    assert settled(alice)["recipients"] == []
    # Bob names Alice in a policy of his: he has shown himself to her
    bob.api_ok("POST", "/policies", {"owner": "alice", "policy": "auto"})
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    report = settled(alice)
    assert [(r["user"], r["state"]) for r in report["recipients"]] == [("bob", "delivered")]
    assert report["skipped"] == []


def test_naming_users_counts_against_the_resolve_budget(tmp_path):
    # a small budget (tighter than shipped), so that it runs out within the test
    server = RadicaleServer(tmp_path, USERS, mecard_resolve_per_hour="5").start()
    try:
        alice = person(server, "alice", "alice-me.vcf")  # designating spends 2 (her keys)
        me = alice.card("alice.vcf")
        alice.api_ok("POST", "/policies", {"owner": "u1", "policy": "block"})
        alice.api_ok("POST", "/targets", {"targets": ["user:u2", "user:u3"]})
        alice.api_ok("POST", "/targets", {"targets": ["user:u2", "user:u3"]})  # none new
        # the budget is spent: each way of naming one more user is refused alike
        for call, data in (("/policies", {"owner": "u4", "policy": "block"}),
                           ("/targets", {"add": ["user:u4"]}),
                           ("/me-card/content", {"card": me, "only": ["u4"]}),
                           ("/resolve", {"keys": ["tel:+12025550104"]})):
            r = alice.api("POST", call, data)
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, (call, r.text)
        assert "user:u4" not in alice.api_ok("GET", "/me")["targets"]
    finally:
        server.stop()
