# SPDX-License-Identifier: GPL-3.0-or-later
"""What the SQL stores ask of a database, and the small helpers they share.

A backend's database (:class:`radicale_plugin.index.sqlite.database.Database`,
:class:`radicale_plugin.index.postgres.database.Database`) gives these calls;
statements use ``?`` for parameters and the SQL both dialects understand.
"""

from __future__ import annotations

import contextlib
import datetime
from typing import Any, Iterable, Iterator, Protocol

from radicale_plugin.index.sql.dialect import Dialect


class Row(Protocol):
    """A row of a read: its columns by index and by name (``sqlite3.Row``, or the
    PostgreSQL database's row)."""

    def __getitem__(self, key: Any) -> Any:
        ...


class Database(Protocol):
    """The calls a store makes: writes, reads, transactions that nest, snapshots."""

    #: What the backend's SQL spells differently (:mod:`.dialect`).
    dialect: Dialect

    @property
    def IntegrityError(self) -> type[Exception]:  # noqa: N802  (the DB-API's name)
        """The driver's exception for a broken constraint (a duplicate key)."""

    def execute(self, sql: str, args: Iterable[Any] = ()) -> Any:
        """A write (alone, it is its own transaction); the cursor (``rowcount``, rows of
        a ``RETURNING``)."""

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """One write for each of ``rows``."""

    def rows(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        """Every row of a read; a row gives its columns by index and by name."""

    def row(self, sql: str, args: Iterable[Any] = ()) -> Any:
        """The first row of a read, or None."""

    def value(self, sql: str, args: Iterable[Any] = ()) -> Any:
        """The first column of the first row, or None."""

    def count(self, table: str, condition: str, args: Iterable[Any], **equal: Any) -> int:
        """Rows of ``table`` meeting ``condition`` and each ``column=value`` not None (the
        column quoted: an unquoted ``user`` is PostgreSQL's ``CURRENT_USER``)."""

    def transaction(self, durable: bool = True) -> contextlib.AbstractContextManager[None]:
        """One transaction; a nested use joins the outer one (same thread)."""

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """A read transaction: every read in it sees one moment."""

    def attempt(self) -> contextlib.AbstractContextManager[None]:
        """A block whose failure (``IntegrityError``) leaves the surrounding transaction
        usable: PostgreSQL aborts a whole transaction on a failed statement unless it ran
        under a savepoint; SQLite undoes the failed statement alone."""


class Derived:
    """The reads every backend's database derives from its ``row`` (a base class)."""

    def row(self, sql: str, args: Iterable[Any] = ()) -> Any:
        raise NotImplementedError

    def value(self, sql: str, args: Iterable[Any] = ()) -> Any:
        """The first column of the first row, or None."""
        found = self.row(sql, args)
        return found[0] if found is not None else None

    def count(self, table: str, condition: str, args: Iterable[Any], **equal: Any) -> int:
        """Rows of ``table`` meeting ``condition`` and, for each ``column=value`` given
        and not None, ``column = value`` (names are the caller's, never user input; quoted,
        as the SQL of every backend: ``user`` is a keyword of PostgreSQL)."""
        where, values = [condition], list(args)
        for column, value in equal.items():
            if value is not None:
                where.append('"%s" = ?' % column)
                values.append(value)
        return int(self.value("SELECT COUNT(*) FROM %s WHERE %s" % (table, " AND ".join(where)),
                              values))


def now_iso() -> str:
    """The current time as stored (UTC, ISO 8601, seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def chunks(items: Iterable[str], size: int = 500) -> Iterator[list[str]]:
    """``IN (...)`` lists short enough for SQLite's parameter limit."""
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def ids_given(db: Database, table: str) -> None:
    """Rows were inserted into ``table`` with their ids given (a restore): the ids the
    database makes afterwards follow the largest."""
    statement = db.dialect.ids_given(table)
    if statement is not None:
        db.execute(statement)


def marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def batches(rows: Iterable[Any], size: int = 50) -> Iterator[list[Any]]:
    """``rows`` in lists of at most ``size``: one statement each (few enough parameters
    for SQLite, few enough conditions for a quick plan)."""
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def values_of(rows: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    """The ``VALUES`` list of a multi-row INSERT (``(?, ?), (?, ?)``) and its arguments:
    one statement writes them all (PostgreSQL: one round trip, not one a row)."""
    row = "(%s)" % ", ".join("?" * len(rows[0]))
    return ", ".join([row] * len(rows)), [value for r in rows for value in r]


def insert_rows(db: Database, head: str, rows: Iterable[tuple[Any, ...]], tail: str = "",
                tail_args: tuple[Any, ...] = ()) -> None:
    """``head VALUES (?, ...) tail`` for each of ``rows``: a few statements of many rows
    each where a statement is a round trip (PostgreSQL, :attr:`Dialect.rows_at_once`),
    ``executemany`` else.  ``head`` ends before ``VALUES``; ``tail`` (``ON CONFLICT ...``)
    takes ``tail_args``."""
    rows = list(rows)
    if not rows:
        return
    if not db.dialect.rows_at_once:
        one = "(%s)" % ", ".join("?" * len(rows[0]))
        db.executemany("%s VALUES %s%s" % (head, one, tail),
                       [tuple(row) + tuple(tail_args) for row in rows])
        return
    for batch in batches(rows):
        values, args = values_of(batch)
        db.execute("%s VALUES %s%s" % (head, values, tail), args + list(tail_args))


def pairs_where(columns: tuple[str, str], pairs: list[tuple[Any, Any]]
                ) -> tuple[str, list[Any]]:
    """``(a = ? AND b = ?) OR ...`` for ``pairs`` of the two ``columns`` and its arguments.

    Not ``(a, b) IN (VALUES ...)``: SQLite scans the whole table for that, while for
    ORs of both columns it looks each pair up in the index (and PostgreSQL as well)."""
    one = "(%s = ? AND %s = ?)" % columns
    return " OR ".join([one] * len(pairs)), [value for pair in pairs for value in pair]


def under_path(path: str) -> tuple[str, tuple[str, ...]]:
    """SQL condition on ``book`` for a book path, or a user (every book of theirs).

    A range, not LIKE: LIKE ignores case, and "bob" is not "Bob"
    ("bob/" <= book < "bob0": "0" is the character after "/").
    """
    path = path.strip("/")
    if "/" in path:
        return "book = ?", (path,)
    return "(book = ? OR (book >= ? AND book < ?))", (path, path + "/", path + "0")
