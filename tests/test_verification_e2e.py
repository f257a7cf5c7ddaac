# SPDX-License-Identifier: GPL-3.0-or-later
"""Verifying keys: codes by real SMTP and by the SMS command, their limits, and moved keys."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests import zygote
from tests.conftest import FAMILY, USERS
from tests.server import Client, RadicaleServer, last_code, settled
from tests.test_fanout_e2e import person

TEL, MAIL = "tel:+12025550101", "mailto:alice@example.org"


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    """Start a family server with extra options (one per test)."""
    started: list[RadicaleServer] = []

    def run(**options: str) -> RadicaleServer:
        server = RadicaleServer(tmp_path, USERS, **{**FAMILY, **options}).start()
        started.append(server)
        return server
    yield run
    for server in started:
        server.stop()


def keys(client: Client) -> dict[str, dict]:
    return {k["key"]: k for k in client.api_ok("GET", "/keys")["keys"]}


def me_card(server: RadicaleServer, user: str, *lines: str) -> Client:
    """``user`` with a me card of these lines, nothing verified."""
    client = person(server, user)
    text = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:%s-me\r\nFN:%s\r\n%sEND:VCARD\r\n" % (
        user, user.title(), "".join(line + "\r\n" for line in lines))
    assert client.put("%s.vcf" % user, text).status_code == 201
    client.api_ok("POST", "/me-card", {"path": "/%s/contacts/%s.vcf" % (user, user)})
    return client


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def test_email_code_arrives_by_smtp_and_verifies_the_address(start):
    server = start()
    alice = person(server, "alice", "alice-me.vcf", verified=False)
    assert keys(alice)[MAIL]["state"] == "unverified"
    answer = alice.api_ok("POST", "/keys/verify", {"key": "Alice@Example.org"})
    assert answer["key"] == MAIL and answer["status"]
    (body,) = server.mail.to("alice@example.org")
    assert "'alice'" in body
    code = last_code([body])
    assert len(code) >= 6
    assert keys(alice)[MAIL]["state"] == "pending"
    assert alice.api_ok("POST", "/keys/confirm", {"key": MAIL, "code": code}) == {
        "key": MAIL, "state": "verified"}
    found = keys(alice)
    assert found[MAIL]["state"] == "verified" and found[MAIL]["verified"]
    assert found[TEL]["state"] == "unverified"  # one key at a time
    # a code is used once
    r = alice.api("POST", "/keys/confirm", {"key": MAIL, "code": code})
    assert r.status_code == 409, r.text


def test_phone_code_goes_to_the_sms_command_as_two_arguments_without_a_shell(start, tmp_path):
    trap = tmp_path / "pwned"
    # the text carries the server's name: shell syntax in it must arrive as plain text
    name = "$(touch %s) `touch %s`; touch %s | x & 'q\" #" % (trap, trap, trap)
    server = start(mecard_server_name=name)
    alice = person(server, "alice", "alice-me.vcf", verified=False)
    answer = alice.api_ok("POST", "/keys/verify", {"key": "(202) 555-0101"})
    assert answer["key"] == TEL
    lines = server.sms_outbox.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    number, text = lines[0].split("\t")
    assert number == "+12025550101"
    assert name in text and "'alice'" in text
    assert not trap.exists()
    alice.api_ok("POST", "/keys/confirm", {"key": TEL, "code": last_code([text])})
    assert keys(alice)[TEL]["state"] == "verified"


def test_wrong_codes_count_down_and_the_last_one_voids_the_code(start):
    server = start(mecard_code_attempts="3")
    alice = person(server, "alice", "alice-me.vcf", verified=False)
    alice.api_ok("POST", "/keys/verify", {"key": TEL})
    code = last_code(server.sms_to("+12025550101"))
    for left in (2, 1):
        r = alice.api("POST", "/keys/confirm", {"key": TEL, "code": wrong(code)})
        assert r.status_code == 400 and "%d attempt" % left in r.json()["error"], r.text
    r = alice.api("POST", "/keys/confirm", {"key": TEL, "code": wrong(code)})
    assert r.status_code == 409, r.text
    r = alice.api("POST", "/keys/confirm", {"key": TEL, "code": code})
    assert r.status_code == 409, r.text
    assert keys(alice)[TEL]["state"] == "unverified"
    for bad in ({"key": TEL, "code": 123456}, {"key": TEL, "code": "12ab56"}, {"key": TEL},
                {"code": code}):
        assert alice.api("POST", "/keys/confirm", bad).status_code == 400, bad
    # a new code works
    alice.verify(TEL)
    assert keys(alice)[TEL]["state"] == "verified"


def test_code_expires(start):
    server = start(mecard_code_lifetime="2")
    alice = person(server, "alice", "alice-me.vcf", verified=False)
    alice.api_ok("POST", "/keys/verify", {"key": MAIL})
    code = last_code(server.mail.to("alice@example.org"))
    time.sleep(3)
    assert keys(alice)[MAIL]["state"] == "unverified"
    r = alice.api("POST", "/keys/confirm", {"key": MAIL, "code": code})
    assert r.status_code == 409 and "expired" in r.json()["error"], r.text
    assert keys(alice)[MAIL]["state"] == "unverified"


def test_codes_per_user_are_throttled(start):
    server = start(mecard_codes_per_user="2")
    alice = person(server, "alice", "alice-me.vcf", verified=False)
    alice.api_ok("POST", "/keys/verify", {"key": TEL})
    alice.api_ok("POST", "/keys/verify", {"key": MAIL})
    for key in (TEL, MAIL):
        r = alice.api("POST", "/keys/verify", {"key": key})
        assert r.status_code == 429, r.text
        assert int(r.headers["Retry-After"]) > 0
    assert len(server.sms_to("+12025550101")) == 1
    assert len(server.mail.to("alice@example.org")) == 1
    # another user is not throttled by Alice's requests
    bob = person(server, "bob", "bob-me.vcf", verified=False)
    bob.api_ok("POST", "/keys/verify", {"key": "mailto:bob@example.org"})
    assert len(server.mail.to("bob@example.org")) == 1


def test_codes_per_key_are_throttled_silently(start):
    server = start(mecard_codes_per_key="2")
    bob = me_card(server, "bob", "TEL:+1 202 555 0150")
    carol = me_card(server, "carol", "TEL:202-555-0150")
    answers = [client.api_ok("POST", "/keys/verify", {"key": "+1 202 555 0150"})
               for client in (bob, carol, bob, carol, carol)]
    assert all(a == answers[0] for a in answers), answers
    texts = server.sms_to("+12025550150")
    assert len(texts) == 2
    assert ["'bob'" in texts[0], "'carol'" in texts[1]] == [True, True]


def test_only_keys_on_my_me_card_can_be_verified(start):
    server = start()
    alice = person(server, "alice", "alice-me.vcf", verified=False)
    bob = person(server, "bob", "bob-me.vcf", verified=False)
    for key in (TEL, "+1 202 555 0101", MAIL, "tel:+12025550999"):
        r = bob.api("POST", "/keys/verify", {"key": key})
        assert r.status_code == 409, (key, r.text)
    for bad in ("not a number", "", "@", 5):
        assert bob.api("POST", "/keys/verify", {"key": bad}).status_code == 400, bad
    assert server.sms_to("+12025550101") == [] and server.mail.to("alice@example.org") == []
    assert keys(alice)[TEL]["state"] == "unverified"


def test_codes_are_bound_to_one_user_and_one_key(start):
    server = start()
    bob = me_card(server, "bob", "TEL:+1 202 555 0150", "EMAIL:bob@example.org")
    carol = me_card(server, "carol", "TEL:+1 202 555 0150")
    tel = "tel:+12025550150"
    bob.api_ok("POST", "/keys/verify", {"key": tel})
    bobs_code = last_code(server.sms_to("+12025550150"))
    # no code waits for Carol: Bob's code is not hers
    assert carol.api("POST", "/keys/confirm", {"key": tel, "code": bobs_code}).status_code == 409
    carol.api_ok("POST", "/keys/verify", {"key": tel})
    carols_code = last_code(server.sms_to("+12025550150"))
    assert carols_code != bobs_code
    assert carol.api("POST", "/keys/confirm", {"key": tel, "code": bobs_code}).status_code == 400
    # nor does Bob's phone code verify his e-mail
    bob.api_ok("POST", "/keys/verify", {"key": "mailto:bob@example.org"})
    r = bob.api("POST", "/keys/confirm", {"key": "mailto:bob@example.org", "code": bobs_code})
    assert r.status_code == 400, r.text
    assert keys(bob)[tel]["state"] == "pending" and keys(carol)[tel]["state"] == "pending"
    # each code verifies its own user's key
    bob.api_ok("POST", "/keys/confirm", {"key": tel, "code": bobs_code})
    assert keys(bob)[tel]["state"] == "verified"
    assert keys(carol)[tel]["state"] == "pending"  # no probing: it is not "verified by bob"


def test_recycled_number_moves_to_its_new_holder(start):
    server = start()
    bob = person(server, "bob", "bob-me.vcf")
    alice, dave = person(server, "alice"), person(server, "dave")
    dave.put("b.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nFN:B\r\nTEL:202 555 0102\r\n"
                      "END:VCARD\r\n")
    tel = "tel:+12025550102"
    bob.api_ok("POST", "/targets", {"targets": ["user:alice"]})
    settled(bob)
    copy = alice.copy_of("bob")
    assert "555-0102" in alice.card(copy)
    assert dave.api_ok("POST", "/resolve", {"keys": [tel]}) == {tel: ["bob"]}

    # Carol got Bob's old number and adds it to her me card (designating a card with a
    # number verified for somebody else is refused: no re-publication)
    carol = me_card(server, "carol")
    carol.put("carol.vcf", carol.card("carol.vcf").replace(
        "END:VCARD", "TEL:+1 (202) 555-0102\r\nEND:VCARD"))
    assert keys(carol)[tel]["state"] == "unverified"
    assert dave.api_ok("POST", "/resolve", {"keys": [tel]}) == {tel: ["bob"]}
    carol.verify(tel)

    bob_keys = keys(bob)
    assert bob_keys[tel]["state"] == "moved" and bob_keys[tel]["moved"]
    assert bob_keys[tel]["on_me_card"]
    assert any(tel in notice for notice in bob.api_ok("GET", "/me")["notices"])
    assert keys(carol)[tel]["state"] == "verified"
    assert dave.api_ok("POST", "/resolve", {"keys": [tel]}) == {tel: ["carol"]}
    settled(bob)
    now = alice.card(copy)
    assert "0102" not in now and "Bob@Example.org" in now and "FN:Bob Baker" in now
    assert "555-0102" in bob.card("bob.vcf")  # Bob's own card is his business
    # dave's contact with the number now stands for Carol
    dave.api_ok("POST", "/targets", {"targets": ["all"]})
    assert [r["user"] for r in dave.api_ok("GET", "/targets")["recipients"]] == ["carol"]


def test_admin_command_verifies_a_key_while_the_server_runs(start):
    server = start()
    alice = person(server, "alice", "alice-me.vcf", verified=False)
    bob = me_card(server, "bob", "TEL:+1 202 555 0101")
    bob.verify(TEL)

    def admin(*args: str) -> subprocess.CompletedProcess:
        return zygote.run(
            [sys.executable, "-m", "radicale_plugin", "--config", str(server.root / "config"),
             *args], timeout=60)
    done = admin("verify-key", "alice", "(202) 555-0101")
    assert done.returncode == 0, done.stderr
    assert re.search(r"tel:\+12025550101 verified for alice.*moved from bob", done.stdout)
    assert keys(alice)[TEL]["state"] == "verified"
    assert keys(bob)[TEL]["state"] == "moved"
    assert keys(alice)[MAIL]["state"] == "unverified"
    assert len(server.sms_to("+12025550101")) == 1  # Bob's code only
    listed = admin("keys", "alice")
    assert listed.returncode == 0 and '"verified"' in listed.stdout
    failed = admin("verify-key", "alice", "not a number")
    assert failed.returncode == 1 and failed.stderr
