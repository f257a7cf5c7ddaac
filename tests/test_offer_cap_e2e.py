# SPDX-License-Identifier: GPL-3.0-or-later
"""Offers that do not trickle (issue 17, section 4).

Under the shipped policy ``ask`` an owner's change becomes an offer, and an
owner may make only ``mecard_offers_per_day`` new offers a day.  Offers reach
only people who have the owner's verified key in their books, so the limit
guards against a flood, not against strangers: the owner's *first* share
reaches everyone who knows her at once; a later change to new recipients
keeps the limit, the owner is told how many wait and until when (``GET
/targets``, the bridge's ``status``), and the log says it once per round, not
once per recipient.
"""
from __future__ import annotations

import datetime
import io

import pytest

from bridge.cli import main as bridge_main
from tests.server import Client, RadicaleServer, fixture, wait_until
from tests.test_fanout_e2e import person

FIRST = ["r%d" % i for i in range(1, 7)]     # know Alice when she first shares
LATER = ["s%d" % i for i in range(1, 7)]     # added with a later change
USERS = {"alice": "alice-pw", **{u: u + "-pw" for u in FIRST + LATER}}
#: Each recipient's card for Alice: her verified e-mail, not her number (so there is
#: something to offer: the number)
ALLY = fixture("bob-contact-alice.vcf").replace("TEL;TYPE=CELL:(202) 555-0101\r\n", "")
CAP = 3


@pytest.fixture
def capped_server(tmp_path):
    """The shipped defaults (policy ``ask``, nobody pre-authorised), with a daily limit of
    3 new offers instead of 100: six recipients are then more than a day's offers."""
    srv = RadicaleServer(tmp_path, USERS, mecard_offers_per_day=str(CAP)).start()
    try:
        yield srv
    finally:
        srv.stop()


def report(alice: Client) -> dict:
    return alice.api_ok("GET", "/targets")


def states(alice: Client, users: list[str]) -> dict[str, str]:
    rows = {r["user"]: r["state"] for r in report(alice)["recipients"]}
    return {u: rows.get(u, "") for u in users}


def knowing_alice(server: RadicaleServer, users: list[str]) -> dict[str, Client]:
    """Recipients with a card for Alice carrying her verified e-mail."""
    found = {}
    for user in users:
        found[user] = person(server, user)
        assert found[user].put("ally.vcf", ALLY).status_code == 201
    return found


def held_lines(server: RadicaleServer) -> list[str]:
    return [ln for ln in server.log.read_text().splitlines() if "held back" in ln]


def test_the_first_share_offers_everyone_at_once_and_later_changes_keep_the_limit(
        capped_server, monkeypatch):
    alice = person(capped_server, "alice", "alice-me.vcf")
    first = knowing_alice(capped_server, FIRST)
    alice.api_ok("POST", "/targets", {"targets": ["user:%s" % u for u in FIRST]})

    # all six at once, though the day allows three
    wait_until(lambda: set(states(alice, FIRST).values()) == {"offered"}, 60,
               "the first share's offers")
    assert report(alice)["held_back"] is None
    for user, client in first.items():
        (offer,) = client.api_ok("GET", "/offers")["offers"]
        assert offer["owner"] == "alice", user
    assert held_lines(capped_server) == []

    # a later change of her card, to six more people who know her: three offers, the
    # rest wait for the next day
    later = knowing_alice(capped_server, LATER)
    assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code in (201, 204)
    alice.api_ok("POST", "/targets", {"add": ["user:%s" % u for u in LATER]})

    def decided() -> dict | None:
        found = states(alice, LATER)
        return found if sorted(found.values()) == ["offered"] * CAP + ["pending"] * CAP \
            else None
    found = wait_until(decided, 60, "three offers made and three held back")
    now = datetime.datetime.now(datetime.timezone.utc)
    held = report(alice)["held_back"]
    assert held["count"] == CAP and held["per_day"] == CAP
    next_time = datetime.datetime.fromisoformat(held["next"])
    # when the day's first offer leaves the window: a day on, not an hour on
    assert now + datetime.timedelta(hours=23) < next_time <= now + datetime.timedelta(days=1,
                                                                                seconds=5)
    rows = {r["user"]: r for r in report(alice)["recipients"]}
    for user, state in found.items():
        offers = later[user].api_ok("GET", "/offers")["offers"]
        if state == "pending":
            assert rows[user]["reason"].startswith("held back") and offers == []
            assert rows[user]["next_attempt"] == held["next"]
        else:
            assert [o["owner"] for o in offers] == ["alice"]
    # those of the first share still have their offers, now of the new change
    assert set(states(alice, FIRST).values()) == {"offered"}
    assert "0199" in str(first["r1"].api_ok("GET", "/offers")["offers"][0]["changes"])

    # one line in the log for the round, not one per recipient held back
    (line,) = held_lines(capped_server)
    assert "%d offer(s) held back by the limit of %d new offers a day" % (CAP, CAP) in line
    assert "'alice' %d" % CAP in line

    monkeypatch.setenv("MECARD_URL", capped_server.url)
    monkeypatch.setenv("MECARD_USER", "alice")
    monkeypatch.setenv("MECARD_PASSWORD", "alice-pw")
    monkeypatch.setenv("HOME", str(capped_server.root))
    out = io.StringIO()
    assert bridge_main(["status"], out=out) == 0
    assert "%d offer(s) held back by your limit of %d new offers a day; the next go out at %s" \
        % (CAP, CAP, held["next"]) in out.getvalue()
