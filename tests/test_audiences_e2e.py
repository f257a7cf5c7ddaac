# SPDX-License-Identifier: GPL-3.0-or-later
"""Field sets per audience, end to end, under the shipped defaults (``ask``, ``contacts``).

Alice shares FN, N, TEL, EMAIL.  Her family gets her home address and birthday and
not her e-mail (``group:Family``: FN, N, TEL, ADR, BDAY), everyone else her e-mail and
not her number (``all``: FN, N, EMAIL), her work contacts her title (``group:Work``:
FN, N, TITLE), and Dave, named by ``user:dave`` and in her family, his own set
(FN, N, EMAIL, TITLE).  Bob, Carol and Dave chose ``auto`` for Alice through the
API; Erin keeps the default ``ask``.  Bob, Dave and Erin keep a card for Alice in
their books (so that Alice may find them); Carol chose to be discoverable by
everyone and has none (her copy is a new contact).
"""
from __future__ import annotations

from typing import Callable

import pytest

from radicale_plugin.vcard.codec import parse_card
from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture, settled, wait_until

ALICE = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:alice-me\r\nFN:Alice Archer\r\n"
         "N:Archer;Alice;;;\r\nTEL;TYPE=CELL:+1 202 555 0101\r\n"
         "EMAIL;TYPE=INTERNET:alice@example.org\r\n"
         "ADR;TYPE=HOME:;;1 Main St;Springfield;;12345;USA\r\nBDAY:1990-04-01\r\n"
         "TITLE:Chief Climber\r\nNOTE:private note of alice\r\nEND:VCARD\r\n")
HOME = "1 Main St"
BDAY = "1990-04-01"
TITLE = "Chief Climber"
EMAIL = "alice@example.org"


def card(uid: str, *lines: str, version: str = "3.0") -> str:
    return "BEGIN:VCARD\r\nVERSION:%s\r\nUID:%s\r\n%s\r\nEND:VCARD\r\n" % (
        version, uid, "\r\n".join(lines))


ME = {"dave": card("dave-me", "FN:Dave Dunn", "N:Dunn;Dave;;;", "TEL:+1 202 555 0104"),
      "erin": card("erin-me", "FN:Erin Eck", "N:Eck;Erin;;;", "TEL:+1 202 555 0105")}
#: Bob's own card for Alice: her number, and lines of his own (his nickname, a note, the
#: address of her climbing gym)
BOBS_ALLY = card("bobs-card-for-alice", "FN:Ally", "N:;Ally;;;", "NICKNAME:Sis",
                 "TEL;TYPE=CELL:(202) 555-0101", "ADR;TYPE=WORK:;;9 Gym Rd;Springfield;;;USA",
                 "NOTE:met at the climbing gym")
ALICES_CONTACTS = {
    "c-bob.vcf": card("c-bob", "FN:Bob", "TEL:202-555-0102", "CATEGORIES:Family"),
    "c-carol.vcf": card("c-carol", "FN:Carol", "EMAIL:carol@example.org"),
    "c-dave.vcf": card("c-dave", "FN:Dave", "TEL:202-555-0104", "CATEGORIES:Family"),
    "c-erin.vcf": card("c-erin", "FN:Erin", "TEL:202-555-0105", "CATEGORIES:Family,Work"),
}
AUDIENCES = {"group:Family": ["FN", "N", "TEL", "ADR", "BDAY"],
             "all": ["FN", "N", "EMAIL"],
             "group:Work": ["FN", "N", "TITLE"],
             "user:dave": ["FN", "N", "EMAIL", "TITLE"]}


def user(server: RadicaleServer, name: str, me: str | None = None) -> Client:
    client = server.client(name)
    client.login()
    if me is not None:
        assert client.put("me.vcf", me).status_code == 201
        client.api_ok("POST", "/me-card", {"path": client.book() + "me.vcf"})
        client.verify_me_card()
    return client


def world(server: RadicaleServer) -> dict[str, Client]:
    """Everyone set up as the module says; Alice's card delivered (or offered to Erin)."""
    people = {"bob": user(server, "bob", fixture("bob-me.vcf")),
              "carol": user(server, "carol", fixture("carol-me.vcf")),
              "dave": user(server, "dave", ME["dave"]), "erin": user(server, "erin", ME["erin"])}
    people["bob"].put("ally.vcf", BOBS_ALLY)
    people["dave"].put("al.vcf", card("daves-al", "FN:Al", "TEL:+1 202 555 0101"))
    people["erin"].put("alice.vcf", card("erins-alice", "FN:Alice A", "TEL:+12025550101"))
    people["carol"].api_ok("POST", "/privacy", {"discoverability": "everyone"})
    for name in ("bob", "carol", "dave"):  # their own answer, through the API
        people[name].api_ok("POST", "/policies", {"owner": "alice", "policy": "auto"})
    alice = people["alice"] = user(server, "alice")
    for href, text in ALICES_CONTACTS.items():
        assert alice.put(href, text).status_code == 201
    rules = list(AUDIENCES)
    alice.api_ok("POST", "/targets", {"targets": rules})
    for rule, fields in AUDIENCES.items():  # before anything goes out
        alice.api_ok("POST", "/audiences", {"rule": rule, "fields": fields})
    assert alice.put("me.vcf", ALICE).status_code == 201
    alice.api_ok("POST", "/me-card", {"path": alice.book() + "me.vcf"})
    alice.verify_me_card()
    alice.api_ok("POST", "/targets", {"targets": rules})  # those she may find now, too
    report = settled(alice)
    states = {r["user"]: r["state"] for r in report["recipients"]}
    assert states == {"bob": "delivered", "carol": "delivered", "dave": "delivered",
                      "erin": "offered"}, report
    return people


def copy(client: Client, owner: str = "alice") -> str:
    return client.card(client.copy_of(owner))


def copy_once(client: Client, check: Callable[[str], bool], what: str) -> str:
    """Alice's copy in ``client``'s book once ``check`` holds for it."""
    def ready() -> str | None:
        text = copy(client)
        return text if check(text) else None
    return wait_until(ready, what=what)


def shared_lines(text: str) -> list[tuple[str, str]]:
    return [(ln.name, ln.value) for ln in parse_card(text).lines
            if ln.name not in ("VERSION", "PRODID", "UID", "REV")]


def test_each_recipient_gets_the_field_set_of_their_most_specific_rule(public_server):
    people = world(public_server)
    alice, bob, carol, dave = (people[n] for n in ("alice", "bob", "carol", "dave"))

    # Family before all: home address and birthday, not the e-mail
    ally = copy(bob)
    assert bob.copy_of("alice") == "ally.vcf"
    assert HOME in ally and BDAY in ally and EMAIL not in ally and TITLE not in ally
    assert "NICKNAME:Sis" in ally and "9 Gym Rd" in ally  # his own lines stay
    # only all: e-mail, never the number, address or birthday
    carols = copy(carol)
    assert EMAIL in carols and HOME not in carols and BDAY not in carols
    assert "555 0101" not in carols and TITLE not in carols
    # user:dave before group:Family: his set, not the family's
    daves = copy(dave)
    assert TITLE in daves and EMAIL in daves and HOME not in daves and BDAY not in daves
    assert "private note" not in ally + carols + daves

    why = alice.api_ok("GET", "/preview?recipient=dave")
    assert why["rules"] == ["user:dave"] and why["fields"] == AUDIENCES["user:dave"]
    assert {"user:dave", "group:Family (contact Dave)"} <= set(why["selected_by"])
    assert "named person before" in why["reason"]
    why = alice.api_ok("GET", "/preview?recipient=bob")
    assert why["rules"] == ["group:Family"] and "before all" in why["reason"]
    # equally specific: Erin's family and work sets, united
    why = alice.api_ok("GET", "/preview?recipient=erin")
    assert why["rules"] == ["group:Family", "group:Work"] and "union" in why["reason"]
    assert set(why["fields"]) == {"FN", "N", "TEL", "ADR", "BDAY", "TITLE"}

    # the preview of an audience is what its copies hold: Carol's is a new contact
    preview = alice.api_ok("GET", "/preview?rule=all")
    assert preview["fields"] == AUDIENCES["all"]
    assert shared_lines(preview["card"]) == shared_lines(carols)
    assert [(x["field"], x["value"]) for x in preview["lines"]] == shared_lines(carols)
    # and the owner's GET /me lists the sets
    me = alice.api_ok("GET", "/me")
    assert {a["rule"]: a["fields"] for a in me["audiences"]} == AUDIENCES
    assert me["shared_fields"] == ["FN", "N", "TEL", "EMAIL"]


def test_dropping_a_field_from_an_audience_removes_it_from_its_copies_only(public_server):
    people = world(public_server)
    alice, bob, carol, dave = (people[n] for n in ("alice", "bob", "carol", "dave"))
    dave_before = copy(dave)
    alice.api_ok("POST", "/audiences", {"rule": "group:Family", "withdraw": True,
                                        "fields": ["FN", "N", "TEL", "BDAY"]})
    settled(alice)
    ally = copy_once(bob, lambda text: HOME not in text, "Alice's address leaving Bob's copy")
    assert BDAY in ally and ("555-0101" in ally or "555 0101" in ally)
    for own in ("NICKNAME:Sis", "9 Gym Rd", "NOTE:met at the climbing gym", "FN:Ally"):
        assert own in ally
    assert copy(dave) == dave_before  # not in that audience: untouched
    assert HOME not in copy(carol)
    preview = alice.api_ok("GET", "/preview?rule=group:Family")
    assert HOME not in preview["card"] and BDAY in preview["card"]
    # back to the shared fields: the e-mail goes to the family, the birthday stays given
    alice.api_ok("POST", "/audiences", {"rule": "group:Family", "fields": None})
    settled(alice)
    ally = copy_once(bob, lambda text: EMAIL in text,
                     "Alice's e-mail reaching Bob with the shared fields")
    assert BDAY in ally and HOME not in ally
    assert "group:Family" not in {a["rule"] for a in alice.api_ok("GET", "/me")["audiences"]
                                  if a["fields"] is not None}


def test_an_offer_shows_and_writes_the_audience_view_and_history_holds_its_values(
        public_server):
    people = world(public_server)
    alice, erin = people["alice"], people["erin"]
    (offer,) = erin.api_ok("GET", "/offers")["offers"]
    changed = {c["field"] for c in offer["changes"]}
    assert changed == {"N", "ADR", "BDAY", "TITLE"}, offer["changes"]  # FN and TEL: hers
    assert not any(EMAIL in (c["after"] or "") for c in offer["changes"])
    before = erin.card("alice.vcf")
    assert HOME not in before
    answer = erin.api("POST", "/offers/alice/accept", {"seq": offer["seq"]})
    assert answer.status_code == 200, answer.text
    written = erin.card("alice.vcf")
    assert HOME in written and BDAY in written and TITLE in written
    assert EMAIL not in written and "private note" not in written
    assert "FN:Alice A" in written  # her name for Alice stays hers
    (entry,) = [e for e in erin.api_ok("GET", "/history")["history"] if e["owner"] == "alice"]
    values = " ".join(c["after"] or "" for c in entry["changes"])
    assert HOME in values and TITLE in values and EMAIL not in values
    assert {c["field"] for c in entry["changes"]} == changed
    # the next change of Alice's reaches Erin (now auto) with the audience view only
    alice.put("me.vcf", ALICE.replace("Chief Climber", "Head Climber"))
    settled(alice)
    written = copy_once(erin, lambda text: "Head Climber" in text,
                        "Alice's new title reaching Erin")
    assert EMAIL not in written


@pytest.fixture
def with_mallory(tmp_path):
    """The shipped defaults, with one more user: Mallory, whom Alice may not find."""
    server = RadicaleServer(tmp_path, {**USERS, "mallory": "mallory-pw"}).start()
    try:
        yield server
    finally:
        server.stop()


def test_previews_and_audiences_tell_nobody_about_other_users(with_mallory):
    people = world(with_mallory)
    alice, bob = people["alice"], people["bob"]
    user(with_mallory, "mallory", card("mallory-me", "FN:Mallory", "TEL:+1 202 555 0106"))
    # Alice has Mallory's number in her family; Mallory keeps nothing of Alice's
    alice.put("c-mallory.vcf", card("c-mallory", "FN:M", "TEL:202-555-0106",
                                    "CATEGORIES:Family"))
    assert alice.api_ok("GET", "/preview?recipient=erin")["rules"]  # positive control
    # unknown, hidden and not selected look the same to the owner
    answers = {}
    for name in ("nobody-here", "mallory", "alice"):
        r = alice.api("GET", "/preview?recipient=%s" % name)
        assert r.status_code == 404, r.text
        answers[name] = r.json()["error"].replace(repr(name), "NAME")
    assert len(set(answers.values())) == 1, answers
    assert "mallory" not in alice.api("GET", "/targets").text
    # another user sees only their own rules and sets: Bob has no Family rule
    r = bob.api("GET", "/preview?rule=group:Family")
    assert r.status_code in (400, 409) and HOME not in r.text and "Family" in r.text
    assert bob.api_ok("GET", "/me")["audiences"] == []
    r = bob.api("POST", "/audiences", {"rule": "group:Family", "fields": ["FN"]})
    assert r.status_code == 400 and "POST /targets" in r.json()["error"]
    assert alice.api_ok("GET", "/preview?rule=group:Family")["fields"] == \
        AUDIENCES["group:Family"]  # Bob changed nothing of Alice's
    # bad input: a 4xx with advice, nothing changed
    for data, advice in (({"rule": "group:Family", "fields": ["FN", "UID"]}, "shareable are"),
                         ({"rule": "group:Nope", "fields": ["FN"]}, "target rules"),
                         ({"rule": "friends", "fields": ["FN"]}, "group:NAME"),
                         ({"rule": "all"}, "fields"), ({"fields": ["FN"]}, "rule"),
                         ({"rule": "all", "fields": "FN"}, "list"),
                         ({"rule": "all", "fields": []}, "at least FN"),
                         ({"rule": "all", "fields": ["FN"], "withdraw": "yes"}, "true or false")):
        r = alice.api("POST", "/audiences", data)
        assert r.status_code == 400 and advice in r.json()["error"], (data, r.text)
    for query in ("", "?rule=group:Nope", "?rule=all&recipient=bob", "?rule=x"):
        r = alice.api("GET", "/preview" + query)
        assert r.status_code in (400, 404) and "error" in r.json(), (query, r.text)
    assert {a["rule"]: a["fields"] for a in alice.api_ok("GET", "/me")["audiences"]} == \
        AUDIENCES


def test_sending_to_chosen_people_and_invites_carry_their_audience_view(with_mallory):
    people = world(with_mallory)
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    # "update some": Bob alone gets the new birthday, with his family's set still
    new = ALICE.replace(BDAY, "1990-04-02")
    answer = alice.api_ok("POST", "/me-card/content", {"card": new, "only": ["bob"]})
    assert answer["changed"]
    settled(alice)
    ally = copy_once(bob, lambda text: "1990-04-02" in text, "the new birthday reaching Bob")
    assert HOME in ally and EMAIL not in ally
    assert "1990-04-02" not in copy(carol)
    # an invite gives what a person named by user:NAME gets: here the shared fields
    mallory = user(with_mallory, "mallory", card("mallory-me", "FN:Mallory",
                                                 "TEL:+1 202 555 0106"))
    token = alice.api_ok("POST", "/invites", {})["token"]
    shown = mallory.api_ok("GET", "/invite/" + token)
    assert EMAIL in shown["card"] and "555 0101" in shown["card"]
    assert HOME not in shown["card"] and BDAY not in shown["card"] and TITLE not in shown["card"]
    mallory.api_ok("POST", "/invite/%s/accept" % token, {})
    written = copy(mallory)
    assert EMAIL in written and HOME not in written and "1990-04" not in written
    # a set for user:mallory now applies to her copy at once
    alice.api_ok("POST", "/audiences", {"rule": "user:mallory", "fields": ["FN", "N", "BDAY"]})
    settled(alice)
    copy_once(mallory, lambda text: "1990-04-02" in text, "Mallory's own set reaching her")
    assert alice.api_ok("GET", "/preview?recipient=mallory")["rules"] == ["user:mallory"]


def test_the_bridge_sets_a_field_set_and_previews_it(public_server, monkeypatch):
    import io
    import json

    from bridge.cli import main

    people = world(public_server)
    monkeypatch.setenv("MECARD_URL", public_server.url)
    monkeypatch.setenv("MECARD_USER", "alice")
    monkeypatch.setenv("MECARD_PASSWORD", "alice-pw")
    monkeypatch.setenv("HOME", str(public_server.root))  # no config of the developer's

    def bridge(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        return main(list(argv), out=out), out.getvalue()

    code, out = bridge("audience", "group:family", "FN", "N", "TEL", "BDAY", "--withdraw")
    assert code == 0, out
    assert "group:Family: FN N TEL BDAY; withdrawn from its copies: ADR" in out
    settled(people["alice"])
    copy_once(people["bob"], lambda text: HOME not in text, "the address leaving Bob's copy")
    code, out = bridge("preview", "group:Family")
    assert code == 0 and "group:Family gets: FN N TEL BDAY" in out and HOME not in out
    assert "BDAY:1990-04-01" in out
    code, out = bridge("preview", "--recipient", "dave", "--json")
    assert code == 0 and json.loads(out)["rules"] == ["user:dave"]
    code, out = bridge("audience")
    assert code == 0 and "Shared fields (every rule without a set of its own): FN N TEL EMAIL" \
        in out and "user:dave: FN N EMAIL TITLE" in out
    # mistakes get one line of advice and exit code 1 (2: the command line itself)
    assert bridge("audience", "group:Family")[0] == 1
    assert bridge("audience", "group:Nope", "FN")[0] == 1
    assert bridge("audience", "all", "FN", "UID")[0] == 1
    assert bridge("preview")[0] == 1
    assert bridge("preview", "--recipient", "nobody-here")[0] == 1
