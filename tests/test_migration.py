# SPDX-License-Identifier: GPL-3.0-or-later
"""Upgrading from the released schema (version 1): nothing an owner or recipient had is lost.

``tests/fixtures/schema-v1.sql`` is a dump of the sharing database the previous
release made, and ``tests/fixtures/v1-data`` the collections that go with it:
Alice (targets ``all``) had her number changed from 0101 to 0199 and delivered
to Bob's own card for her (``ally.vcf``) and to a copy created for Carol; Carol
blocked Bob.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from radicale_plugin import index as idx
from radicale_plugin.index.sqlite import SQLiteIndex
from radicale_plugin.index.sqlite.schema import SchemaError
from radicale_plugin.vcard.view import DEFAULT_SHARED_FIELDS, Entry, View
from tests.conftest import FAMILY, USERS
from tests.server import FIXTURES, RadicaleServer, fixture, settled

REGION = "US"
OLD, NOW = "tel:+12025550101", "tel:+12025550199"
ALICE_MAIL = "mailto:alice@example.org"
CAROLS_COPY = "219c4f18-90db-5fe9-836c-e7eb1587981c.vcf"
V1_TIME = "2026-11-25T22:31:01+00:00"


def load_v1(path: Path, extra_sql: str = "") -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(fixture("schema-v1.sql") + extra_sql)
    conn.close()


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    return version


def columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        found = {r[1] for r in conn.execute("PRAGMA table_info(%s)" % table)}
    conn.close()
    return found


#: Columns of version 1 whose content version 2 keeps elsewhere (links, owner_views) or drops.
GONE = {"deliveries": {"book", "href", "delivered_view"}, "owners": {"prev_view", "skipped"}}


@pytest.fixture
def migrated(tmp_path):
    path = tmp_path / "v1.sqlite"
    load_v1(path)
    index = SQLiteIndex(str(path))
    try:
        yield index
    finally:
        index.close()


def test_the_migrated_database_has_the_current_schema_version(tmp_path):
    path = tmp_path / "v1.sqlite"
    load_v1(path)
    assert user_version(path) == 0  # version 1 wrote no number
    SQLiteIndex(str(path)).close()
    assert user_version(path) == idx.SharingIndex.SCHEMA_VERSION == 7


@pytest.mark.parametrize("start", ["fresh", "v1"])
def test_version_2_keeps_no_card_locations_or_views_in_deliveries_and_owners(tmp_path, start):
    # the card holding a copy is the link's business; views live per change in owner_views
    path = tmp_path / "x.sqlite"
    if start == "v1":
        load_v1(path)
        assert GONE["deliveries"] <= columns(path, "deliveries")
    SQLiteIndex(str(path)).close()
    for table, gone in GONE.items():
        assert columns(path, table) and not gone & columns(path, table), table
    assert {"owner", "seq", "view"} <= columns(path, "owner_views")
    assert {"intent", "due"} <= columns(path, "deliveries")
    # the values ever written into each copy live in their own table (no read to add one)
    assert {"owner", "recipient", "field", "value_key"} <= columns(path, "written")
    assert "intent_view" not in columns(path, "deliveries")


@pytest.mark.parametrize("start", ["fresh", "v1"])
def test_version_2_has_the_queue_position_the_card_fields_and_the_me_card_stat(tmp_path, start):
    path = tmp_path / "x.sqlite"
    if start == "v1":
        load_v1(path)
    SQLiteIndex(str(path)).close()
    assert {"queued", "delivered_at"} <= columns(path, "deliveries")
    assert "card_stat" in columns(path, "owners")
    assert {"name", "categories", "members", "version"} <= columns(path, "cards")
    # the queue is read in index order: version 1's index on (state, updated) is replaced
    with sqlite3.connect(path) as conn:
        indexed = [r[2] for r in conn.execute("PRAGMA index_info(deliveries_by_state)")]
    conn.close()
    assert indexed == ["state", "due", "queued"]


def test_every_owners_me_card_rules_shared_fields_and_seq_are_kept(migrated):
    owners = {o.user: o for o in migrated.owners.with_me_card()}
    assert sorted(owners) == ["alice", "bob", "carol"]
    alice, bob, carol = owners["alice"], owners["bob"], owners["carol"]
    assert (alice.book, alice.href, alice.uid) == ("alice/contacts", "alice.vcf", "alice-me")
    assert (bob.book, bob.href, bob.uid) == ("bob/contacts", "bob.vcf", "bob-me")
    assert (carol.book, carol.href, carol.uid) == ("carol/contacts", "carol.vcf", "carol-me")
    assert alice.shared_fields == ["FN", "N", "TEL", "EMAIL", "ORG"]
    assert bob.shared_fields == ["FN", "N", "TEL", "EMAIL"]  # v1's NULL: the default
    assert (alice.rules, bob.rules, carol.rules) == (["all"], ["user:carol"], [])
    assert (alice.seq, bob.seq, carol.seq) == (2, 1, 1)
    assert alice.withdrawn_fields == [] and alice.notices == [] and alice.discoverability is None
    # the view sent out is kept, and is the me card's view as well (v1 had one view)
    assert alice.view is not None and alice.card_view == alice.view
    assert Entry("TEL", "+1 202 555 0199", ("cell",)) in alice.view.entries
    assert bob.view is not None and Entry("EMAIL", "Bob@Example.org") in bob.view.entries
    assert migrated.outbox.pending_jobs(10) == []


def test_claims_move_to_keys_unverified(migrated):
    keys = {(k.user, k.key): (k.on_card, k.state) for u in ("alice", "bob", "carol")
            for k in migrated.keys.of_user(u)}
    assert keys == {
        ("alice", ALICE_MAIL): (True, "unverified"),
        ("alice", NOW): (True, "unverified"),
        ("alice", OLD): (False, "unverified"),
        ("bob", "mailto:bob@example.org"): (True, "unverified"),
        ("bob", "tel:+12025550102"): (True, "unverified"),
        ("carol", "mailto:carol@example.org"): (True, "unverified"),
        ("carol", "tel:+12025550103"): (True, "unverified"),
    }
    assert migrated.keys.holders(k for _, k in keys) == {}  # nothing was verified in v1
    assert migrated.keys.claimed([OLD, NOW, ALICE_MAIL]) == {NOW, ALICE_MAIL}


def test_copies_delivered_by_version_1_become_migrated_links(migrated):
    assert migrated.links.under("bob") == [
        idx.Link("alice", "bob", "bob/contacts", "ally.vcf", idx.LINK_MIGRATED, V1_TIME)]
    assert migrated.links.under("carol") == [
        idx.Link("alice", "carol", "carol/contacts", CAROLS_COPY, idx.LINK_MIGRATED, V1_TIME)]
    assert migrated.links.get("bob", "carol") is None  # blocked: never delivered
    assert migrated.links.under("alice") == []


def test_deliveries_keep_their_state_and_remember_the_values_written(migrated):
    bob = migrated.outbox.delivery("alice", "bob")
    assert (bob.state, bob.wanted_seq, bob.delivered_seq) == (idx.DELIVERED, 2, 2)
    assert bob.reasons == ["all (contact Bob)"]
    assert bob.delivered_view is not None
    assert bob.written_values == bob.delivered_view.values(REGION) == {
        ("EMAIL", ALICE_MAIL), ("FN", "Alice Archer"), ("N", "Archer;Alice;;;"), ("TEL", NOW)}
    assert migrated.outbox.delivery("alice", "carol").written_values == bob.written_values
    blocked = migrated.outbox.delivery("bob", "carol")
    assert (blocked.state, blocked.delivered_seq, blocked.written_values) == (
        idx.BLOCKED, 0, set())
    assert blocked.intent is None and blocked.delivered_view is None and blocked.due == 0.0
    assert bob.delivered_at == blocked.delivered_at == 0.0  # unknown: never spaced out
    assert migrated.outbox.interrupted() == []
    assert {o.card_stat for o in migrated.owners.with_me_card()} == {""}  # read at start


def test_views_move_to_the_changes_they_belong_to(tmp_path):
    # a delivery that version 1 left one change behind: its view is the older one
    older = View((Entry("FN", "Alice Archer"), Entry("N", "Archer;Alice;;;"),
                  Entry("TEL", "+1 202 555 0101", ("cell",))))
    v1_json = json.dumps([e.to_json() for e in older.entries])  # version 1: entries only
    path = tmp_path / "v1.sqlite"
    load_v1(path, "INSERT INTO deliveries VALUES('alice','dave','delivered',2,1,'dave/contacts',"
                  "'a.vcf','%s','[\"all\"]','','%s');" % (v1_json, V1_TIME))
    index = SQLiteIndex(str(path))
    try:
        owners = {o.user: o for o in index.owners.with_me_card()}
        for user, owner in owners.items():   # every owner's current change
            assert index.owners.view_at(user, owner.seq) == owner.view, user
        assert index.owners.view_at("alice", 1) == older
        dave, bob = index.outbox.delivery("alice", "dave"), index.outbox.delivery("alice", "bob")
        assert dave is not None and bob is not None
        assert (dave.delivered_seq, dave.delivered_view) == (1, older)
        assert bob.delivered_view == owners["alice"].view
        assert ("TEL", OLD) in dave.written_values and ("TEL", NOW) not in dave.written_values

        # the views stay while the deliveries refer to them
        index.outbox.requeue("alice")
        index.outbox.plan(index.outbox.pending_jobs(1)[0], {"bob": ["all (contact Bob)"]})
        dave = index.outbox.delivery("alice", "dave")
        assert dave is not None and dave.delivered_view == older
        assert index.owners.view_at("alice", 2) == owners["alice"].view
    finally:
        index.close()


def test_policies_are_kept(migrated):
    assert migrated.consent.policies("carol") == {"bob": "block"}
    assert migrated.consent.policies("bob") == {}


def test_past_values_come_from_the_view_and_the_previous_view(migrated):
    assert migrated.owners.past_values("alice") == {
        ("EMAIL", ALICE_MAIL), ("FN", "Alice Archer"), ("N", "Archer;Alice;;;"),
        ("TEL", OLD), ("TEL", NOW)}
    assert ("TEL", "tel:+12025550102") in migrated.owners.past_values("bob")


def test_the_migrated_outbox_and_stores_take_new_work(migrated):
    migrated.outbox.requeue("alice", withdraw=True)
    job = migrated.outbox.pending_jobs(10)[0]
    assert (job.owner, job.seq, job.withdraw) == ("alice", 2, True)
    assert job.id > 6  # v1 used job ids up to 6
    migrated.outbox.plan(job, {"bob": ["all (contact Bob)"]})
    assert migrated.outbox.delivery("alice", "bob").state == idx.DELIVERED  # holds seq 2
    assert migrated.outbox.delivery("alice", "carol").state == idx.WITHDRAWING
    migrated.keys.verify("alice", NOW)
    assert migrated.keys.holders([NOW]) == {NOW: "alice"}
    assert migrated.cards.book_mtimes() == {} and not migrated.cards.is_built()


def test_opening_a_migrated_database_again_changes_nothing(tmp_path):
    path = tmp_path / "v1.sqlite"
    load_v1(path)
    first = SQLiteIndex(str(path))
    before = (first.owners.with_me_card(), first.links.under("bob"),
              first.outbox.deliveries("alice"), first.owners.past_values("alice"))
    first.close()
    again = SQLiteIndex(str(path))
    try:
        assert (again.owners.with_me_card(), again.links.under("bob"),
                again.outbox.deliveries("alice"), again.owners.past_values("alice")) == before
        assert user_version(path) == idx.SharingIndex.SCHEMA_VERSION
    finally:
        again.close()


@pytest.mark.parametrize("state, error", [
    ("copy-deleted", "the recipient deleted the copy"),
    ("no-address-book", "the recipient has no address book"),
])
def test_version_1_failure_states_become_failed_with_a_reason(tmp_path, state, error):
    path = tmp_path / "v1.sqlite"
    load_v1(path, "INSERT INTO deliveries VALUES('carol','dave','%s',1,0,'dave/contacts',"
                  "'c.vcf',NULL,'[\"all\"]','','%s');" % (state, V1_TIME))
    index = SQLiteIndex(str(path))
    try:
        dave = index.outbox.delivery("carol", "dave")
        assert dave is not None
        assert (dave.state, dave.error) == (idx.FAILED, error)
        if state == "copy-deleted":
            assert index.links.get("carol", "dave") is None  # the card is gone: no link
    finally:
        index.close()


@pytest.mark.parametrize("version", [idx.SharingIndex.SCHEMA_VERSION + 1, 99])
def test_a_database_of_a_newer_version_is_refused_with_advice(tmp_path, version):
    path = tmp_path / "new.sqlite"
    SQLiteIndex(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = %d" % version)
    conn.close()
    with pytest.raises(SchemaError) as refused:
        SQLiteIndex(str(path))
    message = str(refused.value)
    assert str(path) in message and "version %d" % version in message
    assert "install the newer radicale-mecard" in message and "restore a backup" in message
    assert user_version(path) == version  # left as it was


# -- end to end ----------------------------------------------------------------------

@pytest.fixture
def upgraded(tmp_path):
    """The previous release's collections and database under a server of this release."""
    shutil.copytree(FIXTURES / "v1-data", tmp_path / "collections")
    load_v1(tmp_path / "collections" / ".mecard.sqlite")
    srv = RadicaleServer(tmp_path, USERS, **FAMILY).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_an_upgraded_server_keeps_me_cards_targets_and_links(upgraded):
    alice, bob, carol = (upgraded.client(u) for u in ("alice", "bob", "carol"))
    me = alice.api_ok("GET", "/me")
    assert me["me_card"] == "/alice/contacts/alice.vcf"
    assert me["targets"] == ["all"]
    assert me["shared_fields"] == ["FN", "N", "TEL", "EMAIL", "ORG"]
    assert me["seq"] >= 2
    assert alice.api_ok("GET", "/targets")["targets"] == ["all"]
    assert bob.api_ok("GET", "/me")["me_card"] == "/bob/contacts/bob.vcf"
    assert carol.api_ok("GET", "/me")["policies"] == {"bob": "block"}

    links = bob.api_ok("GET", "/links")["links"]
    assert [(k["owner"], k["card"], k["made_by"]) for k in links] == [
        ("alice", "/bob/contacts/ally.vcf", "migrated")]
    assert carol.copy_of("alice") == CAROLS_COPY
    keys = {k["key"]: k["state"] for k in alice.api_ok("GET", "/keys")["keys"]}
    assert keys[NOW] == keys[ALICE_MAIL] == "unverified"


def test_after_the_upgrade_a_new_number_reaches_the_copies_version_1_wrote(upgraded):
    alice, bob, carol = (upgraded.client(u) for u in ("alice", "bob", "carol"))
    for person in (alice, bob, carol):
        person.verify_me_card()
    settled(alice)
    bob_hrefs, carol_hrefs = bob.hrefs(), carol.hrefs()

    me_card = (FIXTURES / "v1-data/collection-root/alice/contacts/alice.vcf").read_text()
    assert alice.put("alice.vcf", me_card.replace("0199", "0142")).status_code in (201, 204)
    report = settled(alice)

    states = {r["user"]: r["state"] for r in report["recipients"]}
    assert states["bob"] == states["carol"] == "delivered", report
    copy = bob.card("ally.vcf")
    assert "+1 202 555 0142" in copy
    assert "0199" not in copy  # the number v1 wrote there is replaced, not added beside
    for kept in ("FN:Ally", "NICKNAME:Sis", "NOTE:met at the climbing gym",
                 "TEL;TYPE=WORK:+1 202 555 0777", "CATEGORIES:Friends"):
        assert kept in copy
    carols = carol.card(CAROLS_COPY)
    assert "0142" in carols and "0199" not in carols
    assert bob.hrefs() == bob_hrefs and carol.hrefs() == carol_hrefs  # no second card
    # the migrated links were used (a link found anew would say "verified")
    assert [(k["owner"], k["card"], k["made_by"]) for k in bob.api_ok("GET", "/links")["links"]
            ] == [("alice", "/bob/contacts/ally.vcf", "migrated")]
    assert [k["made_by"] for k in carol.api_ok("GET", "/links")["links"]] == ["migrated"]
    update = bob.api_ok("GET", "/history")["history"][0]
    assert (update["owner"], update["card"], update["action"]) == (
        "alice", "/bob/contacts/ally.vcf", "update")
    assert [(c["before"], c["after"]) for c in update["changes"]] == [
        ("TEL;TYPE=CELL:+1 202 555 0199", "TEL;TYPE=CELL:+1 202 555 0142")]


# -- version 3 to 4: a delivery's transient failures are counted ------------------------

def test_a_version_3_database_gains_the_attempts_of_its_deliveries_and_keeps_them(tmp_path):
    """Version 4 adds ``deliveries.attempts`` (retries with backoff); every delivery of
    version 3 starts at 0 and keeps its state, due time and error."""
    path = tmp_path / "v3.sqlite"
    index = SQLiteIndex(str(path))
    index.owners.set_rules("alice", ["all"])
    index.close()
    with sqlite3.connect(path) as conn:  # as version 3 left it: no attempts column
        conn.execute("ALTER TABLE deliveries DROP COLUMN attempts")
        conn.execute("INSERT INTO deliveries (owner, recipient, state, wanted_seq, error, due,"
                     " reasons) VALUES ('alice', 'bob', 'pending', 2, 'held back', 99.5, '[]')")
        conn.execute("PRAGMA user_version = 3")
    conn.close()
    assert "attempts" not in columns(path, "deliveries")
    index = SQLiteIndex(str(path))
    try:
        assert user_version(path) == idx.SharingIndex.SCHEMA_VERSION
        assert "attempts" in columns(path, "deliveries")
        bob = index.outbox.delivery("alice", "bob")
        assert bob is not None
        assert (bob.state, bob.wanted_seq, bob.error, bob.due, bob.attempts) == (
            idx.PENDING, 2, "held back", 99.5, 0)
        assert index.owners.get("alice").rules == ["all"]
        # the new column is written and read back (a retry counts here)
        bob.attempts, bob.due = 3, 120.0
        index.outbox.finish(bob)
        assert index.outbox.delivery("alice", "bob").attempts == 3
    finally:
        index.close()
    again = SQLiteIndex(str(path))  # opening it again migrates nothing
    try:
        assert again.outbox.delivery("alice", "bob").attempts == 3
    finally:
        again.close()


# -- from the previous release: schema version 2 ---------------------------------------------
#
# ``tests/fixtures/schema-v2.sql`` is the sharing database the previous release
# (commit 37ca920, schema version 2) wrote, made by its own code with
# ``tests/fixtures/make_schema_v2.py``, whose docstring tells the story.

V2_TIME = "2026-11-26T09:00:00+00:00"
#: Every table of version 2, all kept by later versions (they only add).
V2_TABLES = ("owners", "owner_views", "owner_values", "keys", "codes", "code_sends", "cards",
             "card_keys", "books", "meta", "links", "policies", "offers", "offer_log", "jobs",
             "deliveries", "written", "history")


def load_v2(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(fixture("schema-v2.sql"))
    conn.close()


def rows(path: Path, table: str, columns: list[str] | None = None) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        names = columns or [r[1] for r in conn.execute("PRAGMA table_info(%s)" % table)]
        found = sorted(conn.execute("SELECT %s FROM %s" % (", ".join(names), table)),
                       key=repr)
    conn.close()
    return found


@pytest.fixture
def from_v2(tmp_path):
    path = tmp_path / "v2.sqlite"
    load_v2(path)
    index = SQLiteIndex(str(path))
    try:
        yield index
    finally:
        index.close()


def test_version_2_migrates_to_the_current_version_and_keeps_every_row(tmp_path):
    path = tmp_path / "v2.sqlite"
    load_v2(path)
    assert user_version(path) == 2
    before = {}
    for table in V2_TABLES:
        names = sorted(columns(path, table))
        before[table] = (names, rows(path, table, names))
    assert all(before[t][1] for t in ("owners", "links", "offers", "history", "deliveries",
                                      "jobs", "keys", "policies", "written", "owner_views"))
    SQLiteIndex(str(path)).close()
    assert user_version(path) == idx.SharingIndex.SCHEMA_VERSION
    for table, (names, old) in before.items():
        assert set(names) <= columns(path, table), table  # later versions only add
        assert rows(path, table, names) == old, table
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = "
                                             "'table'")}
    conn.close()
    assert {"push_topics", "push_subscriptions"} <= tables


def test_every_me_card_and_owner_setting_of_version_2_is_kept(from_v2):
    owners = {o.user: o for o in from_v2.owners.all()}
    assert sorted(owners) == ["alice", "bob", "carol", "dave"]
    alice, bob, carol, dave = (owners[u] for u in ("alice", "bob", "carol", "dave"))
    assert (alice.book, alice.href, alice.uid) == ("alice/contacts", "alice.vcf", "alice-me")
    assert (bob.book, bob.href, bob.uid) == ("bob/contacts", "bob.vcf", "bob-me")
    assert (carol.book, carol.href, carol.uid) == ("carol/contacts", "carol.vcf", "carol-me")
    assert dave.href is None and dave.discoverability == "nobody"
    assert [o.user for o in from_v2.owners.with_me_card()] == ["alice", "bob", "carol"]
    assert alice.shared_fields == ["FN", "N", "TEL", "EMAIL", "ORG"]
    assert (carol.shared_fields, carol.withdrawn_fields) == (["FN", "N", "TEL"], ["EMAIL"])
    assert (alice.rules, bob.rules, carol.rules) == (["all"], ["user:carol", "user:alice"], [])
    assert (alice.seq, bob.seq, carol.seq) == (2, 1, 1)
    assert alice.discoverability == "everyone"
    assert alice.notices == ["tel:+12025550101 was verified by another user"]
    assert alice.view is not None and Entry("TEL", "+1 202 555 0199", ("cell",)) \
        in alice.view.entries
    assert from_v2.owners.views("alice") == {1: from_v2.owners.view_at("alice", 1),
                                             2: alice.view}
    assert ("TEL", OLD) in from_v2.owners.past_values("alice")


def test_keys_and_their_verification_of_version_2_are_kept(from_v2):
    assert {(k.user, k.key): (k.on_card, k.state) for k in from_v2.keys.all()} == {
        ("alice", ALICE_MAIL): (True, "verified"),
        ("alice", OLD): (False, "moved"),
        ("alice", NOW): (True, "unverified"),
        ("bob", "mailto:bob@example.org"): (True, "unverified"),
        ("bob", "tel:+12025550102"): (True, "verified"),
        ("carol", "mailto:carol@example.org"): (True, "unverified"),
        ("carol", "tel:+12025550103"): (True, "verified"),
        ("erin", OLD): (False, "verified"),
    }
    assert from_v2.keys.holders([OLD, ALICE_MAIL]) == {OLD: "erin", ALICE_MAIL: "alice"}
    assert from_v2.keys.code("bob", "mailto:bob@example.org") is not None


def test_every_link_offer_and_policy_of_version_2_is_kept(from_v2):
    assert from_v2.links.all() == [
        idx.Link("alice", "bob", "bob/contacts", "ally.vcf", idx.LINK_VERIFIED, V2_TIME),
        idx.Link("alice", "carol", "carol/contacts", CAROLS_COPY, idx.LINK_CREATED, V2_TIME),
        idx.Link("bob", "carol", "carol/contacts", "bob.vcf", idx.LINK_ACCEPTED, V2_TIME),
        idx.Link("carol", "bob", "bob/contacts", "carol.vcf", idx.LINK_CREATED, V2_TIME)]
    assert from_v2.consent.all_offers() == [
        idx.Offer("alice", "dave", 1, idx.OFFER_REFUSED, None, None, V2_TIME, V2_TIME, None, 1),
        idx.Offer("alice", "erin", 2, idx.OFFER_PENDING, None, None, V2_TIME, V2_TIME),
        idx.Offer("bob", "alice", 1, idx.OFFER_POSTPONED, "alice/contacts", "bob.vcf", V2_TIME,
                  V2_TIME, "2026-12-01T09:00:00+00:00")]
    assert from_v2.consent.all_policies() == [
        ("bob", "alice", "auto"), ("carol", "*", "ask"), ("carol", "bob", "auto"),
        ("dave", "carol", "block")]


def test_every_history_entry_delivery_and_queued_change_of_version_2_is_kept(from_v2):
    history = from_v2.history.all()
    assert [(e.id, e.owner, e.recipient, e.href, e.action) for e in history] == [
        (1, "alice", "bob", "ally.vcf", "update"), (2, "alice", "carol", CAROLS_COPY, "create"),
        (3, "alice", "bob", "ally.vcf", "update"), (4, "bob", "carol", "bob.vcf", "update")]
    assert history[2].changes == (idx.Change("TEL", "TEL;TYPE=CELL:+1 202 555 0101",
                                             "TEL;TYPE=CELL:+1 202 555 0199"),)
    assert all(e.time == V2_TIME for e in history)
    states = {(d.owner, d.recipient): (d.state, d.wanted_seq, d.delivered_seq)
              for d in from_v2.outbox.all_deliveries()}
    assert states == {
        ("alice", "bob"): (idx.DELIVERED, 2, 2), ("alice", "carol"): (idx.PENDING, 2, 1),
        ("alice", "dave"): (idx.OFFERED, 2, 0), ("alice", "erin"): (idx.OFFERED, 2, 0),
        ("bob", "alice"): (idx.OFFERED, 1, 0), ("bob", "carol"): (idx.DELIVERED, 1, 1),
        ("carol", "bob"): (idx.WITHDRAWING, 1, 1)}
    carol = from_v2.outbox.delivery("alice", "carol")
    assert carol is not None and carol.intent is not None  # the interrupted write
    assert carol.intent.href == CAROLS_COPY and carol.intent.after_hash == "h3"
    assert carol.delivered_view == from_v2.owners.view_at("alice", 1)
    assert ("TEL", OLD) in carol.written_values and ("TEL", NOW) in carol.written_values
    assert [d.recipient for d in from_v2.outbox.interrupted()] == ["carol"]
    assert from_v2.outbox.all_jobs() == [idx.Job(4, "bob", 1, ["carol"], False)]
    assert [(d.owner, d.recipient) for d in from_v2.outbox.pending_deliveries(10, 2e9)] == [
        ("alice", "carol"), ("carol", "bob")]


# -- version 4 to 5: invites, guesses per key, claims per day, a user's region ----------

def test_a_version_4_database_gains_the_tables_of_version_5_and_keeps_its_state(tmp_path):
    """Version 5 adds tables (invites, key_guesses, key_claims) and ``owners.region``;
    what version 4 held stays as it was."""
    path = tmp_path / "v4.sqlite"
    index = SQLiteIndex(str(path))
    index.owners.set_rules("alice", ["all"])
    index.close()
    with sqlite3.connect(path) as conn:  # as version 4 left it
        for table in ("invites", "invite_uses", "key_guesses", "key_claims"):
            conn.execute("DROP TABLE %s" % table)
        conn.execute("ALTER TABLE owners DROP COLUMN region")
        conn.execute("PRAGMA user_version = 4")
    conn.close()
    assert "region" not in columns(path, "owners")
    index = SQLiteIndex(str(path))
    try:
        assert user_version(path) == idx.SharingIndex.SCHEMA_VERSION
        assert "region" in columns(path, "owners")
        for table in ("invites", "invite_uses", "key_guesses", "key_claims"):
            assert columns(path, table), table
        assert index.owners.get("alice").rules == ["all"]
    finally:
        index.close()


# -- version 5 to 6: undo, notifications, audiences --------------------------------------

V6_TABLES = ("history_undone", "undone_values", "notify_settings", "notify_events",
             "notify_batches", "notify_secret")


def test_a_version_5_database_gains_the_tables_of_version_6_and_keeps_its_state(tmp_path):
    """Version 6 adds the pages' tables and ``owners.audiences``; what version 5 held
    (rules, history) stays as it was, and the new state starts empty."""
    path = tmp_path / "v5.sqlite"
    index = SQLiteIndex(str(path))
    index.owners.set_rules("alice", ["all", "group:family"])
    index.close()
    with sqlite3.connect(path) as conn:  # as version 5 left it
        for table in V6_TABLES:
            conn.execute("DROP TABLE %s" % table)
        for name in ("undone_values_by_pair", "history_by_owner", "history_by_time"):
            conn.execute("DROP INDEX IF EXISTS %s" % name)
        conn.execute("ALTER TABLE owners DROP COLUMN audiences")
        conn.execute("PRAGMA user_version = 5")
    conn.close()
    index = SQLiteIndex(str(path))
    try:
        assert user_version(path) == idx.SharingIndex.SCHEMA_VERSION
        assert "audiences" in columns(path, "owners")
        for table in V6_TABLES:
            assert columns(path, table), table
        alice = index.owners.get("alice")
        assert alice.rules == ["all", "group:family"] and not alice.audiences
    finally:
        index.close()


# -- version 6 to 7: several processes on one database ----------------------------------

def test_a_version_6_database_gains_leases_limits_and_claims_and_keeps_its_queue(tmp_path):
    """Version 7 adds the leases on duties, the shared rate limits and the claims of
    deliveries; a delivery waiting in version 6 waits on, claimed by nobody."""
    path = tmp_path / "v6.sqlite"
    index = SQLiteIndex(str(path))
    v = View((Entry("FN", "Alice"), Entry("TEL", "+1 202 555 0111")), DEFAULT_SHARED_FIELDS)
    index.owners.record_view("alice", v, v, v.values("US"))
    index.outbox.plan(index.outbox.pending_jobs(1)[0], {"bob": ["user:bob"]})
    index.close()
    with sqlite3.connect(path) as conn:  # as version 6 left it
        conn.execute("DROP TABLE leases")
        conn.execute("DROP TABLE limits")
        conn.execute("DROP INDEX deliveries_by_lease")
        conn.execute("ALTER TABLE deliveries DROP COLUMN lease_holder")
        conn.execute("ALTER TABLE deliveries DROP COLUMN lease_until")
        conn.execute("PRAGMA user_version = 6")
    conn.close()
    assert "lease_until" not in columns(path, "deliveries")
    index = SQLiteIndex(str(path))
    try:
        assert user_version(path) == 7
        assert {"lease_holder", "lease_until"} <= columns(path, "deliveries")
        assert columns(path, "leases") and columns(path, "limits")
        now = time.time()
        found = index.outbox.claim("host:1:a", 10, now, 60)
        assert [(d.owner, d.recipient, d.state) for d in found] == [("alice", "bob", "pending")]
        assert index.leases.take("digest", "host:1:a", 60, now)
        assert index.limits.take("resolve", "alice", 1, 1, 1.0, now) == 0.0
    finally:
        index.close()


# -- the schema check looks at the tables and columns, not only the version number --------

def lacking(path: Path, sql: str) -> None:
    """A database of the current version, then changed by hand (``sql``): its version
    number still says current."""
    SQLiteIndex(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute(sql)
    conn.close()
    assert user_version(path) == idx.SharingIndex.SCHEMA_VERSION


@pytest.mark.parametrize("sql, missing", [
    ("ALTER TABLE owners DROP COLUMN region", "column owners.region"),
    ("ALTER TABLE deliveries DROP COLUMN attempts", "column deliveries.attempts"),
    ("DROP TABLE invites", "table invites"),
])
def test_a_database_that_lacks_a_column_of_its_version_is_refused_with_what_is_missing(
        tmp_path, sql, missing):
    path = tmp_path / "x.sqlite"
    lacking(path, sql)
    with pytest.raises(SchemaError) as refused:
        SQLiteIndex(str(path))
    message = str(refused.value)
    assert message.startswith("the sharing database %s says schema version %d but lacks %s:"
                              % (path, idx.SharingIndex.SCHEMA_VERSION, missing)), message
    assert "\n" not in message and "put back the copy from before the upgrade" in message
    # positive control: a whole database opens, also with a column of its own added by hand
    whole = tmp_path / "whole.sqlite"
    lacking(whole, "ALTER TABLE owners ADD COLUMN note_of_the_admin TEXT")
    SQLiteIndex(str(whole)).close()


def test_a_database_that_lacks_a_column_stops_the_server_at_start_and_the_admin(tmp_path):
    """Refused at start, with the message in the log, never a 500 at some later request;
    the admin command says the same in one line."""
    from tests.test_backup import refused as refused_line
    from tests.test_backup import run_admin
    srv = RadicaleServer(tmp_path, USERS)
    (tmp_path / "collections").mkdir()
    path = tmp_path / "collections" / ".mecard.sqlite"
    lacking(path, "ALTER TABLE owners DROP COLUMN region")
    with pytest.raises(RuntimeError) as exited:
        srv.start()
    try:
        said = str(exited.value)
        assert srv.process is not None and srv.process.returncode not in (0, None)
        assert "says schema version %d but lacks column owners.region" \
            % idx.SharingIndex.SCHEMA_VERSION in said
        for command in (["status"], ["schema"], ["check"], ["keys", "alice"]):
            line = refused_line(run_admin(srv, *command))
            assert "lacks column owners.region" in line, (command, line)
    finally:
        srv.stop()
    # positive control: the same database with the column back serves
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE owners ADD COLUMN region TEXT")
    conn.close()
    srv = RadicaleServer(tmp_path, USERS).start()
    try:
        srv.client("alice").login()
        assert srv.client("alice").api_ok("GET", "/me")["me_card"] is None
    finally:
        srv.stop()
