# SPDX-License-Identifier: GPL-3.0-or-later
"""The PostgreSQL database a migration writes into: reaching it, and whether it is empty.

A connection string that is wrong, or a server that does not answer, is one line
that says what to fix (:class:`TargetError`).  A database is empty when no table of
it holds a row, the schema versions left aside: the tables a server or an earlier,
failed migration made are empty, so the migration may go there; anything else is
refused rather than mixed with what the copy brings.
"""

from __future__ import annotations

import re
from typing import Any

#: Seconds a connection may take before the database counts as unreachable.
CONNECT_TIMEOUT = 10

#: Tables that hold no one's data: which schema version the tables have.
VERSION_TABLES = frozenset({"schema_version", "dav_schema_version"})

#: Schemas that are PostgreSQL's own.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


class TargetError(RuntimeError):
    """The target database cannot take the migration; ``str()`` is the one line to read."""


def describe(dsn: str) -> str:
    """The connection string without its password."""
    dsn = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)


def driver() -> Any:
    """psycopg, or the line that says how to install it."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401  (the storage and the index need it too)
    except ImportError:
        raise TargetError("PostgreSQL support is not installed: pip install "
                          "'radicale-mecard[postgresql]' (psycopg 3 and psycopg-pool)") from None
    return psycopg


def connect(dsn: str) -> Any:
    """One connection (autocommit), or :class:`TargetError` with PostgreSQL's reason and
    the fix."""
    psycopg = driver()
    if not dsn.strip():
        raise TargetError("no connection string given: e.g. \"host=db.example.org "
                          "dbname=radicale user=radicale\"")
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.ProgrammingError as e:  # a connection string libpq cannot parse
        raise TargetError("%r is no PostgreSQL connection string (%s): write it as "
                          "\"host=HOST port=5432 dbname=NAME user=USER\" or "
                          "postgresql://USER@HOST/NAME" % (describe(dsn), _one_line(e))) from None
    except psycopg.Error as e:
        raise TargetError("cannot connect to PostgreSQL at %s: %s: check host, port, dbname "
                          "and user (a password goes in ~/.pgpass or PGPASSWORD), that the "
                          "server runs and that the database exists (createdb NAME)"
                          % (describe(dsn), _one_line(e))) from None


def filled_tables(conn: Any) -> list[str]:
    """The tables of the database that hold a row (schema versions left aside)."""
    tables = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1, 2").fetchall()
    filled = []
    for schema, table in tables:
        if table in VERSION_TABLES:
            continue
        name = '"%s"."%s"' % (schema.replace('"', '""'), table.replace('"', '""'))
        if conn.execute("SELECT EXISTS (SELECT 1 FROM %s)" % name).fetchone()[0]:
            filled.append(table if schema == "public" else "%s.%s" % (schema, table))
    return filled


def refuse_unless_empty(conn: Any, dsn: str) -> None:
    filled = filled_tables(conn)
    if filled:
        raise TargetError(
            "the PostgreSQL database %s is not empty (%s hold%s rows): nothing was written; "
            "migrate into a new, empty database (createdb NAME), or drop this one first if "
            "nothing in it is needed" % (describe(dsn), ", ".join(filled[:5]) + (
                " and %d more" % (len(filled) - 5) if len(filled) > 5 else ""),
                "s" if len(filled) == 1 else ""))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
