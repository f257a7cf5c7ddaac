# SPDX-License-Identifier: GPL-3.0-or-later
"""Invites on a server installed as the README says, WITHOUT an SMS gateway or SMTP, and with
the shipped defaults (policy ``ask``, discoverability ``contacts``, nobody pre-authorised):
nobody can verify a key there, and an invite is still a way for a card to reach people."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any, Iterator

import pytest

from radicale_plugin.vcard.merge import copy_uid
from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture, settled
from tests.test_bridge_consent_e2e import advice, login
from tests.test_bridge_e2e import bridge
from tests.test_fanout_e2e import person

INVALID = "this invite is not valid (expired, revoked or used up)"
NO_GATEWAYS = {"mecard_smtp_host": "", "mecard_sms_command": ""}
NEW_NUMBER = fixture("alice-me-new-number.vcf")
GROUP = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:grp-family\r\nKIND:group\r\nFN:Family\r\n"
         "END:VCARD\r\n")
PLAIN = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a2\r\nFN:A. Archer\r\nNOTE:mine\r\n"
         "END:VCARD\r\n")


@pytest.fixture
def bare(tmp_path) -> Iterator[RadicaleServer]:
    """The shipped defaults and no gateways: two config lines into an existing Radicale."""
    srv = RadicaleServer(tmp_path, USERS, **NO_GATEWAYS).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def limited(tmp_path) -> Iterator[RadicaleServer]:
    """As ``bare``, with the invite limits lowered (3 created a day, 5 opened an hour) so that
    a test reaches them in a few calls; nothing else is loosened."""
    srv = RadicaleServer(tmp_path, USERS, mecard_invites_per_day="3",
                         mecard_invite_opens_per_hour="5", **NO_GATEWAYS).start()
    try:
        yield srv
    finally:
        srv.stop()


def people(server: RadicaleServer, *users: str) -> list[Client]:
    """Users with a me card each, unverified (no gateway can send them a code)."""
    cards = {"alice": "alice-me.vcf", "bob": "bob-me.vcf", "carol": "carol-me.vcf"}
    return [person(server, u, cards.get(u), verified=False) for u in users]


def invite(owner: Client, **data: Any) -> dict:
    return owner.api_ok("POST", "/invites", data)


def opened(recipient: Client, token: str, card: str | None = None) -> Any:
    query = "" if card is None else "?card=" + card
    return recipient.api("GET", "/invite/%s%s" % (token, query))


def accepted(recipient: Client, token: str, card: Any = None) -> Any:
    return recipient.api("POST", "/invite/%s/accept" % token, {} if card is None else
                         {"card": card})


def refused_alike(answer: Any) -> None:
    """The one answer for a token that cannot be used, whatever the reason."""
    assert (answer.status_code, answer.json()) == (404, {"error": INVALID}), answer.text


def untouched(bob: Client, hrefs: list[str], alice: Client) -> None:
    """Nothing reached bob's book, nor changed his policies or alice's targets."""
    assert bob.hrefs() == hrefs
    assert bob.api_ok("GET", "/policies")["policies"] == {}
    assert alice.api_ok("GET", "/me")["targets"] == []


# -- the main scenario ---------------------------------------------------------------------

def test_without_gateways_an_invite_delivers_the_card_and_later_changes_follow(bare):
    alice, bob = people(bare, "alice", "bob")
    # the premise: nobody can verify a key on this server
    refusal = alice.api("POST", "/keys/verify", {"key": "+1 202 555 0101"})
    assert refusal.status_code == 409, refusal.text

    made = invite(alice, label="for Bob")
    token = made["token"]
    assert made["url"] == "%s/.web/mecard/invite/%s" % (bare.url, token)
    assert len(token) >= 22 and re.fullmatch(r"[A-Za-z0-9_-]+", token)  # >= 128 bits
    assert (made["state"], made["uses"], made["max_uses"]) == ("active", 0, 1)
    stored = b"".join(p.read_bytes() for p in (bare.root / "collections").glob(".mecard.sqlite*"))
    assert stored and token.encode() not in stored  # only its hash is stored

    hrefs = bob.hrefs()
    shown = bob.api_ok("GET", "/invite/" + token)
    assert (shown["owner"], shown["name"], shown["into"]) == ("alice", "Alice Archer", None)
    assert "TEL;TYPE=cell:+1 202 555 0101" in shown["card"].replace("CELL", "cell")
    assert "NOTE" not in shown["card"]  # a field alice does not share
    assert {k["key"]: k["verified"] for k in shown["owner_keys"]} == {
        "tel:+12025550101": False, "mailto:alice@example.org": False}
    assert bob.hrefs() == hrefs  # looking changes nothing

    done = bob.api_ok("POST", "/invite/%s/accept" % token, {})
    href = done["card"].rsplit("/", 1)[1]
    assert done["owner"] == "alice" and done["policy"] == "auto"
    assert bob.card(href) == shown["card"]  # exactly the card that was shown
    assert bob.copy_of("alice") == href
    assert bob.api_ok("GET", "/policies")["policies"] == {"alice": "auto"}
    assert alice.api_ok("GET", "/me")["targets"] == ["user:bob"]
    assert [(r["user"], r["state"]) for r in settled(alice)["recipients"]] == [
        ("bob", "delivered")]

    token_before, _ = bob.sync()
    assert alice.put("alice.vcf", NEW_NUMBER).status_code in (201, 204)
    assert [(r["user"], r["state"]) for r in settled(alice)["recipients"]] == [
        ("bob", "delivered")]
    assert "+1 202 555 0199" in bob.card(href)
    assert bob.sync(token_before)[1] == [href]

    listed = alice.api_ok("GET", "/invites")["invites"]
    assert [(i["id"], i["label"], i["state"], i["uses"], [u["user"] for u in i["used_by"]])
            for i in listed] == [(made["id"], "for Bob", "used up", 1, ["bob"])]
    assert "token" not in listed[0] and "url" not in listed[0]


def test_the_link_names_the_server_as_the_owner_reached_it(bare):
    """Behind a reverse proxy (TLS, a path prefix): the link is the one people can open."""
    alice, bob = people(bare, "alice", "bob")
    answer = alice.http.post(bare.url + "/.web/mecard/api/v1/invites", json={}, headers={
        "Host": "contacts.example.org", "X-Forwarded-Proto": "https", "X-Script-Name": "/dav"})
    assert answer.status_code == 200, answer.text
    made = answer.json()
    assert made["url"] == "https://contacts.example.org/dav/.web/mecard/invite/" + made["token"]
    for host in ("evil.example.org/x?", "a b", ""):  # a Host no URL can carry
        answer = alice.http.post(bare.url + "/.web/mecard/api/v1/invites", json={},
                                 headers={"Host": host})
        url = answer.json()["url"]  # the server's own name and port instead
        assert re.fullmatch(r"http://[a-z0-9.]+:%d/\.web/mecard/invite/[A-Za-z0-9_-]+"
                            % bare.port, url), url


def test_accepting_into_a_card_of_mine_keeps_my_own_lines(bare):
    alice, bob = people(bare, "alice", "bob")
    assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
    token = invite(alice)["token"]

    shown = bob.api_ok("GET", "/invite/%s?card=/bob/contacts/ally.vcf" % token)
    assert shown["into"] == {"path": "/bob/contacts/ally.vcf", "name": "Ally"}
    assert "NICKNAME:Sis" in shown["card"]
    hrefs = bob.hrefs()
    done = accepted(bob, token, "/bob/contacts/ally.vcf").json()
    assert done["card"] == "/bob/contacts/ally.vcf"
    assert bob.hrefs() == hrefs  # no new contact
    card = bob.card("ally.vcf")
    assert card == shown["card"]
    assert "NICKNAME:Sis" in card and "NOTE:met at the climbing gym" in card
    assert {(k["owner"], k["card"], k["made_by"]) for k in bob.api_ok("GET", "/links")["links"]
            } == {("alice", "/bob/contacts/ally.vcf", "invited")}

    alice.put("alice.vcf", NEW_NUMBER)
    settled(alice)
    card = bob.card("ally.vcf")
    assert "+1 202 555 0199" in card and "NICKNAME:Sis" in card


def test_accepting_twice_is_harmless(bare):
    alice, bob = people(bare, "alice", "bob")
    token = invite(alice)["token"]
    first = accepted(bob, token).json()
    href = first["card"].rsplit("/", 1)[1]
    text, hrefs = bob.card(href), bob.hrefs()
    history = bob.api_ok("GET", "/history")["history"]

    assert accepted(bob, token).json() == first   # used up, but not by somebody else
    assert bob.api_ok("GET", "/invite/" + token)["accepted"] is True
    assert (bob.card(href), bob.hrefs()) == (text, hrefs)
    assert bob.api_ok("GET", "/history")["history"] == history
    assert alice.api_ok("GET", "/invites")["invites"][0]["uses"] == 1
    assert alice.api_ok("GET", "/me")["targets"] == ["user:bob"]


def test_a_new_contact_never_lands_on_a_card_already_there(bare):
    alice, bob = people(bare, "alice", "bob")
    where = copy_uid("alice", "bob") + ".vcf"  # where a new copy of alice's would go
    assert bob.put(where, PLAIN).status_code == 201
    token = invite(alice)["token"]
    shown = bob.api_ok("GET", "/invite/" + token)
    href = accepted(bob, token).json()["card"].rsplit("/", 1)[1]
    assert href != where and bob.card(where) == PLAIN  # his card, untouched
    assert bob.card(href) == shown["card"]


# -- invites that cannot be used -------------------------------------------------------------

def test_expired_revoked_used_up_and_unknown_invites_answer_alike(bare):
    alice, bob, carol = people(bare, "alice", "bob", "carol")
    expired = invite(alice, expires_in=1)["token"]
    revoked = invite(alice)
    alice.api_ok("POST", "/invites/%s/revoke" % revoked["id"], {})
    used_up = invite(alice)["token"]
    accepted(carol, used_up)
    carol_hrefs = carol.hrefs()
    time.sleep(1.2)
    hrefs = bob.hrefs()

    for token in (expired, revoked["token"], used_up, secrets.token_urlsafe(24), "short",
                  "x" * 129, "no.such.token.here.at.all"):
        refused_alike(opened(bob, token))
        refused_alike(accepted(bob, token))
    assert bob.hrefs() == hrefs
    assert bob.api_ok("GET", "/policies")["policies"] == {}
    assert alice.api_ok("GET", "/me")["targets"] == ["user:carol"]  # carol's use only
    assert carol.hrefs() == carol_hrefs
    # the owner alone learns why
    assert {i["id"]: i["state"] for i in alice.api_ok("GET", "/invites")["invites"]}[
        revoked["id"]] == "revoked"
    assert sorted(i["state"] for i in alice.api_ok("GET", "/invites")["invites"]) == [
        "expired", "revoked", "used up"]

    # positive control: a fresh invite works for bob
    assert accepted(bob, invite(alice)["token"]).status_code == 200
    assert bob.api_ok("GET", "/policies")["policies"] == {"alice": "auto"}


def test_an_invite_counts_its_uses(bare):
    alice, bob, carol, dave = people(bare, "alice", "bob", "carol", "dave")
    token = invite(alice, max_uses=2)["token"]
    assert accepted(bob, token).status_code == 200
    assert accepted(carol, token).status_code == 200
    refused_alike(accepted(dave, token))
    refused_alike(opened(dave, token))
    found = alice.api_ok("GET", "/invites")["invites"][0]
    assert (found["uses"], found["state"]) == (2, "used up")
    assert sorted(u["user"] for u in found["used_by"]) == ["bob", "carol"]
    assert alice.api_ok("GET", "/me")["targets"] == ["user:bob", "user:carol"]


def test_one_invites_token_or_id_opens_no_other(bare):
    alice, bob, carol = people(bare, "alice", "bob", "carol")
    first, second = invite(alice), invite(alice)
    carols = invite(carol)
    alice.api_ok("POST", "/invites/%s/revoke" % first["id"], {})
    hrefs = bob.hrefs()

    refused_alike(accepted(bob, first["token"]))       # though another of alice's is valid
    refused_alike(opened(bob, second["id"]))            # an id is no token
    for who, invite_id in ((bob, second["id"]), (alice, carols["id"]), (bob, "nope")):
        answer = who.api("POST", "/invites/%s/revoke" % invite_id, {})
        assert answer.status_code == 404 and "you have no invite" in answer.json()["error"]
    assert [i["state"] for i in carol.api_ok("GET", "/invites")["invites"]] == ["active"]
    assert [i["state"] for i in alice.api_ok("GET", "/invites")["invites"]] == [
        "active", "revoked"]
    assert bob.api_ok("GET", "/invites")["invites"] == []  # nobody else's invites are listed
    untouched(bob, hrefs, alice)

    # positive control: the other token works, and its owner may revoke it
    assert accepted(bob, second["token"]).status_code == 200
    assert alice.api_ok("POST", "/invites/%s/revoke" % second["id"], {})["state"] == "revoked"


def test_the_owner_cannot_accept_their_own_invite(bare):
    alice, bob = people(bare, "alice", "bob")
    token = invite(alice)["token"]
    hrefs = alice.hrefs()
    for answer in (opened(alice, token), accepted(alice, token)):
        assert answer.status_code == 409 and "your own invite" in answer.json()["error"]
    assert alice.hrefs() == hrefs
    assert alice.api_ok("GET", "/me")["targets"] == []
    assert alice.api_ok("GET", "/policies")["policies"] == {}
    assert alice.api_ok("GET", "/invites")["invites"][0]["uses"] == 0
    assert accepted(bob, token).status_code == 200  # the person it was meant for still can


def test_a_recipient_may_name_only_an_ordinary_card_of_their_own(bare):
    alice, bob, carol = people(bare, "alice", "bob", "carol")
    assert bob.put("family.vcf", GROUP).status_code == 201
    assert bob.put("a2.vcf", PLAIN).status_code == 201
    accepted(bob, invite(carol)["token"])           # bob holds carol's copy in a card
    carols_copy = "/bob/contacts/" + bob.copy_of("carol")
    assert carol.put("x.vcf", PLAIN.replace("UID:a2", "UID:c-x")).status_code == 201
    token = invite(alice)["token"]
    me_card, hrefs = bob.card("bob.vcf"), bob.hrefs()

    for card, status, says in (
            ("/carol/contacts/x.vcf", 403, "not in one of your address books"),
            ("/carol/contacts/carol.vcf", 403, "not in one of your address books"),
            ("/bob/contacts/bob.vcf", 409, "your own me card"),
            ("/bob/contacts/family.vcf", 409, "a group"),
            (carols_copy, 409, "another user's copy"),
            ("/bob/contacts/nope.vcf", 404, "you have no card"),
            ("/bob/contacts", 404, "not the path of a card")):
        for answer in (opened(bob, token, card), accepted(bob, token, card)):
            assert answer.status_code == status and says in answer.json()["error"], (
                card, answer.status_code, answer.text)
    assert (bob.card("bob.vcf"), bob.hrefs()) == (me_card, hrefs)
    assert alice.api_ok("GET", "/invites")["invites"][0]["uses"] == 0
    assert "alice" not in bob.api_ok("GET", "/policies")["policies"]

    # positive control: an ordinary card of his own
    assert accepted(bob, token, "/bob/contacts/a2.vcf").json()["card"] == "/bob/contacts/a2.vcf"
    assert "NOTE:mine" in bob.card("a2.vcf") and "+1 202 555 0101" in bob.card("a2.vcf")


# -- limits --------------------------------------------------------------------------------

def test_a_stranger_guessing_tokens_finds_nothing_and_is_slowed_down(limited):
    alice, bob, erin = people(limited, "alice", "bob", "erin")
    real = invite(alice)["token"]
    for _ in range(5):
        refused_alike(opened(erin, secrets.token_urlsafe(24)))
    for answer in (opened(erin, real), accepted(erin, secrets.token_urlsafe(24))):
        assert answer.status_code == 429, answer.text
        assert "too many invite links opened" in answer.json()["error"]
        assert int(answer.headers["Retry-After"]) > 0
    assert alice.api_ok("GET", "/invites")["invites"][0]["uses"] == 0
    # the budget is erin's alone: bob opens and accepts the real one
    assert opened(bob, real).status_code == 200
    assert accepted(bob, real).status_code == 200


def test_creating_invites_is_limited_per_owner_and_day(limited):
    alice, bob = people(limited, "alice", "bob")
    for _ in range(3):
        invite(alice)
    refused = alice.api("POST", "/invites", {})
    assert refused.status_code == 429 and "3 invites within a day" in refused.json()["error"]
    assert int(refused.headers["Retry-After"]) > 3600
    newest = alice.api_ok("GET", "/invites")["invites"][0]["id"]
    alice.api_ok("POST", "/invites/%s/revoke" % newest, {})
    assert alice.api("POST", "/invites", {}).status_code == 429  # revoking gives none back
    assert len(alice.api_ok("GET", "/invites")["invites"]) == 3
    invite(bob)  # another owner's own budget


def test_bad_invite_requests_get_one_clear_line(bare):
    alice, bob = people(bare, "alice", "bob")
    for data, says in (({"expires_in": "7d"}, "'expires_in' must be"),
                       ({"expires_in": 0}, "'expires_in' must be"),
                       ({"expires_in": 400 * 86400}, "'expires_in' must be"),
                       ({"max_uses": 0}, "'max_uses' must be"),
                       ({"max_uses": 1.5}, "'max_uses' must be"),
                       ({"max_uses": True}, "'max_uses' must be"),
                       ({"label": "x" * 101}, "'label' must be"),
                       ({"label": "a\nb"}, "'label' must be")):
        answer = alice.api("POST", "/invites", data)
        assert answer.status_code == 400 and says in answer.json()["error"], (data, answer.text)
    assert alice.api_ok("GET", "/invites")["invites"] == []
    token = invite(alice)["token"]
    answer = accepted(bob, token, 5)
    assert answer.status_code == 400 and "'card' must be" in answer.json()["error"]
    dave = bare.client("dave")  # signed in, with no me card
    dave.login()
    answer = dave.api("POST", "/invites", {})
    assert answer.status_code == 409 and "designate your me card" in answer.json()["error"]


def test_an_owner_who_stopped_sharing_has_invites_that_say_so(bare):
    alice, bob = people(bare, "alice", "bob")
    token = invite(alice)["token"]
    alice.api_ok("POST", "/me-card", {"path": None})
    for answer in (opened(bob, token), accepted(bob, token)):
        assert answer.status_code == 409 and "alice shares no card" in answer.json()["error"]
    assert alice.api_ok("GET", "/invites")["invites"][0]["uses"] == 0


# -- the bridge ----------------------------------------------------------------------------

def test_bridge_invite_create_show_accept_list_and_revoke(bare, monkeypatch, capsys):
    alice, bob, carol = people(bare, "alice", "bob", "carol")
    login(monkeypatch, bare, "alice")
    code, out = bridge("invite", "create", "--uses", "2", "--expires", "2w",
                       "--label", "for Bob")
    assert code == 0, out
    url = re.search(r"https?://\S+/\.web/mecard/invite/\S+", out).group(0)
    assert out.startswith("Invite ") and "for 2 people" in out and "shown this once" in out

    login(monkeypatch, bare, "bob")
    code, out = bridge("invite", "show", url)
    assert code == 0, out
    assert out.startswith("alice (Alice Archer) shares this card with you, as a new contact:")
    assert "  TEL: +1 202 555 0101 (cell)" in out
    assert "+1 202 555 0101 (NOT verified)" in out
    code, out = bridge("invite", "accept", url)
    assert code == 0, out
    assert re.fullmatch(r"Accepted alice's card into /bob/contacts/\S+\.vcf; alice's changes "
                        r"now arrive without asking \(policy auto\)\.\n", out), out
    assert bob.copy_of("alice")

    login(monkeypatch, bare, "alice")
    code, out = bridge("invite", "list")
    assert code == 0, out
    header, row = out.splitlines()
    assert header.split() == ["id", "state", "uses", "until", "label", "used", "by"]
    invite_id = row.split()[0]
    assert row.split()[1:3] == ["active", "1/2"] and row.rstrip().endswith("for Bob  bob")
    code, out = bridge("--json", "invite", "list")
    assert code == 0 and '"used_by"' in out
    code, out = bridge("invite", "revoke", invite_id)
    assert code == 0 and out.startswith("Revoked invite %s" % invite_id)

    login(monkeypatch, bare, "carol")
    capsys.readouterr()
    code, _ = bridge("invite", "accept", url)
    assert code == 1
    assert advice(capsys).strip() == "mecard-bridge: the server said: %s" % INVALID
    elsewhere = url.replace("127.0.0.1", "localhost")  # as if it were another server's link
    assert bridge("invite", "accept", elsewhere)[0] == 1
    assert "the link is for localhost:" in advice(capsys)
    assert "alice" not in carol.api_ok("GET", "/policies")["policies"]


def test_bridge_invite_refuses_bad_input_with_one_line(bare, monkeypatch, capsys):
    people(bare, "alice")
    login(monkeypatch, bare, "alice")
    capsys.readouterr()
    for argv, says in ((("invite", "create", "--expires", "7x"), "--expires takes a span"),
                       (("invite", "create", "--expires", "400d"), "from 1m to 366d"),
                       (("invite", "create", "--uses", "0"), "--uses takes a number"),
                       (("invite", "accept", "https://host/nothing/here"), "not an invite link"),
                       (("invite", "revoke", "../x"), "not an invite id"),
                       (("invite", "revoke", "abc123"), "you have no invite")):
        code, _ = bridge(*argv)
        assert code == 1, argv
        assert says in advice(capsys), argv
    code, out = bridge("invite", "list")
    assert code == 0 and out.strip() == "You have no invites: mecard-bridge invite create"
