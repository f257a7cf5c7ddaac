# SPDX-License-Identifier: GPL-3.0-or-later
"""The fan-out survives kill -9 and never stops other users from being served."""
from __future__ import annotations

from pathlib import Path

from tests.conftest import FAMILY
from tests.server import RadicaleServer, fixture, settled, wait_until

RECIPIENTS = ["r%02d" % i for i in range(40)]
USERS = {"alice": "alice-pw", "carol": "carol-pw", **{u: u + "-pw" for u in RECIPIENTS}}


def start(tmp_path: Path) -> RadicaleServer:
    # small batches with pauses make the fan-out long enough to interrupt and to overlap
    return RadicaleServer(tmp_path, USERS, mecard_batch_size="2",
                          mecard_batch_pause="0.15", **FAMILY).start()


def copies(root: Path, user: str) -> dict[str, bytes]:
    """The recipient's book as files on disk (read while the server is dead)."""
    book = root / "collections" / "collection-root" / user / "contacts"
    return {p.name: p.read_bytes() for p in book.glob("*.vcf")}


def prepare(server: RadicaleServer):
    alice = server.client("alice")
    alice.login()
    alice.put("alice.vcf", fixture("alice-me.vcf"))
    alice.api_ok("POST", "/me-card", {"path": "/alice/contacts/alice.vcf"})
    alice.verify_me_card()
    for user in RECIPIENTS:
        server.client(user).login()
    alice.api_ok("POST", "/targets", {"targets": ["user:" + u for u in RECIPIENTS]})
    settled(alice)
    return alice


def delivered_count(alice) -> int:
    report = alice.api_ok("GET", "/targets")
    return sum(r["state"] == "delivered" and r["delivered_seq"] == report["seq"]
               for r in report["recipients"])


def test_kill_9_during_fan_out_then_restart_updates_everyone_exactly_once(tmp_path):
    server = start(tmp_path)
    alice = prepare(server)
    alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))
    wait_until(lambda: delivered_count(alice) >= 4, what="the first deliveries")
    server.kill()

    before = {u: copies(tmp_path, u) for u in RECIPIENTS}
    done_before = [u for u in RECIPIENTS
                   if any(b"0199" in text for text in before[u].values())]
    assert 0 < len(done_before) < len(RECIPIENTS), "the kill must land mid fan-out"
    mtimes = {u: {p.name: p.stat().st_mtime_ns for p in
                  (tmp_path / "collections/collection-root" / u / "contacts").glob("*.vcf")}
              for u in done_before}

    server = start(tmp_path)
    try:
        alice = server.client("alice")
        report = settled(alice)
        assert {r["state"] for r in report["recipients"]} == {"delivered"}
        for user in RECIPIENTS:
            after = copies(tmp_path, user)
            assert len(after) == 1, "exactly one copy of Alice in %s's book" % user
            (text,) = after.values()
            assert text.count(b"+1 202 555 0199") == 1 and b"0101" not in text
        for user in done_before:
            # already delivered before the kill: not written a second time
            now = {p.name: p.stat().st_mtime_ns for p in
                   (tmp_path / "collections/collection-root" / user / "contacts").glob("*.vcf")}
            assert now == mtimes[user]
            assert copies(tmp_path, user) == before[user]
    finally:
        server.stop()


def test_other_users_are_served_while_a_large_fan_out_runs(tmp_path):
    server = start(tmp_path)
    try:
        alice = prepare(server)
        carol = server.client("carol")
        carol.login()
        carol.put("x.vcf", fixture("carol-me.vcf"))
        alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))

        # Carol's requests go on while Alice's recipients are still pending
        answered = 0
        while delivered_count(alice) < len(RECIPIENTS) and answered < 500:
            assert carol.get("x.vcf").status_code == 200
            assert carol.sync()[0]
            answered += 1
        assert answered >= 5
        settled(alice)
    finally:
        server.stop()
