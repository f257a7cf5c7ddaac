# SPDX-License-Identifier: GPL-3.0-or-later
"""Versioned migrations of a set of PostgreSQL tables, safe with several processes.

The sharing index (:mod:`.schema`) and Radicale's storage on PostgreSQL
(:mod:`radicale_plugin.storage.postgres.schema`) each keep their version in a table of
their own, so that either can live alone in a database or both together.  A start with
nothing to do reads the version without a lock; otherwise every step runs in one
transaction under an advisory lock, so that a second process starting at the same
moment waits, then finds the work done.  A database made by newer code is refused with
one line (:class:`SchemaError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from radicale_plugin.index.postgres.database import Database


class SchemaError(RuntimeError):
    """The database cannot be used by this version of the code."""


def statements(script: str) -> list[str]:
    """The statements of a script (``--`` comment lines left out)."""
    text = "\n".join(ln for ln in script.splitlines() if not ln.lstrip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


@dataclass(frozen=True)
class Migrations:
    """Migration ``n`` (1-based) is ``scripts[n - 1]``; append only."""

    #: What the tables are, for messages ("the sharing database %s").
    what: str
    #: The table holding the version.
    table: str
    #: ``pg_advisory_xact_lock`` key held while migrating.
    lock: int
    scripts: tuple[str, ...]
    #: Refuse (with the message it returns) a database without a version but with tables.
    foreign: Callable[[Database], str | None] | None = None

    @property
    def version(self) -> int:
        """The version this code makes and uses."""
        return len(self.scripts)

    def version_of(self, db: Database) -> int:
        """The version in the database (0: none of these tables yet)."""
        # the name inlined (ours, never input): the admin reads it through a plain connection
        if db.value("SELECT to_regclass('%s')" % self.table) is None:
            return 0
        return int(db.value("SELECT COALESCE(MAX(version), 0) FROM %s" % self.table))

    def _refuse_newer(self, db: Database, version: int, target: int) -> None:
        if version > target:
            raise SchemaError(
                "%s has schema version %d, but this radicale-mecard knows version %d at "
                "most: install the newer radicale-mecard that wrote it, or restore a backup"
                % (self.what % db.describe(), version, target))

    def migrate(self, db: Database, target: int | None = None) -> int:
        """Bring the tables to ``target`` (default: :attr:`version`); the version they had."""
        target = self.version if target is None else target
        if not 0 < target <= self.version:
            raise ValueError("no schema version %d of %s" % (target, self.table))
        version = self.version_of(db)  # the usual case, without a lock: nothing to do
        self._refuse_newer(db, version, target)
        if version == target:
            return version
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(?)", (self.lock,))
            db.execute("CREATE TABLE IF NOT EXISTS %s (id INTEGER PRIMARY KEY CHECK (id = 1), "
                       "version INTEGER NOT NULL)" % self.table)
            version = self.version_of(db)  # another process may have migrated meanwhile
            self._refuse_newer(db, version, target)
            if version == target:
                return version
            refusal = self.foreign(db) if self.foreign is not None and not version else None
            if refusal:
                raise SchemaError(refusal)
            for step in range(version, target):
                for statement in statements(self.scripts[step]):
                    db.execute(statement)
            db.execute("INSERT INTO %s (id, version) VALUES (1, ?) ON CONFLICT (id) "
                       "DO UPDATE SET version = excluded.version" % self.table, (target,))
        return version
