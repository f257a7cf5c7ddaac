# SPDX-License-Identifier: GPL-3.0-or-later
"""Start Radicale with a probe on the index's writer: who waited for it, how long.

``python bench/writer_probe.py --config FILE`` runs ``python -m radicale --config FILE``
after wrapping ``Database._writing`` (the one place a thread waits for the index's
writer connection, in the code before and after issue 14's last change alike): every wait
of a request's thread (a storage hook, under Radicale's exclusive lock) of 1 ms or more is
logged as ``mecard-probe writer-wait <unix time> <ms> <thread>``.  The fan-out's own
threads (``mecard-*``) are not counted: they hold no storage lock while they wait; their
holds of the writer of 5 ms or more are logged instead, as ``mecard-probe writer-hold
<unix time> <ms> <thread> <where>`` (the plugin's function that held it).  The benchmarks
read these lines from the server's log (:func:`waits`, :func:`holds`).
"""

from __future__ import annotations

import contextlib
import runpy
import sys
import threading
import time
from pathlib import Path

TAG = "mecard-probe writer-wait"
HOLD = "mecard-probe writer-hold"


def _where() -> str:
    """The outermost function of the plugin's that holds the writer (its caller chain)."""
    frame = sys._getframe(2)
    names = []
    while frame is not None:
        path = frame.f_code.co_filename
        if "radicale_plugin" in path and not path.endswith("database.py"):
            names.append("%s.%s" % (Path(path).stem, frame.f_code.co_name))
        frame = frame.f_back  # type: ignore[assignment]
    return "<".join(names[:4]) or "?"


def install() -> None:
    from radicale_plugin.index.sqlite import database

    original = database.Database._writing
    depth = threading.local()

    @contextlib.contextmanager
    def _writing(self):  # type: ignore[no-untyped-def]
        name = threading.current_thread().name
        outer = not getattr(depth, "n", 0)
        begin = time.monotonic()
        with original(self):
            got = time.monotonic()
            waited = got - begin
            if waited >= 0.001 and not name.startswith("mecard-"):
                print("%s %.3f %.2f %s" % (TAG, time.time(), waited * 1000, name),
                      file=sys.stderr, flush=True)
            depth.n = getattr(depth, "n", 0) + 1
            try:
                yield
            finally:
                depth.n -= 1
                held = time.monotonic() - got
                if outer and held >= 0.005 and name.startswith("mecard-"):
                    print("%s %.3f %.2f %s %s" % (HOLD, time.time(), held * 1000, name,
                                                  _where()), file=sys.stderr, flush=True)

    database.Database._writing = _writing  # type: ignore[method-assign]


def _lines(log: Path, start: int, tag: str) -> list[list[str]]:
    with open(log, "rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    return [line[len(tag):].split() for line in text.splitlines() if line.startswith(tag)]


def waits(log: Path, start: int = 0) -> list[tuple[float, float]]:
    """(unix time, ms) of the hooks' waits for the writer in ``log`` from byte ``start``."""
    return [(float(p[0]), float(p[1])) for p in _lines(log, start, TAG)]


def holds(log: Path, start: int = 0) -> list[tuple[float, str]]:
    """(ms, where) of the fan-out's holds of the writer of 5 ms or more."""
    return [(float(p[1]), p[3] if len(p) > 3 else "?") for p in _lines(log, start, HOLD)]


if __name__ == "__main__":
    install()
    sys.argv = ["radicale"] + sys.argv[1:]
    runpy.run_module("radicale", run_name="__main__", alter_sys=True)
