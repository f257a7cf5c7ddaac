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


class Database(Protocol):
    """The calls a store makes: writes, reads, transactions that nest, snapshots."""

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
        """Rows of ``table`` meeting ``condition`` and each ``column=value`` not None."""

    def transaction(self, durable: bool = True) -> contextlib.AbstractContextManager[None]:
        """One transaction; a nested use joins the outer one (same thread)."""

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """A read transaction: every read in it sees one moment."""

    def attempt(self) -> contextlib.AbstractContextManager[None]:
        """A block whose failure (``IntegrityError``) leaves the surrounding transaction
        usable: PostgreSQL aborts a whole transaction on a failed statement unless it ran
        under a savepoint; SQLite undoes the failed statement alone."""


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


def marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def under_path(path: str) -> tuple[str, tuple[str, ...]]:
    """SQL condition on ``book`` for a book path, or a user (every book of theirs).

    A range, not LIKE: LIKE ignores case, and "bob" is not "Bob"
    ("bob/" <= book < "bob0": "0" is the character after "/").
    """
    path = path.strip("/")
    if "/" in path:
        return "book = ?", (path,)
    return "(book = ? OR (book >= ? AND book < ?))", (path, path + "/", path + "0")
