# SPDX-License-Identifier: GPL-3.0-or-later
"""``migrate-to-postgres``: a file deployment moved into an empty PostgreSQL database, and
the check that compares both card by card (:mod:`.run`).

The collections go through Radicale's storage API on both sides (:mod:`.collections`),
the sharing state through the backup's export and import (:mod:`radicale_plugin.admin
.backup`), compared record by record (:mod:`.state`); the PostgreSQL side is reached
(:mod:`.target`) and opened (:mod:`.open`) with one line for every way it can fail.
Part of the admin: may import every part below the HTTP face, Radicale and psycopg
(lazily: PostgreSQL support is an extra); the storage on PostgreSQL is loaded by name.
"""

from radicale_plugin.admin.migrate.run import MigrationError, check, migrate
from radicale_plugin.admin.migrate.target import TargetError

__all__ = ["MigrationError", "TargetError", "check", "migrate"]
