# SPDX-License-Identifier: GPL-3.0-or-later
"""PostgreSQL's DDL for several processes on one index: leases on duties, the rate
limits' buckets, and the columns that claim deliveries and push messages.

The statements are those SQLite's schema version 7 runs (:mod:`..sql.leases`,
:mod:`..sql.limits`, :mod:`..sql.claims`, :mod:`..sql.push_claims`), in PostgreSQL's words where they differ
(``ADD COLUMN IF NOT EXISTS``).  :data:`STATEMENTS` is one migration: every statement
may run again on a database that has it already.
"""

from __future__ import annotations

from radicale_plugin.index.sql import claims, leases, limits, push_claims


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


#: The migration, in order (after the ``deliveries`` table exists).
STATEMENTS: list[str] = (
    _statements(leases.TABLES) + _statements(limits.TABLES)
    + ["ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s" % column
       for column in claims.COLUMNS + push_claims.COLUMNS]
    + _statements(claims.TABLES))

#: The same, as one script (a migration of :mod:`.schema`).
SCRIPT = ";\n".join(STATEMENTS) + ";\n"
