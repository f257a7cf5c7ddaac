# SPDX-License-Identifier: GPL-3.0-or-later
"""Start Radicale with a probe on the fan-out's memory: the peak RSS of each phase.

``python bench/memory_probe.py --config FILE`` runs ``python -m radicale --config FILE``
after wrapping the fan-out's phases (planning and its target selection, the queue scan,
gathering, deciding, the records, the writer thread's files, the card-key reindex): a
thread samples the process's RSS every 10 ms and charges it to the phases running in
the fan-out's threads at that moment.  When a fan-out drains (``memory.give_back``) one
line per phase is logged, ``mecard-probe mem <phase> <peak RSS KiB> <calls> <largest rise
of the RSS within one call KiB>``, then
``mecard-probe mem-end <RSS after trim KiB>``; the counts start again.  With
``MECARD_PROBE_TRACEMALLOC=1`` Python's own allocations are traced too: each phase's
peak of traced memory (``mecard-probe py <phase> <peak KiB>``), and the 12 largest
allocation sites alive when the biggest phase ends.  Opt-in, for the benchmarks only:
nothing of it is in the product.  :func:`phases` reads the lines back.
"""

from __future__ import annotations

import functools
import os
import runpy
import sys
import threading
import time
from pathlib import Path

TAG = "mecard-probe mem"
PY = "mecard-probe py"
END = "mecard-probe mem-end"
_PAGE = os.sysconf("SC_PAGE_SIZE") // 1024

_lock = threading.Lock()
_active: dict[int, list[list]] = {}     # thread id -> [phase, RSS at entry, max] entered
_peak: dict[str, int] = {}              # phase -> largest RSS sampled during it (KiB)
_rise: dict[str, int] = {}              # phase -> largest rise within one call (KiB)
_calls: dict[str, int] = {}
_py_peak: dict[str, int] = {}
_trace = os.environ.get("MECARD_PROBE_TRACEMALLOC") == "1"


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _sampler() -> None:
    while True:
        rss = _rss()
        with _lock:
            for stack in _active.values():
                for frame in stack:
                    frame[2] = max(frame[2], rss)
        time.sleep(0.01)


def _wrap(owner: object, name: str, phase: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        me = threading.get_ident()
        rss = _rss()
        with _lock:
            _active.setdefault(me, []).append([phase, rss, rss])
            _calls[phase] = _calls.get(phase, 0) + 1
        if _trace:
            import tracemalloc
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
        try:
            return original(*args, **kwargs)
        finally:
            rss = _rss()
            with _lock:
                _, entry, top = _active[me].pop()
                top = max(top, rss)
                _peak[phase] = max(_peak.get(phase, 0), top)
                _rise[phase] = max(_rise.get(phase, 0), top - entry)
            if _trace:
                import tracemalloc
                peak = tracemalloc.get_traced_memory()[1] - before
                if peak > _py_peak.get(phase, 0):
                    _py_peak[phase] = peak
                    if peak > 20 << 20 and phase in ("select", "plan", "gather", "decide",
                                                     "reconcile", "reconcile:cards"):
                        _top(phase, peak)

    setattr(owner, name, wrapper)


def _top(phase: str, peak: int) -> None:
    import tracemalloc
    snapshot = tracemalloc.take_snapshot()
    lines = ["%s-top %s peak %d KiB; alive now:" % (PY, phase, peak // 1024)]
    for stat in snapshot.statistics("lineno")[:12]:
        frame = stat.traceback[0]
        lines.append("  %8d KiB %7d blocks %s:%d" % (stat.size // 1024, stat.count,
                                                  frame.filename.split("/")[-1], frame.lineno))
    print("\n".join(lines), file=sys.stderr, flush=True)


def store_class(module: object) -> type:
    """The SQL store class a module defines (named SQL..., SQLite... before)."""
    return next(v for k, v in vars(module).items() if isinstance(v, type)
                and k.startswith("SQL") and v.__module__ == module.__name__)  # type: ignore


def _report() -> None:
    with _lock:
        peaks, calls, py, rise = dict(_peak), dict(_calls), dict(_py_peak), dict(_rise)
        _peak.clear()
        _rise.clear()
        _calls.clear()
        _py_peak.clear()
    for phase, kib in sorted(peaks.items(), key=lambda kv: -kv[1]):
        print("%s %s %d %d %d" % (TAG, phase, kib, calls.get(phase, 0), rise.get(phase, 0)),
              file=sys.stderr)
    for phase, size in sorted(py.items(), key=lambda kv: -kv[1]):
        print("%s %s %d" % (PY, phase, size // 1024), file=sys.stderr)
    if os.environ.get("MECARD_PROBE_SMAPS") == "1":
        print("%s-smaps %s" % (TAG, " ".join("%s=%d" % kv for kv in _smaps().items())),
              file=sys.stderr)
    if _trace:  # Python's objects alive now: what stays of a fan-out, apart from C memory
        import tracemalloc
        print("%s-live %d" % (PY, tracemalloc.get_traced_memory()[0] // 1024),
              file=sys.stderr)
    print("%s %d" % (END, _rss()), file=sys.stderr, flush=True)


def _smaps() -> dict[str, int]:
    """The process's RSS (KiB) by kind of mapping: ``heap`` (glibc's main arena), ``anon``
    (other anonymous memory: Python's object arenas, glibc's other arenas, big blocks),
    ``file``; and ``pymalloc``: Python's object arenas (KiB, whether touched or not)."""
    out = {"heap": 0, "anon": 0, "file": 0}
    kind = "anon"
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and ":" not in head[0]:
                name = head[5] if len(head) > 5 else ""
                kind = "heap" if name == "[heap]" else "file" if name.startswith("/") else "anon"
            elif head[0] == "Rss:":
                out[kind] += int(head[1])
    out["pymalloc"] = _pymalloc_arenas()
    return out


def _pymalloc_arenas() -> int:
    """Python's object arenas now (KiB), from ``sys._debugmallocstats`` (it writes to the
    C stderr: read back through a pipe)."""
    import re
    read, write = os.pipe()
    saved = os.dup(2)
    try:
        sys.stderr.flush()
        os.dup2(write, 2)
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write)
    with os.fdopen(read, errors="replace") as f:
        text = f.read()
    found = re.search(r"(\d+) arenas \* (\d+) bytes/arena", text)
    return int(found.group(1)) * int(found.group(2)) // 1024 if found else -1


def install() -> None:
    from radicale_plugin.delivery import gather as gather_module
    from radicale_plugin.delivery.card_index import CardKeys
    from radicale_plugin.fanout import memory, records, worker
    from radicale_plugin.index.sql import outbox
    from radicale_plugin.owner.targets import Targets

    if _trace:
        import tracemalloc
        tracemalloc.start(1)
    _wrap(worker.FanoutWorker, "_plan", "plan")
    _wrap(Targets, "select", "select")
    # the class's name before and after the stores were made portable (SQLite, PostgreSQL)
    store = getattr(outbox, "SQLOutbox", None) or getattr(outbox, "SQLiteOutbox")
    _wrap(store, "plan", "plan-sql")
    _wrap(store, "pending_deliveries", "queue")
    _wrap(worker.FanoutWorker, "_decide", "decide")
    # the worker imported gather by name: wrap it there
    _wrap(gather_module, "gather", "gather")
    worker.gather = gather_module.gather  # type: ignore[attr-defined]
    _wrap(records.Records, "intents", "intents")
    _wrap(records.Records, "results", "results")
    _wrap(worker.FanoutWorker, "_write", "write")
    _wrap(CardKeys, "reindex_pending", "reindex")
    # the start-up check (a restart's peak): the card-key index, the links, the whole check
    from radicale_plugin.consent.links import Links
    _wrap(worker.FanoutWorker, "reconcile", "reconcile")
    _wrap(CardKeys, "reconcile", "reconcile:cards")
    _wrap(Links, "reconcile", "reconcile:links")
    _wrap(worker.FanoutWorker, "drain", "drain")
    # inside the planning: the owner's book, the keys' holders, links, the rules, the plan
    from radicale_plugin.index.sql import cards, keys, links
    from radicale_plugin.owner import targets
    for module, name, phase in ((cards, "cards_of", "plan:cards"),
                                (keys, "holders", "plan:holders"),
                                (links, "of_owner", "plan:links"),
                                (links, "get_many", "links.get_many")):
        store = next(v for k, v in vars(module).items() if isinstance(v, type)
                     and k.startswith("SQL") and name in vars(v))
        _wrap(store, name, phase)
    _wrap(targets, "evaluate", "plan:evaluate")
    _wrap(targets.Book, "from_index", "plan:book")
    _wrap(store_class(outbox), "_left_out", "plan:left-out")
    original = memory.give_back

    def give_back() -> None:
        original()
        _report()

    memory.give_back = give_back  # type: ignore[assignment]
    threading.Thread(target=_sampler, name="probe-sampler", daemon=True).start()


def phases(log: Path, start: int = 0) -> list[dict[str, int]]:
    """Per drained fan-out in ``log`` from byte ``start``: phase -> peak RSS (KiB), and
    ``"after"`` -> the RSS after the trim."""
    with open(log, "rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    found: list[dict[str, int]] = [{}]
    for line in text.splitlines():
        if line.startswith(END):
            found[-1]["after"] = int(line.split()[-1])
            found.append({})
        elif line.startswith(TAG + " "):
            parts = line[len(TAG):].split()
            found[-1][parts[0]] = int(parts[1])
    return [f for f in found if f]


if __name__ == "__main__":
    install()
    sys.argv = ["radicale"] + sys.argv[1:]
    runpy.run_module("radicale", run_name="__main__", alter_sys=True)
