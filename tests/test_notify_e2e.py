# SPDX-License-Identifier: GPL-3.0-or-later
"""Notification e-mails on a real server with the shipped defaults (policy ``ask``, nobody
pre-authorised), read at the SMTP sink the test server starts.

Bob (not pre-authorised, with a verified e-mail) keeps a card for Alice; Alice shares
her card with him, so her changes wait for his answer as offers, and he is told by
e-mail: once for a burst of edits, with a link to the offer's page that changes nothing
when opened, and a one-click unsubscribe link that only a valid token of his works.
"""
from __future__ import annotations

import base64
import email.message
import email.utils
import re
import sqlite3
import time

import pytest
import requests
from aiosmtpd.controller import Controller

from radicale_plugin.notify import tokens
from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture, settled, wait_until
from tests.test_fanout_e2e import person
from tests.test_offers_e2e import ALLY, answer, in_seconds, offers

#: Shorter than the defaults (120 s of quiet before an e-mail, at most one per 60 minutes)
#: so that each test takes seconds: the same rules on a smaller clock.  Everything else is
#: the shipped configuration.
SETTLE = 2.0
FAST = {"mecard_notify_settle": str(SETTLE), "mecard_notify_digest_minutes": "0.05"}
SPACING = 3.0  # 0.05 minutes
BOB = "bob@example.org"  # Bob@Example.org on his me card, verified by a code
ALICE = "alice@example.org"


@pytest.fixture
def notify_server(tmp_path):
    srv = RadicaleServer(tmp_path, USERS, **FAST).start()
    try:
        yield srv
    finally:
        srv.stop()


def notices(server: RadicaleServer, address: str) -> list[email.message.Message]:
    """The notification e-mails (not verification codes) the sink got for ``address``."""
    with server.mail._lock:
        found = list(server.mail.messages)
    return [m for m in found if address in (m["To"] or "").lower()
            and m["List-Unsubscribe"] is not None]


def text(message: email.message.Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def edit(alice: Client, n: int) -> None:
    """Alice changes her number (a new change of her card each time)."""
    card = fixture("alice-me.vcf").replace("555 0101", "555 01%02d" % (10 + n))
    assert alice.put("alice.vcf", card).status_code in (201, 204)


def sharing(server: RadicaleServer, bob_verified: bool = True) -> tuple[Client, Client]:
    """Alice shares with Bob, who keeps a card for her: an offer waits for him."""
    alice = person(server, "alice", "alice-me.vcf")
    bob = person(server, "bob", "bob-me.vcf", verified=bob_verified)
    assert bob.put("ally.vcf", ALLY).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    return alice, bob


def first_notice(server: RadicaleServer) -> email.message.Message:
    return wait_until(lambda: notices(server, BOB), 30, "Bob's notification")[0]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def quiet(seconds: float) -> None:
    """Time for a message that should not come (settle, spacing and a margin)."""
    time.sleep(seconds)


def test_five_quick_edits_make_one_email_that_links_to_the_offer_page(notify_server):
    server = notify_server
    alice, bob = sharing(server)
    for n in range(5):  # five edits in a few seconds
        edit(alice, n)
    settled(alice)
    message = first_notice(server)
    quiet(SETTLE + SPACING + 1.5)
    assert len(notices(server, BOB)) == 1, [m["Subject"] for m in notices(server, BOB)]
    body = text(message)
    page = "%s/.web/mecard/updates/alice" % server.url
    assert page in body.split()
    assert message["Subject"] == "Alice Archer (alice) has a card update for you"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<%s/\.web/mecard/unsubscribe/[\w.-]+>" % re.escape(server.url),
                        message["List-Unsubscribe"])
    assert message["Message-ID"] and message.get_content_type() == "text/plain"
    # nothing of the card but the display name: no number, address, note or e-mail
    for secret in ("555", "Main St", "private note", ALICE, "Ally"):
        assert secret not in body and secret not in message["Subject"], secret
    assert not notices(server, ALICE)  # the owner is told nothing
    # opening the link (as a mail scanner does, or Bob) changes nothing
    (before,) = offers(bob)
    card = bob.card("ally.vcf")
    for session in (requests.Session(), bob.http):
        assert session.get(page).status_code < 500
    assert offers(bob) == [before] and bob.card("ally.vcf") == card


def test_one_click_unsubscribe_needs_no_login_and_only_a_valid_token_works(notify_server):
    server = notify_server
    alice, bob = sharing(server)
    link = first_notice(server)["List-Unsubscribe"].strip("<>")
    token = link.rsplit("/", 1)[1]
    with sqlite3.connect(server.root / "collections" / ".mecard.sqlite") as db:
        secret = bytes.fromhex(db.execute("SELECT secret FROM notify_secret").fetchone()[0])
    payload, signature = token.split(".")
    flip = {"A": "B"}.get(signature[5], "A")
    future = time.time() + 86400
    bad = {
        "changed signature": payload + "." + signature[:5] + flip + signature[6:],
        "another user, Bob's signature": _b64(_unb64(payload).replace(b"\nbob\n",
                                                                       b"\nalice\n"))
        + "." + signature,
        "another purpose": tokens.make(secret, "bob", "accept-offer", future),
        "expired": tokens.make(secret, "bob", tokens.UNSUBSCRIBE, time.time() - 1),
        "another server's key": tokens.make(b"x" * 32, "bob", tokens.UNSUBSCRIBE, future),
        "garbage": "not-a-token",
    }
    base = link[:-len(token)]
    anonymous = requests.Session()
    for why, forged in bad.items():
        for r in (anonymous.post(base + forged, data={"List-Unsubscribe": "One-Click"}),
                  anonymous.get(base + forged)):
            assert 400 <= r.status_code < 500, (why, r.status_code)
        assert bob.api_ok("GET", "/notifications")["email"] == "offers", why
    # opening the right link changes nothing: it shows a button
    page = anonymous.get(link)
    assert page.status_code == 200 and "<form method=\"post\">" in page.text
    assert "Content-Security-Policy" in page.headers
    assert bob.api_ok("GET", "/notifications")["email"] == "offers"
    # a POST without the one-click body is refused too
    assert anonymous.post(link).status_code == 400
    assert bob.api_ok("GET", "/notifications")["email"] == "offers"
    # the mail program's one-click POST, with no login
    done = anonymous.post(link, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200, done.text
    settings = bob.api_ok("GET", "/notifications")
    assert settings["email"] == "none" and settings["chosen"] is True
    assert anonymous.post(link, json={"List-Unsubscribe": "One-Click"}).json() == {
        "email": "none"}  # twice: harmless
    # as some mail programs send it: multipart/form-data
    assert anonymous.post(link, files={"List-Unsubscribe": (None, "One-Click")}).status_code \
        == 200
    edit(alice, 1)
    settled(alice)
    quiet(SETTLE + SPACING + 1.5)
    assert len(notices(server, BOB)) == 1  # nothing after unsubscribing
    # positive control: Bob turns them on again, and Alice's next change is told
    bob.api_ok("POST", "/notifications", {"email": "offers", "address": None})
    edit(alice, 2)
    settled(alice)
    wait_until(lambda: len(notices(server, BOB)) == 2, 30, "the next notification")


def test_an_unverified_address_is_never_mailed(notify_server):
    server = notify_server
    alice, bob = sharing(server, bob_verified=False)
    settings = bob.api_ok("GET", "/notifications")
    assert settings["email"] == "none" and settings["address"] is None
    assert settings["addresses"] == [] and settings["chosen"] is False
    for address in ("mailto:bob@example.org", "bob@example.org", "mailto:eve@example.org"):
        r = bob.api("POST", "/notifications", {"email": "offers", "address": address})
        assert r.status_code == 400 and "verified" in r.json()["error"], address
    bob.api_ok("POST", "/notifications", {"email": "offers", "address": None})
    edit(alice, 1)
    settled(alice)
    assert offers(bob)
    quiet(SETTLE + 2)
    assert not notices(server, BOB) and not server.mail.to(BOB)
    # positive control: once verified, the address is mailed
    bob.verify("mailto:bob@example.org")
    assert bob.api_ok("GET", "/notifications")["address"] == "mailto:bob@example.org"
    edit(alice, 2)
    settled(alice)
    first_notice(server)


def test_the_owner_is_never_told_that_a_recipient_refused_or_blocked(notify_server):
    server = notify_server
    alice, bob = sharing(server)
    first_notice(server)
    assert answer(bob, "alice", "refuse").status_code == 200
    edit(alice, 1)  # offered again after a refusal: Bob is told, Alice is not
    settled(alice)
    wait_until(lambda: len(notices(server, BOB)) == 2, 30, "the second notification")
    assert answer(bob, "alice", "block").status_code == 200
    edit(alice, 2)
    settled(alice)
    quiet(SETTLE + SPACING + 1.5)
    assert not notices(server, ALICE)
    assert all("bob" not in text(m) for m in server.mail.messages
               if ALICE in (m["To"] or "").lower())
    assert len(notices(server, BOB)) == 2  # blocked: nothing more to tell Bob either
    rows = {r["user"]: r for r in alice.api_ok("GET", "/targets")["recipients"]}
    assert rows["bob"]["state"] == "blocked"  # what Alice sees: the state only


def test_a_postponed_offer_comes_back_with_a_new_email_at_its_time(notify_server):
    server = notify_server
    alice, bob = sharing(server)
    first_notice(server)
    assert answer(bob, "alice", "postpone", {"until": in_seconds(8)}).status_code == 200
    quiet(4)
    assert len(notices(server, BOB)) == 1  # not before its time
    again = wait_until(lambda: notices(server, BOB)[1:], 30, "the offer's return")[0]
    assert "postponed is back" in text(again)
    assert "%s/.web/mecard/updates/alice" % server.url in text(again)
    assert again["Message-ID"] != notices(server, BOB)[0]["Message-ID"]


def test_mail_server_down_is_retried_later_and_delivers_once(tmp_path):
    # a failed attempt waits mecard_retry_base seconds (60 by default) before the next:
    # 0.5 here so that the test takes seconds
    server = RadicaleServer(tmp_path, USERS, mecard_retry_base="0.5", **FAST).start()
    try:
        alice = person(server, "alice", "alice-me.vcf")
        bob = person(server, "bob", "bob-me.vcf")
        server.mail.stop()  # the mail server goes down
        assert bob.put("ally.vcf", ALLY).status_code == 201
        alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
        settled(alice)
        wait_until(lambda: "not sent (attempt 2 of" in server.log.read_text(), 30,
                   "a second failed attempt")
        # back, on the same port (a stopped sink's controller cannot start again)
        server.mail._controller = Controller(server.mail, hostname="127.0.0.1",
                                             port=server.mail.port)
        server.mail._controller.start()
        wait_until(lambda: notices(server, BOB), 30, "the notification")
        quiet(3)
        assert len(notices(server, BOB)) == 1
    finally:
        server.stop()


def test_the_bridge_shows_and_sets_notifications_to_verified_addresses_only(
        public_server, monkeypatch, capsys):
    from bridge.cli import main
    from tests.test_bridge_consent_e2e import advice, login
    bob = person(public_server, "bob", "bob-me.vcf", verified=False)
    login(monkeypatch, public_server, "bob")
    assert main(["notifications"]) == 0
    assert "are none" in capsys.readouterr().out
    assert main(["notifications", "--email", "offers", "--address", BOB]) == 1
    assert "verified" in advice(capsys)
    assert main(["notifications", "--email", "sometimes"]) == 1
    assert "offers, offers-and-changes or none" in advice(capsys)
    bob.verify("mailto:" + BOB)
    assert main(["notifications", "--json"]) == 0
    assert '"email": "offers"' in capsys.readouterr().out  # the default, once verified
    assert main(["notifications", "--email", "offers-and-changes", "--address", BOB]) == 0
    assert "to mailto:bob@example.org" in capsys.readouterr().out
    assert bob.api_ok("GET", "/notifications")["email"] == "offers-and-changes"


def test_applied_changes_are_told_only_to_who_chose_so_and_carry_no_card_text(notify_server):
    server = notify_server
    alice, bob = sharing(server)
    first_notice(server)
    seq = offers(bob)[0]["seq"]
    assert answer(bob, "alice", "accept", {"seq": seq}).status_code == 200  # now "auto"
    edit(alice, 2)
    settled(alice)
    quiet(SETTLE + SPACING + 1.5)
    assert len(notices(server, BOB)) == 1  # "offers" only: an applied change is not told
    bob.api_ok("POST", "/notifications", {"email": "offers-and-changes", "address": None})
    # Alice's display name carries a link and a line break of her own
    hostile = fixture("alice-me.vcf").replace(
        "FN:Alice Archer", "FN:Alice Archer https://evil.example/p\\nBcc: all@evil.example")
    assert alice.put("alice.vcf", hostile).status_code == 204
    settled(alice)
    told = wait_until(lambda: notices(server, BOB)[1:], 30, "the applied change")[0]
    body = text(told)
    assert told["Subject"] == "Cards of 1 person were updated at radicale-mecard"
    assert "%s/.web/mecard/history?owner=alice" % server.url in body.split()
    assert "* Alice Archer Bcc: (alice)\r\n" in body  # one line, link and address left out
    assert "evil" not in body + told["Subject"]
    assert told["Bcc"] is None and told["To"] == BOB


def test_a_recipient_gets_at_most_one_email_per_digest_period(tmp_path):
    # 0.15 minutes (9 s) between two e-mails instead of 60 minutes, 1 s of quiet instead of
    # 120: the test then shows the period in seconds
    server = RadicaleServer(tmp_path, USERS, mecard_notify_settle="1",
                            mecard_notify_digest_minutes="0.15").start()
    try:
        alice, bob = sharing(server)
        first = first_notice(server)
        made = time.time()
        edit(alice, 1)  # at once after the first e-mail: waits for the period to end
        settled(alice)
        second = wait_until(lambda: notices(server, BOB)[1:], 30, "the second e-mail")[0]
        assert time.time() - made >= 9 - 1.5
        dates = [email.utils.parsedate_to_datetime(m["Date"]) for m in (first, second)]
        assert (dates[1] - dates[0]).total_seconds() >= 9 - 1  # Date: when it was made
    finally:
        server.stop()
