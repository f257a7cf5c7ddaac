# SPDX-License-Identifier: GPL-3.0-or-later
"""One PUT on the PostgreSQL storage: how many statements its transaction sends.

Issue 16: a PUT read its book's row five times, its owner three times, its item and its
links twice each (a round trip each), and dropped and re-inserted its index row.  A
write transaction now keeps what it read until a statement of its own may change it
(:mod:`radicale_plugin.index.postgres.memo`).  These tests count on a real PostgreSQL
what a real server sends (PostgreSQL's own statement log), and pin that the kept reads
never hide a change: the transaction's own writes, of every kind, are seen at once.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import psycopg
import psycopg.conninfo
import pytest

from radicale_plugin.index.postgres.database import Database
from radicale_plugin.storage.postgres import items
from tests.conftest import USERS
from tests.server import RadicaleServer

CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x0\r\nFN:X\r\nTEL:+1202555000%d\r\nEND:VCARD\r\n"

#: The PUT's transaction before issue 16 sent 25 statements (BEGIN and COMMIT included).
MOST_STATEMENTS_PER_PUT = 13

_LINE = re.compile(r"\[(\d+)\] (?:\S+@\S+ )?(LOG|DETAIL):  (.*)")


def _logged(log: Path, start: int) -> dict[str, list[str]]:
    """The statements PostgreSQL logged since ``start``, by backend, each with its
    parameters (``statement | parameters``)."""
    by: dict[str, list[str]] = {}
    for line in log.read_text(errors="replace")[start:].splitlines():
        found = _LINE.search(line)
        if found is None:
            continue
        pid, kind, text = found.groups()
        if kind == "LOG" and (text.startswith("statement: ") or text.startswith("execute ")):
            by.setdefault(pid, []).append(text.split(": ", 1)[1])
        elif kind == "DETAIL" and text.startswith("parameters: ") and by.get(pid):
            by[pid][-1] += " | " + text
    return by


def _put_transaction(by: dict[str, list[str]]) -> list[str]:
    """The statements of the one transaction that wrote an item (BEGIN to COMMIT)."""
    for statements in by.values():
        for i, text in enumerate(statements):
            if "INSERT INTO dav_items" in text:
                begin = max(j for j in range(i) if statements[j] == "BEGIN")
                end = next(j for j in range(i, len(statements)) if statements[j] == "COMMIT")
                return statements[begin:end + 1]
    raise AssertionError("no transaction wrote an item")


def test_a_put_on_postgres_reads_each_row_once(tmp_path, postgres):
    dsn = postgres.migrated_database()
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        # this database's sessions only (the server's pool connects after this)
        conn.execute('ALTER DATABASE "%s" SET log_statement = \'all\'' % name)
    # shipped defaults: the statements of the product as it runs
    server = RadicaleServer(tmp_path, USERS, postgres=dsn).start()
    try:
        alice = server.client("alice")
        assert alice.put("x0.vcf", CARD % 0).status_code == 201
        before = alice.get("x0.vcf").headers["ETag"]
        log = Path(postgres.folder) / "server.log"
        time.sleep(0.3)  # the first PUT's wake-ups are logged before the count starts
        start = os.path.getsize(log)
        assert alice.put("x0.vcf", CARD % 1).status_code in (201, 204)
        time.sleep(0.3)
        put = _put_transaction(_logged(log, start))
        # the positive control: the PUT did what it does
        assert alice.card("x0.vcf") == CARD % 1
        assert alice.get("x0.vcf").headers["ETag"] != before
    finally:
        server.stop()
    reads = [s for s in put if s.startswith("SELECT")]
    again = sorted({r for r in reads if reads.count(r) > 1})
    assert not again, "read twice in one PUT: %s" % again
    assert len(put) <= MOST_STATEMENTS_PER_PUT, "\n".join(put)


@pytest.fixture
def db(postgres):
    database = Database(postgres.migrated_database(), 1, 2)
    try:
        with database.transaction():
            database.execute("INSERT INTO dav_collections (path, parent, props, tag, "
                             "incarnation, modified) VALUES ('alice/b', 'alice', '{}', "
                             "'VADDRESSBOOK', 'i', 0)")
        yield database
    finally:
        database.close()


def _elsewhere(db: Database, sql: str) -> None:
    """A change committed by another session (another process's request)."""
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute(sql)


def _on_connection(db: Database, book: items.Book) -> None:
    with db.connection() as conn:  # psycopg's own spelling: the caller's statement
        conn.execute("UPDATE dav_collections SET tag = 'X' WHERE id = %s", (book.id,))


#: Every kind of statement of the transaction itself that changes a book's row.
OWN_WRITES = {
    "execute": lambda db, book: db.execute("UPDATE dav_collections SET tag = 'X' "
                                           "WHERE id = ?", (book.id,)),
    "returning": lambda db, book: db.value("UPDATE dav_collections SET tag = 'X' "
                                           "WHERE id = ? RETURNING id", (book.id,)),
    "many": lambda db, book: db.executemany("UPDATE dav_collections SET tag = ? "
                                            "WHERE id = ?", [("X", book.id)]),
    "cte": lambda db, book: db.rows("WITH c AS (UPDATE dav_collections SET tag = 'X' "
                                    "WHERE id = ? RETURNING id) SELECT id FROM c",
                                    (book.id,)),
    "numbered": lambda db, book: items.number(db, book.id, "a.vcf", False, 5.0),
    "connection": lambda db, book: _on_connection(db, book),
}


@pytest.mark.parametrize("write", sorted(OWN_WRITES))
def test_a_transaction_sees_its_own_write_of_a_kept_row(db, write):
    with db.transaction():
        book = items.book(db, "alice/b")
        assert book is not None
        OWN_WRITES[write](db, book)
        now = items.book(db, "alice/b")
        assert now is not None and now != book


def test_a_write_undone_by_a_savepoint_is_not_kept(db):
    with db.transaction():
        with pytest.raises(ValueError):
            with items.all_or_nothing(db):
                db.execute("UPDATE dav_collections SET tag = 'X' WHERE path = 'alice/b'")
                assert items.book(db, "alice/b").tag == "X"
                raise ValueError("undo")
        assert items.book(db, "alice/b").tag == "VADDRESSBOOK"


def test_a_transaction_reads_a_kept_row_once_and_the_next_one_afresh(db):
    with db.transaction():
        assert items.book(db, "alice/b").tag == "VADDRESSBOOK"
        _elsewhere(db, "UPDATE dav_collections SET tag = 'Y' WHERE path = 'alice/b'")
        # kept: no second round trip (and one view of the row for the whole request)
        assert items.book(db, "alice/b").tag == "VADDRESSBOOK"
    with db.transaction():  # a new transaction (a retried request too) starts empty
        assert items.book(db, "alice/b").tag == "Y"
    # outside a transaction nothing is kept
    _elsewhere(db, "UPDATE dav_collections SET tag = 'Z' WHERE path = 'alice/b'")
    assert items.book(db, "alice/b").tag == "Z"


def test_a_book_deleted_takes_its_kept_items_with_it(db):
    with db.transaction():
        book = items.book(db, "alice/b")
        assert book is not None
        items.put(db, book.id, items.facts("alice/b", "a.vcf", CARD % 0, "VADDRESSBOOK"))
        assert items.get(db, book.id, "a.vcf") is not None
        db.execute("DELETE FROM dav_collections WHERE path = 'alice/b'")  # cascades
        assert items.get(db, book.id, "a.vcf") is None


def test_a_lock_taken_after_a_read_makes_the_next_read_fresh(db):
    """Read, wait for a lock, read again: the second read sees what the lock's holder
    committed meanwhile (as every read under READ COMMITTED does)."""
    with db.transaction():
        assert items.book(db, "alice/b").tag == "VADDRESSBOOK"
        _elsewhere(db, "UPDATE dav_collections SET tag = 'Y' WHERE path = 'alice/b'")
        items.lock(db, "alice/b")
        assert items.book(db, "alice/b").tag == "Y"
