# SPDX-License-Identifier: GPL-3.0-or-later
"""What SQLite and PostgreSQL spell differently, for the few statements that need it.

Everything else in the stores is written once, in the SQL both run with the same meaning
(quoted ``"user"``, ``ON CONFLICT`` upserts, ``RETURNING id``, ``CASE`` for the
two-argument ``MIN``/``MAX`` of SQLite, ``NULLS FIRST`` where order matters).  A backend's
database gives its dialect as ``db.dialect``: :data:`SQLITE` or :data:`POSTGRESQL`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable


def _pairs_sqlite(first: str, second: str) -> str:
    return "json_group_array(json_array(%s, %s))" % (first, second)


def _pairs_postgresql(first: str, second: str) -> str:
    # json_agg gives NULL over no rows, SQLite '[]': the stores read both as none
    return "json_agg(json_build_array(%s, %s))::text" % (first, second)


def _ids_sqlite(table: str) -> str | None:
    return None  # AUTOINCREMENT follows the largest id given


def _ids_postgresql(table: str) -> str | None:
    # an identity column's sequence does not see ids given explicitly (a restore): the
    # next id made must follow the largest
    return ("SELECT setval(pg_get_serial_sequence('%s', 'id'), "
            "COALESCE(MAX(id), 0) + 1, false) FROM %s" % (table, table))


@dataclasses.dataclass(frozen=True)
class Dialect:
    """One SQL dialect: SQL fragments the two spell differently."""

    name: str
    #: An aggregate of ``(first, second)`` pairs over a group, as JSON text (a list of
    #: two-element lists; NULL or ``[]`` over no rows).
    json_pairs: Callable[[str, str], str]
    #: A statement run after rows were inserted into ``table`` with ids given, so that
    #: the ids made afterwards follow them (None: nothing to do).
    ids_given: Callable[[str], str | None]
    #: Appended to a ``SELECT`` of rows the transaction will change by what it reads, so
    #: that a concurrent transaction waits (SQLite has one writer: nothing to add).
    for_update: str
    #: Many rows are written by one statement (a multi-row ``VALUES``): each statement is
    #: a round trip to the server (PostgreSQL).  SQLite runs ``executemany`` in the process,
    #: quicker than a long statement compiled each time.
    rows_at_once: bool = False


SQLITE = Dialect("sqlite", _pairs_sqlite, _ids_sqlite, "")
POSTGRESQL = Dialect("postgresql", _pairs_postgresql, _ids_postgresql, " FOR UPDATE",
                     rows_at_once=True)
