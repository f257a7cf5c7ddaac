# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark worlds on PostgreSQL: the same users, books and cards as :mod:`bench.world`.

:func:`build` writes the rows Radicale's storage on PostgreSQL would have written (a
principal and a book ``contacts`` per user, ``N`` cards each, every card a numbered
change of its book) straight into the ``dav_*`` tables with ``COPY``, after the
storage's and the sharing index's schemas were made by their own migrations.  The
card-key index is then built by the server at its first start, from the books, as the
file world's is (:meth:`PgWorld.ready` waits for it).  Everything after that goes
through HTTP, as in the file world.

A :class:`PgWorld` is one Radicale process on the database; several of them on one
``root`` and one DSN (each its own ``name``: config, log and port) are several
processes serving the same users.  :func:`cluster` starts a throwaway PostgreSQL
(:class:`tests.postgres.Cluster`) with ``fsync`` on, as a production server (the test
suite's cluster turns it off), so that a copy's commit costs what it would.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import psycopg

from bench.world import World, card, me_card, number

#: The throwaway cluster's settings for benchmarks: durable commits as in production,
#: room for the pools of several Radicale processes, and pg_stat_statements.
BENCH_SETTINGS = {"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on",
                  "shared_buffers": "128MB", "max_connections": "300",
                  "listen_addresses": "127.0.0.1", "log_min_messages": "warning",
                  "shared_preload_libraries": "pg_stat_statements"}


#: The role the bench reads the database as, so that PostgreSQL's statistics of
#: statements (``pg_stat_statements.userid``) tell its own reads from the servers'.
OBSERVER = "bench_observer"


def cluster() -> Any:
    """A started throwaway PostgreSQL for benchmarks (stop it with ``.stop()``)."""
    from tests.postgres import Cluster
    found = Cluster()
    found.SETTINGS = dict(BENCH_SETTINGS)  # type: ignore[misc]
    found.start()
    with psycopg.connect(found.dsn(), autocommit=True) as conn:
        conn.execute("CREATE ROLE %s SUPERUSER LOGIN" % OBSERVER)
    return found


@dataclass
class PgWorld(World):
    """A Radicale process on the world's database (``name``: its config, log and port)."""

    dsn: str = ""
    name: str = "radicale"
    _conn: Any = field(default=None, repr=False)
    #: statements this object sent (each one a transaction PostgreSQL counts)
    statements: int = 0

    @property
    def log(self) -> Path:
        return self.root / (self.name + ".log")

    def config(self) -> Path:
        path = self.root / (self.name + ".conf")
        options = {"mecard_preauthorize": "*", "mecard_default_discoverability": "everyone",
                   "mecard_offers_per_day": "1000000000", "mecard_new_keys_per_day": "1000000",
                   **{k: v for k, v in self.options.items() if not k.startswith("_")}}
        path.write_text(
            "[server]\nhosts = 127.0.0.1:%d\nmax_connections = 64\n"
            "[auth]\ntype = htpasswd\nhtpasswd_filename = %s\nhtpasswd_encryption = plain\n"
            "htpasswd_cache = True\ndelay = 0\n"
            "[rights]\ntype = owner_only\n"
            "[storage]\ntype = radicale_plugin.storage.postgres\n"
            "postgresql_dsn = %s\nfilesystem_folder = %s\n%s"
            "[web]\ntype = radicale_plugin.web\n"
            "[logging]\nlevel = %s\n" % (
                self.port, self.root / "users", self.dsn, self.folder,
                "".join("%s = %s\n" % kv for kv in options.items()),
                self.options.get("_level", "info")))
        return path

    def beside(self, name: str) -> "PgWorld":
        """Another process on the same world and database."""
        return PgWorld(self.root, self.recipients, self.cards, dict(self.options),
                       dsn=self.dsn, name=name)

    # -- reading the database beside the server (autocommit: one statement, one xact) --
    def sql(self, statement: str, *args: Any) -> list[tuple]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn + " user=" + OBSERVER, autocommit=True)
        self.statements += 1
        cursor = self._conn.execute(statement, args)
        return cursor.fetchall() if cursor.description is not None else []

    def backend_pid(self) -> int:
        """The PostgreSQL backend serving :meth:`sql` (left out of the server's CPU)."""
        return int(self.sql("SELECT pg_backend_pid()")[0][0])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def ready(self, timeout: float = 3600) -> "PgWorld":
        """Wait until the server built the card-key index from the books (first start)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.start_check_failed():
                raise RuntimeError("the fan-out's start-up check failed: see %s" % self.log)
            found = self.sql("SELECT value FROM meta WHERE name = 'card_index'")
            if found and found[0][0] == "built":
                return self
            time.sleep(0.1)
        raise RuntimeError("the card-key index was not built")

    def delivered(self, seq: int, states: tuple[str, ...] = ("delivered",)) -> int:
        """How many of Alice's recipients hold (or were offered) change ``seq``."""
        if states == ("offered",):
            return int(self.sql("SELECT COUNT(*) FROM offers WHERE owner = 'alice' AND "
                                "seq >= %s", seq)[0][0])
        return int(self.sql(
            "SELECT COUNT(*) FROM deliveries WHERE owner = 'alice' AND delivered_seq >= %s "
            "AND state = ANY(%s)", seq, list(states))[0][0])

    def seq(self) -> int:
        return int(self.sql("SELECT seq FROM owners WHERE \"user\" = 'alice'")[0][0])


def _items(users: list[str], recipients: list[str], cards: int
           ) -> Iterator[tuple[str, str, str, str]]:
    """(book, href, uid, text) of every card of the world, as :func:`bench.world.build`."""
    yield "alice/contacts", "alice.vcf", "alice-me", me_card(number(999999))
    for i, user in enumerate(recipients):
        yield ("alice/contacts", "c-%s.vcf" % user, "c-" + user,
               card("c-" + user, "Friend %s" % user, "TEL;TYPE=CELL:" + number(i)))
        yield ("%s/contacts" % user, "alice.vcf", user + "-alice", card(
            user + "-alice", "Ally", "TEL;TYPE=CELL:" + number(999999),
            "NICKNAME:Sis", "NOTE:met at the gym"))
        for n in range(cards - 1):
            uid = "%s-c%02d" % (user, n)
            yield ("%s/contacts" % user, "c%02d.vcf" % n, uid, card(
                uid, "Contact %d of %s" % (n, user), "TEL;TYPE=CELL:+1 303 555 %04d" % n,
                "EMAIL:c%d@example.net" % n))
    yield "other/contacts", "x.vcf", "x", card("x", "X", "TEL:+1 404 555 0000")


def build(root: Path, dsn: str, recipients: int, cards: int = 50) -> PgWorld:
    """Write the users, books and cards of a world into an empty database (no sharing
    state yet); the users file in ``root``."""
    import radicale.item as radicale_item
    from radicale.item import filter as radicale_filter

    from radicale_plugin.index.postgres import schema as index_schema
    from radicale_plugin.index.postgres.database import Database
    from radicale_plugin.storage.postgres import schema as storage_schema

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    world = PgWorld(root, recipients, cards, dsn=dsn)
    users = ["alice", "other"] + world.users()
    (root / "users").write_text("".join("%s:%s-pw\n" % (u, u) for u in users))
    db = Database(dsn, 1, 2)
    try:  # the schemas as the server makes them, through their own migrations
        storage_schema.migrate(db)
        index_schema.migrate(db)
    finally:
        db.close()
    now = time.time()
    book_props = json.dumps({"D:displayname": "Contacts", "tag": "VADDRESSBOOK"},
                            sort_keys=True)
    ids: dict[str, int] = {}
    collections = []
    for user in users:
        for path, parent, props, tag in ((user, "", "{}", ""),
                                         (user + "/contacts", user, book_props, "VADDRESSBOOK")):
            ids[path] = len(ids) + 1
            collections.append([ids[path], path, parent, props, tag, secrets.token_hex(8)])
    counts: dict[str, int] = {}
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:  # one transaction
        with cur.copy("COPY dav_collections (id, path, parent, props, tag, incarnation, "
                      "sync, oldest, modified) FROM STDIN") as rows:
            for row in collections:
                rows.write_row((*row, 0, 0, now))
        changes = []
        with cur.copy("COPY dav_items (collection, href, uid, text, etag, name, component, "
                      "start_time, end_time, modified) FROM STDIN") as rows:
            for book, href, uid, text in _items(users, world.users(), cards):
                counts[book] = counts.get(book, 0) + 1
                rows.write_row((ids[book], href, uid, text, radicale_item.get_etag(text),
                                "VCARD", "", radicale_filter.TIMESTAMP_MIN,
                                radicale_filter.TIMESTAMP_MAX, now))
                changes.append((ids[book], href, counts[book], 0, now))
        with cur.copy("COPY dav_changes (collection, href, change, deleted, time) "
                      "FROM STDIN") as rows:
            for change in changes:
                rows.write_row(change)
        # each book's last change number is its count of cards (the sync token's number)
        cur.executemany("UPDATE dav_collections SET sync = %s WHERE path = %s",
                        [(n, book) for book, n in counts.items()])
        cur.execute("SELECT setval(pg_get_serial_sequence('dav_collections', 'id'), %s)",
                    (len(ids),))
        cur.execute("ANALYZE")
    return world


def verify_recipients(world: PgWorld) -> None:
    """Verify each recipient's number, and Alice's old one, straight in the index (as the
    admin command would; before the server starts, so nothing needs refreshing)."""
    from radicale_plugin.index.postgres import PostgresIndex
    from radicale_plugin.vcard.matching import phone_key
    index = PostgresIndex(world.dsn, 1, 2)
    try:
        with index.transaction():
            for user, phone in [("alice", number(999999))] + [
                    (u, number(i)) for i, u in enumerate(world.users())]:
                key = phone_key(phone)
                assert key is not None
                index.keys.verify(user, key)
    finally:
        index.close()
