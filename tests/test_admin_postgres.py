# SPDX-License-Identifier: GPL-3.0-or-later
"""The admin command on a PostgreSQL deployment (``[storage] type =
radicale_plugin.storage.postgres``): every command on the database the config names.

The deployment is made the way users make it, through a real Radicale on PostgreSQL
(the ``postgres`` fixture's cluster, a fresh database per test) with the shipped
defaults (recipients are asked: no fixture loosens them here): Alice designates and
verifies her me card and shares it with Bob and Carol; Bob accepts (his card "Ally"
becomes her copy), Carol postpones; Bob keeps a calendar and a second book.  Each
command runs as the admin runs it (a subprocess) while the server runs, or stopped where
the command wants that, and its effect is read back from the database and the server.
The commands the file deployment shares with this one run on both backends in
``tests/test_backup.py`` (``both_backends``).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest

from radicale_plugin.index.postgres import schema as pg_schema
from radicale_plugin.index.postgres.running import RUNNING_LOCK, holders
from tests.conftest import USERS
from tests.postgres import Cluster, free_port
from tests.server import RadicaleServer
from tests.test_backup import links, ok, refused, run_admin, without_time
from tests.test_migrate_postgres import deployment, etags, rows

PLAIN_DAV = 1  # the storage's (dav_*) schema version this code writes


@pytest.fixture
def pg_server(tmp_path, postgres: Cluster) -> Iterator[RadicaleServer]:
    """A server on PostgreSQL with the shipped defaults."""
    (tmp_path / "a").mkdir()
    server = RadicaleServer(tmp_path / "a", USERS, postgres=postgres.new_database())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def world(pg_server) -> dict[str, Any]:
    return deployment(pg_server)


def config_on(server: RadicaleServer, name: str, dsn: str) -> Path:
    """The server's config with another ``postgresql_dsn``."""
    text = (server.root / "config").read_text()
    path = server.root / name
    path.write_text(text.replace("postgresql_dsn = " + server.postgres,
                                 "postgresql_dsn = " + dsn, 1))
    return path


def execute(dsn: str, statement: str) -> None:
    """A write behind the server's back (as a lost or damaged index would be)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)


def export(server: RadicaleServer, config: Path | None = None) -> dict[str, Any]:
    return json.loads(ok(run_admin(server, "export", config=config)))


# -- looking: schema, status, check, keys, export-user ----------------------------------

def test_schema_status_and_check_read_postgresql_while_the_server_runs(pg_server, world):
    dsn = pg_server.postgres
    out = ok(run_admin(pg_server, "schema")).splitlines()
    assert out == ["sharing index: schema version %d (this code writes %d)"
                   % (pg_schema.VERSION, pg_schema.VERSION),
                   "storage (dav_* tables): schema version %d (this code writes %d)"
                   % (PLAIN_DAV, PLAIN_DAV)]
    assert rows(dsn, "SELECT version FROM dav_schema_version") == [(PLAIN_DAV,)]

    text = ok(run_admin(pg_server, "status"))
    assert text.splitlines()[0] == "schema version %d (current)" % pg_schema.VERSION
    assert "failed deliveries: 0" in text
    report = json.loads(ok(run_admin(pg_server, "status", "--json")))
    assert report["database"] == dsn  # the connection string, less any password
    assert report["schema_version"] == report["schema_current"] == pg_schema.VERSION
    # what the database holds, as the deliveries table says
    states = dict(rows(dsn, "SELECT state, COUNT(*) FROM deliveries GROUP BY state"))
    assert report["deliveries"] == states and states.get("delivered") == 1
    assert report["failed"] == 0 and report["queue"] == 0

    out = ok(run_admin(pg_server, "check"))
    assert out.startswith("consistent: 1 me card(s), 1 link(s), 4 address book(s)"), out
    assert re.fullmatch(r"PostgreSQL: one book's lock \(or one snapshot\) at a time, taken 4 "
                        r"time\(s\), held [\d.]+ ms at most", out.splitlines()[-1]), out

    keys = json.loads(ok(run_admin(pg_server, "keys", "alice")))
    assert {k["key"]: k["state"] for k in keys} == {
        "tel:+12025550101": "verified", "mailto:alice@example.org": "verified"}
    bob = json.loads(ok(run_admin(pg_server, "export-user", "bob")))
    assert [(k["owner"], k["card"]) for k in bob["links"]] == [
        ("alice", "/bob/contacts/ally.vcf")]


def test_verify_and_unverify_key_write_the_database_the_server_uses(pg_server, world):
    ok(run_admin(pg_server, "verify-key", "carol", "carol@example.org"))
    assert rows(pg_server.postgres, 'SELECT key FROM keys WHERE "user" = %s AND verified '
                'IS NOT NULL', "carol") == [("mailto:carol@example.org",)]
    out = ok(run_admin(pg_server, "unverify-key", "carol", "carol@example.org"))
    assert "no longer verified" in out
    assert rows(pg_server.postgres, 'SELECT COUNT(*) FROM keys WHERE "user" = %s AND '
                'verified IS NOT NULL', "carol") == [(0,)]


# -- the card-key index and what the collections tell ---------------------------------

def test_rebuild_index_reads_the_card_key_index_again_from_the_rows(pg_server, world):
    dsn = pg_server.postgres
    before = rows(dsn, "SELECT book, href, \"user\", uid FROM cards ORDER BY 1, 2")
    keys_before = rows(dsn, "SELECT * FROM card_keys ORDER BY 1, 2, 3, 4")
    assert ("bob/work", "zoe.vcf", "bob", "work-1") in before
    # the index loses Bob's books behind the server's back
    execute(dsn, "DELETE FROM cards WHERE book LIKE 'bob/%'")
    execute(dsn, "DELETE FROM card_keys WHERE book LIKE 'bob/%'")
    execute(dsn, "DELETE FROM books WHERE path LIKE 'bob/%'")
    problems = run_admin(pg_server, "check")
    assert problems.returncode == 1
    assert "card-key index: /bob/contacts/ is not indexed: run rebuild-index" in \
        problems.stdout.splitlines()
    out = ok(run_admin(pg_server, "rebuild-index"))
    assert out.startswith("card-key index rebuilt from 4 address book(s)")
    assert "taken 4 time(s)" in out  # one book at a time
    assert rows(dsn, "SELECT book, href, \"user\", uid FROM cards ORDER BY 1, 2") == before
    assert rows(dsn, "SELECT * FROM card_keys ORDER BY 1, 2, 3, 4") == keys_before
    # each book's number is its last change's, as the server records it
    assert rows(dsn, "SELECT b.mtime = c.sync FROM books b JOIN dav_collections c "
                "ON c.path = b.path WHERE b.path = 'bob/work'") == [(True,)]
    assert ok(run_admin(pg_server, "check")).startswith("consistent")


def test_rebuild_designates_a_lost_me_card_again(pg_server, world):
    dsn = pg_server.postgres
    execute(dsn, "DELETE FROM owners WHERE \"user\" = 'alice'")
    found = run_admin(pg_server, "check")
    assert found.returncode == 1
    assert "me card: alice's address-book home names /alice/contacts/alice.vcf " \
        "(CS:me-card), but the sharing database has no me card for alice: run rebuild" \
        in found.stdout, found.stdout
    out = ok(run_admin(pg_server, "rebuild"))
    assert "1 me card(s) designated again: alice" in out
    assert rows(dsn, "SELECT book, href FROM owners WHERE \"user\" = 'alice'") == [
        ("alice/contacts", "alice.vcf")]
    assert world["alice"].api_ok("GET", "/me")["me_card"] == "/alice/contacts/alice.vcf"


# -- backups: export, import ------------------------------------------------------------

def test_an_export_imports_into_an_empty_database_only(pg_server, world, postgres, tmp_path):
    saved = tmp_path / "backup.json"
    ok(run_admin(pg_server, "export", str(saved)))  # while the server runs: one moment
    exported = json.loads(saved.read_text())
    assert {o["user"] for o in exported["owners"]} == {"alice"}
    assert (saved.stat().st_mode & 0o777) == 0o600
    # into a new database (no server ever ran there): the same state comes out again
    fresh = postgres.new_database()
    config = config_on(pg_server, "fresh.conf", fresh)
    out = ok(run_admin(pg_server, "import", str(saved), config=config))
    assert out.startswith("imported into %s: " % fresh)
    assert without_time(export(pg_server, config)) == without_time(exported)
    # a database with sharing state is never mixed with an export
    again = refused(run_admin(pg_server, "import", str(saved), config=config))
    assert "the sharing database is not empty" in again


def drop_sharing_tables(dsn: str) -> None:
    """The sharing state is lost; the collections (``dav_*``) stay."""
    tables = [r[0] for r in rows(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = "
                                      "'public' AND tablename NOT LIKE 'dav\\_%%'")]
    assert "owners" in tables and "dav_items" not in tables
    execute(dsn, "DROP TABLE %s CASCADE" % ", ".join('"%s"' % t for t in tables))


def test_an_import_is_refused_while_a_server_runs_and_goes_in_once_it_stopped(
        pg_server, world, tmp_path):
    dsn = pg_server.postgres
    saved = tmp_path / "backup.json"
    ok(run_admin(pg_server, "export", str(saved)))
    pg_server.stop(sink=False)
    drop_sharing_tables(dsn)
    pg_server.start()  # on an empty sharing state: an import would go under its feet
    try:
        line = refused(run_admin(pg_server, "import", str(saved)))
        assert line == ("python -m radicale_plugin: 1 server process(es) are running on %s "
                        "(each holds the advisory lock %d): stop every server on that "
                        "database before an import, then start them again"
                        % (dsn, RUNNING_LOCK)), line
        assert rows(dsn, "SELECT COUNT(*) FROM owners") == [(0,)]  # nothing went in
        assert world["alice"].api_ok("GET", "/me")["me_card"] is None
    finally:
        pg_server.stop(sink=False)
    # positive control: stopped, the same import goes in and the server goes on with it
    assert ok(run_admin(pg_server, "import", str(saved))).startswith("imported into")
    pg_server.start()
    assert world["alice"].api_ok("GET", "/me")["me_card"] == "/alice/contacts/alice.vcf"
    assert links(world["bob"]) == [("alice", "/bob/contacts/ally.vcf", "accepted")]
    assert ok(run_admin(pg_server, "check")).startswith("consistent")


def test_a_server_starting_while_an_import_runs_waits_for_it(pg_server, postgres, tmp_path):
    """The mark is an advisory lock: held exclusively (as an import holds it), a server's
    start waits, and goes on once it is let go."""
    fresh = postgres.new_database()
    (tmp_path / "b").mkdir()
    other = RadicaleServer(tmp_path / "b", USERS, postgres=fresh)
    with psycopg.connect(fresh, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (RUNNING_LOCK,))
        started = threading.Thread(target=other.start)
        started.start()
        started.join(4)
        assert started.is_alive()  # waiting
        assert holders(conn) == 0
        conn.execute("SELECT pg_advisory_unlock(%s)", (RUNNING_LOCK,))
        started.join(60)
        try:
            assert not started.is_alive()
            assert holders(conn) == 1  # the server's mark, held for as long as it serves
            other.client("alice").login()
        finally:
            other.stop()
        assert holders(conn) == 0  # its end lets it go


# -- delete-user ------------------------------------------------------------------------

def test_delete_user_removes_their_collections_and_sharing_state_together(pg_server, world):
    dsn = pg_server.postgres
    alice, carol = world["alice"], world["carol"]
    assert rows(dsn, "SELECT COUNT(*) FROM dav_collections WHERE path = 'bob' OR "
                "path LIKE 'bob/%%'") == [(4,)]  # home, contacts, cal, work
    state = [rows(dsn, "SELECT COUNT(*) FROM links WHERE recipient = 'bob'"),
             rows(dsn, "SELECT COUNT(*) FROM cards WHERE \"user\" = 'bob'")]
    # the collections' delete fails (after the sharing state's): neither goes
    execute(dsn, "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION "
                 "'kept by the test'; END $$ LANGUAGE plpgsql")
    execute(dsn, "CREATE TRIGGER keep BEFORE DELETE ON dav_collections FOR EACH ROW "
                 "EXECUTE FUNCTION refuse()")
    assert "kept by the test" in refused(run_admin(pg_server, "delete-user", "bob"))
    assert [rows(dsn, "SELECT COUNT(*) FROM links WHERE recipient = 'bob'"),
            rows(dsn, "SELECT COUNT(*) FROM cards WHERE \"user\" = 'bob'")] == state
    assert state == [[(1,)], [(2,)]]  # his copy of Alice, his two cards
    execute(dsn, "DROP TRIGGER keep ON dav_collections")
    # positive control: the same command goes through
    out = ok(run_admin(pg_server, "delete-user", "bob"))
    assert out.startswith("sharing state of bob deleted: 1 link(s)"), out
    assert "4 collection(s) of bob deleted with 3 item(s)" in out, out  # 2 cards, 1 event
    # his collections, their items and change logs, and his sharing state: gone
    assert rows(dsn, "SELECT path FROM dav_collections WHERE path = 'bob' OR "
                "path LIKE 'bob/%%'") == []
    assert rows(dsn, "SELECT COUNT(*) FROM dav_items i JOIN dav_collections c ON "
                "c.id = i.collection WHERE c.path LIKE 'bob/%%'") == [(0,)]
    for table, column in (("cards", "user"), ("card_keys", "user"), ("links", "recipient"),
                          ("deliveries", "recipient"), ("offers", "recipient")):
        assert rows(dsn, 'SELECT COUNT(*) FROM %s WHERE "%s" = %%s' % (table, column),
                    "bob") == [(0,)], table
    assert rows(dsn, "SELECT COUNT(*) FROM books WHERE path LIKE 'bob/%%'") == [(0,)]
    # the others' state and collections stay, and agree with each other
    assert links(carol) == []
    assert etags(alice, "/alice/contacts/")
    assert ok(run_admin(pg_server, "check")).startswith("consistent")
    # a new "bob" starts from nothing: an empty home
    bob = pg_server.client("bob")
    bob.login()
    assert etags(bob, "/bob/contacts/") == {}
    line = refused(run_admin(pg_server, "delete-user", "nobody-here"))
    assert "no user 'nobody-here'" in line


# -- wrong input ------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["schema"], ["status"], ["check"], ["export"],
                                     ["rebuild-index"], ["delete-user", "bob"]])
def test_no_dsn_or_an_unreachable_database_is_one_line_with_the_fix(pg_server, command):
    empty = config_on(pg_server, "empty.conf", "")
    line = refused(run_admin(pg_server, *command, config=empty))
    assert line == ("python -m radicale_plugin: [storage] postgresql_dsn is empty in the "
                    "config: set it to the PostgreSQL connection string, e.g. postgresql_dsn "
                    "= host=db.example.org dbname=radicale user=radicale")
    away = config_on(pg_server, "away.conf", "host=127.0.0.1 port=%d dbname=radicale "
                     "user=postgres connect_timeout=3" % free_port())
    line = refused(run_admin(pg_server, *command, config=away))
    assert line.startswith("python -m radicale_plugin: cannot connect to PostgreSQL at "
                           "host=127.0.0.1 port="), line
    assert "check host, port, dbname and user" in line and "[storage] postgresql_dsn" in line


def test_a_database_without_sharing_tables_is_said_and_not_made(pg_server, postgres):
    fresh = postgres.new_database()
    config = config_on(pg_server, "fresh.conf", fresh)
    for command in (["schema"], ["status"], ["export"], ["keys", "alice"]):
        line = refused(run_admin(pg_server, *command, config=config))
        assert line.startswith("python -m radicale_plugin: no sharing tables in %s (a "
                               "server on it makes them at its first start" % fresh), line
    assert rows(fresh, "SELECT to_regclass('schema_version')") == [(None,)]
