# SPDX-License-Identifier: GPL-3.0-or-later
"""The sharing product on Radicale's storage on PostgreSQL, end to end.

A real Radicale with ``[storage] type = radicale_plugin.storage.postgres`` in a
fresh database of the session's PostgreSQL (``postgres`` fixture), under the shipped
defaults (policy ``ask``, discoverability ``contacts``, nobody pre-authorised) unless a
test says otherwise.  Bob's phone is vdirsyncer.  The sharing state lives in the same
database as the cards: a copy and its delivery record commit in one transaction, which
the crash test pins by stopping the fan-out between the two with a row lock and killing
the server there.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import psycopg
import pytest
import requests

from radicale_plugin.index.postgres.database import Database
from radicale_plugin.storage.postgres import items
from tests.conftest import USERS
from tests.server import RadicaleServer, fixture, settled, wait_until
from tests.test_fanout_e2e import person
from tests.test_number_change_e2e import (ALICES_BOB, NEW_NUMBER, Phone, bobs_card_for_alice,
                                          keys_of, linked_and_delivered, me_card, rows)


def on_postgres(tmp_path, postgres, **options: str) -> RadicaleServer:
    return RadicaleServer(tmp_path, USERS, postgres=postgres.migrated_database(), **options)


@pytest.fixture
def shipped_pg(tmp_path, postgres) -> Iterator[RadicaleServer]:
    """The shipped defaults, on the storage on PostgreSQL."""
    srv = on_postgres(tmp_path, postgres).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def family_pg(tmp_path, postgres) -> Iterator[RadicaleServer]:
    """The shipped example's pre-authorisation, a named group (never ``*``), on PostgreSQL;
    discoverability stays ``contacts``.  Claims of a dead process lapse after 2 s (the
    crash test waits for that, not for the minute of the default)."""
    srv = on_postgres(tmp_path, postgres, mecard_preauthorize="group:family",
                      mecard_claim_lease="2").with_groups("family: alice bob carol\n")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def sql(server: RadicaleServer, statement: str, *args) -> list[tuple]:
    """What the server's database holds (committed), read beside the server."""
    with psycopg.connect(server.postgres, autocommit=True) as conn:
        return conn.execute(statement, args).fetchall()


def item(server: RadicaleServer, book: str, href: str) -> str:
    (text,), = sql(server, "SELECT i.text FROM dav_items i JOIN dav_collections c ON "
                           "c.id = i.collection WHERE c.path = %s AND i.href = %s", book, href)
    return text


def delivery(server: RadicaleServer, owner: str, recipient: str) -> tuple:
    (row,) = sql(server, "SELECT state, delivered_seq, intent FROM deliveries WHERE "
                         "owner = %s AND recipient = %s", owner, recipient)
    return row


def history_of(server: RadicaleServer, owner: str, recipient: str) -> int:
    (count,), = sql(server, "SELECT COUNT(*) FROM history WHERE owner = %s AND "
                            "recipient = %s", owner, recipient)
    return count


# -- the main case, shipped defaults ------------------------------------------------------
def test_a_new_number_reaches_the_recipients_phone_once_he_accepts_the_offer(
        shipped_pg, tmp_path):
    server = shipped_pg
    alice = server.client("alice")
    alice.login()
    assert alice.put("alice.vcf", me_card(keys_of("number", new=False))).status_code == 201
    alice.api_ok("POST", "/me-card", {"path": "/alice/contacts/alice.vcf"})
    alice.verify_me_card()
    bob = person(server, "bob", "bob-me.vcf")
    # Bob knows Alice by her verified number, with his own name for her and a nickname
    assert bob.put("ally.vcf", bobs_card_for_alice("number", "accepted")).status_code == 201
    assert alice.put("c-bob.vcf", ALICES_BOB).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": ["all"]})
    settled(alice)
    assert rows(alice)["bob"]["state"] == "offered"  # the shipped policy: Bob is asked
    phone = Phone(tmp_path, server, "bob")
    phone.sync()
    assert "(202) 555-0101" in phone.card("bobs-alice")

    # Alice changes her number: the offer waiting for Bob becomes that change; nothing is
    # written into his book before he says yes
    assert alice.put("alice.vcf", me_card(keys_of("number", new=True))).status_code == 204
    settled(alice)
    assert rows(alice)["bob"]["state"] == "offered"
    (offer,) = bob.api_ok("GET", "/offers")["offers"]
    assert offer["owner"] == "alice" and NEW_NUMBER in str(offer)
    assert "NEW" not in item(server, "bob/contacts", "ally.vcf") \
        and "0101" in item(server, "bob/contacts", "ally.vcf")

    answer = bob.api_ok("POST", "/offers/alice/accept", {})
    assert answer["card"] == "/bob/contacts/ally.vcf" and answer["policy"] == "auto"
    phone.sync()
    held = phone.card("bobs-alice")
    assert NEW_NUMBER in held and "0101" not in held
    assert "FN:Ally" in held and "NICKNAME:Sis" in held  # Bob's own lines kept
    # the copy and its record are in one database: delivered, with no intent left behind
    assert delivery(server, "alice", "bob") == ("delivered", 2, None)
    assert item(server, "bob/contacts", "ally.vcf") == bob.card("ally.vcf")

    # from now on ("auto") her next change is applied without asking
    assert alice.put("alice.vcf", me_card(keys_of("number", new=True), later=1)
                     ).status_code == 204
    report = settled(alice)
    assert [(r["user"], r["state"]) for r in report["recipients"]] == [("bob", "delivered")]
    assert bob.api_ok("GET", "/offers")["offers"] == []
    phone.sync()
    held = phone.card("bobs-alice")
    assert "N:Archer-Berg;Alice;;;" in held and NEW_NUMBER in held and "NICKNAME:Sis" in held


def test_a_preauthorised_owners_change_is_applied_without_asking(family_pg):
    server = family_pg
    alice, bob = linked_and_delivered(server, "number", "family")
    token, _ = bob.sync()
    ctag = bob.ctag()
    assert alice.put("alice.vcf", me_card(keys_of("number", new=True))).status_code == 204
    report = settled(alice)
    assert [(r["user"], r["state"]) for r in report["recipients"]] == [("bob", "delivered")]
    assert bob.api_ok("GET", "/offers")["offers"] == []
    copy = bob.card("ally.vcf")
    assert NEW_NUMBER in copy and "NICKNAME:Sis" in copy and "FN:Ally" in copy
    # what a client sees move: exactly that card in an incremental sync, and the CTag
    assert bob.sync(token)[1] == ["ally.vcf"]
    assert bob.ctag() != ctag
    # and the same text again writes nothing: no change for Bob's phone to fetch
    token, _ = bob.sync()
    assert alice.put("alice.vcf", me_card(keys_of("number", new=True)) + "\r\n"
                     ).status_code in (201, 204)
    settled(alice)
    assert bob.sync(token)[1] == []


# -- one transaction: a copy and its delivery record, or neither ---------------------------
def test_a_copy_and_its_delivery_record_commit_together_or_not_at_all(family_pg):
    server = family_pg
    alice, bob = linked_and_delivered(server, "number", "family")
    before = bob.card("ally.vcf")
    histories = history_of(server, "alice", "bob")
    assert delivery(server, "alice", "bob")[:2] == ("delivered", 1)

    # Bob's card-key entry for his card is held: the fan-out's transaction, which writes
    # the copy first and records it after, waits there, with the copy written and not
    # committed — and the server dies then
    with psycopg.connect(server.postgres) as holder:
        holder.execute("SELECT 1 FROM cards WHERE book = 'bob/contacts' AND "
                       "href = 'ally.vcf' FOR UPDATE")
        assert alice.put("alice.vcf", me_card(keys_of("number", new=True))).status_code == 204
        wait_until(lambda: sql(server, "SELECT 1 FROM pg_stat_activity WHERE datname = "
                                       "current_database() AND wait_event_type = 'Lock' "
                                       "AND query LIKE '%%cards%%'"),
                   30, "the fan-out waiting inside its transaction")
        server.kill()
        holder.rollback()
    # neither the copy nor its record: Bob's card as it was, the delivery not delivered
    assert item(server, "bob/contacts", "ally.vcf") == before
    state, seq, intent = delivery(server, "alice", "bob")
    assert (seq, intent) == (1, None) and state != "delivered"
    assert history_of(server, "alice", "bob") == histories

    # positive control: the next start finishes it, once
    server.start()
    report = settled(alice)
    assert [(r["user"], r["state"]) for r in report["recipients"]] == [("bob", "delivered")]
    copy = bob.card("ally.vcf")
    assert NEW_NUMBER in copy and "NICKNAME:Sis" in copy
    assert delivery(server, "alice", "bob") == ("delivered", 2, None)
    assert history_of(server, "alice", "bob") == histories + 1


def test_an_owners_card_and_its_outbox_entry_commit_together_or_not_at_all(shipped_pg):
    server = shipped_pg
    alice = person(server, "alice", "alice-me.vcf")
    bob = person(server, "bob", "bob-me.vcf")
    assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)  # Bob's card for Alice holds all she shares: linked, nothing to offer
    before = item(server, "alice/contacts", "alice.vcf")
    (seq,), = sql(server, 'SELECT seq FROM owners WHERE "user" = %s', "alice")
    new_card = before.replace("END:VCARD", "TEL;TYPE=WORK:+1 202 555 0888\r\nEND:VCARD")

    # Alice's row of owners is held: her PUT's transaction, with the card written and the
    # change not yet queued, waits there — and the server dies then
    put = ThreadPoolExecutor(1)
    with psycopg.connect(server.postgres) as holder:
        holder.execute("""SELECT 1 FROM owners WHERE "user" = 'alice' FOR UPDATE""")
        answer = put.submit(alice.put, "alice.vcf", new_card)
        wait_until(lambda: sql(server, "SELECT 1 FROM pg_stat_activity WHERE datname = "
                                       "current_database() AND wait_event_type = 'Lock' "
                                       "AND query LIKE '%%owners%%'"),
                   30, "the owner's PUT waiting inside its transaction")
        server.kill()
        holder.rollback()
    with pytest.raises(requests.ConnectionError):
        answer.result(timeout=30)
    put.shutdown()
    # neither the card nor the change queued for Bob
    assert item(server, "alice/contacts", "alice.vcf") == before
    assert sql(server, 'SELECT seq FROM owners WHERE "user" = %s', "alice") == [(seq,)]
    assert sql(server, "SELECT seq FROM jobs WHERE owner = %s AND seq > %s", "alice",
               seq) == []

    # positive control: the same PUT on a running server stores both
    server.start()
    assert alice.put("alice.vcf", new_card).status_code == 204
    assert "0888" in item(server, "alice/contacts", "alice.vcf")
    (now,), = sql(server, 'SELECT seq FROM owners WHERE "user" = %s', "alice")
    assert now == seq + 1
    settled(alice)  # the change reaches Bob's offer
    assert sql(server, "SELECT wanted_seq FROM deliveries WHERE owner = %s AND "
                       "recipient = %s", "alice", "bob") == [(seq + 1,)]
    assert "0888" in str(bob.api_ok("GET", "/offers")["offers"])


def test_a_recipients_edit_made_while_the_fanout_waits_is_kept_and_merged(family_pg):
    server = family_pg
    alice, bob = linked_and_delivered(server, "number", "family")
    writer = Database(server.postgres, name="bobs-phone")
    try:
        # Bob's book is being written by someone else (his phone, as the storage's own
        # item API writes): the fan-out has read his card and waits for the book
        with writer.transaction():
            items.lock(writer, "bob/contacts")
            assert alice.put("alice.vcf", me_card(keys_of("number", new=True))
                             ).status_code == 204
            wait_until(lambda: sql(server, "SELECT 1 FROM pg_stat_activity WHERE datname = "
                                           "current_database() AND wait_event = 'advisory'"),
                       30, "the fan-out waiting for Bob's book")
            edited = item(server, "bob/contacts", "ally.vcf").replace(
                "NICKNAME:Sis", "NICKNAME:Sis\r\nORG:Climbing Club")
            items.write(writer, "bob/contacts", "ally.vcf", edited)
    finally:
        writer.close()
    report = settled(alice)
    assert [(r["user"], r["state"]) for r in report["recipients"]] == [("bob", "delivered")]
    copy = bob.card("ally.vcf")
    # the card the fan-out had read was not written over: the phone's edit is there, and
    # the owner's change was merged into it in the next round
    assert "ORG:Climbing Club" in copy and NEW_NUMBER in copy and "NICKNAME:Sis" in copy
    assert delivery(server, "alice", "bob") == ("delivered", 2, None)


def test_the_owner_writes_through_one_process_and_the_recipients_phone_syncs_through_another(
        tmp_path, postgres):
    """Two Radicale processes on one database, the shipped defaults: whichever process
    takes a request, the other sees what it did."""
    dsn = postgres.new_database()
    servers = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        servers.append(RadicaleServer(tmp_path / name, USERS, postgres=dsn).start())
    a, b = servers
    try:
        alice = a.client("alice")
        alice.login()
        assert alice.put("alice.vcf", me_card(keys_of("number", new=False))).status_code == 201
        alice.api_ok("POST", "/me-card", {"path": "/alice/contacts/alice.vcf"})
        alice.verify_me_card()
        bob = person(b, "bob", "bob-me.vcf")  # his number verified through B
        assert bob.put("ally.vcf", bobs_card_for_alice("number", "accepted")).status_code == 201
        assert alice.put("c-bob.vcf", ALICES_BOB).status_code == 201
        alice.api_ok("POST", "/targets", {"targets": ["all"]})
        settled(alice)
        assert rows(alice)["bob"]["state"] == "offered"
        assert bob.api_ok("POST", "/offers/alice/accept", {})["policy"] == "auto"
        phone = Phone(tmp_path, b, "bob")
        phone.sync()
        token, _ = bob.sync()

        assert alice.put("alice.vcf", me_card(keys_of("number", new=True))).status_code == 204
        report = settled(alice)
        assert [(r["user"], r["state"]) for r in report["recipients"]] == [("bob", "delivered")]
        assert bob.sync(token)[1] == ["ally.vcf"]
        phone.sync()
        held = phone.card("bobs-alice")
        assert NEW_NUMBER in held and "NICKNAME:Sis" in held and "FN:Ally" in held
        # one copy, one history entry for the change, whichever process wrote it
        assert history_of(a, "alice", "bob") == 2
    finally:
        for server in servers:
            server.stop()
