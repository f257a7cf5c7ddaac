# SPDX-License-Identifier: GPL-3.0-or-later
"""The deployment an admin command works on, as the config's ``[storage] type`` says:
files (collections in folders, the sharing state in the SQLite file beside them) or
PostgreSQL (collections and the sharing state in one database, ``postgresql_dsn``).

It is opened the way the server opens it (:func:`radicale_plugin.service.open_index`
and :func:`~radicale_plugin.service.copy_writer`: one function for both), on Radicale's
plain storage of that kind (no sharing hooks, no worker in the admin's process; the
storage on PostgreSQL is loaded by name, as Radicale loads it: the admin sits below
the entry points).  What differs per kind is here: whether the sharing state exists
(a file, or the index's tables), its schema versions, the mark that keeps an import
off a database servers use, and what Radicale's lock per book is (:class:`LockHolds`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from typing import Any, Iterator

from radicale import config
from radicale import storage as radicale_storage
from radicale.storage import multifilesystem

from radicale_plugin.admin.migrate.open import DSN_OPTION, PLAIN_STORAGE
from radicale_plugin.admin.migrate.target import TargetError, connect, describe
from radicale_plugin.index import running
from radicale_plugin.index import SharingIndex
from radicale_plugin.index.postgres import running as pg_running
from radicale_plugin.index.postgres import schema as pg_schema
from radicale_plugin.index.sqlite import SQLiteIndex
from radicale_plugin.index.sqlite.database import Database
from radicale_plugin.index.sqlite.schema import check_columns, version_of
from radicale_plugin.service import SharingService, open_index
from radicale_plugin.settings import Settings

#: The storage types whose collections and sharing state are in PostgreSQL.
POSTGRES_STORAGES = ("radicale_plugin.storage.postgres", PLAIN_STORAGE)


class BackendError(RuntimeError):
    """The deployment cannot be opened; ``str()`` is the one line the admin reads."""


def sqlite_version(path: str, check: bool = False) -> int:
    """The SQLite database's schema version; ``check``: also refuse one that lacks a table
    or column its version has (:func:`check_columns`)."""
    db = Database(path)
    try:
        version = version_of(db)
        if check and version == SQLiteIndex.SCHEMA_VERSION:
            check_columns(db, version)
        return version
    finally:
        db.close()


class _Values:
    """``value()`` over one psycopg connection (what the schema modules ask)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def value(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        row = self._conn.execute(sql, args).fetchone()
        return row[0] if row is not None else None


class Deployment:
    """One deployment's places, opened as the commands need them; :meth:`close` at the end."""

    def __init__(self, configuration: config.Configuration, settings: Settings) -> None:
        self.configuration = configuration
        self.settings = settings
        self.postgres = configuration.get("storage", "type") in POSTGRES_STORAGES
        self.dsn = configuration.get("storage", DSN_OPTION) if self.postgres else ""
        #: The sharing state's place, for messages (never a password).
        self.where = describe(self.dsn) if self.postgres else settings.database
        self._conn: Any = None
        self._storage: radicale_storage.BaseStorage | None = None

    # -- the database, looked at without opening (opening migrates) -------------------
    def _connection(self) -> Any:
        if self._conn is None:
            if not self.dsn.strip():
                raise BackendError(
                    "[storage] postgresql_dsn is empty in the config: set it to the "
                    "PostgreSQL connection string, e.g. postgresql_dsn = host=db.example.org "
                    "dbname=radicale user=radicale")
            try:
                self._conn = connect(self.dsn)
            except TargetError as e:
                raise BackendError("%s ([storage] postgresql_dsn)" % e) from None
        return self._conn

    def exists(self) -> bool:
        """Whether the sharing state exists (the SQLite file; the index's tables)."""
        if not self.postgres:
            return os.path.exists(self.settings.database)
        return self.index_version() > 0

    def index_version(self) -> int:
        """The sharing state's schema version as found (0: none)."""
        if not self.postgres:
            return sqlite_version(self.settings.database)
        return pg_schema.version_of(_Values(self._connection()))  # type: ignore[arg-type]

    def index_current(self) -> int:
        """The sharing state's schema version this code writes (PostgreSQL numbers its own)."""
        return pg_schema.VERSION if self.postgres else SQLiteIndex.SCHEMA_VERSION

    def schema_lines(self) -> list[str]:
        """What ``schema`` says: the version(s) found, and the one(s) this code writes."""
        if not self.postgres:
            return ["schema version %d (this code writes %d)"
                    % (sqlite_version(self.settings.database, check=True),
                       SQLiteIndex.SCHEMA_VERSION)]
        found, current = self._dav_version()
        return ["sharing index: schema version %d (this code writes %d)"
                % (self.index_version(), pg_schema.VERSION),
                "storage (dav_* tables): schema version %d (this code writes %d)"
                % (found, current)]

    def _dav_version(self) -> tuple[int, int]:
        values = _Values(self._connection())
        found = 0
        if values.value("SELECT to_regclass('dav_schema_version')") is not None:
            found = int(values.value("SELECT COALESCE(MAX(version), 0) FROM "
                                     "dav_schema_version"))
        current = importlib.import_module(PLAIN_STORAGE).Storage.SCHEMA_VERSION
        return found, int(current)

    def no_database(self) -> BackendError:
        if self.postgres:
            return BackendError(
                "no sharing tables in %s (a server on it makes them at its first start; if "
                "they were lost, see docs/operating.md, 'Backups and restore': import the "
                "last export, or rebuild)" % self.where)
        return BackendError(
            "no sharing database at %s (the server makes it at its first start; if it was "
            "lost, see docs/operating.md, 'Backups and restore': import the last export, or "
            "rebuild)" % self.where)

    # -- opened as the server opens it ------------------------------------------------
    def storage(self) -> radicale_storage.BaseStorage:
        """Radicale's plain storage of the deployment (made once)."""
        if self._storage is None:
            if not self.postgres:
                self._storage = multifilesystem.Storage(self.configuration)
            else:
                self._connection()  # the one line for a wrong DSN, before the pool tries
                plain = self.configuration.copy()
                plain.update({"storage": {"type": PLAIN_STORAGE}}, "admin", privileged=True)
                self._storage = importlib.import_module(PLAIN_STORAGE).Storage(plain)
        return self._storage

    def index(self) -> SharingIndex:
        return open_index(self.storage(), self.settings)

    def service(self) -> SharingService:
        """The sharing service on the deployment (its threads not started)."""
        store = self.storage()
        return SharingService(store, self.settings, open_index(store, self.settings),
                              self.configuration)

    @contextlib.contextmanager
    def alone(self, what: str) -> Iterator[None]:
        """``what`` runs only while no server runs on the sharing state (and none starts)."""
        if not self.postgres:
            with running.alone(self.settings.database, what):
                yield
            return
        with pg_running.alone(self._connection(), self.where, what):
            yield

    @contextlib.contextmanager
    def made_for(self, created: bool) -> Iterator[None]:
        """A SQLite database this command made is removed again if the command fails: an
        empty one left behind would hide the loss of the real one from the server's check
        at start.  (On PostgreSQL an import is one transaction: its tables stay empty.)"""
        try:
            yield
        except BaseException:
            if created and not self.postgres:
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(OSError):
                        os.unlink(self.settings.database + suffix)
            raise

    def close(self) -> None:
        database = getattr(self._storage, "database", None)
        if database is not None:
            database.close()
        if self._conn is not None:
            self._conn.close()


class LockHolds:
    """Radicale's storage lock, taken for one book (or card) at a time: how often, and the
    longest hold, so that the admin sees that writers never waited for a whole scan.

    On PostgreSQL there is no global lock: a book named is held as its writers hold it
    (a transaction holding that book's lock: its writers wait, its readers never do, and
    what is written inside commits with it); none named, a snapshot (one moment of the
    book's rows and the index's)."""

    def __init__(self, storage: radicale_storage.BaseStorage) -> None:
        self._storage = storage
        self._rows = getattr(storage, "database", None) is not None
        self.count = 0
        self.longest = 0.0

    @contextlib.contextmanager
    def __call__(self, mode: str, book: str = "") -> Iterator[None]:
        if self._rows and book:
            held = self._storage.acquire_lock("w", path="/%s/" % book)
        else:
            held = self._storage.acquire_lock(mode)
        with held:
            began = time.monotonic()
            try:
                yield
            finally:
                self.count += 1
                self.longest = max(self.longest, time.monotonic() - began)

    def summary(self) -> str:
        if self._rows:
            return ("PostgreSQL: one book's lock (or one snapshot) at a time, taken %d "
                    "time(s), held %.1f ms at most" % (self.count, self.longest * 1000))
        return ("Radicale's storage lock: taken %d time(s), one book or card at a time, "
                "held %.1f ms at most" % (self.count, self.longest * 1000))
