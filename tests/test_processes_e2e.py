# SPDX-License-Identifier: GPL-3.0-or-later
"""Two Radicale processes on one sharing state: one storage folder and its SQLite index,
or one PostgreSQL database (the module runs on both backends: ``both_backends``).

A WSGI server's workers, two launchers on one folder, or two hosts on one database share
the index: its outbox is claimed delivery by delivery (leases), so one owner's fan-out
is shared by the workers of both processes and each recipient is served once; a process
killed mid fan-out leaves the rest to the other.  Every other duty runs in one process
at a time: a postponed offer comes back (its e-mail) once, a digest is sent once.
"""

from __future__ import annotations

import contextlib
import email.message
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest

from radicale_plugin.index.postgres.database import Database
from radicale_plugin.storage.postgres import items
from tests.conftest import FAMILY
from tests.server import Client, RadicaleServer, fixture, settled, wait_until
from tests.test_notify_e2e import BOB, FAST, SETTLE, SPACING, edit, sharing as offering
from tests.test_offers_e2e import answer, in_seconds, offers

pytestmark = pytest.mark.both_backends

RECIPIENTS = ["r%02d" % n for n in range(24)]
USERS = {"alice": "alice-pw", **{r: r + "-pw" for r in RECIPIENTS}}
#: The fan-out in small rounds with a pause: long enough for the second process to join.
#: Loosened: everyone pre-authorised and discoverable (``FAMILY``), so that every target
#: gets a copy at once — what is under test is how processes share the work, not consent
#: (the consent of each delivery is decided as on one process).
OPTIONS = {**FAMILY, "mecard_batch_size": "2", "mecard_batch_pause": "0.25",
           "mecard_claim_lease": "2", "mecard_sms_command": ""}


def sharing(first: RadicaleServer, root: Path, users: dict[str, str],
            **options: str) -> RadicaleServer:
    """A second server on the sharing state of ``first``: its database on PostgreSQL,
    else its storage folder (and so its SQLite index)."""
    root.mkdir()
    if first.postgres:
        return RadicaleServer(root, users, postgres=first.postgres, **options)
    second = RadicaleServer(root, users, **options)
    config = root / "config"
    config.write_text(config.read_text().replace(
        "filesystem_folder = %s" % (root / "collections"),
        "filesystem_folder = %s" % (first.root / "collections")))
    return second


@contextlib.contextmanager
def two(tmp_path: Path, storage_options: dict[str, str], users: dict[str, str],
        both: bool = False, **options: str) -> Iterator[tuple[RadicaleServer, RadicaleServer]]:
    """Two servers on one sharing state, the first started (and the second if ``both``)."""
    (tmp_path / "a").mkdir()
    first = RadicaleServer(tmp_path / "a", users, **storage_options, **options).start()
    second = sharing(first, tmp_path / "b", users, **options)
    try:
        if both:
            second.start()
        yield first, second
    finally:
        for server in (first, second):
            if server.process is not None:
                server.stop()


@pytest.fixture
def pair(tmp_path, storage_options):
    """Two processes, the second not started yet (:data:`OPTIONS` says what is loosened)."""
    with two(tmp_path, storage_options, USERS, **OPTIONS) as servers:
        yield servers


def sql(server: RadicaleServer, statement: str) -> list[tuple[Any, ...]]:
    """What the shared sharing state holds (committed), read beside the servers."""
    if server.postgres:
        with psycopg.connect(server.postgres, autocommit=True) as conn:
            return conn.execute(statement).fetchall()
    folder = re.search(r"filesystem_folder = (.*)", (server.root / "config").read_text())
    assert folder is not None
    with sqlite3.connect(Path(folder.group(1)) / ".mecard.sqlite") as conn:
        return conn.execute(statement).fetchall()


def history_per_recipient(server: RadicaleServer) -> dict[str, int]:
    return dict(sql(server, "SELECT recipient, COUNT(*) FROM history "
                            "WHERE owner = 'alice' GROUP BY recipient"))


def ready(first: RadicaleServer) -> Client:
    """Every recipient logged in once (their books exist); Alice has a me card."""
    for user in RECIPIENTS:
        first.client(user).login()
    alice = first.client("alice")
    alice.login()
    assert alice.put("alice.vcf", fixture("alice-me.vcf")).status_code == 201
    alice.api_ok("POST", "/me-card", {"path": alice.book() + "alice.vcf"})
    return alice


def deliveries_logged(server: RadicaleServer, since: int) -> int:
    said = server.log.read_bytes()[since:].decode(errors="replace")
    return sum(int(n) for n in re.findall(r"Fan-out: (\d+) deliveries", said))


def delivered_once(alice: Client, servers: tuple[RadicaleServer, RadicaleServer],
                   logged: tuple[int, int]) -> tuple[int, ...]:
    """Every recipient delivered, and no delivery decided by both processes (as their
    workers' logs since ``logged`` count them); each process's share."""
    report = settled(alice, timeout=90)
    assert {r["user"]: r["state"] for r in report["recipients"]} == {
        r: "delivered" for r in RECIPIENTS}

    def shares() -> tuple[int, ...]:
        return tuple(deliveries_logged(s, since) for s, since in zip(servers, logged))
    # each worker logs what it did when the queue has run dry for it
    wait_until(lambda: sum(shares()) >= len(RECIPIENTS), what="both workers' logs")
    time.sleep(1)  # a round decided twice would be logged by now
    assert sum(shares()) == len(RECIPIENTS), shares()  # no delivery decided twice
    return shares()


def plans_logged(*servers: RadicaleServer) -> int:
    """How many times Alice's change to everyone was planned, by all processes."""
    return sum(server.log.read_text(errors="replace").count(
        "Update of 'alice''s me card goes to %d recipient(s)" % len(RECIPIENTS))
        for server in servers)


def one_copy_each(server: RadicaleServer) -> None:
    for user in RECIPIENTS:
        recipient = server.client(user)
        assert len(recipient.hrefs()) == 1, (user, recipient.hrefs())  # never two copies
        assert "Alice" in recipient.card(recipient.copy_of("alice"))
    # and one history entry each: no copy written (and recorded) twice
    assert history_per_recipient(server) == {r: 1 for r in RECIPIENTS}


def test_two_processes_share_one_fan_out_and_serve_each_recipient_once(pair):
    first, second = pair
    alice = ready(first)
    second.start()
    logged = (first.log.stat().st_size, second.log.stat().st_size)

    alice.api_ok("POST", "/targets", {"targets": ["user:%s" % r for r in RECIPIENTS]})
    shares = delivered_once(alice, (first, second), logged)
    assert all(shares), shares  # the second process took its share
    one_copy_each(second)
    assert plans_logged(first, second) == 1  # the change planned by one process only


def test_a_process_killed_mid_fan_out_leaves_the_rest_to_the_other(pair):
    first, second = pair
    alice = ready(first)
    second.start()
    alice.api_ok("POST", "/targets", {"targets": ["user:%s" % r for r in RECIPIENTS]})
    wait_until(lambda: any(r["state"] == "delivered"
                           for r in alice.api_ok("GET", "/targets")["recipients"]),
               what="the first copies")
    first.kill()  # kill -9, its claims and its round's intents left behind

    report = settled(second.client("alice"), timeout=90)

    assert {r["user"]: r["state"] for r in report["recipients"]} == {
        r: "delivered" for r in RECIPIENTS}
    one_copy_each(second)
    assert plans_logged(first, second) == 1


def test_a_write_waiting_longer_than_its_claims_keeps_them(tmp_path, postgres):
    """PostgreSQL: a round whose transaction waits for a book (a slow request holds its
    lock) for several leases keeps its claims: the other process does not decide those
    deliveries again.  (On the file storage the writer renews between its lock holds.)"""
    with two(tmp_path, {"postgres": postgres.new_database()}, USERS, both=True,
             **OPTIONS) as (first, second):
        alice = ready(first)
        logged = (first.log.stat().st_size, second.log.stat().st_size)
        holder = Database(first.postgres, name="slow-request")
        try:
            with holder.transaction():
                items.lock(holder, "r23/contacts")  # the last recipient's book, held
                alice.api_ok("POST", "/targets",
                             {"targets": ["user:%s" % r for r in RECIPIENTS]})
                wait_until(lambda: sql(first, "SELECT 1 FROM pg_stat_activity WHERE "
                                              "wait_event = 'advisory'"),
                           60, "a round waiting for the book")
                time.sleep(3 * float(OPTIONS["mecard_claim_lease"]))  # three leases
        finally:
            holder.close()
        delivered_once(alice, (first, second), logged)
        one_copy_each(second)

# -- duties: once across processes ---------------------------------------------------------
NOTIFY_USERS = {"alice": "alice-pw", "bob": "bob-pw"}


@pytest.fixture
def notifying(tmp_path, storage_options):
    """Two processes, both started, under the shipped defaults (policy ``ask``, nobody
    pre-authorised, e-mail notifications on) but for the notification clock: a settle
    window of seconds and a digest spacing of 3 s instead of 120 s and an hour
    (``tests.test_notify_e2e.FAST``), so that a test takes seconds; the rules are the same."""
    with two(tmp_path, storage_options, NOTIFY_USERS, both=True, **FAST) as servers:
        yield servers


def notices(servers: tuple[RadicaleServer, ...]) -> list[email.message.Message]:
    """Bob's notification e-mails (not codes), at the SMTP sinks of both processes:
    whichever process sends a batch, it is counted."""
    found = []
    for server in servers:
        with server.mail._lock:
            found += [m for m in server.mail.messages if BOB in (m["To"] or "").lower()
                      and m["List-Unsubscribe"] is not None]
    return found


def body(message: email.message.Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def batches(server: RadicaleServer) -> list[tuple[str, int]]:
    """Bob's notification batches: (state, attempts)."""
    return sql(server, "SELECT state, attempts FROM notify_batches WHERE recipient = 'bob' "
                       "ORDER BY id")


def test_a_postponed_offer_comes_back_once_with_two_processes(notifying):
    a, b = notifying
    alice, _ = offering(a)  # Alice shares through A; Bob, asked, is told by e-mail
    wait_until(lambda: notices((a, b)), 30, "Bob's first notification")
    bob = b.client("bob")  # Bob answers through the other process
    (offer,) = offers(bob)
    assert offer["owner"] == "alice" and offer["state"] == "pending"
    assert answer(bob, "alice", "postpone", {"until": in_seconds(6)}).status_code == 200
    assert [o["state"] for o in offers(a.client("bob"))] == ["postponed"]

    back = wait_until(lambda: notices((a, b))[1:], 30, "the offer's return")
    time.sleep(SETTLE + SPACING + 2)  # time for a second return, had a process made one
    told = notices((a, b))
    assert len(told) == 2, [m["Subject"] for m in told]  # the offer, and its return once
    assert "postponed is back" in body(back[0])
    assert batches(a) == [("sent", 1), ("sent", 1)]  # each batch claimed and sent once
    # the offer is back: one pending offer, whichever process Bob asks
    for server in (a, b):
        assert [(o["owner"], o["state"]) for o in offers(server.client("bob"))] == [
            ("alice", "pending")]
    # positive control: his answer through A ends it for both
    assert answer(a.client("bob"), "alice", "accept").status_code == 200
    assert offers(bob) == []


def test_a_digest_of_edits_through_both_processes_is_sent_once(notifying):
    a, b = notifying
    alice, _ = offering(a)
    wait_until(lambda: notices((a, b)), 30, "Bob's first notification")
    time.sleep(SPACING)  # the next e-mail may go: a new digest
    through_b = b.client("alice")
    for n in range(4):  # four quick edits, through one process and the other
        edit(alice if n % 2 else through_b, n)
    settled(alice)
    wait_until(lambda: notices((a, b))[1:], 30, "the digest")
    time.sleep(SETTLE + SPACING + 2)
    told = notices((a, b))
    assert len(told) == 2, [m["Subject"] for m in told]  # the first offer, one digest
    assert len({m["Message-ID"] for m in told}) == 2
    assert batches(a) == [("sent", 1), ("sent", 1)]
    assert [o["state"] for o in offers(b.client("bob"))] == ["pending"]


def test_the_process_sending_notifications_killed_the_other_sends_the_return_once(notifying):
    a, b = notifying
    offering(a)
    first = wait_until(lambda: notices((a, b)), 30, "Bob's first notification")
    assert first == notices((a,))  # A, started first, holds the sending duty
    bob = b.client("bob")
    assert answer(bob, "alice", "postpone", {"until": in_seconds(6)}).status_code == 200
    a.kill()  # kill -9: its duty's lease left behind

    back = wait_until(lambda: notices((b,)), 30, "the offer's return, sent by B")
    time.sleep(SETTLE + SPACING + 2)
    assert len(notices((a, b))) == 2 and "postponed is back" in body(back[0])
    assert batches(b) == [("sent", 1), ("sent", 1)]
    assert [(o["owner"], o["state"]) for o in offers(bob)] == [("alice", "pending")]
