# SPDX-License-Identifier: GPL-3.0-or-later
"""Keeping the server's memory flat from one fan-out to the next (glibc only).

Measured (docs/performance.md): Python's own objects do not grow from one fan-out to
the next, but the process's peak did (243 → 327 → 338 MiB over three fan-outs to
100,000 recipients): C memory freed by one round stays with the allocator's
per-thread arenas (glibc makes up to 8 per core; the worker, the file writer, the
senders and every request thread each take one), fragmented, and the next fan-out's
rounds allocate beside it.  Two glibc tunables, set here for the process because a
plugin cannot choose its server's environment (``MALLOC_ARENA_MAX``):

- at most :data:`ARENAS` arenas, so that freed memory is found again by the next
  round whichever thread allocates;
- ``malloc_trim`` when a fan-out has drained, so that what it freed goes back to the
  system before the next one.

On another C library both are left alone (nothing else to do there).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

from radicale.log import logger

#: glibc's ``M_ARENA_MAX`` parameter of ``mallopt``.
_M_ARENA_MAX = -8
#: Arenas the process may use (glibc's default is 8 per core).
ARENAS = 2

_libc: ctypes.CDLL | None = None
_once = threading.Lock()
_done = False


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name or "libc.so.6")
            libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
        except (OSError, AttributeError):
            return None
        _libc = libc
    return _libc


def limit_arenas() -> None:
    """Allow :data:`ARENAS` malloc arenas from now on (call before starting threads)."""
    global _done
    with _once:
        if _done:
            return
        _done = True
        libc = _glibc()
        if libc is not None and libc.mallopt(_M_ARENA_MAX, ARENAS) != 1:
            logger.debug("Sharing: mallopt(M_ARENA_MAX) refused")


def give_back() -> None:
    """Return the memory freed by a drained fan-out to the system."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
