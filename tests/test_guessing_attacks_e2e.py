# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: verification codes cannot be guessed, from one account or from many.

Wrong answers are bounded per *key* across every account (``mecard_wrong_codes_per_key``
within ``mecard_wrong_codes_window``); a key past the bound takes no answer at all, not
even the right one, until the window has passed; its holder is told; no code is stored
that was not sent, and starting a verification answers the same whether or not one was.
"""
from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Iterator

import pytest

from tests import zygote
from tests.server import Client, RadicaleServer, last_code
from tests.test_fanout_e2e import person

ALICE_TEL = "tel:+12025550101"
ATTACKERS = ["mal1", "mal2", "mal3", "mal4"]
USERS = {"alice": "alice-pw", "carol": "carol-pw",
         **{name: name + "-pw" for name in ATTACKERS}}


def me_card(server: RadicaleServer, user: str, *lines: str) -> Client:
    """``user`` with a me card of these lines, nothing verified."""
    client = person(server, user)
    text = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:%s-me\r\nFN:%s\r\n%sEND:VCARD\r\n" % (
        user, user.title(), "".join(line + "\r\n" for line in lines))
    assert client.put("%s.vcf" % user, text).status_code == 201
    client.api_ok("POST", "/me-card", {"path": "/%s/contacts/%s.vcf" % (user, user)})
    return client


def state(client: Client, key: str) -> str:
    return {k["key"]: k["state"] for k in client.api_ok("GET", "/keys")["keys"]}[key]


def admin(server: RadicaleServer, *args: str) -> subprocess.CompletedProcess:
    return zygote.run([sys.executable, "-m", "radicale_plugin", "--config",
                       str(server.root / "config"), *args], timeout=60)


@pytest.fixture
def shipped(tmp_path) -> Iterator[RadicaleServer]:
    """The shipped defaults (30 wrong codes per key a day), with the test SMS and SMTP sinks."""
    server = RadicaleServer(tmp_path, USERS).start()
    try:
        yield server
    finally:
        server.stop()


def test_guessing_from_several_accounts_in_parallel_gives_up_with_the_key_unverified(shipped):
    alice = person(shipped, "alice", "alice-me.vcf")  # +1 202 555 0101, verified
    attackers = [me_card(shipped, name, "TEL:+1 202 555 0101") for name in ATTACKERS]
    sent_before = set(shipped.sms_to(ALICE_TEL[4:]))
    answers: dict[str, list[tuple[int, str]]] = {name: [] for name in ATTACKERS}
    starts: list[tuple[int, str]] = []
    lock = threading.Lock()

    def guess(client: Client) -> None:
        rng = random.Random(client.user)
        for _ in range(300):
            r = client.api("POST", "/keys/verify", {"key": ALICE_TEL})
            with lock:
                starts.append((r.status_code, r.text))
            for _ in range(5):
                code = "%06d" % rng.randrange(10 ** 6)
                # never the code really sent (to Alice's phone, which no attacker reads)
                if any(code in text for text in shipped.sms_to(ALICE_TEL[4:])):
                    continue
                r = client.api("POST", "/keys/confirm", {"key": ALICE_TEL, "code": code})
                answers[client.user].append((r.status_code, r.json().get("error", "")))
                if r.status_code == 429:
                    return
                assert r.status_code in (400, 409), r.text

    threads = [threading.Thread(target=guess, args=(a,)) for a in attackers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    wrong = [a for name in ATTACKERS for a in answers[name] if a[1].startswith("wrong code")]
    # every account gave up, told why; all of them together got no more than the bound
    assert all(answers[name][-1][0] == 429 for name in ATTACKERS), answers
    assert all("too many wrong codes" in answers[name][-1][1] for name in ATTACKERS)
    assert len(wrong) == 30, len(wrong)
    assert all(status != 200 for name in ATTACKERS for status, _ in answers[name])
    # starting a verification answered the same every time, code sent or not
    assert {s for s, _ in starts} == {200} and len({t for _, t in starts}) == 1
    assert len(set(shipped.sms_to(ALICE_TEL[4:])) - sent_before) <= 10  # mecard_codes_per_key
    # the key stays Alice's; she is told somebody tried
    assert state(alice, ALICE_TEL) == "verified"
    assert all(state(a, ALICE_TEL) != "verified" for a in attackers)
    notices = alice.api_ok("GET", "/me")["notices"]
    assert any(ALICE_TEL in n and "wrong codes" in n for n in notices), notices
    # even a fresh code, right or wrong, is not taken now
    r = attackers[0].api("POST", "/keys/confirm", {"key": ALICE_TEL, "code": "123456"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 3600

    # positive control: the admin can still verify the key for whom it belongs to
    done = admin(shipped, "verify-key", "mal1", "+1 202 555 0101")
    assert done.returncode == 0, done.stderr
    assert state(attackers[0], ALICE_TEL) == "verified"
    assert state(alice, ALICE_TEL) == "moved"


def test_the_real_holder_verifies_once_the_lockout_ends(tmp_path):
    # a short window and bound, so that the end of the lockout can be seen in a test
    server = RadicaleServer(tmp_path, USERS, mecard_wrong_codes_per_key="5",
                            mecard_wrong_codes_window="8").start()
    try:
        carol = me_card(server, "carol", "TEL:+1 202 555 0303")
        mal = me_card(server, "mal1", "TEL:+1 202 555 0303")
        carol.api_ok("POST", "/keys/verify", {"key": "+1 202 555 0303"})
        right = last_code(server.sms_to("+12025550303"))
        mal.api_ok("POST", "/keys/verify", {"key": "+1 202 555 0303"})
        statuses = [mal.api("POST", "/keys/confirm", {"key": "+12025550303",
                                                      "code": "%06d" % n}).status_code
                    for n in range(6) if "%06d" % n != right]
        assert statuses[:4] == [400] * 4 and statuses[4] == 409 and statuses[5] == 429
        locked_at = time.time()
        # locked: not even Carol's right code is taken
        r = carol.api("POST", "/keys/confirm", {"key": "+12025550303", "code": right})
        assert r.status_code == 429 and "too many wrong codes" in r.json()["error"]
        assert state(carol, "tel:+12025550303") != "verified"
        time.sleep(max(0.0, locked_at + 9 - time.time()))
        carol.verify("tel:+12025550303")
        assert state(carol, "tel:+12025550303") == "verified"
        assert state(mal, "tel:+12025550303") == "unverified"
    finally:
        server.stop()


def test_start_answers_the_same_and_stores_no_code_that_was_not_sent(shipped):
    person(shipped, "alice", "alice-me.vcf")
    mal = me_card(shipped, "mal1", "TEL:+1 202 555 0101", "TEL:+1 202 555 0188")
    answers = []
    for key in (ALICE_TEL, "tel:+12025550188") * 5:  # the per-account cap is 3 an hour
        r = mal.api("POST", "/keys/verify", {"key": key})
        answers.append((r.status_code, {f: v for f, v in r.json().items() if f != "key"}))
    assert len({repr(a) for a in answers}) == 1 and answers[0][0] == 200
    def to_mal(number: str) -> list[str]:
        return [text for text in shipped.sms_to(number) if "'mal1'" in text]
    sent = to_mal(ALICE_TEL[4:])
    assert len(sent) == 3 and len(to_mal("+12025550188")) == 3
    # the last code sent is voided by wrong answers; the next start sends nothing ...
    last = last_code(sent)
    for n in range(5):
        mal.api("POST", "/keys/confirm", {"key": ALICE_TEL, "code": "%06d" % (n + 1)
                                          if "%06d" % (n + 1) != last else "999999"})
    r = mal.api("POST", "/keys/verify", {"key": ALICE_TEL})
    assert (r.status_code, {f: v for f, v in r.json().items() if f != "key"}) == answers[0]
    assert len(to_mal(ALICE_TEL[4:])) == 3
    assert state(mal, ALICE_TEL) == "pending"  # as when a code went out
    # ... and stores none: what waits matches no answer, the old code included
    with sqlite3.connect(shipped.root / "collections" / ".mecard.sqlite") as db:
        (digest,) = db.execute("SELECT digest FROM codes WHERE user = 'mal1' AND key = ?",
                               (ALICE_TEL,)).fetchone()
    assert digest == "unsent"
    r = mal.api("POST", "/keys/confirm", {"key": ALICE_TEL, "code": last})
    assert r.status_code == 400 and r.json()["error"].startswith("wrong code")


def test_parallel_guesses_through_two_hosts_get_no_more_tries_than_one_host(tmp_path, postgres):
    """Two Radicale processes on one PostgreSQL database (two hosts of a provider): wrong
    answers sent to both at the same moment are each counted, so one code still takes no
    more than ``mecard_code_attempts`` wrong answers in all.  (No writer lock serialises
    them there, as SQLite's does on one host: the answers of one key hold a row lock.)"""
    dsn = postgres.new_database()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    hosts = [RadicaleServer(tmp_path / "a", USERS, postgres=dsn).start()]
    try:
        hosts.append(RadicaleServer(tmp_path / "b", USERS, postgres=dsn).start())
        mal = me_card(hosts[0], "mal1", "TEL:+1 202 555 0101")
        mal.api_ok("POST", "/keys/verify", {"key": ALICE_TEL})
        sent = last_code(hosts[0].sms_to(ALICE_TEL[4:]))
        guesses = ["%06d" % n for n in range(1, 40) if "%06d" % n != sent][:16]
        clients = [host.client("mal1") for host in hosts]
        start = threading.Barrier(len(guesses))
        answers: list[tuple[int, str]] = []
        lock = threading.Lock()

        def answer(n: int) -> None:
            client = clients[n % 2]
            start.wait(timeout=60)
            r = client.api("POST", "/keys/confirm", {"key": ALICE_TEL, "code": guesses[n]})
            with lock:
                answers.append((r.status_code, r.json().get("error", "")))

        threads = [threading.Thread(target=answer, args=(n,)) for n in range(len(guesses))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        checked = [a for a in answers if a[1].startswith("wrong code")]
        assert len(answers) == len(guesses)
        assert len(checked) == 5, answers  # mecard_code_attempts, not one per host or thread
        assert all(status in (400, 409) for status, _ in answers), answers
        # the code is void: even the right one is no longer taken, on either host
        r = clients[1].api("POST", "/keys/confirm", {"key": ALICE_TEL, "code": sent})
        assert r.status_code == 409 and state(mal, ALICE_TEL) != "verified"

        # positive control: a number of his own verifies through the other host
        other = me_card(hosts[1], "carol", "TEL:+1 202 555 0303")
        other.api_ok("POST", "/keys/verify", {"key": "+1 202 555 0303"})
        code = last_code(hosts[1].sms_to("+12025550303"))
        hosts[0].client("carol").api_ok("POST", "/keys/confirm",
                                        {"key": "+1 202 555 0303", "code": code})
        assert state(other, "tel:+12025550303") == "verified"
    finally:
        for host in hosts:
            host.stop()
