#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Start Radicale with a sampler of the fan-out's threads: where their time goes.

``python bench/cpu_probe.py --config FILE`` runs ``python -m radicale --config FILE``
with a thread that looks at the fan-out's threads (``mecard-fanout``, ``mecard-writer``)
every 2 ms (from its start, or from its last SIGUSR1) and counts, for each sample of a
busy thread, where it is: waiting for PostgreSQL's answer (psycopg's wait functions), in psycopg's own Python code, in SQLite,
or in the plugin (the innermost function of ``radicale_plugin``).  Idle samples (the
worker waiting for work) are left out.  At exit (SIGTERM), the counts are logged as
``mecard-probe cpu <share %> <samples> <where>`` lines, most first; :func:`summary` reads
them back from the log.
"""

from __future__ import annotations

import atexit
import collections
import re
import runpy
import signal
import sys
import threading
import time
from pathlib import Path

TAG = "mecard-probe cpu"
_THREADS = ("mecard-fanout", "mecard-writer")
_IDLE = {"wait", "_wait_for_tstate_lock", "sleep", "get", "_worker"}


def _where(frame) -> str | None:
    """The sample's category, or None for a thread waiting for work."""
    plugin = psycopg = None
    innermost = frame
    while frame is not None:
        path = frame.f_code.co_filename
        name = frame.f_code.co_name
        if psycopg is None and "/psycopg" in path:
            psycopg = "psycopg wait" if "waiting" in path or name.startswith("wait") \
                else "psycopg Python"
        if "radicale_plugin" in path and plugin is None:
            plugin = "%s.%s" % (Path(path).stem, name)
        elif "radicale_plugin" in path and plugin is not None \
                and plugin.startswith("database."):
            plugin = "%s.%s<%s" % (Path(path).stem, name, plugin)  # who asked the database
        frame = frame.f_back
    if psycopg is None and innermost.f_code.co_name in _IDLE and plugin is not None \
            and ("worker" in plugin or "thread" in plugin):
        return None
    if psycopg is None and ("threading" in innermost.f_code.co_filename or (
            # the writer thread waiting for its next task
            "concurrent/futures" in innermost.f_code.co_filename)):
        return None
    if "sqlite" in innermost.f_code.co_filename:
        return "sqlite3 (%s)" % (plugin or "?")
    return "%s (%s)" % (psycopg, plugin or "?") if psycopg else "plugin %s" % (plugin or "?")


def install() -> None:
    counts: collections.Counter[str] = collections.Counter()

    def sample() -> None:
        while True:
            time.sleep(0.002)
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if names.get(ident, "").startswith(_THREADS):
                    where = _where(frame)
                    if where is not None:
                        counts[where] += 1

    def dump() -> None:
        from radicale.log import logger
        total = sum(counts.values()) or 1
        for where, n in counts.most_common(80):
            logger.info("%s %.1f %d %s", TAG, 100.0 * n / total, n, where)

    threading.Thread(target=sample, name="cpu-probe", daemon=True).start()
    # SIGUSR1: start counting afresh (the bench sends it before the fan-out it measures)
    signal.signal(signal.SIGUSR1, lambda *_: counts.clear())
    atexit.register(dump)


def summary(log: Path, start: int = 0) -> list[tuple[float, int, str]]:
    """(share %, samples, where) of the probe's lines in a server's log since ``start``."""
    with open(log, "rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    return [(float(a), int(b), c) for a, b, c in
            re.findall(re.escape(TAG) + r" ([0-9.]+) (\d+) (.*)", text)]


if __name__ == "__main__":
    install()
    sys.argv[0] = "radicale"
    runpy.run_module("radicale", run_name="__main__", alter_sys=True)
