# SPDX-License-Identifier: GPL-3.0-or-later
"""Deliveries that fail for a passing reason are retried on a timer, with backoff.

Real failures in a real server: the recipient's book folder is replaced by a
file for a while (a book the index knows but cannot read: a restore in
progress, a disk that went away), or the copy's temporary file cannot be
created (an I/O error while writing).  The owner sees ``retrying`` with the
next attempt's time and the last error; once the cause is gone the copy
arrives by itself, without any new change by the owner.  A failure that
waiting cannot mend (the recipient removed the card) is not retried, and a
delivery that keeps failing is ``failed`` after ``mecard_retry_attempts``.
"""
from __future__ import annotations

import datetime
import sqlite3
import time
from pathlib import Path
from typing import Iterator

import pytest
from radicale import config

from radicale_plugin import index as idx
from radicale_plugin.delivery.copies import BookUnavailable, transient
from radicale_plugin.index import Delivery, Job
from radicale_plugin.delivery.reports import owner_state, recipient_row
from radicale_plugin.settings import PLUGIN_CONFIG_SCHEMA, Settings
from radicale_plugin.index.sqlite import SQLiteIndex
from tests.conftest import FAMILY, USERS
from tests.server import Client, RadicaleServer, fixture, settled, wait_until
from tests.test_fanout_e2e import person

#: Short waits for the tests: 1 s, then 2 s, 2 s, ...
FAST = {"mecard_retry_base": "1", "mecard_retry_max": "2", "mecard_retry_attempts": "50"}
UNREADABLE = "the recipient's address book could not be read"
NOT_WRITTEN = "the copy could not be written (a storage error on the server)"


@pytest.fixture
def retrying_server(tmp_path) -> Iterator[RadicaleServer]:
    srv = RadicaleServer(tmp_path, USERS, **FAMILY, **FAST).start()
    try:
        yield srv
    finally:
        srv.stop()


def book_folder(server: RadicaleServer, user: str) -> Path:
    return server.root / "collections" / "collection-root" / user / "contacts"


def row(owner: Client, user: str) -> dict:
    report = owner.api_ok("GET", "/targets")
    return next(r for r in report["recipients"] if r["user"] == user)


def wait_for_state(owner: Client, user: str, state: str, timeout: float = 30,
                   check=lambda r: True) -> dict:
    return wait_until(lambda: (lambda r: r if r["state"] == state and check(r) else None)(
        row(owner, user)), timeout, "%s's delivery to be %s" % (user, state))


def sharing(server: RadicaleServer, *recipients: str) -> tuple[Client, dict[str, Client]]:
    """Alice shares with the recipients, who each hold a card of her (Bob) or none; settled."""
    alice = person(server, "alice", "alice-me.vcf")
    others = {u: person(server, u, "%s-me.vcf" % u) for u in recipients}
    if "bob" in others:
        assert others["bob"].put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": ["user:%s" % u for u in recipients]})
    report = settled(alice)
    assert {r["state"] for r in report["recipients"]} == {"delivered"}, report
    return alice, others


def hide(folder: Path) -> Path:
    """Replace a book's folder by a file (Radicale ignores the dot-named folder meanwhile)."""
    away = folder.with_name(".away-" + folder.name)
    folder.rename(away)
    folder.write_text("not a folder\n")
    return away


def restore(folder: Path, away: Path) -> None:
    folder.unlink()
    away.rename(folder)


def iso(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def test_an_unreadable_book_is_retried_on_a_timer_and_the_copy_arrives_by_itself(
        retrying_server):
    server = retrying_server
    alice, others = sharing(server, "bob")
    bob = others["bob"]
    history = len(bob.api_ok("GET", "/history")["history"])
    folder = book_folder(server, "bob")
    away = hide(folder)
    try:
        assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code in (
            201, 204)
        seq = alice.api_ok("GET", "/me")["seq"]
        first = wait_for_state(alice, "bob", "retrying")
        assert first["reason"] == UNREADABLE and first["attempts"] >= 1
        assert first["seq"] == seq and first["delivered_seq"] < seq
        assert iso(first["next_attempt"]) > time.time() - 1
        # on the timer, with no change by anybody: attempt after attempt
        again = wait_for_state(alice, "bob", "retrying", 20,
                               lambda r: r["attempts"] >= first["attempts"] + 2)
        assert again["reason"] == UNREADABLE and again["next_attempt"]
        assert settled(alice)["recipients"][0]["state"] == "retrying"  # not pending
    finally:
        restore(folder, away)
    done = wait_for_state(alice, "bob", "delivered", 20)
    assert done["delivered_seq"] == seq and done["reason"] is None
    assert done["attempts"] == 0 and done["next_attempt"] is None
    assert alice.api_ok("GET", "/me")["seq"] == seq  # the owner changed nothing since
    copy = bob.card("ally.vcf")
    assert "+1 202 555 0199" in copy and "NICKNAME:Sis" in copy
    assert bob.hrefs() == ["ally.vcf", "bob.vcf"]  # no second card for Alice
    assert len(bob.api_ok("GET", "/history")["history"]) == history + 1  # written once
    log = server.log.read_text()
    assert "not written (attempt 1 of 50), tried again in 1 s:" in log

    # a decision waiting cannot change is not retried: Bob removed the copy (the owner
    # sees it at once; her next change is decided by his policy, see
    # test_links_follow_cards_e2e)
    assert bob.http.delete(bob.url + bob.book() + "ally.vcf").status_code == 200
    gone = wait_for_state(alice, "bob", "failed")
    assert gone["reason"] == "the recipient removed your card from their address book"
    assert gone["attempts"] == 0 and gone["next_attempt"] is None


def test_a_copy_that_cannot_be_written_waits_and_the_rest_of_its_round_goes_on(
        retrying_server):
    server = retrying_server
    alice, others = sharing(server, "bob", "carol")
    bob, carol = others["bob"], others["carol"]
    carols_copy = carol.copy_of("alice")
    # the copy's temporary file cannot be created: a folder has its name
    blocker = book_folder(server, "bob") / ".Radicale.tmp-mecard-ally.vcf.new"
    blocker.mkdir()
    try:
        assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code in (
            201, 204)
        waiting = wait_for_state(alice, "bob", "retrying")
        assert waiting["reason"] == NOT_WRITTEN
        # Carol's copy went in the same round
        assert row(alice, "carol")["state"] == "delivered"
        assert "+1 202 555 0199" in carol.card(carols_copy)
        assert "+1 202 555 0199" not in bob.card("ally.vcf")
        wait_for_state(alice, "bob", "retrying", 20,
                       lambda r: r["attempts"] >= waiting["attempts"] + 1)
    finally:
        blocker.rmdir()
    wait_for_state(alice, "bob", "delivered", 20)
    assert "+1 202 555 0199" in bob.card("ally.vcf")
    assert sorted(p.name for p in book_folder(server, "bob").iterdir()
                  if p.name.startswith(".Radicale.tmp-mecard")) == []
    assert [h["action"] for h in bob.api_ok("GET", "/history")["history"]][:1] == ["update"]


def test_a_delivery_that_keeps_failing_is_failed_with_the_last_error(tmp_path):
    server = RadicaleServer(tmp_path, USERS, **FAMILY, mecard_retry_base="0.2",
                            mecard_retry_max="0.4", mecard_retry_attempts="3").start()
    try:
        alice, others = sharing(server, "bob")
        folder = book_folder(server, "bob")
        away = hide(folder)
        try:
            alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))
            failed = wait_for_state(alice, "bob", "failed")
        finally:
            restore(folder, away)
        assert failed["reason"] == UNREADABLE + "; gave up after 3 attempts"
        assert failed["attempts"] == 3 and failed["next_attempt"] is None
        time.sleep(1.5)
        assert row(alice, "bob")["state"] == "failed"  # no timer once it gave up
        # the owner's next change tries again, from the first attempt
        alice.put("alice.vcf", fixture("alice-me-new-number.vcf").replace("0199", "0142"))
        done = wait_for_state(alice, "bob", "delivered")
        assert done["attempts"] == 0
        assert "+1 202 555 0142" in others["bob"].card("ally.vcf")
    finally:
        server.stop()


# -- the parts, without a server -----------------------------------------------------------

def test_the_wait_doubles_from_the_base_up_to_the_most_and_is_configurable(tmp_path):
    defaults = Settings.from_configuration(config.load([]).copy(PLUGIN_CONFIG_SCHEMA))
    assert (defaults.retry_base, defaults.retry_max, defaults.retry_attempts) == (60, 3600, 10)
    assert [defaults.retry_delay(n) for n in range(1, 10)] == [
        60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert defaults.retry_delay(10 ** 6) == 3600  # no overflow however many
    configuration = config.load([]).copy(PLUGIN_CONFIG_SCHEMA)
    configuration.update({"storage": {"filesystem_folder": str(tmp_path),
                                      "mecard_retry_base": "1.5", "mecard_retry_max": "5",
                                      "mecard_retry_attempts": "4"}}, "test", privileged=True)
    settings = Settings.from_configuration(configuration)
    assert [settings.retry_delay(n) for n in range(1, 5)] == [1.5, 3, 5, 5]
    assert settings.retry_attempts == 4
    for option, value in (("mecard_retry_base", "0"), ("mecard_retry_max", "-1"),
                          ("mecard_retry_attempts", "0"), ("mecard_retry_base", "nan")):
        with pytest.raises(Exception) as bad:
            config.load([]).copy(PLUGIN_CONFIG_SCHEMA).update(
                {"storage": {option: value}}, "test", privileged=True)
        assert option in str(bad.value)


@pytest.mark.parametrize("error, passing", [
    (BookUnavailable("the address book /bob/contacts/ cannot be read for now"), True),
    (OSError(28, "No space left on device"), True),
    (IsADirectoryError(21, "Is a directory"), True),
    (sqlite3.OperationalError("database is locked"), True),
    (RuntimeError("Locking the storage failed: [Errno 37] No locks available"), True),
    (RuntimeError("/bob/contacts/x.vcf keeps changing while it is read"), True),
    (ValueError("malformed vCard"), False),
    (KeyError("a bug"), False),
    (RuntimeError("something else"), False),
])
def test_which_failures_pass(error, passing):
    assert transient(error) is passing


def test_the_owner_sees_retrying_with_the_next_attempt_and_the_last_error():
    due = time.time() + 90
    waiting = Delivery("alice", "bob", idx.PENDING, 3, 2, error=UNREADABLE, due=due,
                       attempts=2)
    assert owner_state(waiting, None, 3) == ("retrying", UNREADABLE)
    shown = recipient_row("bob", True, ["user:bob"], waiting, None, 3)
    assert shown["state"] == "retrying" and shown["attempts"] == 2
    assert abs(iso(shown["next_attempt"]) - due) < 1
    # held back (offers per day) is pending, not retrying, and says when it goes out
    held = Delivery("alice", "bob", idx.PENDING, 3, error="held back", due=due)
    assert owner_state(held, None, 3) == ("pending", "held back")
    assert abs(iso(recipient_row("bob", True, [], held, None, 3)["next_attempt"]) - due) < 1
    # only waiting ones retry
    gave_up = Delivery("alice", "bob", idx.FAILED, 3, error=UNREADABLE, attempts=10)
    assert owner_state(gave_up, None, 3) == ("failed", UNREADABLE)


def attempts(index: SQLiteIndex, recipient: str) -> int:
    delivery = index.outbox.delivery("alice", recipient)
    assert delivery is not None
    return delivery.attempts


def test_attempts_are_kept_by_the_outbox_and_start_again_with_a_new_plan(tmp_path):
    index = SQLiteIndex(str(tmp_path / "x.sqlite"))
    try:
        index.outbox.plan(Job(0, "alice", 1), {"bob": ["user:bob"], "carol": ["user:carol"]})
        for recipient in ("bob", "carol"):
            delivery = index.outbox.delivery("alice", recipient)
            assert delivery is not None and delivery.attempts == 0
            delivery.attempts, delivery.due, delivery.error = 2, time.time() + 60, UNREADABLE
            index.outbox.finish(delivery)
        assert attempts(index, "bob") == 2
        assert index.outbox.pending_deliveries(10, time.time()) == []  # not due yet
        due = index.outbox.next_due()
        assert due is not None and due > time.time()  # the worker wakes then
        index.outbox.plan(Job(0, "alice", 2), {"bob": ["user:bob"]})  # the owner's change
        bob = index.outbox.delivery("alice", "bob")
        assert bob is not None
        assert (bob.attempts, bob.due, bob.error, bob.state) == (0, 0.0, "", idx.PENDING)
        carol = index.outbox.delivery("alice", "carol")  # no longer a target: stopped
        assert carol is not None and (carol.state, carol.attempts) == (idx.STOPPED, 0)
    finally:
        index.close()
