# SPDX-License-Identifier: GPL-3.0-or-later
"""The PostgreSQL side opened for a migration or its check (:class:`Target`): Radicale's
plain storage on PostgreSQL (no sharing hooks: the sharing state is copied whole, not
made again by them) and the sharing index, on ONE database object, so that a migration
is one transaction.

The storage is loaded by its ``[storage] type`` name, as Radicale loads it: the admin
sits below the entry points and imports none of them.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

from radicale import config
from radicale import storage as radicale_storage

from radicale_plugin.admin.migrate.target import (TargetError, connect, describe, driver,
                                                  refuse_unless_empty)
from radicale_plugin.index import SharingIndex

if TYPE_CHECKING:  # psycopg is an extra: imported when a database is opened
    from radicale_plugin.index.postgres.database import Database

#: The storage types of a file deployment (the plugin's, or Radicale's own).
FILE_STORAGES = ("radicale_plugin.storage", "multifilesystem", "multifilesystem_nolock")
#: Radicale's storage on PostgreSQL without the sharing hooks, and its option.
PLAIN_STORAGE = "radicale_plugin.storage.postgres.plain"
DSN_OPTION = "postgresql_dsn"
#: A transaction-level advisory lock only a migration takes: two at once into one database.
MIGRATION_LOCK = 0x6D65636172640010


class Target:
    """Radicale's storage and the sharing index on one PostgreSQL database."""

    def __init__(self, dsn: str, storage: radicale_storage.BaseStorage, index: SharingIndex,
                 db: "Database") -> None:
        self.dsn = dsn
        self.storage = storage
        self.index = index
        self.db = db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction for the storage's writes and the index's (one database object:
        whatever this thread does inside is committed together, or not at all)."""
        with self.db.transaction():
            if not self.db.value("SELECT pg_try_advisory_xact_lock(?)", (MIGRATION_LOCK,)):
                raise TargetError("another migration into %s is running: wait for it"
                                  % describe(self.dsn))
            yield

    def refuse_unless_empty(self) -> None:
        """Inside :meth:`transaction`: the database is still empty (looked at again)."""
        with self.db.connection() as conn:
            refuse_unless_empty(conn, self.dsn)

    def close(self) -> None:
        """Close the index and the database (this process made it for the command)."""
        self.index.close()
        self.db.close()


def _storage_config(configuration: config.Configuration, dsn: str) -> config.Configuration:
    """A config of Radicale's plain storage on PostgreSQL at ``dsn`` (Radicale's defaults,
    and the server's sync-token age: the storage adds the plugin's options itself)."""
    out = config.load(())
    out.update({"storage": {
        "type": PLAIN_STORAGE, DSN_OPTION: dsn,
        "max_sync_token_age": configuration.get("storage", "max_sync_token_age")}},
        "migrate-to-postgres", privileged=True)
    return out


def open_target(configuration: config.Configuration, dsn: str, create: bool) -> Target:
    """The storage and the index on ``dsn``.  ``create``: the database must be empty (it is
    looked at before any table is made), and the tables are made; otherwise (a check) the
    tables must be there already."""
    driver()
    conn = connect(dsn)
    try:
        if create:
            refuse_unless_empty(conn, dsn)
        else:
            made = {row[0] for row in conn.execute(
                "SELECT c.relname FROM pg_class c WHERE c.relname IN "
                "('dav_schema_version', 'schema_version')").fetchall()}
            if made != {"dav_schema_version", "schema_version"}:
                raise TargetError("%s holds no migrated deployment (no tables of Radicale's "
                                  "storage and of the sharing index): migrate into it first"
                                  % describe(dsn))
    finally:
        conn.close()
    try:
        storage = radicale_storage.load(_storage_config(configuration, dsn))
        db = storage.database  # type: ignore[attr-defined]
        index = _index(db)
    except TargetError:
        raise
    except Exception as e:  # the storage's one line (StorageUnavailable, SchemaError)
        raise TargetError(" ".join(str(e).split()) or type(e).__name__) from e
    return Target(dsn, storage, index, db)


def _index(db: "Database") -> SharingIndex:
    """The sharing index on the storage's database object: one transaction for both."""
    from radicale_plugin.index.postgres import PostgresIndex
    return PostgresIndex(db)
