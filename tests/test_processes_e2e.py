# SPDX-License-Identifier: GPL-3.0-or-later
"""Two Radicale processes on one storage folder and one sharing database (SQLite).

A WSGI server's workers, or two launchers on one folder, share the index: its outbox is
claimed delivery by delivery (leases), so one owner's fan-out is shared by the workers of
both processes and each recipient is served once; a process killed mid fan-out leaves
the rest to the other.  (The same, on PostgreSQL and several hosts, is the contract's:
``tests/test_index_contract.py``.)
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.conftest import FAMILY
from tests.server import Client, RadicaleServer, fixture, settled, wait_until

RECIPIENTS = ["r%02d" % n for n in range(24)]
USERS = {"alice": "alice-pw", **{r: r + "-pw" for r in RECIPIENTS}}
#: The fan-out in small rounds with a pause: long enough for the second process to join.
#: Loosened: everyone pre-authorised and discoverable (``FAMILY``), so that every target
#: gets a copy at once — what is under test is how processes share the work, not consent
#: (the consent of each delivery is decided as on one process).
OPTIONS = {**FAMILY, "mecard_batch_size": "2", "mecard_batch_pause": "0.25",
           "mecard_claim_lease": "2", "mecard_sms_command": ""}


def sharing(first: RadicaleServer, root: Path) -> RadicaleServer:
    """A second server on the storage folder (and so the database) of ``first``."""
    root.mkdir()
    second = RadicaleServer(root, USERS, **OPTIONS)
    config = root / "config"
    config.write_text(config.read_text().replace(
        "filesystem_folder = %s" % (root / "collections"),
        "filesystem_folder = %s" % (first.root / "collections")))
    return second


@pytest.fixture
def pair(tmp_path):
    (tmp_path / "a").mkdir()
    first = RadicaleServer(tmp_path / "a", USERS, **OPTIONS).start()
    second = sharing(first, tmp_path / "b")
    try:
        yield first, second
    finally:
        for server in (first, second):
            if server.process is not None:
                server.stop()


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


def one_copy_each(server: RadicaleServer) -> None:
    for user in RECIPIENTS:
        recipient = server.client(user)
        assert len(recipient.hrefs()) == 1, (user, recipient.hrefs())  # never two copies
        assert "Alice" in recipient.card(recipient.copy_of("alice"))


def test_two_processes_share_one_fan_out_and_serve_each_recipient_once(pair):
    first, second = pair
    alice = ready(first)
    second.start()
    logged = (first.log.stat().st_size, second.log.stat().st_size)

    alice.api_ok("POST", "/targets", {"targets": ["user:%s" % r for r in RECIPIENTS]})
    report = settled(alice, timeout=90)

    assert {r["user"]: r["state"] for r in report["recipients"]} == {
        r: "delivered" for r in RECIPIENTS}
    def shares() -> tuple[int, int]:
        return deliveries_logged(first, logged[0]), deliveries_logged(second, logged[1])
    # each worker logs what it did when the queue has run dry for it
    wait_until(lambda: sum(shares()) >= len(RECIPIENTS), what="both workers' logs")
    time.sleep(1)  # a round decided twice would be logged by now
    assert sum(shares()) == len(RECIPIENTS), shares()  # no delivery decided twice
    assert all(shares()), shares()  # the second process took its share
    one_copy_each(second)


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
