# SPDX-License-Identifier: GPL-3.0-or-later
"""The bridge's defaults and errors (issue 9), as main(argv) against a real server.

A German phone's call log with national forms is read in the region of the
owner's me card; the bridge works behind a reverse proxy with a path
prefix; ``update`` says whether a value replaces or adds; ``status`` shows
``behind``; every bad input is one line naming what is wrong, with a
documented exit code; the conventions of command-line tools (``--version``,
``--json``, ``XDG_CONFIG_HOME``, options before the command).
"""
from __future__ import annotations

import http.client
import http.server
import io
import json
import sys
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from bridge.cli import main
from tests.conftest import FAMILY, USERS
from tests.server import FIXTURES, Client, RadicaleServer, fixture, free_port, settled
from tests.test_bridge_e2e import bridge, rows
from tests.test_fanout_e2e import person

NOW = ["--now", "2026-11-01T00:00:00"]
DE_LOG = str(FIXTURES / "de-calls.xml")
#: the server users of the German world and their (fictional) numbers
DE_USERS = {"bob": "+49 176 04069010", "carol": "+49 30 23125011",
            "dave": "+49 30 23125012", "erin": "+49 171 3920034"}


def one_line(capsys) -> str:
    """The one line of advice a failed command printed on stderr."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def login(monkeypatch, server: RadicaleServer, user: str = "alice") -> None:
    monkeypatch.setenv("MECARD_URL", server.url)
    monkeypatch.setenv("MECARD_USER", user)
    monkeypatch.setenv("MECARD_PASSWORD", USERS[user])
    monkeypatch.setenv("HOME", str(server.root))  # no ~/.netrc or config of the developer's
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name in ("LC_ALL", "LC_TELEPHONE", "LANG"):  # the region must not come from here
        monkeypatch.delenv(name, raising=False)


def german_world(server: RadicaleServer) -> Client:
    """Alice's me card has a Berlin number; her contacts are written as her phone wrote
    them (national, international and 0049 forms); four of them are users here."""
    alice = person(server, "alice", "de-alice-me.vcf")
    for user, tel in DE_USERS.items():
        client = person(server, user)
        client.put("me.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:%s\r\nFN:%s\r\nTEL:%s\r\n"
                   "END:VCARD\r\n" % (user, user.title(), tel))
        client.api_ok("POST", "/me-card", {"path": client.book() + "me.vcf"})
        client.verify_me_card()
    for n, card in enumerate(fixture("de-contacts.vcf").split("END:VCARD\r\n")[:-1]):
        assert alice.put("de-%d.vcf" % n, card + "END:VCARD\r\n").status_code == 201
    return alice


@pytest.fixture(scope="module")
def de_server(tmp_path_factory) -> Iterator[tuple[RadicaleServer, Client]]:
    """One German world for the tests that only read (they change nothing on the server)."""
    server = RadicaleServer(tmp_path_factory.mktemp("de"), USERS, **FAMILY).start()
    try:
        yield server, german_world(server)
    finally:
        server.stop()


@pytest.fixture
def de(de_server, monkeypatch) -> Client:
    server, alice = de_server
    login(monkeypatch, server)
    return alice


@pytest.fixture
def de_fresh(server, monkeypatch) -> Client:
    """A German world of its own, for tests that change it."""
    alice = german_world(server)
    login(monkeypatch, server)
    return alice


# -- the region ---------------------------------------------------------------
def test_a_german_log_selects_all_four_by_the_region_of_the_me_card(de, capsys):
    code, out = bridge("select", "frequent:3", "--log", DE_LOG, *NOW)
    assert code == 0, out
    table = rows(out)
    assert sorted(table) == ["Bob", "Carol", "Dave", "Erin"]
    assert all(user in table[user.title()] for user in DE_USERS)
    err = capsys.readouterr().err
    assert "national numbers are read as DE (the country code +49 of your me card's " \
           "numbers)" in err
    # a calls file alone: the counts are said to be the calls' only (issue 13, section 4)
    assert err.strip().splitlines()[1:] == [
        "mecard-bridge: warning: the log (de-calls.xml) holds no messages; frequent:N counted "
        "calls only, so people you only write to are not counted (add a --log with the "
        "messages, or --kinds call to count calls on purpose)"]


def test_the_wrong_region_is_warned_about(de, capsys):
    code, out = bridge("select", "frequent:3", "--log", DE_LOG, "--region", "US", *NOW)
    assert code == 0 and sorted(rows(out)) == ["Carol"]  # only the one spelled alike
    err = capsys.readouterr().err
    assert "national numbers are read as US (--region)" in err
    assert "warning: 10 of 14 call/sms in the log (71%) are with numbers none of your " \
           "contacts has; if the phone's national numbers are not US's, give --region" in err


def test_region_from_the_config_file_and_a_bad_region(de, capsys, tmp_path):
    config = tmp_path / "bridge.ini"
    config.write_text("[server]\nregion = de\n")
    code, out = bridge("select", "frequent:3", "--log", DE_LOG, "--config", str(config), *NOW)
    assert code == 0 and len(rows(out)) == 4
    assert "read as DE (region= in %s)" % config in capsys.readouterr().err
    assert bridge("select", "all", "--region", "Germany")[0] == 1
    assert "--region 'Germany' is not a region: give a two-letter country code" \
        in one_line(capsys)


def test_region_from_the_server_when_the_me_card_has_only_national_numbers(
        tmp_path, monkeypatch, capsys):
    server = RadicaleServer(tmp_path, USERS, mecard_default_region="DE", **FAMILY).start()
    try:
        alice = person(server, "alice", "de-alice-me.vcf")
        if "default_region" not in alice.api_ok("GET", "/me"):
            pytest.skip("the server does not tell its default region (GET /me) yet")
        alice.put("alice.vcf", fixture("de-alice-me.vcf").replace("+49 30", "030"))
        login(monkeypatch, server)
        monkeypatch.setenv("LANG", "fr_FR.UTF-8")  # the server's region comes first
        code, out = bridge("select", "all", "--vcf", str(FIXTURES / "de-contacts.vcf"))
        assert code == 0, out
        assert "read as DE (the server's default region)" in capsys.readouterr().err
    finally:
        server.stop()


# -- behind a reverse proxy with a path prefix ---------------------------------
class PrefixProxy:
    """A reverse proxy on 127.0.0.1 that serves the server below ``/dav``: it strips the
    prefix and tells Radicale with ``X-Script-Name``, as nginx or Apache setups do."""

    def __init__(self, backend: str, prefix: str = "/dav") -> None:
        target = urlsplit(backend)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def forward(self) -> None:
                if not (self.path == prefix or self.path.startswith(prefix + "/")):
                    self.send_error(404, "not below %s" % prefix)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection")}
                headers["X-Script-Name"] = prefix
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    conn.request(self.command, self.path[len(prefix):] or "/", body, headers)
                    answer = conn.getresponse()
                    data = answer.read()
                finally:
                    conn.close()
                proxy.paths.append((self.command, self.path))
                self.send_response(answer.status, answer.reason)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = forward
            do_PROPPATCH = do_OPTIONS = do_MKCOL = forward

            def log_message(self, *args) -> None:  # quiet tests
                pass

        self.paths: list[tuple[str, str]] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = "http://127.0.0.1:%d%s/" % (self.httpd.server_address[1], prefix)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy(de_server) -> Iterator[PrefixProxy]:
    server, _ = de_server
    front = PrefixProxy(server.url)
    try:
        yield front
    finally:
        front.stop()


def test_selectors_that_read_contacts_work_behind_a_proxy_prefix(de, proxy, monkeypatch):
    monkeypatch.setenv("MECARD_URL", proxy.url)
    code, out = bridge("status")
    assert code == 0, out
    code, out = bridge("select", "frequent:3", "--log", DE_LOG, "--dry-run", *NOW)
    assert code == 0, out
    assert sorted(rows(out)) == ["Bob", "Carol", "Dave", "Erin"]
    code, out = bridge("select", "contact:Bob", "--dry-run", "--url", proxy.url.rstrip("/"))
    assert code == 0 and "bob" in rows(out)["Bob"]
    # the me card's path from GET /me is below the root too
    code, out = bridge("update", "--set", "NOTE=sent through the proxy")
    assert code == 0, out
    assert "NOTE:sent through the proxy" in de.card("alice.vcf")
    # every request went through the prefix once, never twice
    assert proxy.paths and all(not p.startswith("/dav/dav/") for _, p in proxy.paths)
    assert ("REPORT", "/dav/alice/contacts/") in proxy.paths


# -- update: --type fits the property; replace or add is said -------------------------
def test_update_email_replaces_or_adds_only_when_told(de_fresh, capsys):
    alice = de_fresh
    before = alice.card("alice.vcf")
    assert bridge("update", "--email", "alice@example.net")[0] == 1
    assert ("your me card already has the e-mail address alice@example.org: add --replace "
            "to replace it, or --add to keep it") in one_line(capsys)
    assert alice.card("alice.vcf") == before
    assert bridge("update", "--email", "alice@example.net", "--type", "cell")[0] == 1
    assert "--type cell does not fit an e-mail address: use home, work, internet" \
        in one_line(capsys)
    assert bridge("update", "--tel", "+49 30 23125001", "--type", "internet")[0] == 1
    assert "--type internet does not fit a phone number: use cell, home" in one_line(capsys)
    assert alice.card("alice.vcf") == before

    code, out = bridge("update", "--email", "alice@example.net", "--replace")
    assert code == 0, out
    card = alice.card("alice.vcf")
    assert "EMAIL;TYPE=INTERNET:alice@example.net" in card  # the replaced line's TYPE
    assert "alice@example.org" not in card and "TYPE=cell" not in card.replace("CELL", "")

    code, out = bridge("update", "--email", "alice@work.example.org", "--add", "--type", "work")
    assert code == 0, out
    assert bridge("update", "--email", "third@example.org")[0] == 1
    assert ("already has the e-mail addresses alice@example.net, alice@work.example.org: add "
            "--replace to replace them, --replace OLD to replace one of them, or --add to "
            "keep them") in one_line(capsys)
    card = alice.card("alice.vcf")
    assert "EMAIL;TYPE=INTERNET:alice@example.net" in card
    assert "EMAIL;TYPE=work:alice@work.example.org" in card

    assert bridge("update", "--email", "x@example.org", "--replace", "old@example.org")[0] == 1
    assert ("--replace old@example.org: that e-mail address is not on your me card (its "
            "e-mail addresses: alice@example.net, alice@work.example.org)") in one_line(capsys)
    code, out = bridge("update", "--email", "home@example.org", "--replace",
                       "ALICE@work.example.org")
    assert code == 0, out
    card = alice.card("alice.vcf")
    assert "EMAIL;TYPE=work:home@example.org" in card and "alice@work" not in card
    assert "alice@example.net" in card


def test_update_tel_replace_of_one_type_and_add(de_fresh, capsys):
    alice = de_fresh
    assert bridge("update", "--tel", "+49 30 23125001")[0] == 1
    assert "already has the number +49 30 23125000: add --replace" in one_line(capsys)
    code, out = bridge("update", "--tel", "+49 30 23125002", "--add", "--type", "home")
    assert code == 0, out
    code, out = bridge("update", "--tel", "+49 30 23125003", "--type", "cell", "--replace")
    assert code == 0, out
    card = alice.card("alice.vcf")
    assert "TEL;TYPE=cell:+49 30 23125003" in card and "TEL;TYPE=home:+49 30 23125002" in card
    assert "23125000" not in card
    assert bridge("update", "--tel", "+49 30 23125004", "--type", "fax", "--replace")[0] == 1
    assert "--replace: your me card has no number of type fax" in one_line(capsys)
    assert bridge("update", "--tel", "call me")[0] == 1
    assert "--tel 'call me' is not a phone number" in one_line(capsys)


# -- status: behind, and the states of the trust model --------------------------------
def test_status_shows_who_is_behind(de_fresh, capsys):
    alice = de_fresh
    bridge("select", "contact:Bob", "--or", "contact:Carol", "--apply", "replace")
    settled(alice)
    code, out = bridge("update", "--tel", "+49 30 23125009", "--replace", "--only",
                       "contact:Bob")
    assert code == 0, out
    settled(alice)
    code, out = bridge("status")
    assert code == 0, out
    lines = {ln.split()[0]: ln for ln in out.splitlines()}
    assert lines["bob"].split()[1] == "delivered"
    assert lines["carol"].split()[1] == "behind"
    assert "1 change(s) behind (holds change 1 of 2); the latest reaches them with your " \
           "next update to everyone" in lines["carol"]
    assert "2 recipient(s): 1 behind, 1 delivered." in out
    code, out = bridge("--json", "status")
    report = json.loads(out)
    carol = next(r for r in report["recipients"] if r["user"] == "carol")
    assert (carol["state"], carol["behind"], report["seq"]) == ("behind", 1, 2)


class CannedServer:
    """A server that answers GET /targets as a server without "behind" did."""

    user = "alice"

    def __init__(self, report: dict) -> None:
        self.report = report

    def api_get(self, call: str) -> dict:
        assert call == "/targets"
        return self.report

    def me(self) -> dict:
        return {}  # GET /me of a server before "notices"


def test_status_works_out_behind_when_the_server_says_delivered():
    from bridge.commands.status import cmd_status
    report = {"targets": ["all"], "seq": 5, "queued": 0, "skipped": [], "recipients": [
        {"user": u, "target": True, "reasons": [], "state": state, "reason": reason,
         "updated": None, "seq": 5, "delivered_seq": delivered}
        for u, state, reason, delivered in (
            ("bob", "delivered", None, 5), ("carol", "delivered", None, 3),
            ("dave", "offered", None, 2), ("erin", "refused", None, 2),
            ("frank", "blocked", None, 0), ("gina", "failed", "the recipient removed the copy",
                                            4),
            ("hugo", "withdrawn", None, 1), ("ida", "postponed", None, 1),
            ("jo", "retrying", "the recipient's address book could not be read", 4))]}
    report["recipients"][-1].update(next_attempt="2026-11-26T04:00:00+00:00", attempts=2)
    out = io.StringIO()
    assert cmd_status(__import__("argparse").Namespace(json=False), CannedServer(report),
                      out) == 0
    lines = {ln.split()[0]: ln for ln in out.getvalue().splitlines()}
    assert lines["bob"].split()[1] == "delivered"
    assert lines["carol"].split()[1] == "behind" and "2 change(s) behind" in lines["carol"]
    assert "was asked to accept your change" in lines["dave"]
    assert "refused this change; your next change is offered again" in lines["erin"]
    assert "does not take your card" in lines["frank"]
    assert "the recipient removed the copy; tried again at your next change" in lines["gina"]
    assert "your values were taken out of their copy" in lines["hugo"]
    assert "will decide about your change later" in lines["ida"]
    assert lines["jo"].split()[1] == "retrying"
    assert ("the recipient's address book could not be read; tried again by itself at "
            "2026-11-26T04:00:00+00:00 (attempt 2 failed)") in lines["jo"]


def test_status_shows_offered_and_blocked_on_a_server_that_asks(public_server, monkeypatch):
    alice = person(public_server, "alice", "alice-me.vcf")
    bob = person(public_server, "bob", "bob-me.vcf")
    carol = person(public_server, "carol", "carol-me.vcf")
    dave = person(public_server, "dave")
    # Bob and Carol have Alice's verified number in their books, so she may see them (the
    # shipped discoverability `contacts`); Dave does not: his block is no more visible to
    # her than a name that is nobody here (issue 17 §3)
    bob.put("ally.vcf", fixture("bob-contact-alice.vcf"))
    carol.put("al.vcf", fixture("bob-contact-alice.vcf"))
    for blocker in (carol, dave):
        blocker.api_ok("POST", "/policies", {"owner": "alice", "policy": "block"})
    alice.api_ok("POST", "/targets",
                 {"targets": ["user:bob", "user:carol", "user:dave", "user:zed"]})
    settled(alice)
    alice.put("alice.vcf", fixture("alice-me-new-number.vcf"))  # Bob is asked about it
    settled(alice)
    login(monkeypatch, public_server)
    code, out = bridge("status")
    lines = {ln.split()[0]: ln for ln in out.splitlines()}
    assert code == 0 and lines["bob"].split()[1] == "offered"
    assert lines["carol"].split()[1] == "blocked" and "does not take your card" in out
    assert lines["dave"].split()[1:] == lines["zed"].split()[1:]
    assert lines["dave"].split()[1] == "skipped" and "no user you may see here" in lines["dave"]


# -- one line of advice for each bad input --------------------------------------------
@pytest.mark.parametrize("argv, words, exit_code", [
    (["select", "frequent:50", "--log", DE_LOG, *NOW],
     "the selection matches no contact: nobody reaches frequent:50: the most frequent of your "
     "contacts, Bob, has 3 call/sms in the 6 months before 2026-11-01", 1),
    (["select", "frequent:1", "--log", DE_LOG, "--now", "2030-01-01T00:00:00"],
     "the call log (de-calls.xml) holds no call/sms in the 6 months before 2030-01-01 (the "
     "newest is from 2026-09-01): give more --months", 1),
    (["select", "group:Nobody"],
     "no group or category 'Nobody' in your contacts (yours: Family, Work)", 1),
    (["select", "all", "--except", "group:Nope"], "no group or category 'Nope'", 1),
    (["select", "contact:Zed"],
     "the selection matches no contact: no contact's name, e-mail or number matches 'Zed'", 1),
    (["select", "contact:Frank", "--and", "group:Family"],
     "--and group:Family leaves none of the 1 contact(s) selected before it", 1),
    (["select", "group:work", "--except", "contact:Frank"],
     "--except contact:Frank leaves none of the 1 contact(s) selected before it", 1),
    (["select", "sometimes"], "unknown selector", 1),
    (["select", "frequent:2", "--log", str(FIXTURES / "alice-me.vcf")], "not a call log", 1),
    (["status", "--url", "127.0.0.1:5232"],
     "the server URL '127.0.0.1:5232' has no http:// or https://: give it as "
     "https://127.0.0.1:5232", 3),
    (["status", "--url", "localhost:5232/dav"], "has no http:// or https://", 3),
    (["update", "--add", "--set", "ORG=X"], "--add and --replace go with --tel or --email", 1),
    (["update", "--tel", "+49 30 23125001", "--replace", "bob@example.org"],
     "--replace bob@example.org names an e-mail address, but no --email is given", 1),
])
def test_bad_input_is_one_line_saying_what_is_wrong(de, capsys, argv, words, exit_code):
    before = de.api_ok("GET", "/me")
    code, _ = bridge(*argv)
    assert code == exit_code
    assert words in one_line(capsys)
    assert de.api_ok("GET", "/me") == before


def test_an_empty_log_says_so(de, capsys, tmp_path):
    empty = tmp_path / "calls-empty.xml"
    empty.write_text('<?xml version="1.0"?><calls count="1"><call number="" date="1" type="1"/>'
                     '</calls>')
    assert bridge("select", "frequent:1", "--log", str(empty), *NOW)[0] == 1
    assert ("the call log (calls-empty.xml) holds no calls or messages (1 with a withheld "
            "number): export it again") in one_line(capsys)


def test_a_wrong_path_in_the_url_says_to_check_it(de, capsys, de_server):
    server, _ = de_server
    for url in (server.url + "/wrong/", server.url + "/alice/contacts/"):
        assert bridge("status", "--url", url)[0] == 3
        line = one_line(capsys)
        assert "answered 403 Forbidden for /.web/mecard/api/v1/targets: check the path of " \
               "--url: it is the server's root" in line, line
    assert bridge("select", "all", "--url", server.url + "/wrong")[0] == 3
    assert "check the path of --url" in one_line(capsys)


def test_a_url_that_is_no_mecard_server(de, capsys, proxy):
    # the proxy answers 404 (not JSON) outside its prefix: another web application there
    root = proxy.url.rsplit("/dav/", 1)[0]
    assert bridge("status", "--url", root)[0] == 3
    assert "answered 404" in one_line(capsys)


def test_exit_codes_for_connection_and_login(de, capsys, monkeypatch):
    assert bridge("status", "--url", "http://127.0.0.1:%d" % free_port())[0] == 3
    assert "cannot reach the server" in one_line(capsys)
    monkeypatch.setenv("MECARD_PASSWORD", "wrong")
    assert bridge("status")[0] == 3
    assert "refused the password of 'alice'" in one_line(capsys)
    monkeypatch.delenv("MECARD_URL")
    assert bridge("status")[0] == 3
    assert "no server: give --url, set MECARD_URL" in one_line(capsys)
    assert bridge("status", "--no-such-option")[0] == 2  # argparse's usage error


# -- pick ------------------------------------------------------------------------------
class Terminal(io.StringIO):
    """Standard input of a terminal where the user typed ``answer``."""

    def isatty(self) -> bool:
        return True


def test_pick_lists_contacts_sorted_with_numbers_without_my_own_card(de, capsys,
                                                                   monkeypatch):
    de.put("zz-me-copy.vcf", fixture("de-alice-me.vcf").replace("Alice Archer", "A Me"))
    try:
        monkeypatch.setattr(sys, "stdin", Terminal("2, 4-5\n"))
        code, out = bridge("select", "pick", "--dry-run")
        assert code == 0, out
        err = capsys.readouterr().err
        listed = [ln.split()[1] for ln in err.splitlines() if ln[:4].strip().isdigit()]
        assert listed == ["Bob", "Carol", "Dave", "Erin", "Frank"]
        assert "   1  Bob    +49 176 04069010" in err and "Alice" not in err
        assert "A Me" not in err  # a card with the me card's UID is mine too
        assert sorted(rows(out)) == ["Carol", "Erin", "Frank"]
        monkeypatch.setattr(sys, "stdin", Terminal("1,9\n"))
        assert bridge("select", "pick")[0] == 1
        assert "there is no 9 in the list: pick numbers from 1 to 5" in \
            capsys.readouterr().err.splitlines()[-1]
    finally:
        de.http.delete(de.url + de.book() + "zz-me-copy.vcf")


# -- conventions -----------------------------------------------------------------------
def test_version_and_help_without_markup(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("mecard-bridge ")
    for argv in (["--help"], ["select", "--help"], ["update", "--help"]):
        assert main(argv) == 0
        text = capsys.readouterr().out
        assert "``" not in text and ":mod:" not in text and "exit codes:" in text
        assert "3    the server cannot be used" in text


def test_global_options_before_the_command_and_json(de, de_server, monkeypatch):
    server, _ = de_server
    monkeypatch.delenv("MECARD_URL")
    monkeypatch.delenv("MECARD_USER")
    code, out = bridge("--url", server.url, "--user", "alice", "--json", "select",
                       "frequent:3", "--log", DE_LOG, *NOW)
    assert code == 0, out
    data = json.loads(out)
    assert data["region"] == {"code": "DE", "source": "the country code +49 of your me "
                                                       "card's numbers"}
    assert sorted(r["user"] for r in data["selection"]) == sorted(DE_USERS)
    assert data["applied"] is None
    code, out = bridge("--url", server.url, "status", "--user", "alice", "--json")
    assert code == 0 and json.loads(out)["targets"] == []
    code, out = bridge("--json", "--url", server.url, "--user", "alice", "keys")
    assert code == 0 and "tel:+493023125000" in {k["key"] for k in json.loads(out)["keys"]}


def test_xdg_config_home_is_honoured(de, de_server, monkeypatch, tmp_path):
    server, _ = de_server
    monkeypatch.delenv("MECARD_URL")
    monkeypatch.delenv("MECARD_USER")
    config = tmp_path / "xdg" / "mecard" / "bridge.ini"
    config.parent.mkdir(parents=True)
    config.write_text("[server]\nurl = %s\nuser = alice\n" % server.url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    code, out = bridge("status")
    assert code == 0 and out.startswith("targets: ")
    assert bridge("status", "--config", str(tmp_path / "missing.ini"))[0] == 1


def test_the_docs_document_the_exit_codes():
    section = (Path(__file__).parent.parent / "docs" / "bridge.md").read_text(encoding="utf-8")
    for code in ("`0`", "`1`", "`2`", "`3`", "`4`", "`130`"):
        assert code in section
    assert "XDG_CONFIG_HOME" in section and "--json" in section
