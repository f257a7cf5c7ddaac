# SPDX-License-Identifier: GPL-3.0-or-later
"""Writing copies straight into book folders: one file per copy, the lock only to rename.

``Collection.upload()`` costs three atomic writes per card (the item, its
cache entry, its history entry) and about six fsyncs, all under Radicale's
global lock.  A copy needs one: its file.  Radicale's readers rebuild what
else they need — the item cache is keyed by the file's content, and
``sync()`` re-derives history etags from the files — so ETag, CTag and
sync-token change exactly for the written cards (``tests/test_fast_path_e2e.py``
proves it with real clients).

For each copy, outside the lock: read the card and note its identity
(inode, time, size), write the new text to a temporary file in the book's
folder, and hard-link the card it replaces to a second name, so that the
rename under the lock does not have to free the old file (on ext4 that is
most of a rename's cost).  Then one ``syncfs`` makes the batch durable.
Under the lock: check that each card is still the one read, and rename.
After it: ``syncfs`` again (the renames), and the old files are unlinked.

The temporary names are fixed (``.Radicale.tmp-mecard-HREF.new`` and
``.old``): Radicale ignores names starting with a dot, and what ignores
Radicale's own temporary files (the git hook's documented ``.gitignore``)
ignores these too.  A crash leaves at most these two per card, which
:meth:`CopyFiles.clean` removes.  This module
reaches into Radicale's multifilesystem layout (collection root, path
mapping, encoding, its lock); it is the only one that does.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from radicale import pathutils, storage
from radicale.log import logger

from radicale_plugin.delivery.writer import Identity, Write  # noqa: F401  (their home was here)

#: Threads writing temporary files and unlinking old ones: file creation in many
#: folders waits on the disk, and the waits overlap.
IO_THREADS = 16
#: Renames in one hold of the storage lock, whatever the time budget says.
MAX_RENAMES_PER_HOLD = 100


def _libc_syncfs():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _libc_syncfs()


class CopyFiles:
    """Reads and writes card files of books directly, for the fan-out (a
    :class:`~.writer.CopyWriter`; an identity is the file's (inode, mtime_ns, size))."""

    #: A copy is a file, written outside the index's transactions: recorded by an intent.
    atomic = False

    def __init__(self, store: storage.BaseStorage) -> None:
        self._store = store
        self._root = store._get_collection_root_folder()  # type: ignore[attr-defined]
        self._collision_free = getattr(store, "_is_collision_free", False)
        self._encoding = store.configuration.get("encoding", "stock")
        self._fsync = bool(getattr(store, "_filesystem_fsync", True))
        self._pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="mecard-io")
        self._folders: dict[str, str] = {}
        #: Held with the storage lock: the fan-out's other threads pause meanwhile, so that
        #: the hold is not stretched by their waits for the interpreter.
        self.quiet = threading.Lock()

    def folder(self, book: str) -> str:
        folder = self._folders.get(book)
        if folder is None:  # Radicale's mapping checks each component on disk: once per book
            folder = pathutils.path_to_filesystem(self._root, book, self._collision_free)
            if len(self._folders) > 100000:
                self._folders.clear()
            self._folders[book] = folder
        return folder

    def path(self, book: str, href: str) -> str:
        if not pathutils.is_safe_filesystem_path_component(href):
            raise ValueError("unsafe href %r" % href)
        return os.path.join(self.folder(book), href)

    # -- reading (any lock, or none: Radicale replaces files atomically) -----------
    def read(self, book: str, href: str) -> tuple[str, Identity] | None:
        """The card's text and identity, or None if there is no such card."""
        try:
            path = self.path(book, href)
            for _ in range(3):
                before = _identity(os.stat(path))
                with open(path, "rb") as f:
                    data = f.read()
                if _identity(os.stat(path)) == before:
                    return data.decode(self._encoding), before
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        raise RuntimeError("/%s/%s keeps changing while it is read" % (book, href))

    def read_many(self, cards: list[tuple[str, str]]
                  ) -> dict[tuple[str, str], tuple[str, Identity] | None]:
        """None read at once: a file each is read by itself (:meth:`read`), as cheap."""
        return {}

    def text(self, book: str, href: str) -> str | None:
        found = self.read(book, href)
        return found[0] if found else None

    def books(self) -> Iterator[tuple[str, str]]:
        """(book path, folder) of every address book, read from the folders themselves."""
        with os.scandir(self._root) as users:
            for user in sorted((u for u in users if u.is_dir() and _visible(u.name)),
                               key=lambda u: u.name):
                try:
                    with os.scandir(user.path) as books:
                        found = sorted(books, key=lambda b: b.name)
                except (FileNotFoundError, NotADirectoryError):
                    # gone meanwhile: Radicale's own storage checks make and remove tmp*
                    # folders here at every start
                    continue
                for book in found:
                    if book.is_dir() and _visible(book.name) and _is_address_book(book.path):
                        yield "%s/%s" % (user.name, book.name), book.path

    def book_cards(self, book: str) -> list[tuple[str, str]]:
        """(href, text) of every card of a book, read from its files."""
        out = []
        with os.scandir(self.folder(book)) as entries:
            for entry in entries:
                if entry.is_file() and pathutils.is_safe_filesystem_path_component(entry.name):
                    found = self.read(book, entry.name)
                    if found is not None:
                        out.append((entry.name, found[0]))
        return out

    def unavailable(self, book: str) -> str | None:
        """Why a book the index knows cannot be read for now (its folder missing or not a
        folder); None: it can, or its path names no folder at all."""
        try:
            folder = self.folder(book)
        except ValueError:
            return None
        except OSError as e:
            return e.strerror or str(e)
        return None if os.path.isdir(folder) else "its folder is missing"

    @staticmethod
    def folder_mtime(folder: str) -> int:
        try:
            return os.stat(folder).st_mtime_ns
        except OSError:
            return 0

    # -- writing --------------------------------------------------------------------
    def prepare(self, writes: list[Write]) -> None:
        """Write every new text to its temporary file (in parallel); make them durable.

        A write that fails (an I/O error, a book folder that is not a folder for the
        moment) gets its ``error`` and is done; the others go on.  A failure of the
        whole batch (the disk sync) is raised.
        """
        for write in writes:
            try:
                write.folder = self.folder(write.book)
            except (OSError, ValueError) as e:
                self.abandon(write, e)
                continue
            write.target = os.path.join(write.folder, write.href)
            write.new = _temp_names(write.folder, write.href)[0]
        list(self._pool.map(self._prepare_or_fail, [w for w in writes if not w.done]))
        self.sync(writes, files=True)

    def _prepare_or_fail(self, write: Write) -> None:
        try:
            self._prepare_one(write)
        except OSError as e:
            self.abandon(write, e)

    def abandon(self, write: Write, error: Exception) -> None:
        """Give a write up: it is done and not renamed, and what it left goes (if it can)."""
        write.error, write.done = error, True
        if write.folder:
            with contextlib.suppress(OSError):
                self._discard(write)

    def _prepare_one(self, write: Write) -> None:
        new, old = _temp_names(write.folder, write.href)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(old)
        fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            os.write(fd, write.text.encode(self._encoding))
            if self._fsync and _SYNCFS is None:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        if write.was is not None:
            with contextlib.suppress(FileNotFoundError):
                os.link(os.path.join(write.folder, write.href), old)

    def commit(self, writes: list[Write], budget: float) -> list[Write]:
        """Under the exclusive lock, for at most ``budget`` seconds: check and rename.

        Returns the writes done in this hold; a write whose card changed
        since it was read is dropped (its temporary files removed) and stays
        not done.  The caller repeats until every write is done or dropped.
        """
        done: list[Write] = []
        changed: list[Write] = []
        with self.quiet, self._exclusive():
            # as little Python as can be in here: every step may wait for the interpreter
            deadline = time.monotonic() + budget
            for write in writes:
                if write.done:
                    continue
                if (done or changed) and (time.monotonic() > deadline
                                          or len(done) >= MAX_RENAMES_PER_HOLD):
                    break
                write.done = True  # decided in this hold, one way or the other
                try:
                    try:
                        now = _identity(os.stat(write.target))
                    except FileNotFoundError:
                        now = None
                    if now != write.was:
                        changed.append(write)
                        continue
                    os.replace(write.new, write.target)
                except OSError as e:  # the card is as it was: the fan-out tries again later
                    write.error = e
                    changed.append(write)
                    continue
                write.renamed = True
                done.append(write)
        for write in changed:
            if write.error is None:
                logger.debug("Copy /%s/%s changed while being written: tried again later",
                             write.book, write.href)
            with contextlib.suppress(OSError):
                self._discard(write)
        return done

    def finish(self, writes: list[Write]) -> None:
        """After the renames: make them durable, then drop the old files (in parallel)."""
        self.sync(writes, files=False)
        list(self._pool.map(lambda w: self._discard(w, keep_new=True), writes))

    def clean(self, book: str, href: str) -> None:
        """Remove what a crash may have left of a write to book/href."""
        with contextlib.suppress(ValueError):
            self._discard(Write(book, href, "", None, self.folder(book)))

    def _discard(self, write: Write, keep_new: bool = False) -> None:
        for name in _temp_names(write.folder, write.href)[1 if keep_new else 0:]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    def sync(self, writes: list[Write], files: bool) -> None:
        """Make the temporary files (``files``) or the renames durable."""
        if not self._fsync or not writes:
            return
        if _SYNCFS is not None:
            fd = os.open(self._root, os.O_RDONLY)
            try:
                if _SYNCFS(fd) != 0:
                    raise OSError(ctypes.get_errno(), "syncfs failed")
            finally:
                os.close(fd)
        elif not files:
            list(self._pool.map(_sync_folder, sorted({w.folder for w in writes})))

    def attempt(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to guard: SQLite undoes a failed statement alone."""
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Radicale's lock, shared: no request writes (nor runs a storage hook) meanwhile.
        For a read that must not catch a MOVE or PUT half done; a few ms at most."""
        with self._store.acquire_lock("r", "radicale-mecard"):
            yield

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        # Radicale's global lock without its storage hook, which runs once per round instead
        with self._store._lock.acquire("w"):  # type: ignore[attr-defined]
            yield

    def run_storage_hook(self) -> None:
        """Run the admin's ``[storage] hook`` once for a round of writes, as Radicale would."""
        if getattr(self._store, "_hook", ""):
            with self._store.acquire_lock("w", "radicale-mecard", request="FANOUT"):
                pass

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _is_address_book(folder: str) -> bool:
    try:
        with open(os.path.join(folder, ".Radicale.props"), encoding="utf-8") as f:
            return json.load(f).get("tag") == "VADDRESSBOOK"
    except (OSError, ValueError, AttributeError):
        return False


def _identity(st: os.stat_result) -> Identity:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _temp_names(folder: str, href: str) -> tuple[str, str]:
    # Radicale's own temporary names: what ignores those (the documented .gitignore of
    # the git hook, backups) ignores these
    return (os.path.join(folder, ".Radicale.tmp-mecard-%s.new" % href),
            os.path.join(folder, ".Radicale.tmp-mecard-%s.old" % href))


def _sync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
