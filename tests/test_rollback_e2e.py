# SPDX-License-Identifier: GPL-3.0-or-later
"""Owners told the truth when a phone rolls a copy back (issue 13, section 5).

Evolution and Thunderbird save a card without ``If-Match``: an edit made on a
stale local copy writes the older card back over a fresh update (measured with
Evolution 3.46: the owner's new number replaced by the old one while the owner
still saw ``delivered``).  The server knows what it wrote: the owner now sees
``behind`` with the reason, the fan-out puts the copy right after the rewrite
spacing with the same merge (the recipient's own lines kept), and a deliberate
edit of the recipient's (a number the owner never had, his note, his nickname)
is kept and is not ``behind``.  A phone that keeps writing the old card back is
put right a bounded number of times, then the owner is told so.

Every server here has the shipped defaults (policy ``ask``, discoverability
``contacts``, nobody pre-authorised).  Bob gets ``auto`` the way a user does:
he accepts Alice's first offer "from now on".  Only the rewrite spacing is set:
shorter than the shipped 10 s so that the tests are quick, and not the tests'
usual 0, so that the owner can see ``behind`` before the repair.
"""
from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.cli import main as bridge_main
from radicale_plugin.delivery.rollback import MAX_REPAIRS
from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture, settled, wait_until
from tests.test_fanout_e2e import person

VDIRSYNCER = Path(sys.executable).with_name("vdirsyncer")
SPACING = 3.0
OLD, NEW = "+1 202 555 0101", "+1 202 555 0199"
#: Bob's card for Alice: her e-mail (verified) but not her number, so that her card is offered
ALLY = fixture("bob-contact-alice.vcf").replace("TEL;TYPE=CELL:(202) 555-0101\r\n", "")


@pytest.fixture
def spaced_server(tmp_path):
    """The shipped defaults, with a short rewrite spacing (see the module's docstring)."""
    srv = RadicaleServer(tmp_path, USERS, mecard_rewrite_spacing=str(SPACING)).start()
    try:
        yield srv
    finally:
        srv.stop()


def row(alice: Client) -> dict:
    (found,) = [r for r in alice.api_ok("GET", "/targets")["recipients"] if r["user"] == "bob"]
    return found


def accepted_from_now_on(server: RadicaleServer) -> tuple[Client, Client]:
    """Alice (verified number) shares with Bob, who has a card for her: her card is offered,
    and he takes it "from now on" (his policy towards her becomes ``auto``)."""
    alice = person(server, "alice", "alice-me.vcf")
    bob = person(server, "bob")
    assert bob.put("ally.vcf", ALLY).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    wait_until(lambda: row(alice)["state"] == "offered", 60, "the offer to Bob")
    assert bob.api_ok("POST", "/offers/alice/accept", {})["policy"] == "auto"
    assert row(alice)["state"] == "delivered"
    return alice, bob


def alice_changes_her_number(alice: Client, bob: Client) -> None:
    assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code in (201, 204)
    wait_until(lambda: NEW in bob.card("ally.vcf"), 60, "the new number in Bob's copy")
    wait_until(lambda: row(alice)["state"] == "delivered", 30, "delivered")


def evolution_save(bob: Client, text: str) -> None:
    """What Evolution does: a plain PUT of its local text, without If-Match."""
    r = bob.put("ally.vcf", text)
    assert r.status_code in (201, 204), r.text


def bridge_status(server: RadicaleServer, monkeypatch) -> str:
    monkeypatch.setenv("MECARD_URL", server.url)
    monkeypatch.setenv("MECARD_USER", "alice")
    monkeypatch.setenv("MECARD_PASSWORD", "alice-pw")
    monkeypatch.setenv("HOME", str(server.root))  # no ~/.netrc or config of the developer's
    out = io.StringIO()
    assert bridge_main(["status"], out=out) == 0
    return out.getvalue()


def test_a_phone_writing_the_old_copy_back_shows_behind_and_the_next_round_repairs_it(
        spaced_server, monkeypatch):
    alice, bob = accepted_from_now_on(spaced_server)
    on_the_phone = bob.card("ally.vcf")  # the phone's local copy, with the old number
    assert OLD in on_the_phone
    alice_changes_her_number(alice, bob)
    history = len(bob.api_ok("GET", "/history")["history"])

    # Bob edits his own note on the stale copy: the phone saves it all back
    evolution_save(bob, on_the_phone.replace("climbing gym", "climbing gym on Tuesdays"))
    token, _ = bob.sync()
    shown = row(alice)
    assert shown["state"] == "behind", shown
    assert "older copy of your card" in shown["reason"] and shown["next_attempt"]
    said = bridge_status(spaced_server, monkeypatch)
    assert "bob" in said and "behind" in said and "older copy of your card back" in said

    # the next round (after the rewrite spacing) puts it right with the same merge
    wait_until(lambda: row(alice)["state"] == "delivered", 30, "the repair")
    copy = bob.card("ally.vcf")
    assert "+1 202 555 0199" in copy and "0101" not in copy
    for kept in ("NOTE:met at the climbing gym on Tuesdays", "NICKNAME:Sis", "FN:Ally",
                 "+1 202 555 0777"):
        assert kept in copy, kept
    assert bob.sync(token)[1] == ["ally.vcf"]  # his phone's next incremental sync gets it
    entries = bob.api_ok("GET", "/history")["history"]
    assert len(entries) == history + 1
    assert {"field": "TEL", "before": "TEL;TYPE=CELL:" + OLD,
            "after": "TEL;TYPE=CELL:" + NEW} in entries[0]["changes"]
    assert "rolled back by a client" in spaced_server.log.read_text()


def test_a_deliberate_edit_of_the_recipient_is_kept_and_not_behind(spaced_server):
    alice, bob = accepted_from_now_on(spaced_server)
    alice_changes_her_number(alice, bob)
    token, _ = bob.sync()
    # Bob types a number Alice never had in place of hers, and his own note and nickname
    mine = bob.card("ally.vcf").replace(NEW, "+1 202 555 0123") \
        .replace("NICKNAME:Sis", "NICKNAME:Al").replace("climbing gym", "pool")
    etag = bob.get("ally.vcf").headers["ETag"]
    assert bob.put("ally.vcf", mine, **{"If-Match": etag}).status_code in (201, 204)
    assert row(alice)["state"] == "delivered"
    # no repair comes after the spacing either: the card stays as he wrote it
    time.sleep(SPACING + 2.5)
    assert row(alice)["state"] == "delivered"
    copy = bob.card("ally.vcf")
    assert "+1 202 555 0123" in copy and NEW not in copy
    assert "NICKNAME:Al" in copy and "NOTE:met at the pool" in copy
    new_token, changed = bob.sync(token)
    assert changed == ["ally.vcf"]  # his own write only
    assert bob.sync(new_token)[1] == []
    assert "rolled back by a client" not in spaced_server.log.read_text()

    # positive control: the same copy written back with her older number is behind
    evolution_save(bob, copy.replace("+1 202 555 0123", OLD))
    assert row(alice)["state"] == "behind"
    wait_until(lambda: row(alice)["state"] == "delivered", 30, "the repair")
    assert NEW in bob.card("ally.vcf") and "NICKNAME:Al" in bob.card("ally.vcf")


def test_a_phone_that_keeps_writing_the_old_copy_back_is_not_fought_in_a_loop(spaced_server,
                                                                               monkeypatch):
    alice, bob = accepted_from_now_on(spaced_server)
    on_the_phone = bob.card("ally.vcf")
    alice_changes_her_number(alice, bob)
    for _ in range(MAX_REPAIRS):
        evolution_save(bob, on_the_phone)
        assert row(alice)["state"] == "behind"
        wait_until(lambda: NEW in bob.card("ally.vcf"), 30, "a repair")
        wait_until(lambda: row(alice)["state"] == "delivered", 30, "delivered")
    evolution_save(bob, on_the_phone)
    shown = row(alice)
    assert shown["state"] == "behind" and "put right %d times" % MAX_REPAIRS in shown["reason"]
    assert shown["next_attempt"] is None
    time.sleep(SPACING + 2.5)
    assert OLD in bob.card("ally.vcf")  # left as the phone wrote it
    assert "put right %d times" % MAX_REPAIRS in bridge_status(spaced_server, monkeypatch)

    # the owner's next change reaches the copy again (her values replace the old ones)
    assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf").replace(
        "0199", "0188")).status_code in (201, 204)
    wait_until(lambda: "+1 202 555 0188" in bob.card("ally.vcf"), 60, "the next change")
    assert OLD not in bob.card("ally.vcf")
    wait_until(lambda: row(alice)["state"] == "delivered", 30, "delivered")


class Phone:
    """Bob's phone: vdirsyncer syncing his book with a folder; on a conflict the phone's
    copy wins (``conflict_resolution = "a wins"``), as a client saving without If-Match."""

    def __init__(self, tmp_path: Path, server: RadicaleServer) -> None:
        self.local = tmp_path / "bob-phone"
        self.local.mkdir()
        self.discovered = False  # the first sync discovers the book
        self.config = tmp_path / "bob-vdirsyncer.conf"
        self.config.write_text(f"""
[general]
status_path = "{tmp_path / 'bob-status'}/"

[pair phone]
a = "phone_local"
b = "phone_remote"
collections = null
conflict_resolution = "a wins"

[storage phone_local]
type = "filesystem"
path = "{self.local}/"
fileext = ".vcf"

[storage phone_remote]
type = "carddav"
url = "{server.url}/bob/contacts/"
username = "bob"
password = "{server.users['bob']}"
""")

    def sync(self) -> None:
        # as a phone: it discovers the book once, then syncs it (a vdirsyncer start each)
        for command in ("sync",) if self.discovered else ("discover", "sync"):
            done = subprocess.run([str(VDIRSYNCER), "-c", str(self.config), command],
                                  capture_output=True, text=True, timeout=120, input="")
            assert done.returncode == 0, done.stdout + done.stderr
        self.discovered = True

    def path(self, uid: str) -> Path:
        (found,) = [p for p in self.local.glob("*.vcf") if "UID:%s" % uid in p.read_text()]
        return found


def test_vdirsyncer_as_bobs_phone_rolls_back_and_gets_the_repaired_card(spaced_server,
                                                                        tmp_path):
    alice, bob = accepted_from_now_on(spaced_server)
    phone = Phone(tmp_path, spaced_server)
    phone.sync()
    local = phone.path("bobs-card-for-alice")
    assert OLD in local.read_text()
    alice_changes_her_number(alice, bob)
    # Bob edits the card on his phone before it synced: the phone's stale copy wins
    local.write_text(local.read_text().replace("NICKNAME:Sis", "NICKNAME:Sister"))
    phone.sync()
    assert OLD in bob.card("ally.vcf") and "NICKNAME:Sister" in bob.card("ally.vcf")
    assert row(alice)["state"] == "behind"

    wait_until(lambda: row(alice)["state"] == "delivered", 30, "the repair")
    phone.sync()
    text = phone.path("bobs-card-for-alice").read_text()
    assert NEW in text and OLD not in text and "NICKNAME:Sister" in text
