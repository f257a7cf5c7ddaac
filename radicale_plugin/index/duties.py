# SPDX-License-Identifier: GPL-3.0-or-later
"""Duties that run in one process at a time, whatever the number of processes sharing
the index: each holds a lease (:class:`radicale_plugin.index.LeaseStore`) while it works.

The process asks for the duty's lease at each tick of its loop (:meth:`Duty.hold`),
which renews it while it holds it; the other processes are refused and stand by.  A
process that dies stops renewing: at most ``seconds`` later the next one asking takes
the duty over, and learns so (:attr:`Duty.gained`) to pick up what the dead one left.
A duty done once per period (a purge every hour) is held for the period and not
released: no other process does it again within that period.

A process is told apart by :func:`holder`: host, process id and a random part (a pid
comes back after a restart; a forked server worker gets its own), one per index object:
two services of one process on one database (tests) are two holders, as two processes.
The host part names the process-id namespace too, so that :func:`dead_here` can tell a
holder of this very machine whose process is gone: a server restarted after ``kill -9``
takes over its duties and claims at once instead of waiting for their leases to lapse.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
import weakref

from radicale_plugin import index

def _host() -> str:
    try:  # containers sharing a host name do not share process ids
        space = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return "%s~%d" % (socket.gethostname(), space)


_holders: weakref.WeakKeyDictionary[index.SharingIndex, tuple[int, str]] = \
    weakref.WeakKeyDictionary()
_lock = threading.Lock()


def holder(ix: index.SharingIndex) -> str:
    """This process's name in the leases and claims of ``ix``: ``host:pid:random``."""
    pid = os.getpid()
    with _lock:
        found = _holders.get(ix)
        if found is None or found[0] != pid:  # made again in a forked child
            found = _holders[ix] = (pid, "%s:%d:%s" % (_host(), pid, secrets.token_hex(4)))
        return found[1]


def dead_here(name: str) -> bool:
    """Whether ``name`` is a holder of this machine whose process is gone (it was killed:
    its leases and claims need not be waited out).  False when it cannot be told."""
    host, _, rest = name.rpartition(":")[0].rpartition(":")
    pid = rest
    if host != _host() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's): alive
        return False
    return False


class Duty:
    """One duty's lease, as this process sees it."""

    def __init__(self, ix: index.SharingIndex, name: str, seconds: float) -> None:
        self._index = ix
        self.name = name
        self.seconds = seconds
        #: Whether the last :meth:`hold` took the duty over (it was not held by this
        #: process before): what a previous holder left may want settling.
        self.gained = False
        self._held = False
        self._renewed = 0.0

    def hold(self, now: float | None = None) -> bool:
        """Take or renew the lease; whether this process holds the duty now."""
        now = time.time() if now is None else now
        if self._held and 0 <= now - self._renewed < self.seconds / 3:
            self.gained = False  # renewed a moment ago: no write for every tick
            return True
        me = holder(self._index)
        held = self._index.leases.take(self.name, me, self.seconds, now)
        if not held:
            other = self._index.leases.holder(self.name, now)
            if other is not None and dead_here(other):
                self._index.leases.release(self.name, other)  # its process was killed
                held = self._index.leases.take(self.name, me, self.seconds, now)
        self.gained = held and not self._held
        self._held = held
        self._renewed = now
        return held

    def release(self) -> None:
        """Give the duty up (a clean stop, or a duty done): another process may take it."""
        if self._held:
            self._held = False
            self._index.leases.release(self.name, holder(self._index))
