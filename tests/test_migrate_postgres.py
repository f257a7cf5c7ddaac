# SPDX-License-Identifier: GPL-3.0-or-later
"""``migrate-to-postgres``: a file deployment moved into PostgreSQL, and the check.

The deployment is made the way users make it, through a real server on the file
backend with the shipped defaults (recipients are asked): Alice designates and
verifies her me card and shares it with Bob and Carol; Bob accepts her offer (his card
"Ally" becomes her copy), Carol postpones hers; Bob keeps a calendar with an event and a
second address book.  The server is stopped, the admin command copies it into a fresh
database of a real PostgreSQL (``postgres`` fixture), the check finds both the same,
and a Radicale on the PostgreSQL storage serves the same cards with the same ETags.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from radicale_plugin import index as idx
from radicale_plugin.admin.migrate.open import MIGRATION_LOCK
from tests import zygote
from tests.conftest import USERS
from tests.postgres import Cluster, free_port
from tests.server import Client, RadicaleServer, settled, wait_until
from tests.test_backup import add_schema_5_state, add_schema_6_state, migrated_v2
from tests.test_fanout_e2e import person
from tests.test_offers_e2e import (ALICE_NEW, ALLY, NEW_NUMBER, NUMBER, answer, in_seconds,
                                   offers)

EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//test//EN\r\nBEGIN:VEVENT\r\n"
         "UID:climbing-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260110T100000Z\r\n"
         "DTEND:20260110T120000Z\r\nSUMMARY:Climbing with Alice\r\nEND:VEVENT\r\n"
         "END:VCALENDAR\r\n")
WORK_CARD = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:work-1\r\nFN:Zoe Work\r\n"
             "TEL:+1 202 555 0177\r\nEND:VCARD\r\n")


# -- helpers -----------------------------------------------------------------------------

def admin(server: RadicaleServer, *args: str) -> subprocess.CompletedProcess:
    return zygote.run([sys.executable, "-m", "radicale_plugin", "--config",
                       str(server.root / "config"), *args], timeout=300)


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def one_line(done: subprocess.CompletedProcess) -> str:
    """A refusal: exit 1 and one line on stderr, never a traceback."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def rows(dsn: str, sql: str, *args: Any) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def filled(dsn: str) -> list[str]:
    """The tables of ``dsn`` holding a row (schema versions aside)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
        return sorted(n for n in names if "schema_version" not in n and rows(
            dsn, 'SELECT EXISTS (SELECT 1 FROM "%s")' % n)[0][0])


def calendar(client: Client) -> None:
    url = client.url + "/%s/cal/" % client.user
    body = ("<?xml version='1.0'?><C:mkcalendar xmlns:D='DAV:' "
            "xmlns:C='urn:ietf:params:xml:ns:caldav' xmlns:I='http://apple.com/ns/ical/'>"
            "<D:set><D:prop><D:displayname>Climbing</D:displayname>"
            "<I:calendar-color>#ff8800</I:calendar-color></D:prop></D:set></C:mkcalendar>")
    assert client.http.request("MKCALENDAR", url, data=body).status_code == 201
    r = client.http.put(url + "climbing.ics", data=EVENT.encode(),
                        headers={"Content-Type": "text/calendar"})
    assert r.status_code == 201, r.text


def etags(client: Client, path: str) -> dict[str, str]:
    """href -> ETag of a collection, as a client lists it (PROPFIND depth 1)."""
    import xml.etree.ElementTree as ET
    r = client.http.request("PROPFIND", client.url + path, headers={"Depth": "1"},
                            data="<D:propfind xmlns:D='DAV:'><D:prop><D:getetag/>"
                                 "</D:prop></D:propfind>")
    assert r.status_code == 207, r.status_code
    out = {}
    for response in ET.fromstring(r.content).iter("{DAV:}response"):
        href = response.findtext("{DAV:}href") or ""
        etag = response.findtext(".//{DAV:}getetag")
        if etag and not href.endswith("/"):
            out[href.rsplit("/", 1)[1]] = etag
    return out


def deployment(server: RadicaleServer) -> dict[str, Any]:
    """The world of this module, made through CardDAV, CalDAV and the JSON API."""
    alice = person(server, "alice", "alice-me.vcf")
    bob = person(server, "bob")
    carol = person(server, "carol")
    assert bob.put("ally.vcf", ALLY).status_code == 201
    assert carol.put("sis.vcf", ALLY.replace("FN:Ally", "FN:Sis")).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": ["user:bob", "user:carol"]})
    settled(alice)
    (offer,) = offers(bob)
    assert answer(bob, "alice", "accept", {"seq": offer["seq"]}).status_code == 200
    assert NUMBER in bob.card("ally.vcf")
    assert answer(carol, "alice", "postpone", {"until": in_seconds(86400)}).status_code == 200
    assert offers(carol)[0]["state"] == "postponed"
    calendar(bob)
    bob.mkbook("work")
    assert bob.put("zoe.vcf", WORK_CARD, book="work").status_code == 201
    return {"alice": alice, "bob": bob, "carol": carol,
            "seen": {path: etags(c, path) for c, path in (
                (alice, "/alice/contacts/"), (bob, "/bob/contacts/"), (bob, "/bob/cal/"),
                (bob, "/bob/work/"), (carol, "/carol/contacts/"))}}


@pytest.fixture(scope="module")
def moved(postgres: Cluster, tmp_path_factory) -> dict[str, Any]:
    """The deployment, made on files with the shipped defaults, its server stopped and
    migrated into a fresh database."""
    root = tmp_path_factory.mktemp("files")
    server = RadicaleServer(root, USERS)
    server.start()
    try:
        world = deployment(server)
    finally:
        server.stop()
    dsn = postgres.new_database("migrated")
    said = ok(admin(server, "migrate-to-postgres", dsn))
    return {"server": server, "dsn": dsn, "said": said, **world}


def postgres_server(root: Path, dsn: str) -> RadicaleServer:
    """Radicale with the sharing on the PostgreSQL storage at ``dsn`` (a folder of its own:
    nothing of the files), with the shipped defaults."""
    root.mkdir()
    return RadicaleServer(root, USERS, postgres=dsn)


# -- the migration -----------------------------------------------------------------------

def test_the_migration_says_what_it_copied_and_that_sync_starts_afresh(moved):
    said = moved["said"]
    assert ": 8 collection(s) (4 address book(s), 1 calendar(s)), 5 item(s); " in said, said
    assert "sync tokens start afresh" in said
    assert ".mecard-vapid.pem: give every host that file (mecard_push_vapid_key)" in said
    assert "--check" in said
    assert rows(moved["dsn"], "SELECT COUNT(*) FROM dav_items")[0][0] >= 5


def test_the_check_finds_files_and_postgresql_the_same(moved):
    said = ok(admin(moved["server"], "migrate-to-postgres", "--check", moved["dsn"]))
    assert said.startswith("the same: "), said
    assert said.count("\n") == 1


def test_radicale_on_postgresql_serves_every_card_with_the_etag_clients_hold(moved, tmp_path,
                                                                            postgres):
    dsn = postgres.new_database("served")  # its own: this server writes into it
    ok(admin(moved["server"], "migrate-to-postgres", dsn))
    server = postgres_server(tmp_path / "pg", dsn).start()
    try:
        bob, carol = server.client("bob"), server.client("carol")
        assert NUMBER in bob.card("ally.vcf")  # the accepted offer's copy
        r = bob.http.get(server.url + "/bob/cal/climbing.ics")
        assert r.status_code == 200 and "Climbing with Alice" in r.text
        r = bob.http.request("PROPFIND", server.url + "/bob/cal/", headers={"Depth": "0"},
                             data="<D:propfind xmlns:D='DAV:' xmlns:I='http://apple.com/ns/"
                                  "ical/'><D:prop><D:displayname/><I:calendar-color/>"
                                  "</D:prop></D:propfind>")
        assert "Climbing</" in r.text and "#ff8800" in r.text, r.text
        assert "Zoe Work" in bob.card("zoe.vcf", book="work")
        for path, seen in moved["seen"].items():
            client = server.client(path.split("/")[1])
            assert etags(client, path) == seen, path
        # sync tokens start afresh: a client's first sync lists everything
        token, hrefs = carol.sync()
        assert token and hrefs == sorted(moved["seen"]["/carol/contacts/"])
        # the sharing goes on where it was: Bob accepted, so Alice's new number is
        # written into his copy; Carol's offer stays postponed
        alice = server.client("alice")
        assert alice.put("alice.vcf", ALICE_NEW).status_code in (201, 204)
        settled(alice)
        assert NEW_NUMBER in bob.card("ally.vcf")
        # the history of the files goes on: the new entry follows the migrated one
        ids = [e["id"] for e in bob.api_ok("GET", "/history")["history"]]
        assert len(ids) == 2 and len(set(ids)) == 2, ids
        assert [o["state"] for o in offers(carol)] == ["postponed"]
        assert NEW_NUMBER not in carol.card("sis.vcf")
    finally:
        server.stop()


def test_a_tampered_row_is_reported_one_line_per_difference(moved, postgres):
    server, dsn = moved["server"], postgres.new_database("tampered")
    ok(admin(server, "migrate-to-postgres", dsn))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE dav_items SET text = replace(text, 'Sis', 'Sister') "
                     "WHERE href = 'sis.vcf'")
        conn.execute("DELETE FROM dav_items WHERE href = 'climbing.ics'")
        conn.execute("UPDATE dav_collections SET props = %s WHERE path = 'bob/work'",
                     ('{"tag": "VADDRESSBOOK", "D:displayname": "Tampered"}',))
        conn.execute("INSERT INTO dav_collections (path, parent, incarnation, modified) "
                     "VALUES ('erin', '', 'x', 0)")
        conn.execute("UPDATE offers SET until = '2030-01-01T00:00:00+00:00' "
                     "WHERE recipient = 'carol'")
        conn.execute("DELETE FROM keys WHERE key LIKE 'mailto:%%'")
    done = admin(server, "migrate-to-postgres", "--check", dsn)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stdout.strip().splitlines()
    expected = ["item /carol/contacts/sis.vcf: its text differs",
                "item /bob/cal/climbing.ics: only in files",
                "collection /bob/work/: property D:displayname",
                "collection /erin/: only in PostgreSQL",
                "sharing state offers alice/carol: until is ",
                "sharing state keys alice/mailto:alice@example.org: only in files"]
    for start in expected:
        assert sum(line.startswith(start) for line in lines) == 1, (start, lines)
    assert len(lines) == len(expected), lines


def test_a_database_that_is_not_empty_is_refused_and_left_as_it_was(moved, postgres):
    server, dsn = moved["server"], postgres.new_database("twice")
    ok(admin(server, "migrate-to-postgres", dsn))
    line = one_line(admin(server, "migrate-to-postgres", dsn))
    assert "is not empty" in line and "createdb" in line, line
    assert ok(admin(server, "migrate-to-postgres", "--check", dsn)).startswith("the same: ")
    # someone else's data is not ours to mix with either
    other = postgres.new_database("other")
    with psycopg.connect(other, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
        conn.execute("INSERT INTO invoices VALUES (1)")
    line = one_line(admin(server, "migrate-to-postgres", other))
    assert "invoices" in line and "is not empty" in line, line
    assert filled(other) == ["invoices"]  # nothing of ours was made there
    # a check of a database nothing was migrated into says so (and makes nothing there)
    empty = postgres.new_database("empty")
    line = one_line(admin(server, "migrate-to-postgres", "--check", empty))
    assert "holds no migrated deployment" in line and "migrate into it first" in line, line
    assert rows(other, "SELECT to_regclass('dav_items')") == [(None,)]


@pytest.mark.parametrize("dsn, said, fix", [
    ("host=127.0.0.1 port={port} dbname=radicale user=radicale connect_timeout=2",
     "cannot connect to PostgreSQL at host=127.0.0.1", "check host, port, dbname and user"),
    ("host=127.0.0.1 port={cluster} dbname=no_such_database user={user}",
     "does not exist", "createdb NAME"),
    ("host=127.0.0.1 password=secret-pw nonsense", "is no PostgreSQL connection string",
     "write it as \"host=HOST"),
    ("", "no connection string given", "dbname=radicale"),
])
def test_a_bad_or_unreachable_database_is_one_line_with_the_fix(moved, postgres, dsn, said,
                                                                  fix):
    dsn = dsn.format(port=free_port(), cluster=postgres.port, user=postgres.user)
    for check in ((), ("--check",)):
        line = one_line(admin(moved["server"], "migrate-to-postgres", *check, dsn))
        assert said in line and fix in line, line
        assert "secret-pw" not in line  # a password is never repeated


# -- a small deployment of its own: refusals, a failed migration, progress ---------------

def card(uid: str, name: str) -> str:
    return "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:%s\r\nFN:%s\r\nEND:VCARD\r\n" % (uid, name)


@pytest.fixture
def small(tmp_path) -> RadicaleServer:
    """Alice with a me card (unverified) and Bob with a card, on files, shipped defaults;
    the server still runs."""
    server = RadicaleServer(tmp_path, USERS, mecard_smtp_host="", mecard_sms_command="")
    server.start()
    person(server, "alice", "alice-me.vcf", verified=False)
    bob = person(server, "bob")
    assert bob.put("zoe.vcf", card("zoe-1", "Zoe")).status_code == 201
    person(server, "carol")
    return server


def test_a_running_server_is_refused_and_a_failed_migration_leaves_the_database_empty(
        small, postgres):
    dsn = postgres.new_database("small")
    try:
        line = one_line(admin(small, "migrate-to-postgres", dsn))
        assert "a server is running" in line and "stop it before migrating" in line, line
        assert filled(dsn) == []
    finally:
        small.stop()
    # Carol's book comes last: Alice's and Bob's are copied when her broken card stops it
    broken = small.root / "collections" / "collection-root" / "carol" / "contacts" / "x.vcf"
    broken.write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nthis is no card\r\n")
    line = one_line(admin(small, "migrate-to-postgres", dsn))
    assert "x.vcf" in line and "nothing was written" in line, line
    assert "run the same command again" in line, line
    assert filled(dsn) == []
    broken.unlink()
    assert ", 2 item(s);" in ok(admin(small, "migrate-to-postgres", dsn))
    assert ok(admin(small, "migrate-to-postgres", "--check", dsn)).startswith("the same: ")


def test_a_migration_killed_midway_leaves_the_database_empty_and_runs_again(small, postgres):
    small.stop()
    book = small.root / "collections" / "collection-root" / "carol" / "contacts"
    for i in range(1500):
        (book / ("c%d.vcf" % i)).write_text(card("c%d" % i, "Card %d" % i))
    dsn = postgres.new_database("killed")
    process = subprocess.Popen([sys.executable, "-m", "radicale_plugin", "--config",
                                str(small.root / "config"), "migrate-to-postgres", dsn],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = dsn.rsplit("dbname=", 1)[1]

    def copying() -> bool:  # the migration's transaction holds its advisory lock
        return bool(rows(postgres.dsn(name), "SELECT COUNT(*) FROM pg_locks WHERE "
                         "locktype = 'advisory' AND classid = %s AND objid = %s",
                         MIGRATION_LOCK >> 32, MIGRATION_LOCK & 0xFFFFFFFF)[0][0])
    try:
        wait_until(lambda: copying() or process.poll() is not None, 60, "the copy")
        time.sleep(0.5)  # some cards written
        assert process.poll() is None, "the migration ended before it could be killed"
    finally:
        process.kill()
        process.wait()
    wait_until(lambda: not rows(postgres.dsn(), "SELECT COUNT(*) FROM pg_stat_activity "
                                "WHERE datname = %s AND backend_type = 'client backend'",
                                name)[0][0], 30, "PostgreSQL to see the migration gone")
    assert filled(dsn) == []
    said = ok(admin(small, "migrate-to-postgres", dsn))
    assert ", 1502 item(s);" in said, said


def test_progress_is_shown_on_a_terminal_only(small, postgres):
    import fcntl
    import os
    import pty
    import struct
    import termios
    small.stop()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    done = subprocess.run([sys.executable, "-m", "radicale_plugin", "--config",
                           str(small.root / "config"), "migrate-to-postgres",
                           postgres.new_database("tty")],
                          stdout=subprocess.PIPE, stderr=slave, text=True, timeout=120)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert done.returncode == 0, shown
    assert b"items: 100%" in shown and b"2/2" in shown, shown
    # without a terminal: the result only
    quiet = admin(small, "migrate-to-postgres", postgres.new_database("pipe"))
    assert ok(quiet) and quiet.stderr == ""


def test_a_config_that_is_not_a_file_deployment_is_refused_with_one_line(small, postgres):
    small.stop()
    config = small.root / "config"
    config.write_text(config.read_text().replace(
        "type = radicale_plugin.storage\n", "type = radicale_plugin.storage.postgres\n"
        "postgresql_dsn = %s\n" % postgres.dsn()))
    dsn = postgres.new_database("notfiles")
    line = one_line(admin(small, "migrate-to-postgres", dsn))
    assert "not files" in line and "--config" in line, line
    assert filled(dsn) == []


# -- every kind of record of the sharing state -------------------------------------------

#: One change per kind of record, made in PostgreSQL behind the check's back, and the line
#: the check says for it.
TAMPERED = [
    ("UPDATE owners SET seq = seq + 100 WHERE \"user\" = 'alice'", "owners alice: seq is "),
    ("UPDATE keys SET lost = '2030-01-01' WHERE \"user\" = 'bob' AND key LIKE 'tel:%'",
     "keys bob/tel:"),
    ("UPDATE links SET made = '2001-01-01' WHERE recipient = 'carol' AND owner = 'alice'",
     "links alice/carol: made is "),
    ("DELETE FROM policies WHERE recipient = 'dave' AND owner = 'carol'",
     "policies dave/carol: only in files"),
    ("UPDATE offers SET until = '2031-01-01' WHERE owner = 'bob' AND recipient = 'alice'",
     "offers bob/alice: until is "),
    ("DELETE FROM jobs", "jobs 4: only in files"),
    ("UPDATE deliveries SET attempts = 99 WHERE owner = 'alice' AND recipient = 'bob'",
     "deliveries alice/bob: attempts is 0 in files, 99 in PostgreSQL"),
    ("UPDATE history SET time = '2001-01-01' WHERE id = (SELECT MIN(id) FROM history)",
     "history 1: time is "),
    ("UPDATE push_topics SET topic = 'T-other'", "push.topics alice/contacts: topic is "),
    ("UPDATE push_subscriptions SET auth_secret = 'stolen'",
     "push.subscriptions s1: auth_secret differs (never printed)"),
    ("UPDATE invites SET uses = 0 WHERE id = 'i1'", "invites i1: uses is 1 in files, "),
    ("DELETE FROM undone_values WHERE id = (SELECT MIN(id) FROM undone_values)",
     "undone_values alice/bob/TEL/+12025550199/5: only in files"),
    ("UPDATE notify_settings SET address = 'x@example.org' WHERE \"user\" = 'bob'",
     "notify.settings bob: address is "),
    ("UPDATE notify_batches SET message = 'forged' WHERE id = 1",
     "notify.batches 1: message is "),
    ("DELETE FROM notify_events WHERE id = 8", "notify.events 8: only in files"),
    ("UPDATE notify_secret SET secret = 'ab'", "notify.unsubscribe_key: differs (set in "),
]


def test_every_kind_of_record_is_migrated_and_compared_record_by_record(tmp_path, postgres):
    """The backup's richest state (every record of every schema) as the files' sharing
    database: migrated, found the same, then each kind of record changed in PostgreSQL is
    one line of the check."""
    server = RadicaleServer(tmp_path, USERS)  # its config only: nothing runs
    (tmp_path / "collections").mkdir()
    source = migrated_v2(tmp_path / "collections" / ".mecard.sqlite")
    try:
        source.push.ensure_topic("alice/contacts", "T-alice")
        source.push.put(idx.PushSubscription("s1", "alice", "alice/contacts",
                                             "https://push.example.org/x", "PK", "AS", 2e9,
                                             "aes128gcm", 1.7e9))
        add_schema_5_state(source)
        add_schema_6_state(source)
    finally:
        source.close()
    dsn = postgres.new_database("records")
    said = ok(admin(server, "migrate-to-postgres", dsn))
    assert "0 collection(s)" in said and "8 keys" in said and "2 invites" in said, said
    assert ok(admin(server, "migrate-to-postgres", "--check", dsn)).startswith("the same: ")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for sql, _ in TAMPERED:
            assert conn.execute(sql.replace("%", "%%")).rowcount >= 1, sql
    done = admin(server, "migrate-to-postgres", "--check", dsn)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done
    lines = done.stdout.strip().splitlines()
    for _, said in TAMPERED:
        assert sum(line.startswith("sharing state " + said) for line in lines) == 1, (
            said, lines)
    assert len(lines) == len(TAMPERED), lines
    assert "stolen" not in done.stdout and "AS" not in done.stdout.split()  # secrets
