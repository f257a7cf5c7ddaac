# SPDX-License-Identifier: GPL-3.0-or-later
"""A recipient's history and undo (issue 15), against a real server with the shipped defaults.

Bob keeps a card "Ally" for Alice (her verified e-mail, not her number, his note and
nickname).  He chooses ``auto`` for Alice himself, through the API, as a user does; nobody
is pre-authorised.  Alice changes her number; Bob edits his note afterwards; then he undoes
Alice's change: her old number comes back, his note stays, the card's ETag changes and his
phone (vdirsyncer) gets it at its next sync.  Alice's next unrelated change does not bring
the undone number back; her next change of the number does.
"""
from __future__ import annotations

import io
import json
import re

import pytest

from bridge.cli import main as bridge_main
from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture, settled, wait_until
from tests.test_fanout_e2e import person
from tests.test_rollback_e2e import Phone

OLD, NEW, NEWER = "+1 202 555 0101", "+1 202 555 0199", "+1 202 555 0155"
#: Bob's card for Alice: her e-mail (verified) but not her number
ALLY = fixture("bob-contact-alice.vcf").replace("TEL;TYPE=CELL:(202) 555-0101\r\n", "")
ALICE_NEW = fixture("alice-me-new-number.vcf")


def history(client: Client, query: str = "") -> list[dict]:
    return client.api_ok("GET", "/history" + query)["history"]


def undo(client: Client, entry: int | str):
    return client.api("POST", "/history/%s/undo" % entry, {})


def etag(client: Client, href: str) -> str:
    r = client.get(href)
    assert r.status_code == 200
    return r.headers["ETag"]


def number_change(client: Client, before: str, after: str) -> dict:
    """The history entry that replaced the number ``before`` by ``after``."""
    (found,) = [e for e in history(client) if any(
        c["field"] == "TEL" and before in (c["before"] or "") and after in (c["after"] or "")
        for c in e["changes"])]
    return found


def alice_and_bob(server: RadicaleServer, policy: str = "auto") -> tuple[Client, Client]:
    """Alice shares with Bob, who chose ``policy`` for her; her number is in his card."""
    alice = person(server, "alice", "alice-me.vcf")
    bob = person(server, "bob")
    assert bob.put("ally.vcf", ALLY).status_code == 201
    bob.api_ok("POST", "/policies", {"owner": "alice", "policy": policy})
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    if policy == "auto":
        wait_until(lambda: OLD in bob.card("ally.vcf"), 60, "Alice's number in Bob's card")
    return alice, bob


def alice_changes(alice: Client, text: str) -> None:
    assert alice.put("alice.vcf", text).status_code in (201, 204)
    settled(alice)


def undone_once(server: RadicaleServer) -> tuple[Client, Client, dict, dict]:
    """Alice's number change reached Bob, he edited his note since, and undid the change."""
    alice, bob = alice_and_bob(server)
    alice_changes(alice, ALICE_NEW)
    wait_until(lambda: NEW in bob.card("ally.vcf"), 60, "the new number")
    edited = bob.card("ally.vcf").replace("climbing gym", "climbing gym on Tuesdays")
    assert bob.put("ally.vcf", edited).status_code == 204
    entry = number_change(bob, OLD, NEW)
    answer = undo(bob, entry["id"])
    assert answer.status_code == 200, answer.text
    return alice, bob, entry, answer.json()


def test_undo_brings_my_old_values_back_keeps_my_later_edits_and_my_phone_sees_it(
        public_server, tmp_path):
    alice, bob = alice_and_bob(public_server)
    alice_changes(alice, ALICE_NEW)
    wait_until(lambda: NEW in bob.card("ally.vcf"), 60, "the new number")
    # Bob edits his note afterwards, and his phone has synced the card
    edited = bob.card("ally.vcf").replace("climbing gym", "climbing gym on Tuesdays")
    assert bob.put("ally.vcf", edited).status_code == 204
    phone = Phone(tmp_path, public_server)
    phone.sync()
    token, _ = bob.sync()
    tag = etag(bob, "ally.vcf")

    entry = number_change(bob, OLD, NEW)
    assert entry["owner"] == "alice" and entry["card"] == "/bob/contacts/ally.vcf"
    assert entry["undone"] is None and entry["undoable"] is True
    r = undo(bob, entry["id"])
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["undone"] == entry["id"] and answer["card"] == "/bob/contacts/ally.vcf"
    assert answer["written"] is True and answer["not_put_back"] == []
    assert [c["field"] for c in answer["put_back"]] == ["TEL"]

    card = bob.card("ally.vcf")
    assert OLD in card and NEW not in card
    for kept in ("NOTE:met at the climbing gym on Tuesdays", "NICKNAME:Sis", "FN:Ally",
                 "+1 202 555 0777", "EMAIL:alice@example.org"):
        assert kept in card, kept
    assert etag(bob, "ally.vcf") != tag
    assert bob.sync(token)[1] == ["ally.vcf"]  # a normal change: sync-collection lists it
    phone.sync()
    local = phone.path("bobs-card-for-alice").read_text()
    assert OLD in local and NEW not in local and "on Tuesdays" in local

    # the history says so: the entry is undone, the undo is an entry of its own
    entries = {e["id"]: e for e in history(bob)}
    assert entries[entry["id"]]["undone"] and entries[entry["id"]]["undoable"] is False
    (own,) = [e for e in entries.values() if e["action"] == "undo"]
    assert own["id"] == answer["entry"] and own["undoes"] == entry["id"]
    assert own["undoable"] is False
    assert {"field": "TEL", "before": "TEL;TYPE=CELL:" + NEW,
            "after": "TEL;TYPE=CELL:" + OLD} in own["changes"]
    # the owner learns nothing of it: Bob's copy is as delivered for all she knows
    assert [r["state"] for r in alice.api_ok("GET", "/targets")["recipients"]] == ["delivered"]


def test_undoing_twice_gives_the_same_answer_and_writes_nothing(public_server):
    _, bob, entry, first = undone_once(public_server)
    tag, count = etag(bob, "ally.vcf"), len(history(bob))
    token, _ = bob.sync()
    again = undo(bob, entry["id"])
    assert again.status_code == 200 and again.json() == first
    assert etag(bob, "ally.vcf") == tag and len(history(bob)) == count
    assert bob.sync(token)[1] == []


def test_the_undone_value_is_not_written_again_until_the_owner_changes_it(public_server,
                                                                          tmp_path):
    alice, bob, _, _ = undone_once(public_server)
    # Bob's phone syncs the undone card and saves an edit of his: no rollback, nothing
    # put "right" again
    phone = Phone(tmp_path, public_server)
    phone.sync()
    local = phone.path("bobs-card-for-alice")
    local.write_text(local.read_text().replace("NICKNAME:Sis", "NICKNAME:Sister"))
    phone.sync()
    assert [r["state"] for r in alice.api_ok("GET", "/targets")["recipients"]] == ["delivered"]

    # an unrelated change of Alice's (her e-mail) arrives; the undone number stays out
    alice_changes(alice, ALICE_NEW.replace("alice@example.org", "ally@example.org"))
    wait_until(lambda: "ally@example.org" in bob.card("ally.vcf"), 60, "the new e-mail")
    card = bob.card("ally.vcf")
    assert OLD in card and NEW not in card and "NICKNAME:Sister" in card
    assert "on Tuesdays" in card

    # Alice changes her number again: the new one is written, like any change
    alice_changes(alice, ALICE_NEW.replace(NEW, NEWER).replace("alice@example.org",
                                                                 "ally@example.org"))
    wait_until(lambda: NEWER in bob.card("ally.vcf"), 60, "Alice's newer number")
    card = bob.card("ally.vcf")
    assert NEW not in card and "NICKNAME:Sister" in card and "on Tuesdays" in card
    # and the number she had before the undone change follows hers again
    assert OLD not in card


def test_an_offer_after_an_undo_shows_what_would_be_written_without_the_undone_value(
        public_server):
    alice, bob = alice_and_bob(public_server, policy="ask")
    wait_until(lambda: bob.api_ok("GET", "/offers")["offers"], 60, "the first offer")
    bob.api_ok("POST", "/offers/alice/accept", {"once": True})
    alice.put("alice.vcf", ALICE_NEW)
    wait_until(lambda: bob.api_ok("GET", "/offers")["offers"], 60, "the number's offer")
    bob.api_ok("POST", "/offers/alice/accept", {"once": True})
    assert NEW in bob.card("ally.vcf")
    assert undo(bob, number_change(bob, OLD, NEW)["id"]).status_code == 200

    alice.put("alice.vcf", ALICE_NEW.replace("alice@example.org", "ally@example.org"))
    (offer,) = wait_until(lambda: bob.api_ok("GET", "/offers")["offers"], 60, "the offer")
    assert [c["field"] for c in offer["changes"]] == ["EMAIL"], offer["changes"]
    bob.api_ok("POST", "/offers/alice/accept", {"once": True})
    card = bob.card("ally.vcf")
    assert "ally@example.org" in card and OLD in card and NEW not in card


def test_an_owner_value_i_changed_since_is_not_put_back_and_the_answer_says_why(
        public_server):
    alice, bob = alice_and_bob(public_server)
    alice_changes(alice, ALICE_NEW)
    wait_until(lambda: NEW in bob.card("ally.vcf"), 60, "the new number")
    mine = bob.card("ally.vcf").replace(NEW, "+1 202 555 0123")  # Bob's own correction
    assert bob.put("ally.vcf", mine).status_code == 204
    answer = undo(bob, number_change(bob, OLD, NEW)["id"]).json()
    assert answer["put_back"] == [] and answer["written"] is False
    (left,) = answer["not_put_back"]
    assert left["field"] == "TEL" and "you changed" in left["why"]
    assert "+1 202 555 0123" in bob.card("ally.vcf") and OLD not in bob.card("ally.vcf")


def test_another_user_can_neither_read_nor_undo_my_changes(public_server):
    alice, bob = alice_and_bob(public_server)
    carol = person(public_server, "carol")
    mine = history(bob)
    assert mine and history(carol) == []
    assert history(alice) == []  # the owner does not read her recipients' histories
    for intruder in (carol, alice):
        theirs, unknown = undo(intruder, mine[0]["id"]), undo(intruder, 987654)
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json()["error"].replace(str(mine[0]["id"]), "N") == \
            unknown.json()["error"].replace("987654", "N")
    assert history(bob) == mine  # nothing was undone
    # positive control: Bob himself may (his first entry linked and filled his card)
    alice_changes(alice, ALICE_NEW)
    wait_until(lambda: NEW in bob.card("ally.vcf"), 60, "the new number")
    assert undo(bob, number_change(bob, OLD, NEW)["id"]).status_code == 200


def test_history_filters_by_owner(public_server):
    alice, bob = alice_and_bob(public_server)
    dave = person(public_server, "dave", "carol-me.vcf")  # a second owner, with his card
    bob.api_ok("POST", "/policies", {"owner": "dave", "policy": "auto"})
    dave.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    wait_until(lambda: {e["owner"] for e in history(bob)} == {"alice", "dave"}, 60,
               "changes of both owners")
    assert {e["owner"] for e in history(bob, "?owner=alice")} == {"alice"}
    assert {e["owner"] for e in history(bob, "?owner=dave")} == {"dave"}
    assert history(bob, "?owner=erin") == []
    assert len(history(bob, "?limit=1")) == 1
    for bad in ("?owner=..", "?owner=.x", "?owner=a/b", "?limit=0", "?limit=x",
                "?limit=1001"):
        r = bob.api("GET", "/history" + bad)
        assert r.status_code == 400 and r.json()["error"], (bad, r.text)


def test_bad_ids_and_changes_that_cannot_be_undone_get_a_clear_4xx(public_server):
    alice, bob = alice_and_bob(public_server)
    for bad in ("abc", "0", "-1", "1.5", "99999999999999999999", "%20", "1e3"):
        r = undo(bob, bad)
        assert r.status_code == 400 and "history" in r.json()["error"], (bad, r.text)
    assert undo(bob, 424242).status_code == 404
    # a card the owner's values were put into, and which Bob deleted since
    alice_changes(alice, ALICE_NEW)
    wait_until(lambda: NEW in bob.card("ally.vcf"), 60, "the new number")
    entry = number_change(bob, OLD, NEW)
    assert bob.http.delete(bob.url + bob.book() + "ally.vcf").status_code in (200, 204)
    r = undo(bob, entry["id"])
    assert r.status_code == 409 and "gone" in r.json()["error"], r.text
    (listed,) = [e for e in history(bob) if e["id"] == entry["id"]]
    assert listed["undoable"] is False
    # a new contact the server created: deleted by its recipient, not undone
    erin = person(public_server, "erin")
    erin.api_ok("POST", "/policies", {"owner": "alice", "policy": "auto"})
    alice.api_ok("POST", "/targets", {"targets": ["user:bob", "user:erin"]})
    settled(alice)
    created = wait_until(lambda: [e for e in history(erin) if e["action"] == "create"], 60,
                         "a card created for Erin")
    r = undo(erin, created[0]["id"])
    assert r.status_code == 409 and "delete the contact" in r.json()["error"]


@pytest.fixture
def short_history(tmp_path):
    """The shipped defaults but a history kept for 3 seconds (as 3/86400 days), so that
    its purge is seen in a test; the purge itself is the shipped code."""
    root = tmp_path / "short"  # beside public_server's, which the test also uses
    root.mkdir()
    srv = RadicaleServer(root, USERS, mecard_history_days=str(3 / 86400)).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_history_older_than_the_configured_days_is_purged(short_history, public_server):
    _, bob = alice_and_bob(short_history)
    # positive control: with the default (a year) the same history, as old, stays
    _, kept = alice_and_bob(public_server)
    entries = history(kept)
    assert history(bob) and entries
    wait_until(lambda: history(bob) == [], 30, "the purge of the old history")
    assert "History: 1 entry older than" in short_history.log.read_text()
    assert history(kept) == entries


def bridge(server: RadicaleServer, monkeypatch, *argv: str) -> tuple[int, str]:
    monkeypatch.setenv("MECARD_URL", server.url)
    monkeypatch.setenv("MECARD_USER", "bob")
    monkeypatch.setenv("MECARD_PASSWORD", "bob-pw")
    monkeypatch.setenv("HOME", str(server.root))  # no ~/.netrc or config of the developer's
    out = io.StringIO()
    return bridge_main(list(argv), out=out), out.getvalue()


def test_bridge_lists_my_history_and_undoes_a_change(public_server, monkeypatch, capsys):
    alice, bob = alice_and_bob(public_server)
    alice_changes(alice, ALICE_NEW)
    wait_until(lambda: NEW in bob.card("ally.vcf"), 60, "the new number")
    entry = number_change(bob, OLD, NEW)

    code, said = bridge(public_server, monkeypatch, "history", "--owner", "alice")
    assert code == 0
    assert re.search(r"^%d\s.*alice\s+update /bob/contacts/ally.vcf\s+can be undone$"
                     % entry["id"], said, re.M), said
    assert re.search(r"TEL: .*0101.* → .*0199", said), said
    code, said = bridge(public_server, monkeypatch, "undo", str(entry["id"]))
    assert code == 0 and "Undid change %d in /bob/contacts/ally.vcf" % entry["id"] in said
    assert "put back TEL" in said
    assert OLD in bob.card("ally.vcf")
    code, said = bridge(public_server, monkeypatch, "--json", "history")
    listed = {e["id"]: e for e in json.loads(said)["history"]}
    assert code == 0 and listed[entry["id"]]["undone"]
    code, said = bridge(public_server, monkeypatch, "history", "--owner", "nobody-here")
    assert code == 0 and "No change" in said
    # a bad ID is one line of advice, and the server is not asked
    code, _ = bridge(public_server, monkeypatch, "undo", "twelve")
    assert code == 1 and "not a change's ID" in capsys.readouterr().err
    code, _ = bridge(public_server, monkeypatch, "undo", "424242")
    assert code == 1 and "no change 424242" in capsys.readouterr().err
