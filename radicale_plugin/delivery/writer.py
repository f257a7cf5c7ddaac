# SPDX-License-Identifier: GPL-3.0-or-later
"""What the fan-out asks of the place copies are read from and written to.

Two writers satisfy :class:`CopyWriter`: :class:`.copy_files.CopyFiles` (Radicale's
file storage: card files written beside the cards, renamed under Radicale's lock, an
intent recorded before each write) and :class:`.copy_rows.CopyRows` (the storage on
PostgreSQL: items written inside the caller's database transaction, with the records
of the delivery; no intent, no lock but row locks).  The deliverer, the fan-out worker,
the card-key index and the start-up checks talk to either through these calls.

A card's *identity* is what tells that it is still the card that was read: the file's
(inode, time, size), or the item's (id, change number, size).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

Identity = tuple[int, int, int]


@dataclass
class Write:
    """One copy to write: ``text`` into book/href, replacing the card read as ``was``."""

    book: str
    href: str
    text: str
    was: Identity | None        # None: a new card (nothing may be there)
    folder: str = ""
    done: bool = False          # decided: written, or dropped because the card changed
    renamed: bool = False       # written (the file renamed over the card, the row stored)
    target: str = ""            # the card's path, and its new file's: known before the lock
    new: str = ""
    #: Why the write could not be made (an I/O or database error): it is done and not
    #: written, the card is as it was, and what it left is gone.
    error: Exception | None = None


class Held(Protocol):
    """A lock used as a context (``with writer.quiet:``)."""

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: Any) -> Any: ...


class CopyWriter(Protocol):
    """Reads and writes the cards of books for the fan-out (see the module's text)."""

    #: True: a write commits in the caller's transaction with its records (no intent is
    #: recorded before it, nothing is left to settle after a crash); False: the write is
    #: a file, recorded by an intent first (:class:`.copies.Deliverer`).
    atomic: bool
    @property
    def quiet(self) -> Held:
        """Held while the writer holds the storage's lock: the fan-out's other threads
        pause meanwhile (see :class:`.copy_files.CopyFiles`)."""

    def read(self, book: str, href: str) -> tuple[str, Identity] | None:
        """The card's text and identity, or None if there is no such card."""

    def read_many(self, cards: list[tuple[str, str]]
                  ) -> dict[tuple[str, str], tuple[str, Identity] | None]:
        """Several cards as :meth:`read` gives each, read at once where that is cheaper
        than one read a card (rows: one statement); a card left out is read by itself."""

    def text(self, book: str, href: str) -> str | None:
        """The card's text, or None."""

    def books(self) -> Iterator[tuple[str, str]]:
        """(book path, its place for :meth:`folder_mtime`) of every address book."""

    def book_cards(self, book: str) -> list[tuple[str, str]]:
        """(href, text) of every card of a book."""

    def folder(self, book: str) -> str:
        """Where the book is (what :meth:`folder_mtime` takes)."""

    def folder_mtime(self, folder: str) -> int:
        """A number that changes whenever the book changes (0: unknown)."""

    def unavailable(self, book: str) -> str | None:
        """Why a book the index knows cannot be read for now; None: it can (or is gone)."""

    def prepare(self, writes: list[Write]) -> None:
        """Get the writes ready outside any lock (a write that fails gets its ``error``)."""

    def commit(self, writes: list[Write], budget: float) -> list[Write]:
        """Make writes not done yet, for at most ``budget`` seconds; those made."""

    def finish(self, writes: list[Write]) -> None:
        """After writes were made: make them durable, clean up."""

    def abandon(self, write: Write, error: Exception) -> None:
        """Give a write up: done, not written."""

    def clean(self, book: str, href: str) -> None:
        """Remove what a crash may have left of a write to book/href."""

    def attempt(self) -> contextlib.AbstractContextManager[None]:
        """A block whose failed statement leaves the caller's transaction usable (a
        savepoint on PostgreSQL; nothing to do where records are not written with copies)."""

    def shared(self) -> contextlib.AbstractContextManager[None]:
        """No request writes meanwhile (for a read that must not catch a write half done)."""

    def run_storage_hook(self) -> None:
        """Run the admin's ``[storage] hook`` once for a round of writes, if any."""

    def close(self) -> None:
        """Release what the writer holds (threads, connections it owns)."""


@contextlib.contextmanager
def nothing() -> Iterator[None]:
    """A context that does nothing (a writer that needs no lock for a call)."""
    yield
