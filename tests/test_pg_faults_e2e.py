# SPDX-License-Identifier: GPL-3.0-or-later
"""PostgreSQL's faults and races, met by a real server: a request PostgreSQL ends for a
conflict with another transaction is run again, never a 500
(:mod:`radicale_plugin.http.retry`); a server's running mark outlives a restart of
PostgreSQL (:mod:`radicale_plugin.index.postgres.running`); a stop made while the fan-out
waits to write a copy is not overwritten by the round's finish (the outbox's
``Delivery.seen``).

Real conflicts, provoked beside a real server (the product's storage and index on one
database, shipped defaults): another connection locks the book's row, waits until the
server's PUT waits for it, then asks for the book's lock the PUT holds — a deadlock
PostgreSQL resolves by ending one of the two (the PUT: the other one's
``deadlock_timeout`` is longer).  A lock held past every attempt's ``lock_timeout`` is a
503 with ``Retry-After``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import psycopg
import requests

from radicale_plugin.index.postgres import running
from radicale_plugin.index.running import ServerRunning
from radicale_plugin.storage.postgres import items
from tests.conftest import FAMILY, USERS
from tests.postgres import Cluster
from tests.server import Client, RadicaleServer, fixture, settled, wait_until
from tests.test_fanout_e2e import person

BOOK = "bob/contacts"


def waiting_for_a_lock(dsn: str) -> int:
    """Backends of the database waiting for a lock (the server's PUT)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event_type = 'Lock'").fetchone()[0]


def put_in_background(bob: Client, href: str) -> tuple[threading.Thread, dict[str, Any]]:
    got: dict[str, Any] = {}

    def put() -> None:
        got["answer"] = bob.put(href, fixture("bob-me.vcf"))
    thread = threading.Thread(target=put)
    thread.start()
    return thread, got


def started(tmp_path, postgres, dsn_options: str = "") -> tuple[RadicaleServer, str, Client]:
    dsn = postgres.new_database("conflicts")
    server = RadicaleServer(tmp_path, USERS, postgres=dsn + dsn_options,
                            mecard_smtp_host="", mecard_sms_command="").start()
    bob = server.client("bob")
    bob.login()  # his book exists
    return server, dsn, bob


def test_a_put_that_loses_a_deadlock_is_run_again_and_stored(tmp_path, postgres):
    server, dsn, bob = started(tmp_path, postgres)
    try:
        with psycopg.connect(dsn, autocommit=True) as other:
            other.execute("BEGIN")
            other.execute("SET LOCAL deadlock_timeout = '20s'")  # the PUT is the victim
            other.execute("SELECT id FROM dav_collections WHERE path = %s FOR UPDATE", (BOOK,))
            thread, got = put_in_background(bob, "bob.vcf")
            wait_until(lambda: waiting_for_a_lock(dsn), 20, "the PUT waiting for the row")
            # the book's lock, which the waiting PUT holds: a deadlock (the PUT is ended)
            other.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                          (items.LOCK_CLASS, items.path_key(BOOK)))
            other.execute("COMMIT")
            thread.join(60)
        answer: requests.Response = got["answer"]
        assert answer.status_code == 201, (answer.status_code, answer.text)
        assert "Bob" in bob.card("bob.vcf")
        said = server.log.read_text(errors="replace")
        assert "deadlock detected" in said  # a real one, lost by the PUT ...
        assert "succeeded at attempt 2 after a database conflict" in said  # ... and run again
    finally:
        server.stop()


def test_a_put_that_keeps_losing_is_a_503_with_retry_after_never_a_500(tmp_path, postgres):
    # every statement of the server waits for a lock at most 0.3 s (lock_timeout)
    server, dsn, bob = started(tmp_path, postgres, " options='-c lock_timeout=300'")
    try:
        with psycopg.connect(dsn, autocommit=True) as other:
            other.execute("BEGIN")
            other.execute("SELECT id FROM dav_collections WHERE path = %s FOR UPDATE", (BOOK,))
            busy = bob.put("bob.vcf", fixture("bob-me.vcf"))  # held past every attempt
            other.execute("COMMIT")
        assert busy.status_code == 503, (busy.status_code, busy.text)
        assert busy.headers["Retry-After"] == "2" and "try again" in busy.text
        assert bob.get("bob.vcf").status_code == 404  # nothing of it was stored
        # positive control: the lock released, the same PUT is stored
        assert bob.put("bob.vcf", fixture("bob-me.vcf")).status_code == 201
        assert "Bob" in bob.card("bob.vcf")
    finally:
        server.stop()


def marks(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return running.holders(conn)


def test_a_server_holds_its_running_mark_again_after_postgresql_restarts(tmp_path):
    """An import checks the mark: after a restart of PostgreSQL (which drops every session
    and so the lock) it must still find the running server."""
    cluster = Cluster().start()  # its own: restarting the session's would disturb others
    try:
        dsn = cluster.new_database("restart")
        server = RadicaleServer(tmp_path, USERS, postgres=dsn, mecard_smtp_host="",
                                mecard_sms_command="").start()
        try:
            assert marks(dsn) == 1
            cluster.restart()
            wait_until(lambda: marks(dsn) == 1, 30, "the mark held again")
            with psycopg.connect(dsn, autocommit=True) as conn:
                with pytest.raises(ServerRunning, match="1 server process"):
                    with running.alone(conn, "the database", "importing"):
                        pass
            # and the server serves on the restarted database
            bob = server.client("bob")
            bob.login()
            assert bob.put("bob.vcf", fixture("bob-me.vcf")).status_code == 201
        finally:
            server.stop()
        # positive control: no server, the import may run
        wait_until(lambda: marks(dsn) == 0, 30, "the mark gone with the server")
        with psycopg.connect(dsn, autocommit=True) as conn:
            with running.alone(conn, "the database", "importing"):
                pass
    finally:
        cluster.stop()


def waiting_for_a_book(dsn: str) -> int:
    """Backends of the database waiting for an advisory lock (a book's)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event = 'advisory'").fetchone()[0]


def test_a_stop_made_while_the_fan_out_waits_to_write_a_copy_stays_a_stop(tmp_path, postgres):
    """Alice's change is being written into Dave's book (the round waits for the book's
    lock, held beside the server) when she stops sharing (her me card no longer
    designated): once the write is made, Bob and Dave stay stopped -- the round's finish
    does not make them "delivered" again -- and the copy written is recorded."""
    dsn = postgres.new_database("stop")
    # loosened (everyone pre-authorised): the copies are written at once, without offers;
    # under test is how a round's finish meets a stop, not consent
    server = RadicaleServer(tmp_path, USERS, postgres=dsn, **FAMILY).start()
    try:
        alice = person(server, "alice", "alice-me.vcf")
        bob, dave = person(server, "bob"), person(server, "dave")
        alice.api_ok("POST", "/targets", {"targets": ["user:bob", "user:dave"]})
        report = settled(alice)
        assert {r["user"]: r["state"] for r in report["recipients"]} == {
            "bob": "delivered", "dave": "delivered"}
        with psycopg.connect(dsn, autocommit=True) as other:
            other.execute("BEGIN")
            other.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                          (items.LOCK_CLASS, items.path_key("dave/contacts")))
            assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code \
                in (201, 204)
            wait_until(lambda: waiting_for_a_book(dsn), 30, "the round waiting for Dave's book")
            alice.api_ok("POST", "/me-card", {"path": None})  # she stops sharing
            stopped = {r["user"]: r["state"]
                       for r in alice.api_ok("GET", "/targets")["recipients"]}
            other.execute("COMMIT")  # the round writes Dave's copy now, and finishes
        wait_until(lambda: not waiting_for_a_book(dsn), 30, "the round's write")
        time.sleep(1)  # the round's records
        states = {r["user"]: r["state"] for r in alice.api_ok("GET", "/targets")["recipients"]}
        assert states == stopped == {"bob": "stopped", "dave": "stopped"}, (stopped, states)
        # the write made while she stopped is in the copies (and was recorded as such)
        for recipient in (bob, dave):
            assert "0199" in recipient.card(recipient.copy_of("alice"))
    finally:
        server.stop()
