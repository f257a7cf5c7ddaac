# SPDX-License-Identifier: GPL-3.0-or-later
"""Operating the server: backups and restore, a lost database, accounts, status.

The end-to-end tests run a real server (``tests/server.py``) and the admin
command as the admin would, in a subprocess against the server's own data
folder.  Their world: Alice shares her card with Bob (his own card "Ally"
for her, linked because her keys are verified) and Carol (a copy the server
created); Bob shares his with Carol (created too) and offers it to Dave, who
asked to be asked; Dave blocks Alice.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from radicale_plugin.admin import commands as admin
from radicale_plugin.admin import backup
from radicale_plugin.delivery import recovery
from radicale_plugin import index as idx
from radicale_plugin.index import records as rec
from radicale_plugin.vcard.merge import copy_uid
from radicale_plugin.index.sqlite import SQLiteIndex
from tests import zygote
from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture, settled, wait_until
from tests.test_fanout_e2e import person
from tests.test_migration import load_v2

REGION = "US"


# -- helpers -----------------------------------------------------------------------------

def run_admin(server: RadicaleServer, *args: str, config: Path | None = None,
              stdin: str | None = None) -> subprocess.CompletedProcess:
    return zygote.run([sys.executable, "-m", "radicale_plugin", "--config",
                       str(config or server.root / "config"), *args], input=stdin)


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def refused(done: subprocess.CompletedProcess) -> str:
    """A refusal: exit 1 and one line on stderr, never a traceback."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def database(server: RadicaleServer) -> Path:
    return server.root / "collections" / ".mecard.sqlite"


def lose_database(server: RadicaleServer) -> None:
    """The database file and its journal are gone (the server is stopped)."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(database(server)) + suffix).unlink(missing_ok=True)


def config_with(server: RadicaleServer, name: str, **options: str) -> Path:
    """A copy of the server's config with other ``[storage]`` options (another database)."""
    text = (server.root / "config").read_text()
    extra = "".join("%s = %s\n" % kv for kv in options.items())
    path = server.root / name
    path.write_text(text.replace("[storage]\n", "[storage]\n" + extra, 1))
    return path


def links(client: Client) -> list[tuple[str, str, str]]:
    return sorted((k["owner"], k["card"], k["made_by"])
                  for k in client.api_ok("GET", "/links")["links"])


def without_time(document: dict[str, Any]) -> dict[str, Any]:
    """An export without what differs between two exports of one state."""
    return {k: v for k, v in document.items() if k != "exported"}


def world(server: RadicaleServer) -> dict[str, Any]:
    alice = person(server, "alice", "alice-me.vcf")
    bob = person(server, "bob", "bob-me.vcf")
    carol = person(server, "carol", "carol-me.vcf")
    dave = person(server, "dave")
    assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
    dave.api_ok("POST", "/policies", {"owner": "alice", "policy": "block"})
    dave.api_ok("POST", "/policies", {"owner": "bob", "policy": "ask"})
    carol.api_ok("POST", "/privacy", {"discoverability": "nobody"})
    alice.api_ok("POST", "/targets", {"targets": ["user:bob", "user:carol", "user:dave"]})
    bob.api_ok("POST", "/targets", {"targets": ["user:carol", "user:dave"]})
    settled(alice)
    settled(bob)
    assert bob.copy_of("alice") == "ally.vcf"
    assert dave.api_ok("GET", "/offers")["offers"][0]["owner"] == "bob"
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave,
            "carols_alice": carol.copy_of("alice"), "carols_bob": carol.copy_of("bob")}


# -- a lost database ---------------------------------------------------------------------

def test_a_lost_database_is_said_loudly_at_start_checked_and_rebuilt(server):
    w = world(server)
    alice, bob, carol = w["alice"], w["bob"], w["carol"]
    assert ok(run_admin(server, "check")).startswith("consistent: 3 me card(s), 3 link(s)")

    server.stop(sink=False)
    lose_database(server)
    log_before = server.log.read_text()
    server.start()
    errors = wait_until(lambda: [ln for ln in server.log.read_text()[len(log_before):]
                                 .splitlines() if "[ERROR]" in ln], 10, "the error at start")
    assert len(errors) == 1, errors
    error = errors[0]
    assert "did not exist and was created empty" in error and str(database(server)) in error
    assert "3 address-book home(s) name a me card: alice, bob, carol" in error
    command = "python -m radicale_plugin --config %s" % (server.root / "config")
    assert "'%s rebuild'" % command in error and "'%s import BACKUP.json'" % command in error
    # the server knows nothing, and says so; the collections still hold everything
    assert alice.api_ok("GET", "/me")["me_card"] is None
    assert links(carol) == []

    done = run_admin(server, "check")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    problems = done.stdout.splitlines()
    assert "me card: alice's address-book home names /alice/contacts/alice.vcf (CS:me-card), " \
           "but the sharing database has no me card for alice: run rebuild" in problems
    created = [p for p in problems if p.startswith("link: ")]
    assert created == [
        "link: /carol/contacts/%s is the copy the server created of %s's card for carol, but "
        "no link says so: run rebuild" % (w["carols_%s" % owner], owner)
        for owner in ("alice", "bob")]
    assert len(problems) == 5, problems  # three me cards, two links

    out = ok(run_admin(server, "rebuild"))
    assert "3 me card(s) designated again: alice, bob, carol" in out
    assert "2 link(s) of created copies made again" in out
    assert "only an export brings them back" in out
    assert ok(run_admin(server, "check")).startswith("consistent: 3 me card(s), 2 link(s)")
    assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/alice.vcf"
    assert links(carol) == [("alice", "/carol/contacts/" + w["carols_alice"], "created"),
                            ("bob", "/carol/contacts/" + w["carols_bob"], "created")]
    assert links(bob) == []  # Bob's own card for Alice: only an export knew it was linked
    assert ok(run_admin(server, "rebuild-index")).startswith("card-key index rebuilt from 4")

    # the rebuilt link is used: Alice's next change goes into the same copy, no second card
    hrefs = carol.hrefs()
    alice.verify_me_card()
    alice.api_ok("POST", "/targets", {"targets": ["user:carol"]})
    assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code in (201, 204)
    report = settled(alice)
    assert [(r["user"], r["state"]) for r in report["recipients"]] == [("carol", "delivered")]
    assert carol.hrefs() == hrefs and "0199" in carol.card(w["carols_alice"])
    # and running rebuild again finds nothing left to do
    again = ok(run_admin(server, "rebuild"))
    assert "0 me card(s)" in again and "0 link(s)" in again


def test_a_database_of_other_collections_is_said_at_start(server):
    w = world(server)
    server.stop(sink=False)
    lose_database(server)
    SQLiteIndex(str(database(server))).close()  # an empty database in its place
    log_before = server.log.read_text()
    server.start()
    error = wait_until(lambda: [ln for ln in server.log.read_text()[len(log_before):]
                                .splitlines() if "[ERROR]" in ln], 10, "the error at start")[0]
    assert "3 address-book home(s) name a me card the sharing database" in error
    assert "knows nothing of (alice, bob, carol)" in error and "check" in error
    assert w["alice"].api_ok("GET", "/me")["me_card"] is None


def test_check_without_a_database_creates_none_and_other_commands_refuse(server):
    world(server)
    server.stop(sink=False)
    lose_database(server)
    done = run_admin(server, "check")
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith(
        "database: there is no sharing database at %s" % database(server))
    for command in (["status"], ["export"], ["delete-user", "bob"], ["export-user", "bob"],
                    ["verify-key", "bob", "+1 202 555 0102"], ["rebuild-index"], ["schema"]):
        assert "no sharing database at" in refused(run_admin(server, *command)), command
    assert not database(server).exists()
    server.start()


def test_a_first_start_on_existing_collections_says_nothing(tmp_path):
    # a Radicale that ran without the plugin: no me card anywhere, no error
    srv = RadicaleServer(tmp_path, {"alice": "pw"}).start()
    try:
        srv.client("alice").login()
        srv.stop(sink=False)
        lose_database(srv)
        (srv.root / "collections" / ".mecard-vapid.pem").unlink(missing_ok=True)
        srv.start()
        srv.client("alice").login()
        assert "[ERROR]" not in srv.log.read_text()
    finally:
        srv.stop()


# -- export and import -------------------------------------------------------------------

def test_export_then_import_into_a_fresh_database_exports_the_same(server, tmp_path):
    world(server)
    first = tmp_path / "backup.json"
    ok(run_admin(server, "export", str(first)))
    assert first.stat().st_mode & 0o777 == 0o600
    document = json.loads(first.read_text())
    assert (document["format"], document["version"]) == (backup.FORMAT, backup.VERSION)
    assert [o["user"] for o in document["owners"] if o["me_card"]] == ["alice", "bob", "carol"]
    assert {(k["owner"], k["recipient"], k["made_by"]) for k in document["links"]} == {
        ("alice", "bob", "verified"), ("alice", "carol", "created"),
        ("bob", "carol", "created")}
    assert {(p["recipient"], p["owner"], p["policy"]) for p in document["policies"]} == {
        ("dave", "alice", "block"), ("dave", "bob", "ask")}
    assert [(o["owner"], o["recipient"], o["state"]) for o in document["offers"]] == [
        ("bob", "dave", "pending")]
    assert [(e["owner"], e["recipient"], e["action"]) for e in document["history"]] == [
        ("alice", "carol", "create"), ("bob", "carol", "create")]
    assert document["keys"]
    # stdout gives the same document
    assert without_time(json.loads(ok(run_admin(server, "export")))) == without_time(document)

    fresh = config_with(server, "fresh-config", mecard_database=str(tmp_path / "fresh.sqlite"))
    out = ok(run_admin(server, "import", str(first), config=fresh))
    assert out.startswith("imported into %s: 3 owners, 6 keys, 3 links, 2 policies, 1 offers"
                          % (tmp_path / "fresh.sqlite"))
    again = json.loads(ok(run_admin(server, "export", config=fresh)))
    assert without_time(again) == without_time(document)

    # into the database the server runs on: refused, nothing changed
    line = refused(run_admin(server, "import", str(first)))
    assert line.startswith("python -m radicale_plugin: a server is running on %s"
                           % database(server)) and "stop it before an import" in line
    # into a database that holds sharing state (no server on it): refused, nothing changed
    line = refused(run_admin(server, "import", "-", config=fresh, stdin=first.read_text()))
    assert "not empty" in line


def test_an_import_the_server_runs_on(server, tmp_path):
    """Restore: stop, move the database away, import, start: sharing goes on as before."""
    w = world(server)
    saved = tmp_path / "backup.json"
    ok(run_admin(server, "export", str(saved)))
    server.stop(sink=False)
    lose_database(server)
    ok(run_admin(server, "import", str(saved)))
    log_before = server.log.read_text()
    server.start()
    alice, bob, carol = w["alice"], w["bob"], w["carol"]
    assert links(bob) == [("alice", "/bob/contacts/ally.vcf", "verified")]
    assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code in (201, 204)
    report = settled(alice)
    assert {r["user"]: r["state"] for r in report["recipients"]} == {
        "bob": "delivered", "carol": "delivered", "dave": "blocked"}
    assert "0199" in bob.card("ally.vcf") and "0101" not in bob.card("ally.vcf")
    assert "0199" in carol.card(w["carols_alice"])
    assert "[ERROR]" not in server.log.read_text()[len(log_before):]
    assert ok(run_admin(server, "check")).startswith("consistent")


@pytest.mark.parametrize("text, expected", [
    ("not json", "is not a JSON export"),
    ("[]", "not an export of radicale-mecard"),
    ('{"format": "radicale-mecard-sharing-state", "version": 4}',
     "format version 4, this radicale-mecard reads version 3 at most"),
    ('{"format": "radicale-mecard-sharing-state", "version": 1, "region": "DE"}',
     "made with mecard_default_region = DE and this server uses US"),
    ('{"format": "radicale-mecard-sharing-state", "version": 1, "region": "US", "owners": '
     '[{"user": "alice"}]}', "owners[0]: 'views' is missing"),
])
def test_a_bad_export_is_refused_with_one_line(tmp_path, text, expected):
    srv = RadicaleServer(tmp_path, {"alice": "pw"})
    path = tmp_path / "bad.json"
    path.write_text(text)
    assert expected in refused(run_admin(srv, "import", str(path)))
    assert "missing.json" in refused(run_admin(srv, "import", str(tmp_path / "missing.json")))
    # a refused import leaves no database behind: the server's check at start still works
    assert not (tmp_path / "collections" / ".mecard.sqlite").exists()


# -- round trips through the contract (every kind of record) ------------------------------

def migrated_v2(path: Path) -> SQLiteIndex:
    load_v2(path)
    return SQLiteIndex(str(path), REGION)


def test_every_record_of_the_previous_release_survives_export_and_import(tmp_path):
    source = migrated_v2(tmp_path / "v2.sqlite")
    source.push.ensure_topic("alice/contacts", "T-alice")
    source.push.put(idx.PushSubscription("s1", "alice", "alice/contacts",
                                         "https://push.example.org/x", "PK", "AS", 2e9,
                                         "aes128gcm", 1.7e9))
    add_schema_5_state(source)
    document = backup.export_state(source, REGION)
    text = backup.dumps(document)
    target = SQLiteIndex(str(tmp_path / "fresh.sqlite"), REGION)
    try:
        counts = backup.import_state(target, json.loads(text), REGION)
        assert counts == {"owners": 4, "keys": 8, "links": 4, "policies": 4, "offers": 3,
                          "jobs": 1, "deliveries": 7, "history": 4, "push subscriptions": 1,
                          "invites": 2, "undone entries": 0, "undone values": 0,
                          "notification settings": 0, "notification e-mails": 0,
                          "in flight (stored unknown: not sent again)": 0,
                          "notification events": 0}
        assert without_time(backup.export_state(target, REGION)) == without_time(document)
        # the records themselves, through the contract
        assert target.owners.all() == [idx.Owner(**{**o.__dict__, "card_stat": ""})
                                       for o in source.owners.all()]
        assert target.outbox.all_deliveries() == source.outbox.all_deliveries()
        assert target.outbox.interrupted() == source.outbox.interrupted()
        assert target.history.all() == source.history.all()
        assert target.consent.all_offers() == source.consent.all_offers()
        assert target.keys.all() == source.keys.all()
        assert target.outbox.pending_jobs(10) == source.outbox.pending_jobs(10)
        assert target.push.all() == source.push.all()
        assert target.invites.all() == source.invites.all() and len(target.invites.all()) == 2
        assert target.invites.all_uses() == source.invites.all_uses() == [
            idx.InviteUse("i1", "bob", 1.7e9 + 60)]
        assert target.owners.get("carol").region == "DE"
        with pytest.raises(backup.BackupError, match="not empty"):
            backup.import_state(target, document, REGION)
    finally:
        source.close()
        target.close()


def add_schema_5_state(index: SQLiteIndex) -> None:
    """What schema 5 adds that an export carries: invites with their uses, a user's region."""
    index.invites.add(idx.Invite("i1", "alice", "hash-1", 1.7e9, expires=2e9, max_uses=3,
                                 label="family"))
    assert index.invites.use("i1", "bob", 1.7e9 + 60)
    index.invites.add(idx.Invite("i2", "bob", "hash-2", 1.7e9 + 1, revoked=1.71e9))
    index.owners.set_region("carol", "DE")


def test_an_export_of_the_previous_format_without_invites_or_regions_still_imports(tmp_path):
    source = migrated_v2(tmp_path / "v2.sqlite")
    document = backup.export_state(source, REGION)
    source.close()
    assert document["version"] == backup.VERSION == 3
    assert document["schema"] == idx.SharingIndex.SCHEMA_VERSION
    # as version 1 (the previous release) wrote it: no invites, no region of owners
    document["version"], document["schema"] = 1, 4
    for name in ("invites", "undone_values", "notify"):
        del document[name]
    for owner in document["owners"]:
        del owner["region"], owner["audiences"]
    for entry in document["history"]:
        del entry["undone"]
    target = SQLiteIndex(str(tmp_path / "fresh.sqlite"), REGION)
    try:
        counts = backup.import_state(target, json.loads(backup.dumps(document)), REGION)
        assert counts["owners"] == 4 and counts["invites"] == 0
        assert target.invites.all() == [] and target.owners.get("alice").region is None
    finally:
        target.close()


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["invites"].append(dict(d["invites"][0])),
     "invites[2]: an invite with that id or token exists already"),
    (lambda d: d["invites"][0].update(used_by=[{"recipient": "bob"}]),
     "invites[0].used_by[0]: 'time' is missing"),
    (lambda d: d["keys"].append(dict(d["keys"][1])), "keys[8]: tel:+12025550101 of alice is "
                                                    "given twice"),
    (lambda d: d["links"].append({**d["links"][0], "recipient": "erin"}),
     "links[4]: /bob/contacts/ally.vcf already holds alice's copy"),
    (lambda d: d["deliveries"][0].update(state="lost"), "deliveries[0].state: 'lost' is not"),
    (lambda d: d["owners"][0].update(seq="2"), "owners[0].seq: expected a whole number, "
                                               "found a string"),
    (lambda d: d["owners"][0]["view"]["entries"].append([1]), "owners[0].view.entries"),
    (lambda d: d["history"][0].update(changes=[{"before": None}]),
     "history[0].changes[0]: 'field' is missing"),
    (lambda d: d["jobs"][0].update(withdraw=0), "jobs[0].withdraw: expected true or false"),
])
def test_an_export_that_contradicts_itself_is_refused_and_nothing_is_stored(tmp_path, change,
                                                                            expected):
    source = migrated_v2(tmp_path / "v2.sqlite")
    add_schema_5_state(source)
    document = json.loads(backup.dumps(backup.export_state(source, REGION)))
    source.close()
    change(document)
    target = SQLiteIndex(str(tmp_path / "fresh.sqlite"), REGION)
    try:
        with pytest.raises(backup.BackupError) as e:
            backup.import_state(target, document, REGION)
        assert expected in str(e.value) and "\n" not in str(e.value)
        assert target.is_empty()  # all or nothing
    finally:
        target.close()


def test_created_copies_are_found_by_href_or_uid_and_only_for_real_owners():
    users = ["alice", "bob", "carol"]
    uid = copy_uid("alice", "carol")
    cards = [
        idx.IndexedCard("carol/contacts", uid + ".vcf", uid, False, frozenset()),
        # the recipient had that UID already: the copy got a random one, the href tells
        idx.IndexedCard("carol/contacts", copy_uid("bob", "carol") + ".vcf",
                        "3b241101-e2bb-4255-8caf-4136c566a962", False, frozenset()),
        # moved by the recipient: the UID tells
        idx.IndexedCard("bob/work", "moved.vcf", copy_uid("carol", "bob"), False, frozenset()),
        # a version-5 UUID of somebody else's making
        idx.IndexedCard("bob/contacts", copy_uid("mallory", "bob") + ".vcf",
                        copy_uid("mallory", "bob"), False, frozenset()),
        idx.IndexedCard("alice/contacts", "plain.vcf", "plain", False, frozenset()),
    ]
    assert recovery.created_copies(cards, users) == [
        recovery.CreatedCopy("alice", "carol", "carol/contacts", uid + ".vcf"),
        recovery.CreatedCopy("bob", "carol", "carol/contacts",
                             copy_uid("bob", "carol") + ".vcf"),
        recovery.CreatedCopy("carol", "bob", "bob/work", "moved.vcf")]


# -- accounts --------------------------------------------------------------------------

def assert_gone(exported: dict[str, Any], user: str) -> None:
    """Nothing of ``user`` in an export but the history of others' books."""
    assert user not in {o["user"] for o in exported["owners"]}
    assert user not in {k["user"] for k in exported["keys"]}
    for name in ("links", "offers", "deliveries"):
        assert all(user not in (r["owner"], r["recipient"]) for r in exported[name]), name
    assert all(user not in (p["owner"], p["recipient"]) for p in exported["policies"])
    assert all(j["owner"] != user for j in exported["jobs"])
    assert all(e["recipient"] != user for e in exported["history"])
    assert all(not b["book"].startswith(user + "/") for b in exported["push"]["topics"])

@pytest.mark.both_backends
def test_delete_user_drops_their_state_and_leaves_their_copies(server, tmp_path):
    w = world(server)
    bob, carol, dave = w["bob"], w["carol"], w["dave"]
    copy_before = carol.card(w["carols_bob"])
    out = ok(run_admin(server, "delete-user", "bob"))
    assert out.startswith("sharing state of bob deleted: 2 link(s), 1 offer(s)")
    assert "withdrawal" not in out
    # Bob's copies stay as they are, unlinked; what was his is gone everywhere
    assert carol.card(w["carols_bob"]) == copy_before
    assert links(carol) == [("alice", "/carol/contacts/" + w["carols_alice"], "created")]
    assert dave.api_ok("GET", "/offers")["offers"] == []
    assert dave.api_ok("GET", "/policies")["policies"] == {"alice": "block"}
    assert "removed from the targets of alice" in out
    exported = json.loads(ok(run_admin(server, "export")))
    assert_gone(exported, "bob")
    alice = next(o for o in exported["owners"] if o["user"] == "alice")
    assert alice["rules"] == ["user:carol", "user:dave"]  # a new "bob" is somebody else
    assert alice["notices"] == ["bob no longer has an account here: removed from your targets"]
    # his verified number is free: somebody else may verify it and it moves from nobody
    assert "moved" not in ok(run_admin(server, "verify-key", "dave", "+1 202 555 0102"))
    # the home no longer names a me card: rebuild does not bring his back
    assert "0 me card(s)" in ok(run_admin(server, "rebuild"))
    assert bob.api_ok("GET", "/me")["me_card"] is None
    assert ok(run_admin(server, "check")).startswith("consistent")
    line = refused(run_admin(server, "delete-user", "nobody-here"))
    assert "no user 'nobody-here'" in line


@pytest.mark.both_backends
def test_delete_user_with_withdraw_has_the_worker_remove_their_values(server):
    w = world(server)
    alice, bob, carol = w["alice"], w["bob"], w["carol"]
    out = ok(run_admin(server, "delete-user", "alice", "--withdraw"))
    assert "2 withdrawal(s) queued (bob, carol)" in out  # Dave blocks her: nothing written
    wait_until(lambda: "0101" not in bob.card("ally.vcf")
               and "0101" not in carol.card(w["carols_alice"]), 30, "the withdrawals")
    ally = bob.card("ally.vcf")
    assert "alice@example.org" not in ally and "NICKNAME:Sis" in ally and "FN:Ally" in ally
    wait_until(lambda: links(bob) == [] and links(carol) == [
        ("bob", "/carol/contacts/" + w["carols_bob"], "created")], 10, "the links to end")
    # what the withdrawals needed goes with the second run
    ok(run_admin(server, "delete-user", "alice"))
    exported = json.loads(ok(run_admin(server, "export")))
    assert_gone(exported, "alice")
    history = [e for e in exported["history"] if e["owner"] == "alice"]
    assert {e["action"] for e in history} >= {"withdraw"}  # the recipients' record stays
    assert alice.api_ok("GET", "/me")["me_card"] is None


@pytest.mark.both_backends
def test_export_user_gives_their_own_data_and_nothing_of_others_cards(server):
    w = world(server)
    carol = json.loads(ok(run_admin(server, "export-user", "carol")))
    assert (carol["format"], carol["user"]) == ("radicale-mecard-user", "carol")
    assert carol["owner"]["me_card"] == "/carol/contacts/carol.vcf"
    assert carol["owner"]["discoverability"] == "nobody"
    assert [(k["owner"], k["card"]) for k in carol["links"]] == [
        ("alice", "/carol/contacts/" + w["carols_alice"]),
        ("bob", "/carol/contacts/" + w["carols_bob"])]
    assert {e["owner"] for e in carol["history"]} == {"alice", "bob"}
    assert {k["key"]: k["state"] for k in carol["keys"]} == {
        "tel:+12025550103": "verified", "mailto:carol@example.org": "verified"}
    bob = json.loads(ok(run_admin(server, "export-user", "bob")))
    assert {r["user"]: r["state"] for r in bob["recipients"]} == {
        "carol": "delivered", "dave": "offered"}
    assert bob["offers_made"][0]["recipient"] == "dave"
    assert "carols_bob" not in json.dumps(bob) and w["carols_bob"] not in json.dumps(bob)
    assert bob["owner"]["targets"] == ["user:carol", "user:dave"]
    dave = json.loads(ok(run_admin(server, "export-user", "dave")))
    assert dave["policies"] == {"alice": "block", "bob": "ask"}
    assert [o["owner"] for o in dave["offers"]] == ["bob"]
    assert "no user 'zed'" in refused(run_admin(server, "export-user", "zed"))


# -- status ----------------------------------------------------------------------------

def test_status_says_queue_failures_subscriptions_and_schema(server):
    world(server)
    text = ok(run_admin(server, "status"))
    assert text.splitlines()[0] == "schema version %d (current)" % idx.SharingIndex.SCHEMA_VERSION
    assert "queue: 0 change(s) to plan, 0 delivery(ies) and 0 withdrawal(s) waiting" in text
    assert "failed deliveries: 0" in text and "push subscriptions: 0" in text
    report = json.loads(ok(run_admin(server, "status", "--json")))
    assert report["schema_version"] == report["schema_current"] == \
        idx.SharingIndex.SCHEMA_VERSION
    assert (report["queue"], report["failed"], report["subscriptions"]) == (0, 0, 0)
    assert report["deliveries"] == {"blocked": 1, "delivered": 3, "offered": 1}


def test_status_counts_what_waits_and_what_failed(tmp_path):
    index = migrated_v2(tmp_path / "v2.sqlite")
    try:
        index.push.put(idx.PushSubscription("s1", "alice", "alice/contacts", "https://p/1",
                                            "K", "S", time.time() + 60))
        index.push.put(idx.PushSubscription("s2", "bob", "bob/contacts", "https://p/2",
                                            "K", "S", time.time() - 60))  # expired
        found = index.outbox.delivery("alice", "erin")
        assert found is not None
        found.state, found.error = idx.FAILED, "the recipient has no address book"
        index.outbox.finish(found)
        report = admin.status(index, "x.sqlite", 2)
        assert (report["schema_version"], report["schema_current"]) == (
            2, idx.SharingIndex.SCHEMA_VERSION)
        assert (report["jobs"], report["pending"], report["withdrawing"]) == (1, 1, 1)
        assert report["queue"] == 3 and report["due"] == 2
        assert report["failed"] == 1 and report["subscriptions"] == 1
        assert report["oldest_job"] == "2026-11-26T09:00:00+00:00"
    finally:
        index.close()


def test_commands_without_a_config_file_or_with_bad_input_say_one_line(tmp_path):
    srv = RadicaleServer(tmp_path, {"alice": "pw"})
    line = refused(run_admin(srv, "status", config=tmp_path / "nowhere"))
    assert "nowhere" in line
    (tmp_path / "collections").mkdir()
    SQLiteIndex(str(tmp_path / "collections" / ".mecard.sqlite")).close()
    with sqlite3.connect(tmp_path / "collections" / ".mecard.sqlite") as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    assert "schema version 99" in refused(run_admin(srv, "status"))


def test_an_export_sees_one_moment_and_holds_up_no_writer(tmp_path):
    path = str(tmp_path / "x.sqlite")
    reader, writer = SQLiteIndex(path), SQLiteIndex(path)  # the admin and the server
    try:
        reader.consent.set_policy("bob", "alice", "auto")
        with reader.snapshot():
            assert len(reader.consent.all_policies()) == 1
            started = time.monotonic()
            writer.consent.set_policy("carol", "alice", "block")
            assert time.monotonic() - started < 5  # not held up by the export
            assert len(reader.consent.all_policies()) == 1  # still the same moment
        assert len(reader.consent.all_policies()) == 2
    finally:
        reader.close()
        writer.close()


# -- a clean stop, an import under a running server, the lock per book ---------------------

@pytest.mark.parametrize("launcher", ["radicale_plugin.serve", "radicale"])
def test_a_clean_stop_checkpoints_the_database_so_the_file_alone_is_a_backup(tmp_path,
                                                                            launcher):
    """SIGTERM, to our launcher or to stock ``radicale``: the fan-out ends its round, the
    write-ahead log goes into the database file, and a copy of that one file holds all."""
    srv = RadicaleServer(tmp_path, USERS)
    srv.launcher = launcher
    srv.start()
    try:
        alice = person(srv, "alice", "alice-me.vcf")
        bob = person(srv, "bob")
        assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
        alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
        settled(alice)
        wal = Path(str(database(srv)) + "-wal")
        assert wal.exists() and wal.stat().st_size > 0  # the live server writes to its log
    finally:
        srv.stop()
    assert "Sharing: database %s checkpointed and closed" % database(srv) in srv.log.read_text()
    assert not wal.exists() or wal.stat().st_size == 0
    copy = tmp_path / "backup.sqlite"
    shutil.copyfile(database(srv), copy)  # the file alone, without -wal and -shm
    index = SQLiteIndex(str(copy), REGION)
    try:
        assert index.owners.get("alice").href == "alice.vcf"
        assert index.owners.get("alice").rules == ["user:bob"]
        assert {k.key for k in index.keys.of_user("alice") if k.verified} == {
            "tel:+12025550101", "mailto:alice@example.org"}
        assert [(k.owner, k.book, k.href) for k in index.links.all()] == [
            ("alice", "bob/contacts", "ally.vcf")]
    finally:
        index.close()


def test_import_is_refused_while_a_server_runs_and_goes_in_once_it_stopped(server, tmp_path):
    w = world(server)
    saved = tmp_path / "backup.json"
    ok(run_admin(server, "export", str(saved)))
    server.stop(sink=False)
    lose_database(server)
    server.start()  # on a new, empty database: an import would go under its feet
    try:
        line = refused(run_admin(server, "import", str(saved)))
        assert line == ("python -m radicale_plugin: a server is running on %s (it holds %s."
                        "running): stop it before an import, then start it again"
                        % (database(server), database(server)))
        assert w["alice"].api_ok("GET", "/me")["me_card"] is None  # nothing went in
    finally:
        server.stop(sink=False)
    # positive control: stopped, the same import goes in and the server goes on with it
    ok(run_admin(server, "import", str(saved)))
    server.start()
    assert links(w["bob"]) == [("alice", "/bob/contacts/ally.vcf", "verified")]
    assert w["alice"].api_ok("GET", "/me")["me_card"] == "/alice/contacts/alice.vcf"


def lock_holds(output: str) -> int:
    """How often check/rebuild took Radicale's storage lock (on PostgreSQL: a book's lock,
    or a snapshot), from their last line."""
    found = re.fullmatch(r"Radicale's storage lock: taken (\d+) time\(s\), one book or card "
                         r"at a time, held [\d.]+ ms at most|PostgreSQL: one book's lock "
                         r"\(or one snapshot\) at a time, taken (\d+) time\(s\), held [\d.]+ "
                         r"ms at most", output.strip().splitlines()[-1])
    assert found, output
    return int(found.group(1) or found.group(2))


@pytest.mark.both_backends
def test_check_and_rebuild_take_radicales_lock_per_book_while_others_write(public_server):
    """Many books: check, rebuild-index and rebuild take the lock once per book (and per
    card they repair), never for the whole scan; another user's writes meanwhile go in."""
    alice = person(public_server, "alice", "alice-me.vcf")
    bob = person(public_server, "bob")
    books = ["b%02d" % i for i in range(40)]
    for name in books:
        alice.mkbook(name)
        assert alice.put("c.vcf", fixture("alice-contact-bob.vcf"), book=name).status_code == 201
    total = len(books) + 2  # and both users' "contacts"
    out = ok(run_admin(public_server, "check"))
    assert out.startswith("consistent: 1 me card(s), 0 link(s), %d address book(s)" % total)
    assert lock_holds(out) == total
    assert lock_holds(ok(run_admin(public_server, "rebuild-index"))) == total
    assert lock_holds(ok(run_admin(public_server, "rebuild"))) == total

    # Bob writes all the while a check runs: each of his PUTs goes in
    check = subprocess.Popen([sys.executable, "-m", "radicale_plugin", "--config",
                              str(public_server.root / "config"), "check"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    written = 0
    while check.poll() is None or written == 0:
        assert bob.put("n%d.vcf" % written, fixture("bob-contact-alice.vcf").replace(
            "bobs-card-for-alice", "card-%d" % written)).status_code == 201
        written += 1
    out, err = check.communicate(timeout=60)
    assert "Traceback" not in err, err
    # consistent, or a race in Bob's book that is gone at the next check
    assert out.startswith("consistent") or all("/bob/contacts/" in ln
                                                for ln in out.splitlines()), out
    assert ok(run_admin(public_server, "check")).startswith("consistent")


def test_audiences_survive_export_and_import(tmp_path):
    source = SQLiteIndex(str(tmp_path / "source.sqlite"), REGION)
    target = SQLiteIndex(str(tmp_path / "fresh.sqlite"), REGION)
    try:
        source.owners.set_rules("alice", ["group:Family", "all"])
        sets = {"group:Family": {"fields": ["FN", "N", "TEL", "ADR"], "withdrawn": ["BDAY"]}}
        source.owners.set_audiences("alice", sets)
        document = json.loads(backup.dumps(backup.export_state(source, REGION)))
        backup.import_state(target, document, REGION)
        assert target.owners.get("alice").audiences == sets
        # an export made before audiences existed imports with none
        for owner in document["owners"]:
            del owner["audiences"]
        fresh = SQLiteIndex(str(tmp_path / "older.sqlite"), REGION)
        try:
            backup.import_state(fresh, document, REGION)
            assert fresh.owners.get("alice").audiences == {}
        finally:
            fresh.close()
    finally:
        source.close()
        target.close()


# -- undo and notifications (schema 6) ------------------------------------------------------

def add_schema_6_state(index: SQLiteIndex) -> dict[str, int]:
    """What schema 6 adds besides audiences: an entry Bob undid (its undo written as an
    entry of its own), one he undid where nothing was written, the owner values he undid,
    notification choices, e-mails in every state with their events, events waiting, and
    the key of unsubscribe links."""
    h = index.history
    number = h.add(idx.HistoryEntry("alice", "bob", "bob/contacts", "ally.vcf", "update", (
        idx.Change("TEL", "TEL:+12025550101", "TEL:+12025550199"),), "2026-12-01T10:00:00+00:00"))
    undo = h.add(idx.HistoryEntry("alice", "bob", "bob/contacts", "ally.vcf", "undo", (
        idx.Change("TEL", "TEL:+12025550199", "TEL:+12025550101"),), "2026-12-01T11:00:00+00:00"))
    note = h.add(idx.HistoryEntry("alice", "bob", "bob/contacts", "ally.vcf", "update", (
        idx.Change("NOTE", None, "NOTE:hi"),), "2026-12-01T12:00:00+00:00"))
    answer = {"undone": number, "written": True, "entry": undo, "put_back": [
        {"field": "TEL", "before": "TEL:+12025550101", "after": "TEL:+12025550199"}],
        "not_put_back": []}
    assert h.mark_undone(idx.UndoMark(number, "2026-12-01T11:00:00+00:00", undo,
                                      json.dumps(answer)))
    assert h.mark_undone(idx.UndoMark(note, "2026-12-01T12:30:00+00:00", 0,
                                      json.dumps({"undone": note, "written": False})))
    h.add_undone([idx.UndoneValue("alice", "bob", "TEL", "+12025550199", "TEL:+12025550101",
                                  number),
                  idx.UndoneValue("alice", "bob", "NOTE", "hi", "", note),
                  idx.UndoneValue("alice", "carol", "EMAIL", "a@example.org", "", 999)])
    h.forget_undone([h.undone_of([("alice", "bob")])[("alice", "bob")][1].id])  # ids: gaps

    n = index.notify
    n.set_choice("bob", rec.NOTIFY_OFFERS_AND_CHANGES, "mailto:bob@example.org")
    n.set_base("bob", "https://dav.example.org")
    n.set_choice("carol", rec.NOTIFY_NONE, None)
    n.set_base("dave", "https://dav.example.org")  # never chose: only the URL
    now = 1.8e9
    ids = {}
    for state in (rec.BATCH_SENT, rec.BATCH_FAILED, rec.BATCH_UNKNOWN, rec.BATCH_CANCELLED,
                  rec.BATCH_READY, rec.BATCH_SENDING):
        n.add_event(idx.NotifyEvent("bob", "alice", rec.EVENT_OFFER, 2, now, now))
        (event,) = n.waiting()
        ids[state] = n.make_batch(idx.NotifyBatch(0, "bob", "mailto:bob@example.org",
                                                  rec.BATCH_READY, now, now,
                                                  "Subject: x\r\n\r\nbody " + state,
                                                  "<m.%s@example.org>" % state), [event.id], [])
        if state == rec.BATCH_SENDING:
            assert n.claim(ids[state])
        elif state != rec.BATCH_READY:
            n.finish(ids[state], state, error="as it went", sent=now + 1)
        now += 10
    # waiting: a change just applied, and a postponed offer whose time comes in a week
    n.add_event(idx.NotifyEvent("bob", "carol", rec.EVENT_CHANGED, 3, now, now, "https://b"))
    n.add_event(idx.NotifyEvent("bob", "dave", rec.EVENT_OFFER_DUE, 1, now, now + 7 * 86400))
    n.secret()
    return ids


def schema_6_export(tmp_path: Path) -> tuple[dict[str, Any], SQLiteIndex, dict[str, int]]:
    source = migrated_v2(tmp_path / "v2.sqlite")
    add_schema_5_state(source)
    ids = add_schema_6_state(source)
    return json.loads(backup.dumps(backup.export_state(source, REGION))), source, ids


def test_undo_and_notifications_survive_export_and_import(tmp_path):
    from radicale_plugin.notify import tokens
    document, source, ids = schema_6_export(tmp_path)
    target = SQLiteIndex(str(tmp_path / "fresh.sqlite"), REGION)
    try:
        token = tokens.make(source.notify.secret(), "bob", tokens.UNSUBSCRIBE, 2e9)
        counts = backup.import_state(target, document, REGION)
        assert {k: v for k, v in counts.items() if "undone" in k or "notification" in k
                or "flight" in k} == {
            "undone entries": 2, "undone values": 2, "notification settings": 3,
            "notification e-mails": 6, "in flight (stored unknown: not sent again)": 2,
            "notification events": 8}
        # undo: the marks (answers as given), the undone values in their order
        entries = [e.id for e in source.history.all()]
        assert target.history.undo_marks(entries) == source.history.undo_marks(entries)
        assert len(target.history.undo_marks(entries)) == 2
        assert target.history.all() == source.history.all()
        assert [(v.owner, v.recipient, v.field, v.value_key, v.kept, v.entry)
                for v in target.history.all_undone()] == [
            (v.owner, v.recipient, v.field, v.value_key, v.kept, v.entry)
            for v in source.history.all_undone()]
        pairs = [("alice", "bob"), ("alice", "carol")]
        assert {p: [(v.field, v.value_key) for v in vs]
                for p, vs in target.history.undone_of(pairs).items()} == {
            ("alice", "bob"): [("TEL", "+12025550199")],
            ("alice", "carol"): [("EMAIL", "a@example.org")]}
        # notifications: choices, the key (a link mailed before the backup works after)
        assert target.notify.all_settings() == source.notify.all_settings()
        assert target.notify.setting("bob").email == rec.NOTIFY_OFFERS_AND_CHANGES
        assert target.notify.known_secret() == source.notify.known_secret() is not None
        assert tokens.check(target.notify.secret(), token, tokens.UNSUBSCRIBE, 1.9e9) == "bob"
        assert target.notify.all_events() == source.notify.all_events()
        assert [e.kind for e in target.notify.waiting()] == [rec.EVENT_CHANGED,
                                                             rec.EVENT_OFFER_DUE]
        # e-mails: finished ones as they were; one ready or being sent at the export may
        # have gone out since: never sent again (at most once across a restore)
        theirs = {b.id: b for b in source.notify.batches()}
        for batch in target.notify.batches():
            if batch.id in (ids[rec.BATCH_READY], ids[rec.BATCH_SENDING]):
                assert batch.state == rec.BATCH_UNKNOWN
                assert "may have sent it since" in batch.error
                assert batch.message == theirs[batch.id].message
            else:
                assert batch == theirs[batch.id]
        assert target.notify.due_batches(3e9) == [] and target.notify.next_due() is None
        assert not target.notify.claim(ids[rec.BATCH_READY])
        assert target.notify.interrupted() == []
        assert target.notify.last_batch("bob") == source.notify.last_batch("bob")
        # new ids go on after the restored ones
        target.notify.add_event(idx.NotifyEvent("bob", "alice", rec.EVENT_OFFER, 9, 1, 1))
        assert max(e.id for e in target.notify.all_events()) > max(
            e.id for e in source.notify.all_events())
        # a second export differs only in the e-mails no longer in flight
        again = backup.export_state(target, REGION)
        for name in ("history", "undone_values", "invites", "owners", "keys"):
            assert again[name] == document[name], name
        assert again["notify"]["unsubscribe_key"] == document["notify"]["unsubscribe_key"]
        assert again["notify"]["settings"] == document["notify"]["settings"]
    finally:
        source.close()
        target.close()


def test_an_export_of_format_2_imports_with_no_undo_or_notification_state(tmp_path):
    document, source, _ = schema_6_export(tmp_path)
    source.close()
    # as version 2 (schema 5) wrote it: no undo marks, undone values, notifications
    document["version"], document["schema"] = 2, 5
    for name in ("undone_values", "notify"):
        del document[name]
    for entry in document["history"]:
        del entry["undone"]
    document["history"] = [e for e in document["history"] if e["action"] != "undo"]
    target = SQLiteIndex(str(tmp_path / "fresh.sqlite"), REGION)
    try:
        counts = backup.import_state(target, document, REGION)
        assert counts["history"] == 6 and counts["undone entries"] == 0
        assert counts["notification settings"] == counts["notification e-mails"] == 0
        assert target.history.undo_marks(e.id for e in target.history.all()) == {}
        assert target.history.all_undone() == []
        assert target.notify.all_settings() == [] and target.notify.batches() == []
        assert target.notify.known_secret() is None  # made at its first use
    finally:
        target.close()
    # a version 3 export without them is broken, not older
    document["version"] = 3
    with pytest.raises(backup.BackupError, match="'undone_values' is missing"):
        backup.read_export(document, REGION)
    document["undone_values"] = []
    with pytest.raises(backup.BackupError, match="'notify' is missing"):
        backup.read_export(document, REGION)


def _event_of(d: dict[str, Any], batch: int | None) -> dict[str, Any]:
    return {**d["notify"]["events"][0], "id": 99, "batch": batch}


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["history"][0].update(undone={"time": "x", "undo_entry": 0, "answer": "no"}),
     "history[0].undone.answer: expected an object (the answer given), found a string"),
    (lambda d: d["history"][0].update(action="redo"), "history[0].action: 'redo' is not one"),
    (lambda d: d["undone_values"][0].update(kept=None), "undone_values[0].kept: expected a "
                                                        "string"),
    (lambda d: d["notify"].update(unsubscribe_key="abc"),
     "notify.unsubscribe_key: expected the key in hex, 32 bytes at least"),
    (lambda d: d["notify"]["settings"][0].update(email="sometimes"),
     "notify.settings[0].email: 'sometimes' is not one of offers, offers-and-changes, none"),
    (lambda d: d["notify"]["settings"].append(d["notify"]["settings"][0]),
     "notify.settings[3]: a setting for bob is given twice"),
    (lambda d: d["notify"]["batches"][0].update(state="queued"),
     "notify.batches[0].state: 'queued' is not one of"),
    (lambda d: d["notify"]["batches"][1].update(id=d["notify"]["batches"][0]["id"]),
     "notify.batches[1]: a batch with the id 1 is given twice"),
    (lambda d: d["notify"]["batches"][0].update(id=0),
     "notify.batches[0].id: expected a whole number above 0, found 0"),
    (lambda d: d["notify"]["events"].append(_event_of(d, 42)),
     "notify.events[8].batch: no batch 42 in notify.batches"),
    (lambda d: d["notify"]["events"].append({**_event_of(d, 1), "recipient": "carol"}),
     "notify.events[8].batch: batch 1 is bob's, the event carol's"),
    (lambda d: d["notify"]["events"].append(_event_of(d, None) | {"id": 1}),
     "notify.events[8]: an event with the id 1 is given twice"),
    (lambda d: d["notify"]["events"][0].update(time="yesterday"),
     "notify.events[0].time: expected a number, found a string"),
])
def test_bad_undo_or_notification_state_is_refused_with_one_line_and_nothing_stored(
        tmp_path, change, expected):
    document, source, _ = schema_6_export(tmp_path)
    source.close()
    change(document)
    target = SQLiteIndex(str(tmp_path / "fresh.sqlite"), REGION)
    try:
        with pytest.raises(backup.BackupError) as e:
            backup.import_state(target, document, REGION)
        assert expected in str(e.value) and "\n" not in str(e.value), str(e.value)
        assert target.is_empty()  # all or nothing
        assert target.notify.known_secret() is None and target.notify.all_settings() == []
    finally:
        target.close()


def test_an_import_goes_where_a_server_only_learnt_urls_not_where_a_user_chose(tmp_path):
    document, source, _ = schema_6_export(tmp_path)
    source.close()
    # a server ran on an empty database: it learnt a user's URL and made a key when a link
    # was checked; neither is sharing state, and the backup's key wins
    ran = SQLiteIndex(str(tmp_path / "ran.sqlite"), REGION)
    chose = SQLiteIndex(str(tmp_path / "chose.sqlite"), REGION)
    try:
        ran.notify.set_base("bob", "https://other.example.org")
        ran.notify.secret()
        assert ran.is_empty()
        backup.import_state(ran, document, REGION)
        assert ran.notify.known_secret() == bytes.fromhex(
            document["notify"]["unsubscribe_key"])
        assert ran.notify.setting("bob").email == rec.NOTIFY_OFFERS_AND_CHANGES
        # a user's choice, an undo mark or a notification e-mail is state: refused
        chose.notify.set_choice("erin", rec.NOTIFY_NONE, None)
        assert not chose.is_empty()
        with pytest.raises(backup.BackupError, match="not empty"):
            backup.import_state(chose, document, REGION)
    finally:
        ran.close()
        chose.close()


def test_after_a_restore_undone_values_stay_out_undos_stay_and_mailed_links_still_work(
        tmp_path):
    """Shipped defaults (policy ``ask``, nobody pre-authorised): Bob chooses ``auto`` for
    Alice and e-mails of applied changes himself, then undoes her number change; the
    admin exports, the database is lost, the export is imported."""
    import requests
    from radicale_plugin.notify import tokens
    from tests.test_notify_e2e import BOB, FAST, notices
    from tests.test_undo_e2e import ALICE_NEW, ALLY, NEW, OLD, alice_changes, etag, \
        history, number_change, undo
    (tmp_path / "srv").mkdir()
    server = RadicaleServer(tmp_path / "srv", USERS, **FAST).start()
    try:
        alice = person(server, "alice", "alice-me.vcf")
        bob = person(server, "bob", "bob-me.vcf")
        assert bob.put("ally.vcf", ALLY).status_code == 201
        bob.api_ok("POST", "/policies", {"owner": "alice", "policy": "auto"})
        bob.api_ok("POST", "/notifications", {"email": "offers-and-changes", "address": None})
        alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
        wait_until(lambda: OLD in bob.card("ally.vcf"), 60, "Alice's number in Bob's card")
        alice_changes(alice, ALICE_NEW)
        wait_until(lambda: NEW in bob.card("ally.vcf"), 60, "the new number")
        mailed = wait_until(lambda: notices(server, BOB), 30, "Bob's e-mail")[0]
        link = mailed["List-Unsubscribe"].strip("<>")
        entry = number_change(bob, OLD, NEW)
        first = undo(bob, entry["id"])
        assert first.status_code == 200 and first.json()["written"], first.text
        saved = tmp_path / "backup.json"
        ok(run_admin(server, "export", str(saved)))

        server.stop(sink=False)
        lose_database(server)
        out = ok(run_admin(server, "import", str(saved)))
        assert "1 undone entries, 1 undone values, 2 notification settings" in out, out
        log_before = server.log.read_text()
        server.start()
        # Bob's choice stays
        assert bob.api_ok("GET", "/notifications")["email"] == "offers-and-changes"
        # the entry stays undone: undoing it again gives the same answer, writes nothing
        tag, count = etag(bob, "ally.vcf"), len(history(bob))
        again = undo(bob, entry["id"])
        assert again.status_code == 200 and again.json() == first.json()
        assert etag(bob, "ally.vcf") == tag and len(history(bob)) == count
        # the undone number stays out of Alice's next (unrelated) change
        alice_changes(alice, ALICE_NEW.replace("alice@example.org", "ally@example.org"))
        wait_until(lambda: "ally@example.org" in bob.card("ally.vcf"), 60, "the new e-mail")
        assert OLD in bob.card("ally.vcf") and NEW not in bob.card("ally.vcf")
        # the unsubscribe link mailed before the backup works; one of another key does not
        anonymous = requests.Session()
        forged = link.rsplit("/", 1)[0] + "/" + tokens.make(
            b"k" * 32, "bob", tokens.UNSUBSCRIBE, time.time() + 3600)
        assert anonymous.post(forged, data={"List-Unsubscribe": "One-Click"}).status_code \
            == 403
        assert bob.api_ok("GET", "/notifications")["email"] == "offers-and-changes"
        done = anonymous.post(link, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200, done.text
        assert bob.api_ok("GET", "/notifications")["email"] == "none"
        assert "[ERROR]" not in server.log.read_text()[len(log_before):]
    finally:
        server.stop()
