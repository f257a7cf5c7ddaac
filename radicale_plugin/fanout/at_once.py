# SPDX-License-Identifier: GPL-3.0-or-later
"""A round's writes on a storage whose copies commit with their records (PostgreSQL).

On the file storage a copy is a file, written outside the index's transactions: the
round records an intent first, writes the files under Radicale's lock, then records
what they did (:mod:`.records`).  On the storage on PostgreSQL a copy is a row of the
same database as the index (:class:`~radicale_plugin.delivery.copy_rows.CopyRows`), so
here each part of a round (:data:`PART` deliveries) is ONE transaction:

1. the copies are written, each only if its card is still the one read (compared under
   the book's lock, which every writer of the book holds; a card changed meanwhile is
   left, and decided again in the next round);
2. the links, offers and outcomes that write nothing are recorded (:meth:`Records.before`,
   no intent; the part's offers read and written at once, and its outcomes finished at
   once, under a savepoint: if a statement fails, each delivery is recorded again alone,
   under its own, and a failing statement fails that delivery alone, as on the file
   storage);
3. what the writes did — history, card-key index, deliveries — is recorded
   (:meth:`Records.results`).

A crash, a lost connection or a deadlock anywhere in a part rolls the whole part back:
no copy without its delivery record, no record of a copy not written, nothing to settle
at the next start (the round fails, and its deliveries are taken again).  A part's
commit does not wait for the disk: the round's parts are made durable at once at its end
(one flush of PostgreSQL's log, :meth:`SharingIndex.sync`, as the file storage syncs a
round's files once), and only then are the books' subscribers told.  A crash of
PostgreSQL before that flush takes back whole parts (copies with their records, never
one without the other): their deliveries are taken again.  Copies go
first, as in a request (the book's lock, its item, then the index's rows), so that a
request's hooks and a part take their locks in the same order.  The worker runs the
parts on its writer thread while it decides the next round, as it writes files.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from radicale.log import logger

from radicale_plugin.context import Context
from radicale_plugin.delivery.writer import CopyWriter, Write
from radicale_plugin.fanout.outcomes import Outcome
from radicale_plugin.fanout.records import Records, parts


#: Deliveries a part: more than a part of :mod:`.records` (10), which holds SQLite's one
#: writer that every request's hooks wait for.  A part here holds the locks of its own
#: books and rows only (a request waits for it only to write one of those books), and
#: costs about 15 statements whatever its size (each a round trip): 50 a part, about 0.3
#: a delivery, and one statement of each kind (:func:`~..index.sql.database.batches`).
PART = 50


class AtOnce:
    """Writes a round's copies and records them, one transaction per part."""

    def __init__(self, ctx: Context, rows: CopyWriter, records: Records,
                 keep: Callable[[], None] = lambda: None) -> None:
        self._ctx = ctx
        self._rows = rows
        self._records = records
        self._keep = keep  # renews the round's claims (Claims.keep)

    def run(self, outcomes: list[Outcome], clock: Any = None) -> list[Write]:
        """Write and record every part of the round; the writes (``renamed``: made).
        ``clock``: the round's (its ``lap``), told when the writing ends."""
        index = self._ctx.index
        every: list[Write] = []
        changed: set[str] = set()
        todo = list(parts(outcomes, PART)) or [[]]
        try:
            for n, part in enumerate(todo):
                writes = [o.planned.write for o in part
                          if o.planned is not None and not o.planned.write.done]
                begun = time.monotonic()
                try:
                    with index.transaction(durable=False):  # made durable below, at once
                        self._rows.prepare(writes)
                        done = self._rows.commit(writes, float("inf"))
                        written = time.monotonic()
                        self._records.before(part)
                        if n == len(todo) - 1:
                            self._records.end_round()
                        self._records.results(part, PART)
                except BaseException:
                    for write in writes:  # rolled back with the part's records
                        write.renamed = False
                    raise
                every += writes
                self._keep()  # a long round: its claims renewed between parts, not lapsed
                if done:
                    logger.debug("Fan-out: %d copies written (%.1f ms) and recorded (%.1f "
                                 "ms) in one transaction", len(done), (written - begun) * 1000,
                                 (time.monotonic() - written) * 1000)
                    changed.update(w.book for w in done)
        finally:  # the parts committed, even if a later one failed
            if changed:
                index.sync()  # every part of the round durable: one flush of the log
                # committed and durable: their books' subscribers may sync
                self._ctx.books_changed(changed)
        if clock is not None:
            clock.lap("write and record")
        return every
