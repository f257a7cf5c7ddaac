# SPDX-License-Identifier: GPL-3.0-or-later
"""The SQLite schema, its version (``PRAGMA user_version``) and forward migrations.

Version 1 is the schema of the first release (it carried no version number:
``user_version`` 0 with an ``owners`` table); version 2 added keys, links,
consent and history; version 3 the WebDAV-Push topics and subscriptions; version 4
counts a delivery's transient failures (``deliveries.attempts``, for retries with
backoff); version 5 adds invites, wrong verification answers per key, the keys an
owner put on a me card per day, a user's own region (``owners.region``) and the UID of
a linked card (``links.uid``), an owner's first share of offers (``first_shares``),
the rollbacks of a copy put right (``deliveries.repairs``) and the WebDAV-Push
messages not sent yet (``push_queue``); version 6 what the pages need: undone
history entries and the owner values a recipient undid, notification settings and
their durable batches, and a field set per target rule (audiences); version 7 what lets
several processes share the index: leases on duties, rate limits' buckets, and
deliveries claimed with leases.  A database made by newer code than this is
refused with a message, never guessed at.
"""

from __future__ import annotations

import functools

from radicale.log import logger

from radicale_plugin.index.records import LINK_MIGRATED
from radicale_plugin.index.sql import claims, leases, limits, push, push_claims
from radicale_plugin.index.sqlite.database import Database
from radicale_plugin.vcard.view import View

_TABLES_V2 = """
CREATE TABLE IF NOT EXISTS owners (
    user TEXT PRIMARY KEY, book TEXT, href TEXT, uid TEXT,
    shared_fields TEXT, rules TEXT, view TEXT, seq INTEGER NOT NULL DEFAULT 0,
    withdrawn_fields TEXT, card_view TEXT, discoverability TEXT, notices TEXT, card_stat TEXT);
CREATE TABLE IF NOT EXISTS owner_views (
    owner TEXT NOT NULL, seq INTEGER NOT NULL, view TEXT NOT NULL, PRIMARY KEY (owner, seq));
CREATE TABLE IF NOT EXISTS owner_values (
    owner TEXT NOT NULL, field TEXT NOT NULL, value_key TEXT NOT NULL,
    PRIMARY KEY (owner, field, value_key));
CREATE TABLE IF NOT EXISTS keys (
    user TEXT NOT NULL, key TEXT NOT NULL, on_card INTEGER NOT NULL DEFAULT 0,
    verified TEXT, lost TEXT, PRIMARY KEY (user, key));
CREATE INDEX IF NOT EXISTS keys_by_key ON keys (key);
CREATE UNIQUE INDEX IF NOT EXISTS keys_one_holder ON keys (key)
    WHERE verified IS NOT NULL AND lost IS NULL;
CREATE TABLE IF NOT EXISTS codes (
    user TEXT NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL,
    expires REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (user, key));
CREATE TABLE IF NOT EXISTS code_sends (user TEXT NOT NULL, key TEXT NOT NULL, time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS code_sends_by_user ON code_sends (user, time);
CREATE INDEX IF NOT EXISTS code_sends_by_key ON code_sends (key, time);
CREATE TABLE IF NOT EXISTS cards (
    book TEXT NOT NULL, href TEXT NOT NULL, user TEXT NOT NULL, uid TEXT,
    is_group INTEGER NOT NULL DEFAULT 0, name TEXT, categories TEXT, members TEXT,
    version TEXT, PRIMARY KEY (book, href));
CREATE INDEX IF NOT EXISTS cards_by_user ON cards (user);
CREATE INDEX IF NOT EXISTS cards_by_uid ON cards (book, uid);
CREATE TABLE IF NOT EXISTS card_keys (
    user TEXT NOT NULL, key TEXT NOT NULL, book TEXT NOT NULL, href TEXT NOT NULL,
    PRIMARY KEY (user, key, book, href));
CREATE INDEX IF NOT EXISTS card_keys_by_card ON card_keys (book, href);
CREATE TABLE IF NOT EXISTS books (path TEXT PRIMARY KEY, mtime INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS links (
    owner TEXT NOT NULL, recipient TEXT NOT NULL, book TEXT NOT NULL, href TEXT NOT NULL,
    made_by TEXT NOT NULL, made TEXT, PRIMARY KEY (owner, recipient));
CREATE UNIQUE INDEX IF NOT EXISTS links_by_card ON links (book, href);
CREATE TABLE IF NOT EXISTS policies (
    recipient TEXT NOT NULL, owner TEXT NOT NULL, policy TEXT NOT NULL,
    PRIMARY KEY (recipient, owner));
CREATE TABLE IF NOT EXISTS offers (
    owner TEXT NOT NULL, recipient TEXT NOT NULL, seq INTEGER NOT NULL,
    state TEXT NOT NULL, book TEXT, href TEXT, created TEXT, first_offered TEXT,
    until TEXT, refused_seq INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (owner, recipient));
CREATE INDEX IF NOT EXISTS offers_by_recipient ON offers (recipient);
CREATE TABLE IF NOT EXISTS offer_log (owner TEXT NOT NULL, recipient TEXT NOT NULL,
    time TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS offer_log_by_owner ON offer_log (owner, time);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL,
    seq INTEGER NOT NULL, created TEXT NOT NULL, only_recipients TEXT,
    withdraw INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, id);
CREATE TABLE IF NOT EXISTS deliveries (
    owner TEXT NOT NULL, recipient TEXT NOT NULL, state TEXT NOT NULL,
    wanted_seq INTEGER NOT NULL, delivered_seq INTEGER NOT NULL DEFAULT 0,
    reasons TEXT, error TEXT, updated TEXT, intent TEXT,
    due REAL NOT NULL DEFAULT 0, queued INTEGER NOT NULL DEFAULT 0,
    delivered_at REAL NOT NULL DEFAULT 0, PRIMARY KEY (owner, recipient));
CREATE TABLE IF NOT EXISTS written (
    owner TEXT NOT NULL, recipient TEXT NOT NULL, field TEXT NOT NULL, value_key TEXT NOT NULL,
    PRIMARY KEY (owner, recipient, field, value_key));
CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (state, due, queued);
CREATE INDEX IF NOT EXISTS deliveries_by_recipient ON deliveries (recipient);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, owner TEXT NOT NULL,
    recipient TEXT NOT NULL, book TEXT NOT NULL, href TEXT NOT NULL,
    action TEXT NOT NULL, changes TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_by_recipient ON history (recipient, id);
"""

_V1_STATES = {"copy-deleted": ("failed", "the recipient deleted the copy"),
              "no-address-book": ("failed", "the recipient has no address book")}


class SchemaError(RuntimeError):
    """The database cannot be used by this version of the code."""


def version_of(db: Database) -> int:
    """The schema version of the database (0: empty)."""
    version = db.value("PRAGMA user_version")
    if version:
        return int(version)
    has_owners = db.value("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' "
                          "AND name = 'owners'")
    return 1 if has_owners else 0


def migrate(db: Database, region: str, target: int) -> None:
    """Bring the database to ``target``, or refuse a newer one or one that lacks a table
    or column of its version (:func:`check_columns`)."""
    _migrate(db, region, target)
    check_columns(db, target)


def check_columns(db: Database, target: int) -> None:
    """Refuse a database whose tables lack what schema ``target`` has.

    ``user_version`` alone can lie: a file changed by hand, a migration
    interrupted outside a transaction, a copy of a half-restored backup.  Such a
    database would fail at some later request with a 500; it is refused here, in
    one line naming what is missing.  Columns and tables more than the schema's
    are left alone.
    """
    want = _expected_columns(target)
    have = _columns(db)
    missing = ["table %s" % t for t in sorted(want) if t not in have]
    missing += ["column %s.%s" % (t, c) for t in sorted(want) if t in have
                for c in sorted(want[t] - have[t])]
    if missing:
        raise SchemaError(
            "the sharing database %s says schema version %d but lacks %s%s: it was not made "
            "by radicale-mecard's migrations (changed by hand, or a broken copy); put back the "
            "copy from before the upgrade, or import the last export into a new database"
            % (db.path, version_of(db), ", ".join(missing[:5]),
               " and %d more" % (len(missing) - 5) if len(missing) > 5 else ""))


def _columns(db: Database) -> dict[str, set[str]]:
    tables = [r[0] for r in db.rows("SELECT name FROM sqlite_master WHERE type = 'table' "
                                    "AND name NOT LIKE 'sqlite_%'")]
    return {t: {r[1] for r in db.rows("PRAGMA table_info(\"%s\")" % t.replace('"', '""'))}
            for t in tables}


@functools.lru_cache(maxsize=None)
def _expected_columns(target: int) -> dict[str, frozenset[str]]:
    """The tables and columns of schema ``target``, as the migrations make them."""
    db = Database(":memory:")
    try:
        _migrate(db, "US", target)
        return {t: frozenset(c) for t, c in _columns(db).items()}
    finally:
        db.close()


def _migrate(db: Database, region: str, target: int) -> None:
    version = version_of(db)
    if version > target:
        raise SchemaError(
            "the sharing database %s has schema version %d, but this radicale-mecard "
            "knows version %d at most: install the newer radicale-mecard that wrote it, "
            "or restore a backup" % (db.path, version, target))
    if version == target:
        return
    with db.transaction():
        if version == 0:
            for statement in _statements(_TABLES_V2):
                db.execute(statement)
        if version == 1:
            _v1_to_v2(db, region)
        if version < 3:
            _v2_to_v3(db)
        if version < 4:
            _v3_to_v4(db)
        if version < 5:
            _v4_to_v5(db)
        if version < 6:
            _v5_to_v6(db)
        if version < 7:
            _v6_to_v7(db)
        db.execute("PRAGMA user_version = %d" % target)
    if version:
        logger.info("Sharing database %s migrated from schema version %d to %d",
                    db.path, version, target)


def _statements(script: str) -> list[str]:
    text = "\n".join(ln for ln in script.splitlines() if not ln.lstrip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def _v2_to_v3(db: Database) -> None:
    # new tables only: nothing of version 2 changes
    for statement in _statements(push.TABLES):
        db.execute(statement)


def _v3_to_v4(db: Database) -> None:
    # one column with a default: every delivery of version 3 has had no transient failure
    # counted yet.  Checked first, as a database rolled back to an older version number by
    # hand (tests do) may have it already.
    if "attempts" not in {r[1] for r in db.rows("PRAGMA table_info(deliveries)")}:
        db.execute("ALTER TABLE deliveries ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")


#: Added by schema version 5.
TABLES_V5 = """
CREATE TABLE IF NOT EXISTS invites (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL, expires REAL, max_uses INTEGER, uses INTEGER NOT NULL DEFAULT 0,
    revoked REAL, label TEXT);
CREATE INDEX IF NOT EXISTS invites_by_owner ON invites (owner);
CREATE TABLE IF NOT EXISTS invite_uses (
    invite TEXT NOT NULL, recipient TEXT NOT NULL, time REAL NOT NULL,
    PRIMARY KEY (invite, recipient));
CREATE TABLE IF NOT EXISTS key_guesses (key TEXT NOT NULL, user TEXT NOT NULL,
    time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS key_guesses_by_key ON key_guesses (key, time);
CREATE TABLE IF NOT EXISTS key_claims (user TEXT NOT NULL, key TEXT NOT NULL,
    time REAL NOT NULL, PRIMARY KEY (user, key));
CREATE INDEX IF NOT EXISTS key_claims_by_user ON key_claims (user, time);
CREATE INDEX IF NOT EXISTS offer_log_by_time ON offer_log (time);
CREATE TABLE IF NOT EXISTS first_shares (owner TEXT PRIMARY KEY, seq INTEGER NOT NULL,
    time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS push_queue (subscription TEXT PRIMARY KEY, book TEXT NOT NULL,
    due REAL NOT NULL, attempt INTEGER NOT NULL);
"""


def _v4_to_v5(db: Database) -> None:
    # new tables, and one nullable column: a user without a region of their own
    for statement in _statements(TABLES_V5):
        db.execute(statement)
    if "region" not in {r[1] for r in db.rows("PRAGMA table_info(owners)")}:
        db.execute("ALTER TABLE owners ADD COLUMN region TEXT")
    if "repairs" not in {r[1] for r in db.rows("PRAGMA table_info(deliveries)")}:
        # rollbacks of a copy put right for the current change: none counted before
        db.execute("ALTER TABLE deliveries ADD COLUMN repairs INTEGER NOT NULL DEFAULT 0")
    if "uid" not in {r[1] for r in db.rows("PRAGMA table_info(links)")}:
        # a link belongs to the card (its UID), not to the href: the links of version 4
        # take the UID the card-key index knows (none for a card already gone)
        db.execute("ALTER TABLE links ADD COLUMN uid TEXT")
        db.execute("UPDATE links SET uid = (SELECT cards.uid FROM cards WHERE "
                   "cards.book = links.book AND cards.href = links.href)")


#: Added by schema version 6: one block per part, each in its own words.
TABLES_V6 = """
-- history and undo (delivery/history.py, recipient/undo.py)
CREATE TABLE IF NOT EXISTS history_undone (
    entry INTEGER PRIMARY KEY, time TEXT NOT NULL, undo_entry INTEGER NOT NULL DEFAULT 0,
    answer TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS undone_values (
    id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, recipient TEXT NOT NULL,
    field TEXT NOT NULL, value_key TEXT NOT NULL, kept TEXT NOT NULL,
    entry INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS undone_values_by_pair ON undone_values (owner, recipient);
CREATE INDEX IF NOT EXISTS history_by_owner ON history (recipient, owner, id);
CREATE INDEX IF NOT EXISTS history_by_time ON history (time);

-- notifications (notify/, index/sqlite/notify.py)
CREATE TABLE IF NOT EXISTS notify_settings (user TEXT PRIMARY KEY, email TEXT,
    address TEXT, base TEXT);
CREATE TABLE IF NOT EXISTS notify_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL, owner TEXT NOT NULL,
    kind TEXT NOT NULL, seq INTEGER NOT NULL, time REAL NOT NULL, due REAL NOT NULL,
    base TEXT, batch INTEGER);
CREATE INDEX IF NOT EXISTS notify_events_waiting ON notify_events (batch, recipient, time);
CREATE TABLE IF NOT EXISTS notify_batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL, address TEXT NOT NULL,
    state TEXT NOT NULL, created REAL NOT NULL, due REAL NOT NULL, message TEXT NOT NULL,
    message_id TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, sent REAL,
    error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS notify_batches_by_state ON notify_batches (state, due);
CREATE INDEX IF NOT EXISTS notify_batches_by_recipient ON notify_batches (recipient, created);
CREATE TABLE IF NOT EXISTS notify_secret (id INTEGER PRIMARY KEY CHECK (id = 1),
    secret TEXT NOT NULL);

-- audiences: a field set per target rule (owner/audiences.py)
"""


def _v5_to_v6(db: Database) -> None:
    for statement in _statements(TABLES_V6):
        db.execute(statement)
    # columns added to tables of earlier versions (checked first: a database rolled back
    # to an older version number by hand, as tests do, may have them already)
    for table, column, kind in V6_COLUMNS:
        if column not in {r[1] for r in db.rows("PRAGMA table_info(%s)" % table)}:
            db.execute("ALTER TABLE %s ADD COLUMN %s %s" % (table, column, kind))


#: (table, column, type) added by schema version 6 to tables of earlier versions.
V6_COLUMNS: list[tuple[str, str, str]] = [
    # audiences: the owner's field set per target rule, JSON (owner/audiences.py)
    ("owners", "audiences", "TEXT"),
]


def _v6_to_v7(db: Database) -> None:
    # several processes on one index: leases on duties, shared rate limits, deliveries and
    # push messages held per process (the same statements PostgreSQL runs)
    for table, column, kind in claims.COLUMNS + push_claims.COLUMNS:
        if column not in {r[1] for r in db.rows("PRAGMA table_info(%s)" % table)}:
            db.execute("ALTER TABLE %s ADD COLUMN %s %s" % (table, column, kind))
    for script in (leases.TABLES, limits.TABLES, claims.TABLES):
        for statement in _statements(script):
            db.execute(statement)


def _v1_to_v2(db: Database, region: str) -> None:
    for column in ("withdrawn_fields", "card_view", "discoverability", "notices", "card_stat"):
        db.execute("ALTER TABLE owners ADD COLUMN %s TEXT" % column)
    for column, kind in (("intent", "TEXT"),
                         ("due", "REAL NOT NULL DEFAULT 0"),
                         ("queued", "INTEGER NOT NULL DEFAULT 0"),
                         ("delivered_at", "REAL NOT NULL DEFAULT 0")):
        db.execute("ALTER TABLE deliveries ADD COLUMN %s %s" % (column, kind))
    db.execute("DROP INDEX IF EXISTS deliveries_by_state")
    db.execute("ALTER TABLE jobs ADD COLUMN withdraw INTEGER NOT NULL DEFAULT 0")
    for statement in _statements(_TABLES_V2):
        db.execute(statement)
    # version 1 kept one view: the me card's shared fields as written
    db.execute("UPDATE owners SET card_view = view")
    db.execute("INSERT OR IGNORE INTO owner_views (owner, seq, view) "
               "SELECT user, seq, view FROM owners WHERE view IS NOT NULL")
    # claims move over; nothing was verified in version 1
    db.execute("INSERT OR IGNORE INTO keys (user, key, on_card) "
               "SELECT owner, key, current FROM owner_keys")
    db.execute("DROP TABLE owner_keys")
    for row in db.rows("SELECT user, view, prev_view FROM owners"):
        values: set[tuple[str, str]] = set()
        for text in (row["view"], row["prev_view"]):
            view = View.from_json(text)
            if view is not None:
                values |= view.values(region)
        db.executemany("INSERT OR IGNORE INTO owner_values (owner, field, value_key) "
                       "VALUES (?, ?, ?)", [(row["user"], f, k) for f, k in sorted(values)])
    for row in db.rows("SELECT owner, recipient, state, delivered_seq, book, href, "
                       "delivered_view, updated FROM deliveries"):
        view = View.from_json(row["delivered_view"])
        if view is not None:
            db.execute("INSERT OR IGNORE INTO owner_views (owner, seq, view) VALUES (?, ?, ?)",
                       (row["owner"], row["delivered_seq"], view.to_json()))
            db.executemany("INSERT OR IGNORE INTO written (owner, recipient, field, value_key) "
                           "VALUES (?, ?, ?, ?)", [(row["owner"], row["recipient"], f, k)
                                                   for f, k in sorted(view.values(region))])
        state, error = _V1_STATES.get(row["state"], (row["state"], None))
        db.execute("UPDATE deliveries SET state = ?, error = COALESCE(?, error) "
                   "WHERE owner = ? AND recipient = ?",
                   (state, error, row["owner"], row["recipient"]))
        if row["href"] and row["state"] != "copy-deleted":
            # found by version 1's matching; kept so copies stay where they are
            db.execute("INSERT OR IGNORE INTO links (owner, recipient, book, href, made_by, "
                       "made) VALUES (?, ?, ?, ?, ?, ?)",
                       (row["owner"], row["recipient"], row["book"], row["href"],
                        LINK_MIGRATED, row["updated"]))
    # what version 2 keeps elsewhere (links, owner_views) or no longer needs
    for table, column in (("deliveries", "book"), ("deliveries", "href"),
                          ("deliveries", "delivered_view"), ("owners", "prev_view"),
                          ("owners", "skipped")):
        db.execute("ALTER TABLE %s DROP COLUMN %s" % (table, column))
