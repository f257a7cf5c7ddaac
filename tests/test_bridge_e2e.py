# SPDX-License-Identifier: GPL-3.0-or-later
"""The bridge's main(argv) against a real server process."""
from __future__ import annotations

import io

import pytest

from bridge.cli import main
from tests.server import FIXTURES, fixture, settled, free_port
from tests.test_fanout_e2e import person

NOW = ["--now", "2026-11-01T00:00:00"]
CONTACTS = {
    "c-bob.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c-bob\r\nFN:Bob\r\nTEL:202-555-0102\r\n"
                 "CATEGORIES:Family\r\nEND:VCARD\r\n",
    "c-carol.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c-carol\r\nFN:Carol\r\n"
                   "TEL:202 555 0103\r\nEND:VCARD\r\n",
    "g-work.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:g-work\r\nX-ADDRESSBOOKSERVER-KIND:group\r\n"
                  "FN:Work\r\nX-ADDRESSBOOKSERVER-MEMBER:urn:uuid:c-carol\r\nEND:VCARD\r\n",
    "c-dave.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c-dave\r\nFN:Dave\r\nTEL:+1 202 555 0104\r\n"
                  "END:VCARD\r\n",
    "c-frank.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c-frank\r\nFN:Frank\r\nTEL:202 555 0106\r\n"
                   "END:VCARD\r\n",
}


@pytest.fixture
def world(server, monkeypatch):
    alice = person(server, "alice", "alice-me.vcf")
    for user, tel in (("bob", "202 555 0102"), ("carol", "202 555 0103"), ("dave", "202 555 0104")):
        client = person(server, user)
        client.put("me.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:%s\r\nFN:%s\r\nTEL:%s\r\n"
                   "END:VCARD\r\n" % (user, user.title(), tel))
        client.api_ok("POST", "/me-card", {"path": client.book() + "me.vcf"})
        client.verify_me_card()
    for href, text in CONTACTS.items():
        assert alice.put(href, text).status_code == 201
    monkeypatch.setenv("MECARD_URL", server.url)
    monkeypatch.setenv("MECARD_USER", "alice")
    monkeypatch.setenv("MECARD_PASSWORD", "alice-pw")
    monkeypatch.setenv("HOME", str(server.root))  # no ~/.netrc or config of the developer's
    return alice


def bridge(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def rows(output: str) -> dict[str, str]:
    """contact → user column of the table."""
    lines = output.splitlines()[1:]
    return {ln.split()[0]: ln for ln in lines if ln and not ln[0].isdigit()
            and not ln.startswith(("Nothing", "Targets", "+", "-"))}


def test_frequency_selection_shows_a_table_and_dry_run_changes_nothing(world):
    code, out = bridge("select", "frequent:3", "--log", str(FIXTURES / "calls.xml"),
                       "--kinds", "call", "--dry-run", *NOW)
    assert code == 0, out
    table = rows(out)
    assert list(table) == ["Bob"]
    assert "4 call in 6 months" in table["Bob"] and "bob" in table["Bob"]
    assert world.api_ok("GET", "/me")["targets"] == []


def test_combination_frequent_except_group(world):
    code, out = bridge("select", "frequent:1", "--log", str(FIXTURES / "calls.xml"),
                       "--log", str(FIXTURES / "sms.xml"), "--log", str(FIXTURES / "calls.csv"),
                       "--except", "group:Work", *NOW)
    assert code == 0, out
    assert sorted(rows(out)) == ["Bob", "Dave"]  # Carol is in Work
    code, out = bridge("select", "all", "--and", "contact:Carol", *NOW)
    assert sorted(rows(out)) == ["Carol"]


def test_unresolved_contacts_say_why(world):
    code, out = bridge("select", "contact:Frank")
    assert code == 0 and "no user you may see here (they may not have you in their " \
        "contacts)" in out


def test_apply_replace_is_idempotent_and_prints_what_changed(world):
    argv = ["select", "frequent:3", "--log", str(FIXTURES / "calls.xml"), "--apply", "replace",
            *NOW]
    code, out = bridge(*argv)
    assert code == 0 and "+ user:bob" in out
    assert world.api_ok("GET", "/me")["targets"] == ["user:bob"]
    code, out = bridge(*argv)
    assert code == 0 and "Targets unchanged." in out
    code, out = bridge("select", "group:Family", "--apply", "extend")
    assert "+ group:Family" in out  # a plain group stays a rule the server re-evaluates
    assert world.api_ok("GET", "/me")["targets"] == ["user:bob", "group:Family"]


def test_update_some_reaches_the_chosen_recipients_only(world, server):
    bridge("select", "contact:Bob", "--or", "contact:Carol", "--apply", "replace")
    settled(world)
    bob, carol = server.client("bob"), server.client("carol")
    code, out = bridge("update", "--tel", "+1 202 555 0199", "--type", "cell", "--replace",
                       "--only", "contact:Bob")
    assert code == 0, out
    assert "Sent to bob." in out
    report = settled(world)
    states = {r["user"]: r["state"] for r in report["recipients"]}
    assert states == {"bob": "delivered", "carol": "behind"}  # carol has the earlier change
    copies = {"bob": bob.copy_of("alice"), "carol": carol.copy_of("alice")}
    assert "+1 202 555 0199" in bob.card(copies["bob"])
    assert "0199" not in carol.card(copies["carol"])
    assert "+1 202 555 0199" in world.card("alice.vcf")
    # "update everyone" afterwards brings Carol up to date too
    code, out = bridge("update", "--set", "ORG=Acme", "--tel", "+1 202 555 0199")
    assert "Sent to all your targets." in out
    settled(world)
    assert "+1 202 555 0199" in carol.card(copies["carol"])
    assert "Acme" not in carol.card(copies["carol"])  # ORG is not a shared field


def test_status_shows_delivery_state(world):
    bridge("select", "contact:Dave", "--apply", "replace")
    settled(world)
    code, out = bridge("status")
    assert code == 0 and "dave" in out and "delivered" in out


@pytest.mark.parametrize("argv, words", [
    (["select", "group:Nobody"], "no group or category 'Nobody' in your contacts"),
    (["select", "contact:Nobody"], "matches no contact"),
    (["select", "frequent:2"], "needs a call log"),
    (["select", "frequent:2", "--log", str(FIXTURES / "not-a-log.csv")], "CSV with the header"),
    (["select", "sometimes"], "unknown selector"),
    (["update"], "nothing to change"),
])
def test_bad_input_is_one_line_of_advice_and_changes_nothing(world, capsys, argv, words):
    before = world.api_ok("GET", "/me")
    code, _ = bridge(*argv)
    err = capsys.readouterr().err
    assert code == 1
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert world.api_ok("GET", "/me") == before


def test_wrong_password_and_unreachable_server(world, capsys, monkeypatch):
    monkeypatch.setenv("MECARD_PASSWORD", "wrong")
    assert bridge("status")[0] == 3
    assert "refused the password of 'alice'" in capsys.readouterr().err
    code, _ = bridge("status", "--url", "http://127.0.0.1:%d" % free_port())
    assert code == 3 and "cannot reach the server" in capsys.readouterr().err


def test_contacts_from_a_vcf_export(world, tmp_path):
    export = tmp_path / "export.vcf"
    export.write_text(CONTACTS["c-dave.vcf"] + fixture("alice-contact-bob.vcf"))
    code, out = bridge("select", "all", "--vcf", str(export))
    assert code == 0 and sorted(rows(out)) == ["Bob", "Dave"]
