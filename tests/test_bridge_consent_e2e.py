# SPDX-License-Identifier: GPL-3.0-or-later
"""The bridge's consent commands (offers and answers, verify, keys, privacy, policy) and its
/resolve bounds, run as main(argv) against a real server with the shipped defaults (ask)."""
from __future__ import annotations

import datetime
import re
import time

import pytest

from bridge.cli import main
from bridge.errors import BridgeError
from tests.conftest import USERS
from tests.server import RadicaleServer, fixture, last_code, settled
from tests.test_bridge_e2e import bridge
from tests.test_fanout_e2e import person

NEW_NUMBER = fixture("alice-me-new-number.vcf")


def login(monkeypatch, server: RadicaleServer, user: str) -> None:
    monkeypatch.setenv("MECARD_URL", server.url)
    monkeypatch.setenv("MECARD_USER", user)
    monkeypatch.setenv("MECARD_PASSWORD", USERS[user])
    monkeypatch.setenv("HOME", str(server.root))  # no ~/.netrc or config of the developer's


def advice(capsys) -> str:
    """The one line of advice a failed command printed."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def states(owner) -> dict[str, dict]:
    return {r["user"]: r for r in settled(owner)["recipients"]}


@pytest.fixture
def offered(public_server, monkeypatch):
    """Bob has a card "Ally" for Alice; Alice's new number waits as an offer; Bob is logged in."""
    alice = person(public_server, "alice", "alice-me.vcf")
    bob = person(public_server, "bob", "bob-me.vcf")
    assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    alice.put("alice.vcf", NEW_NUMBER)
    assert states(alice)["bob"]["state"] == "offered"
    login(monkeypatch, public_server, "bob")
    return alice, bob


def test_offers_table_shows_the_card_each_change_and_the_owners_verified_keys(offered):
    _, bob = offered
    before = bob.card("ally.vcf")
    code, out = bridge("offers")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["owner", "state", "card", "it", "would", "change"]
    assert lines[1].split() == ["alice", "pending", "Ally", "(/bob/contacts/ally.vcf)"]
    assert "TEL: (202) 555-0101 (cell) → +1 202 555 0199 (cell)" in out
    # the new number is only claimed; the e-mail was verified
    assert "+1 202 555 0199 (NOT verified)" in out and "alice@example.org (verified)" in out
    assert bob.card("ally.vcf") == before  # looking changes nothing


def test_accept_applies_the_change_and_the_owner_becomes_auto(offered):
    alice, bob = offered
    code, out = bridge("accept", "alice")
    assert code == 0, out
    assert out.strip() == ("Accepted alice's change into /bob/contacts/ally.vcf; alice's changes "
                           "now arrive without asking (policy auto).")
    card = bob.card("ally.vcf")
    assert "+1 202 555 0199" in card and "NICKNAME:Sis" in card and "FN:Ally" in card
    assert bob.api_ok("GET", "/policies")["policies"] == {"alice": "auto"}
    assert bridge("offers")[1].strip() == "No offers wait for you."
    assert states(alice)["bob"]["state"] == "delivered"
    alice.put("alice.vcf", NEW_NUMBER.replace("0199", "0188"))  # now without asking
    settled(alice)
    assert "+1 202 555 0188" in bob.card("ally.vcf")


def test_accept_once_into_a_new_card_leaves_the_old_card_and_keeps_asking(offered):
    alice, bob = offered
    before = bob.card("ally.vcf")
    code, out = bridge("accept", "alice", "--card", "new", "--once")
    assert code == 0, out
    assert "alice's next change will be offered again" in out
    new = out.split(" into ", 1)[1].split(";")[0]
    assert new != "/bob/contacts/ally.vcf" and "+1 202 555 0199" in bob.card(new.split("/")[-1])
    assert bob.card("ally.vcf") == before
    assert "alice" not in bob.api_ok("GET", "/policies")["policies"]
    alice.put("alice.vcf", NEW_NUMBER.replace("0199", "0188"))
    assert states(alice)["bob"]["state"] == "offered"
    assert "+1 202 555 0199 (cell) → +1 202 555 0188 (cell)" in bridge("offers")[1]


def test_accept_into_another_card_of_mine_moves_the_copy_there(offered):
    _, bob = offered
    assert bob.put("a2.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a2\r\nFN:A. Archer\r\n"
                   "NOTE:mine\r\nEND:VCARD\r\n").status_code == 201
    code, out = bridge("accept", "alice", "--card", "/bob/contacts/a2.vcf")
    assert code == 0 and " into /bob/contacts/a2.vcf; " in out
    card = bob.card("a2.vcf")
    assert "+1 202 555 0199" in card and "NOTE:mine" in card
    assert bob.copy_of("alice") == "a2.vcf"


def test_refuse_keeps_the_card_and_the_next_change_is_offered_again(offered, public_server,
                                                                   monkeypatch):
    alice, bob = offered
    before = bob.card("ally.vcf")
    code, out = bridge("refuse", "alice")
    assert code == 0 and out.strip() == ("Refused alice's change; their next change will be "
                                         "offered again.")
    assert bob.card("ally.vcf") == before
    assert bridge("offers")[1].strip() == "No offers wait for you."
    assert states(alice)["bob"]["state"] == "refused"
    login(monkeypatch, public_server, "alice")
    row = next(ln for ln in bridge("status")[1].splitlines() if ln.startswith("bob "))
    assert row.split()[1] == "refused" and row.endswith("your next change is offered again")
    login(monkeypatch, public_server, "bob")
    alice.put("alice.vcf", NEW_NUMBER.replace("0199", "0188"))
    settled(alice)
    assert "→ +1 202 555 0188 (cell)" in bridge("offers")[1]
    assert bob.card("ally.vcf") == before


@pytest.mark.parametrize("until, delta", [
    ("2h", datetime.timedelta(hours=2)), ("3d", datetime.timedelta(days=3)),
    ("1w", datetime.timedelta(weeks=1)), (" 10 H ", datetime.timedelta(hours=10))])
def test_postpone_turns_spans_into_an_iso_time(offered, until, delta):
    alice, _ = offered
    code, out = bridge("postpone", "alice", "--until", until)
    assert code == 0, out
    when = datetime.datetime.fromisoformat(out.split(" until ")[1].rstrip(".\n"))
    expected = datetime.datetime.now(datetime.timezone.utc) + delta
    assert abs(when - expected) < datetime.timedelta(minutes=5)
    offers = bridge("offers")[1]
    assert "postponed until %s" % out.split(" until ")[1].rstrip(".\n") in offers
    assert states(alice)["bob"]["state"] == "postponed"


def test_postpone_takes_iso_times_with_and_without_offset(offered, monkeypatch):
    in_a_month = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
                  ).replace(microsecond=0)
    expected = "Postponed alice's change until %s." % in_a_month.isoformat()
    for typed in (in_a_month.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  in_a_month.astimezone(datetime.timezone(datetime.timedelta(hours=-3)))
                  .isoformat()):
        assert bridge("postpone", "alice", "--until", typed) == (0, expected + "\n")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:  # without an offset it is the local time of the user's computer
        local = in_a_month.astimezone().replace(tzinfo=None).isoformat()
        assert bridge("postpone", "alice", "--until", local) == (0, expected + "\n")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_block_stops_the_owners_changes(offered):
    alice, bob = offered
    before = bob.card("ally.vcf")
    code, out = bridge("block", "alice")
    assert code == 0 and out.startswith("Blocked alice: ")
    assert bob.api_ok("GET", "/policies")["policies"] == {"alice": "block"}
    assert states(alice)["bob"]["state"] == "blocked"
    alice.put("alice.vcf", NEW_NUMBER.replace("0199", "0188"))
    assert states(alice)["bob"]["state"] == "blocked"
    assert bob.card("ally.vcf") == before
    assert bridge("offers")[1].strip() == "No offers wait for you."


BAD_ANSWERS = [
    (["accept", "zed"], "no offer from 'zed' waits for you"),
    (["refuse", "carol"], "no offer from 'carol' waits for you"),
    (["postpone", "erin", "--until", "2h"], "no offer from 'erin' waits for you"),
    (["block", "dave"], "no offer from 'dave' waits for you"),
    (["accept", "../alice"], "not a user name"),
    (["accept", "alice/x"], "not a user name"),
    (["refuse", "x/../alice"], "not a user name"),
    (["accept", "alice", "--card", "/bob/contacts/nothing.vcf"], "you have no card"),
    (["accept", "alice", "--card", "/alice/contacts/alice.vcf"], "not in one of your"),
    (["accept", "alice", "--card", "/bob/contacts/bob.vcf"], "your own me card"),
    (["postpone", "alice", "--until", "tomorrow"], "--until takes a span"),
    (["postpone", "alice", "--until", "2020-01-01T00:00:00Z"], "must be in the future"),
    (["postpone", "alice", "--until", "1000w"], "a year at most"),
    (["policy", "alice"], "give the policy too"),
    (["policy", "alice", "sometimes"], "policy takes auto, ask, block or default"),
    (["privacy", "friends"], "privacy takes everyone, contacts or nobody"),
]


def test_bad_answers_are_one_line_of_advice_and_change_nothing(offered, capsys):
    _, bob = offered
    before = (bob.card("ally.vcf"), bob.api_ok("GET", "/offers"), bob.api_ok("GET", "/me"))
    for argv, words in BAD_ANSWERS:
        capsys.readouterr()
        assert bridge(*argv)[0] == 1, argv
        assert words in advice(capsys), argv
    with pytest.raises(BridgeError, match="no offer from 'zed'"):  # --debug: the traceback
        main(["accept", "zed", "--debug"])
    assert (bob.card("ally.vcf"), bob.api_ok("GET", "/offers"), bob.api_ok("GET", "/me")) \
        == before


def test_policy_ask_lets_an_owner_offer_a_new_contact_with_readable_values(
        offered, public_server, monkeypatch):
    alice, _ = offered
    carol = person(public_server, "carol", "carol-me.vcf")
    login(monkeypatch, public_server, "carol")
    code, out = bridge("policy", "alice", "ask")
    assert code == 0 and "your default: ask (the server's)" in out
    assert out.splitlines()[1].split()[:2] == ["alice", "ask"]
    alice.api_ok("POST", "/shared-fields", {"fields": ["FN", "N", "TEL", "EMAIL", "NOTE"]})
    alice.put("alice.vcf", NEW_NUMBER.replace("FN:Alice Archer", "FN:Alice Archer\\, PhD")
              .replace("NOTE:private note of alice", "NOTE:first line\\nsecond\\; line"))
    alice.api_ok("POST", "/targets", {"add": ["user:carol"]})
    assert states(alice)["carol"]["state"] == "offered"
    code, out = bridge("offers")
    assert code == 0 and out.splitlines()[1].split() == ["alice", "pending", "new", "contact"]
    for change in ("FN: (none) → Alice Archer, PhD", "N: (none) → Archer, Alice",
                   "NOTE: (none) → first line / second; line",
                   "EMAIL: (none) → alice@example.org (internet)"):
        assert change in out
    hrefs = carol.hrefs()
    code, out = bridge("accept", "alice")
    assert code == 0 and len(carol.hrefs()) == len(hrefs) + 1
    assert "+1 202 555 0199" in carol.card(carol.copy_of("alice"))
    # "default" removes the policy; "*" is my own default
    code, out = bridge("policy", "alice", "default")
    assert code == 0 and carol.api_ok("GET", "/policies")["policies"] == {}
    code, out = bridge("policy", "*", "block")
    assert code == 0 and "your default: block (yours)" in out
    assert carol.api_ok("GET", "/policies")["policies"] == {"*": "block"}


def test_status_shows_the_consent_states_with_their_reason(offered, public_server,
                                                           monkeypatch):
    alice, _ = offered
    person(public_server, "carol", "carol-me.vcf")
    alice.api_ok("POST", "/targets", {"add": ["user:carol"]})  # no link, key or policy
    # Carol may not be seen by Alice: the rule reaches nobody, and says so
    assert "carol" not in states(alice)
    assert any(s["rule"] == "user:carol" and s["reason"].startswith("no user you may see here")
               for s in alice.api_ok("GET", "/targets")["skipped"])
    bridge("postpone", "alice", "--until", "2d")
    login(monkeypatch, public_server, "alice")
    code, out = bridge("status")
    assert code == 0, out
    rows = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
    assert rows["bob"].split()[1] == "postponed" and "decide about your change later" in rows["bob"]
    assert rows["carol"].split()[1] == "skipped" and "no user you may see here" in rows["carol"]


def test_verify_by_sms_and_mail_with_the_code_given_later(public_server, monkeypatch, capsys):
    carol = person(public_server, "carol", "carol-me.vcf", verified=False)
    login(monkeypatch, public_server, "carol")
    code, out = bridge("keys")
    lines = out.splitlines()[1:]
    assert code == 0 and [ln.split()[:3] for ln in lines[:2]] == [
        ["mailto:carol@example.org", "unverified", "yes"],
        ["tel:+12025550103", "unverified", "yes"]]
    # and what an unverified value means for her (issue 13 §1: the owner is told)
    assert lines[2:] == [
        "notice: your e-mail carol@example.org is not verified: people who know you only by "
        "it cannot be found; verify it (mecard-bridge verify carol@example.org)",
        "notice: your number +12025550103 is not verified: people who know you only by it "
        "cannot be found; verify it (mecard-bridge verify +12025550103)"]
    for typed, key, inbox in (
            ("(202) 555-0103", "tel:+12025550103",
             lambda: public_server.sms_to("+12025550103")),
            ("Carol@Example.org", "mailto:carol@example.org",
             lambda: public_server.mail.to("carol@example.org"))):
        code, out = bridge("verify", typed)
        assert code == 0 and out.startswith(key + ": ")
        assert "mecard-bridge verify --code CODE %s" % key in out  # no terminal: how to go on
        assert {k["key"]: k["state"] for k in carol.api_ok("GET", "/keys")["keys"]}[key] \
            == "pending"
        right = last_code(inbox())
        wrong = "000000" if right != "000000" else "111111"
        capsys.readouterr()
        assert bridge("verify", "--code", wrong, key)[0] == 1
        assert "wrong code; 4 attempt(s) left" in advice(capsys)
        code, out = bridge("verify", "--code", right, key)
        assert code == 0 and out.strip() == "%s is verified: it is yours now." % key
    code, out = bridge("keys")
    assert [ln.split()[:3] for ln in out.splitlines()[1:]] == [  # verified: no notice left
        ["mailto:carol@example.org", "verified", "yes"], ["tel:+12025550103", "verified", "yes"]]
    # another account proves it holds Carol's number: it moves, and Carol is told
    dave = person(public_server, "dave")
    dave.put("dave.vcf", fixture("carol-me.vcf").replace("carol", "dave").replace("Carol", "Dave"))
    dave.api_ok("POST", "/me-card", {"path": "/dave/contacts/dave.vcf"})
    dave.verify("tel:+12025550103")
    code, out = bridge("keys")
    assert ["tel:+12025550103", "moved", "yes"] == out.splitlines()[2].split()[:3]
    assert "notice: tel:+12025550103 was verified by another account" in out
    capsys.readouterr()
    assert bridge("verify", "+1 202 555 0111")[0] == 1
    assert "not on your me card" in advice(capsys)
    assert bridge("verify", "--code", "123456", "not a number")[0] == 1
    assert "neither a phone number nor an e-mail" in advice(capsys)


def test_verify_in_a_terminal_asks_for_the_code(public_server, monkeypatch):
    carol = person(public_server, "carol", "carol-me.vcf", verified=False)
    login(monkeypatch, public_server, "carol")
    prompts = []

    def typed(prompt: str) -> str:
        prompts.append(prompt)
        return " %s\n" % last_code(public_server.sms_to("+12025550103"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", typed)
    code, out = bridge("verify", "202 555 0103")
    assert code == 0 and "tel:+12025550103 is verified" in out
    assert prompts == ["Code for tel:+12025550103: "]
    assert {k["key"]: k["state"] for k in carol.api_ok("GET", "/keys")["keys"]}[
        "tel:+12025550103"] == "verified"


def test_privacy_shows_and_sets_who_may_discover_my_keys(offered, monkeypatch, public_server):
    alice, bob = offered
    alice.put("c-bob.vcf", fixture("alice-contact-bob.vcf"))
    code, out = bridge("privacy")
    assert code == 0 and out.startswith("Discoverability is contacts: ")
    login(monkeypatch, public_server, "alice")
    assert "bob" in bridge("select", "contact:Bob")[1].splitlines()[1].split()  # Ally has her keys
    login(monkeypatch, public_server, "bob")
    code, out = bridge("privacy", "Nobody")
    assert code == 0 and out.startswith("Discoverability is now nobody: ")
    assert bob.api_ok("GET", "/privacy") == {"discoverability": "nobody"}
    assert bridge("privacy")[1].startswith("Discoverability is nobody: ")
    login(monkeypatch, public_server, "alice")
    assert "no user you may see here (they may not have you in their contacts)" \
        in bridge("select", "contact:Bob")[1]


def _contacts_with_several_keys(owner) -> None:
    for name, tel, mail in (("Bob", "202-555-0102", "bob@example.org"),
                            ("Carol", "(202) 555-0103", "carol@example.org"),
                            ("Frank", "202 555 0106", "frank@example.org")):
        owner.put("c-%s.vcf" % name.lower(), "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c-%s\r\nFN:%s\r\n"
                  "TEL:%s\r\nEMAIL:%s\r\nEND:VCARD\r\n" % (name.lower(), name, tel, mail))


def test_selection_asks_resolve_in_chunks_the_server_accepts(tmp_path, monkeypatch):
    server = RadicaleServer(tmp_path, USERS, mecard_resolve_max_keys="2",
                            mecard_default_discoverability="everyone").start()
    try:
        alice = person(server, "alice", "alice-me.vcf")
        for user in ("bob", "carol"):
            person(server, user, "%s-me.vcf" % user)
        _contacts_with_several_keys(alice)  # 8 keys with her own: 4 calls of 2
        login(monkeypatch, server, "alice")
        code, out = bridge("select", "all", "--dry-run")
        assert code == 0, out
        users = {ln.split("  ")[0]: re.split(r"\s{2,}", ln)[2] for ln in out.splitlines()[1:-1]}
        assert users == {"Alice Archer": "-", "Bob": "bob", "Carol": "carol", "Frank": "-"}
        assert "Alice Archer  all  -      that is you" in out
        assert "4 contact(s), 2 server user(s)." in out
    finally:
        server.stop()


def test_rate_limits_are_one_line_saying_how_long_to_wait(tmp_path, monkeypatch, capsys):
    server = RadicaleServer(tmp_path, USERS, mecard_resolve_per_hour="3",
                            mecard_codes_per_user="1").start()
    try:
        alice = person(server, "alice", "alice-me.vcf", verified=False)
        _contacts_with_several_keys(alice)
        login(monkeypatch, server, "alice")
        capsys.readouterr()
        assert bridge("select", "all")[0] == 4  # try again later
        line = advice(capsys)
        wait = re.search(r"wait (\d+) seconds, then try again", line)
        assert "at most 3 an hour" in line and wait and 3000 < int(wait.group(1)) <= 10800
        assert bridge("verify", "+1 202 555 0101")[0] == 0
        capsys.readouterr()
        assert bridge("verify", "alice@example.org")[0] == 4
        assert "wait 600 seconds, then try again" in advice(capsys)
    finally:
        server.stop()
