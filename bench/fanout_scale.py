# SPDX-License-Identifier: GPL-3.0-or-later
"""How the fan-out scales with the number of users, the queue and the me cards.

* **(a) planning per recipient**: two servers side by side, one with
  ``--small`` users and one with ``--users`` users (2-card books); in both
  the owner ``alice`` shares with ``--shared`` of them.  In interleaved
  rounds she changes her number; printed per world: planning time (the
  ``plan`` lap of the first fan-out round, from the server's debug log) and
  per recipient, the time from her PUT to the first delivered row in the
  index, and to the last.  Goal: planning per recipient does not grow with
  the number of users.
* **(b) queue scan**: the SQLite backend alone, with ``--queue`` pending
  deliveries (20,000 and 100,000): ``outbox.pending_deliveries(limit=200)``
  timed at the front, the middle and the end of draining the queue (each
  batch finished after the next call, as the overlapped rounds do; the two
  queues drained in step).  Goal: flat.
* **(c) first write after a restart**: ``--me-cards`` users each designate a
  me card (through the API); the server is stopped and started again, and
  another user's ordinary PUT is timed at once and again ``--after`` seconds
  later; for the first restart (the me cards' file stats are not yet
  recorded, so the start-up check reads each me card), a second restart, a
  restart after ``alice`` fanned out to all of them (the start-up check reads
  again the books the fan-out wrote into), and plain Radicale (no plugin) on
  the same folder.  Goal: <= 0.1 s.
* **(d) peak memory**: the ``--users`` world again, ``alice`` now sharing with
  every user: the server's peak RSS (``VmHWM`` in ``/proc/PID/status``) after
  a clean start (one start first reads her grown book) and after the fan-out
  to all of them; also the fan-out's rate and where its rounds spent their
  time (the server's debug log).  Goal: <= 256 MiB at 100,000, and flat over
  ``--fanouts`` fan-outs in a row; then a restart, her book changed meanwhile (its
  peak: the start-up check reads it again, and every book the fan-outs wrote into).
  ``--probe`` runs the server under
  ``bench/memory_probe.py`` and prints, per fan-out, the peak RSS of each of its phases
  (planning, gathering, records, the writer's files...); ``--code TREE`` runs the server
  from another tree's plugin (a copy of the code before a change: run once with each).

Worlds are built straight in the storage folder (see ``bench/world.py``) and
deleted at the end (``--keep`` keeps them).  Usage:
``bench/fanout_scale.py [--parts abcd] [--users 100000] [--small 1000] [--shared 1000]
[--rounds 5] [--fanouts 1] [--probe] [--code TREE] [--queue 20000 100000] [--queue-rounds 3]
[--me-cards 10000] [--after 60] [--dir DIR] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.memory_probe import phases  # noqa: E402
from bench.world import (World, build, card, me_card, number, seq,  # noqa: E402
                         share, verify_recipients)

ROUND_LINE = re.compile(r"Fan-out round: (\d+) deliveries, (\d+) copies written; plan ([0-9.]+) ms")
DRAINED_LINE = re.compile(r"Fan-out: (\d+) deliveries \((\d+) copies written\) in ([0-9.]+) s; "
                          r"longest hold of the storage lock ([0-9.]+) ms")


def ms(seconds: float) -> str:
    return "%.1f ms" % (seconds * 1000)


def proc_status(pid: int, name: str) -> int:
    """A ``VmHWM``/``VmRSS`` line of /proc/PID/status, in KiB."""
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


def log_since(world: World, offset: int) -> str:
    with open(world.log, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def log_size(world: World) -> int:
    return world.log.stat().st_size if world.log.exists() else 0


def count_delivered(world: World, change: int) -> int:
    con = sqlite3.connect("file:%s?mode=ro" % world.database, uri=True, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM deliveries WHERE owner = 'alice' AND "
                           "delivered_seq >= ? AND state = 'delivered'", (change,)).fetchone()[0]
    finally:
        con.close()


def wait_delivered(world: World, change: int, count: int, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while count_delivered(world, change) < count:
        if time.monotonic() > deadline:
            raise RuntimeError("fan-out did not finish")
        time.sleep(0.05)


# -- worlds ---------------------------------------------------------------------------

def build_scale(root: Path, users: int, shared: int) -> World:
    """``users`` recipients with 2-card books (their card for Alice with her old number,
    and one other); Alice's book holds ``shared`` of them, spread over the range."""
    shutil.rmtree(root, ignore_errors=True)
    world = World(root, users, 2)
    top = world.folder / "collection-root"
    names = world.users()
    root.mkdir(parents=True)
    (root / "users").write_text("".join("%s:%s-pw\n" % (u, u)
                                        for u in ["alice", "other"] + names))
    book_props = json.dumps({"tag": "VADDRESSBOOK", "D:displayname": "Contacts"})
    for user in ["alice", "other"] + names:
        folder = top / user / "contacts"
        folder.mkdir(parents=True)  # no principal .Radicale.props: Radicale reads none as {}
        (folder / ".Radicale.props").write_text(book_props)
    for i, user in enumerate(names):
        folder = top / user / "contacts"
        (folder / "alice.vcf").write_text(card(user + "-alice", "Ally",
                                               "TEL;TYPE=CELL:" + number(999999), "NICKNAME:Sis"))
        (folder / "c00.vcf").write_text(card(user + "-c00", "Contact of " + user,
                                             "TEL;TYPE=CELL:+1 303 555 %04d" % (i % 10000)))
    (top / "alice" / "contacts" / "alice.vcf").write_text(me_card(number(999999)))
    add_contacts(world, [i * users // shared for i in range(shared)])
    (top / "other" / "contacts" / "x.vcf").write_text(card("x", "X", "TEL:+1 404 555 0000"))
    return world


def add_contacts(world: World, indices: list[int]) -> None:
    """Alice's contacts for these recipients (one card each, with the recipient's number)."""
    alice = world.folder / "collection-root" / "alice" / "contacts"
    names = world.users()
    for i in indices:
        (alice / ("c-%s.vcf" % names[i])).write_text(
            card("c-" + names[i], "Friend %s" % names[i], "TEL;TYPE=CELL:" + number(i)))


def touch_book(world: World) -> None:
    """A contact added to Alice's book while the server is stopped: the next start reads
    her whole book again."""
    alice = world.folder / "collection-root" / "alice" / "contacts"
    n = len(list(alice.glob("x-*.vcf")))
    (alice / ("x-%d.vcf" % n)).write_text(card("x-%d" % n, "Added %d" % n,
                                               "TEL;TYPE=CELL:+1 404 555 %04d" % n))


def wait_for_line(world: World, offset: int, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log_since(world, offset):
            return True
        time.sleep(0.2)
    return False


# -- (a) planning ---------------------------------------------------------------------

def planning_round(world: World, change: int, shared: int) -> dict[str, float]:
    offset = log_size(world)
    con = sqlite3.connect("file:%s?mode=ro" % world.database, uri=True, timeout=30)
    try:
        begin = time.perf_counter()
        world.put_me_card(number(300000 + change))
        target = seq(world)
        first = 0.0
        while True:
            found = con.execute("SELECT COUNT(*) FROM deliveries WHERE owner = 'alice' AND "
                                "delivered_seq >= ?", (target,)).fetchone()[0]
            now = time.perf_counter() - begin
            if found and not first:
                first = now
            if found >= shared:
                break
            time.sleep(0.002)
        last = now
    finally:
        con.close()
    text = ""
    deadline = time.monotonic() + 30
    while not DRAINED_LINE.search(text) and time.monotonic() < deadline:
        time.sleep(0.1)
        text = log_since(world, offset)
    plans = [float(m.group(3)) / 1000 for m in ROUND_LINE.finditer(text)]
    goes = re.search(r"goes to (\d+) recipient", text)
    assert goes and int(goes.group(1)) == shared, (goes and goes.group(0), shared)
    return {"plan": max(plans) if plans else float("nan"), "first": first, "all": last}


def part_a_and_d(args: argparse.Namespace) -> None:
    worlds: list[World] = []
    parts = args.parts
    sizes = [args.small, args.users] if "a" in parts else [args.users]
    for size in sizes:
        print("building %d users with 2-card books (alice shares with %d)..."
              % (size, args.shared), file=sys.stderr)
        begun = time.monotonic()
        world = build_scale(args.dir / ("scale-%d" % size), size, min(args.shared, size))
        verify_recipients(world)
        world.options.update({"mecard_rewrite_spacing": "0", "_level": "debug"})
        print("  built in %.0f s" % (time.monotonic() - begun), file=sys.stderr)
        worlds.append(world)
    try:
        for world in worlds:
            begun = time.monotonic()
            world.start().ready()
            print("  %d users: card-key index built in %.0f s at the first start"
                  % (world.recipients, time.monotonic() - begun), file=sys.stderr)
            share(world)
            wait_delivered(world, seq(world), min(args.shared, world.recipients))
        if "a" in parts:
            results: dict[int, list[dict[str, float]]] = {w.recipients: [] for w in worlds}
            for r in range(args.rounds):
                for world in worlds:
                    results[world.recipients].append(
                        planning_round(world, 2 * r + worlds.index(world), args.shared))
            print("\n(a) planning, alice shares with %d users; %d interleaved rounds "
                  "(min / median)" % (args.shared, args.rounds))
            per: dict[int, float] = {}
            for size, rounds in results.items():
                def fig(name: str) -> str:
                    values = [x[name] for x in rounds]
                    return "%7.1f / %7.1f ms" % (min(values) * 1000,
                                                 statistics.median(values) * 1000)
                per[size] = statistics.median(x["plan"] for x in rounds) / args.shared
                print("  %6d users: plan lap %s (%.1f us per recipient); PUT -> first delivered "
                      "%s; PUT -> all %d delivered %s"
                      % (size, fig("plan"), per[size] * 1e6, fig("first"), args.shared,
                         fig("all")))
            if len(per) == 2:
                print("  planning per recipient, %d vs %d users: ratio %.2f (goal: flat)"
                      % (args.users, args.small, per[args.users] / per[args.small]))
        for world in worlds:
            world.stop()
        if "d" in parts:
            part_d(worlds[-1], args)
    finally:
        for world in worlds:
            world.stop()
            if not args.keep:
                shutil.rmtree(world.root, ignore_errors=True)


# -- (d) peak memory ------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat)."""
    fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, timeout: float = 900) -> bool:
    """Until the process used less than 5% of a core for 3 s in a row (start-up check done)."""
    deadline = time.monotonic() + timeout
    last, quiet = cpu_seconds(pid), 0
    while time.monotonic() < deadline:
        time.sleep(1)
        now = cpu_seconds(pid)
        quiet = quiet + 1 if now - last < 0.05 else 0
        last = now
        if quiet >= 3:
            return True
    return False


def lap_totals(text: str) -> tuple[int, dict[str, float], float]:
    """Rounds, their laps summed (seconds) and the longest lock hold (ms), from debug lines."""
    rounds, hold = 0, 0.0
    laps: dict[str, float] = {}
    for line in text.splitlines():
        if "Fan-out round: " not in line:
            continue
        rounds += 1
        parts = line.split("; ")
        for name, value in re.findall(r"([a-z][a-z ,]*?) ([0-9.]+) ms", parts[1]):
            laps[name] = laps.get(name, 0.0) + float(value) / 1000
        found = re.search(r"longest lock hold ([0-9.]+) ms", line)
        hold = max(hold, float(found.group(1)) if found else 0.0)
    return rounds, laps, hold


def part_d(world: World, args: argparse.Namespace) -> None:
    size = world.recipients
    shared = min(args.shared, size)
    print("(d) alice now shares with all %d users..." % size, file=sys.stderr)
    spread = {i * size // shared for i in range(shared)}
    add_contacts(world, [i for i in range(size) if i not in spread])
    world.options["_level"] = "debug"  # the rounds' laps
    world.memory_probe = args.probe
    if args.code is not None:
        world.code = args.code.resolve()
        print("  the server runs the plugin of %s" % world.code, file=sys.stderr)
    # a first start reads Alice's grown book again; the measured start is the next one
    for attempt in range(3):
        world.start()
        wait_idle(world.process.pid if world.process else 0)
        grown = proc_status(world.process.pid, "VmHWM") if world.process else 0
        world.stop()
        if not world.start_check_failed():
            print("  the start that read her grown book (%d cards): VmHWM %.0f MiB"
                  % (size + 1, grown / 1024.0), file=sys.stderr, flush=True)
            break
    world.start()
    pid = world.process.pid if world.process else 0
    if not wait_idle(pid):
        print("  note: the server did not go idle after its start", file=sys.stderr)
    start_hwm, start_rss = proc_status(pid, "VmHWM"), proc_status(pid, "VmRSS")
    after: list[tuple[float, float, float]] = []  # per fan-out: VmHWM, VmRSS, rate
    samples: list[int] = []
    text = ""
    for fanout in range(args.fanouts):
        offset = log_size(world)
        begin = time.perf_counter()
        world.put_me_card(number(310000 + fanout))
        target = seq(world)
        while count_delivered(world, target) < size:
            samples.append(proc_status(pid, "VmRSS"))
            time.sleep(0.5)
        elapsed = time.perf_counter() - begin
        wait_for_line(world, offset, "Fan-out: ", 30)
        after.append((proc_status(pid, "VmHWM"), proc_status(pid, "VmRSS"), size / elapsed))
        print("  fan-out %d: VmHWM %.0f MiB, VmRSS %.0f MiB, %.0f /s" % (
            fanout + 1, after[-1][0] / 1024.0, after[-1][1] / 1024.0, after[-1][2]),
            file=sys.stderr, flush=True)
        text = log_since(world, offset)
        if args.probe:
            wait_for_line(world, offset, "mecard-probe mem-end", 30)
            for found in phases(world.log, offset)[-1:]:
                print("  fan-out %d, peak RSS by phase: %s" % (fanout + 1, ", ".join(
                    "%s %.0f" % (k, v / 1024.0) for k, v in found.items())),
                    file=sys.stderr, flush=True)
    end_hwm, end_rss = after[-1][0], after[-1][1]
    elapsed = size / after[-1][2]
    drained = DRAINED_LINE.findall(text)
    world.stop()
    # a restart after the fan-outs: the start-up check reads again every book they wrote
    # into, and Alice's whole book, changed while the server was stopped (a contact added
    # by hand, a backup restored): a restart is part of the peak too (issue 14)
    offset = log_size(world)
    touch_book(world)
    world.start()
    pid = world.process.pid if world.process else 0
    if not wait_idle(pid):
        print("  note: the server did not go idle after its restart", file=sys.stderr)
    restart = (proc_status(pid, "VmHWM"), proc_status(pid, "VmRSS"))
    print("  restart after the fan-outs: VmHWM %.0f MiB, VmRSS %.0f MiB" % (
        restart[0] / 1024.0, restart[1] / 1024.0), file=sys.stderr, flush=True)
    if args.probe and wait_for_line(world, offset, "mecard-probe mem-end", 30):
        for found in phases(world.log, offset)[:1]:
            print("  restart, peak RSS by phase: %s" % ", ".join(
                "%s %.0f" % (k, v / 1024.0) for k, v in found.items()),
                file=sys.stderr, flush=True)
    world.stop()
    rounds, laps, hold = lap_totals(text)
    mib = 1024.0
    print("\n(d) peak memory of the server process, fan-out to %d recipients "
          "(2-card books, %d of them new targets found by her old number)" % (size, size - shared))
    print("  after a clean start (card-key index built, start-up check done): VmRSS %.0f MiB, "
          "VmHWM %.0f MiB" % (start_rss / mib, start_hwm / mib))
    print("  after the fan-out: VmHWM %.0f MiB (goal <= 256 MiB), VmRSS %.0f MiB; "
          "largest VmRSS sampled during it %.0f MiB"
          % (end_hwm / mib, end_rss / mib, max(samples + [end_rss]) / mib))
    print("  fan-out: %d recipients in %.1f s (%.0f /s)%s"
          % (size, elapsed, size / elapsed,
             "; server: %s deliveries, %s copies, longest lock hold %s ms"
             % (drained[-1][0], drained[-1][1], drained[-1][3]) if drained else ""))
    print("  restart after the fan-outs (the start-up check reads the books they wrote "
          "into, and Alice's whole book): VmHWM %.0f MiB, VmRSS %.0f MiB"
          % (restart[0] / mib, restart[1] / mib))
    if len(after) > 1:
        # flat: the peak does not grow from one fan-out to the next (goal of issue 14)
        print("  after each of %d fan-outs: %s" % (len(after), "; ".join(
            "VmHWM %.0f MiB, VmRSS %.0f MiB, %.0f /s" % (h / mib, r / mib, rate)
            for h, r, rate in after)))
    if rounds:
        print("  its %d rounds, laps summed (the next round is decided while the last one's "
              "files are written): %s; longest hold in a round %.1f ms"
              % (rounds, ", ".join("%s %.1f s" % kv for kv in laps.items()), hold))


# -- (b) queue scan -------------------------------------------------------------------

def part_b(args: argparse.Namespace) -> None:
    from radicale_plugin import index as idx
    from radicale_plugin.index.sqlite import SQLiteIndex
    from radicale_plugin.vcard.view import DEFAULT_SHARED_FIELDS, Entry, View

    folder = args.dir / "queue"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sizes = sorted(args.queue)
    indexes = {n: SQLiteIndex(str(folder / ("queue-%d.sqlite" % n))) for n in sizes}
    # per size and bucket: the median ms per call of each round
    buckets = ("front", "middle", "end")
    results: dict[int, dict[str, list[float]]] = {n: {b: [] for b in buckets} for n in sizes}
    plan_times: dict[int, list[float]] = {n: [] for n in sizes}
    try:
        for r in range(args.queue_rounds):
            for n in sizes:  # one change of alice's, planned for n recipients
                ix = indexes[n]
                v = View((Entry("FN", "Alice Archer"), Entry("TEL", number(320000 + r), ("cell",))),
                         DEFAULT_SHARED_FIELDS)
                assert ix.owners.record_view("alice", v, v, v.values("US"))
                job = [j for j in ix.outbox.pending_jobs(10) if j.owner == "alice"][-1]
                begin = time.perf_counter()
                ix.outbox.plan(job, {"r%06d" % i: ["all"] for i in range(n)})
                plan_times[n].append(time.perf_counter() - begin)
            calls: dict[int, list[tuple[float, float]]] = {n: [] for n in sizes}
            done = {n: 0 for n in sizes}
            busy: dict[int, list[idx.Delivery]] = {n: [] for n in sizes}
            while any(done[n] < n for n in sizes):
                n = min((m for m in sizes if done[m] < m), key=lambda m: done[m] / m)
                ix = indexes[n]
                now = time.time()
                begin = time.perf_counter()
                batch = ix.outbox.pending_deliveries(200, now,
                                                     [(d.owner, d.recipient) for d in busy[n]])
                calls[n].append((done[n] / n, time.perf_counter() - begin))
                finish(ix, busy[n], now)
                busy[n] = batch
                done[n] += len(batch)
                if not batch:
                    raise RuntimeError("the queue of %d ran dry at %d" % (n, done[n]))
            for n in sizes:
                finish(indexes[n], busy[n], time.time())
                assert not indexes[n].outbox.pending_deliveries(10, time.time())
                for bucket, found in split(calls[n]).items():
                    results[n][bucket].append(statistics.median(found) * 1000)
    finally:
        for ix in indexes.values():
            ix.close()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print("\n(b) queue scan: outbox.pending_deliveries(limit=200) while draining, ms per call; "
          "%d rounds (min / median of the rounds' medians)" % args.queue_rounds)
    for n in sizes:
        print("  %7d pending: %s; planning them %.2f s (%.1f us per delivery)"
              % (n, "  ".join("%s %.2f / %.2f" % (b, min(results[n][b]),
                                                   statistics.median(results[n][b]))
                              for b in buckets),
                 statistics.median(plan_times[n]), statistics.median(plan_times[n]) / n * 1e6))
    small, large = sizes[0], sizes[-1]
    print("  ratio %d / %d (medians): %s (goal: flat)" % (
        large, small, "  ".join("%s %.2f" % (b, statistics.median(results[large][b])
                                             / statistics.median(results[small][b]))
                                for b in buckets)))


def finish(ix, batch: list, now: float) -> None:
    """What a round records for its batch: delivered, and the values written there."""
    from radicale_plugin import index as idx
    if not batch:
        return
    with ix.transaction(durable=False):
        for d in batch:
            d.state, d.delivered_seq, d.delivered_at = idx.DELIVERED, d.wanted_seq, now
            ix.outbox.set_intent(d.owner, d.recipient, None,
                                 [("TEL", "tel:+1202555%04d" % (d.wanted_seq % 10000))])
        ix.outbox.finish_many(batch)


def split(calls: list[tuple[float, float]]) -> dict[str, list[float]]:
    """The calls' times at the front (first 5%), middle (45-55%) and end (last 5%)."""
    count = len(calls)
    part = max(3, count // 20)
    middle = count // 2
    return {"front": [t for _, t in calls[:part]],
            "middle": [t for _, t in calls[middle - part // 2:middle - part // 2 + part]],
            "end": [t for _, t in calls[-part:]]}


# -- (c) first write after a restart --------------------------------------------------

def designate_all(world: World, threads: int = 4) -> float:
    """Every user designates their card me.vcf through the API; returns designations/s."""
    local = threading.local()

    def one(user: str) -> None:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = world.session(user)
        http.auth = (user, user + "-pw")
        r = http.post(world.url + "/.web/mecard/api/v1/me-card",
                      data=json.dumps({"path": "/%s/contacts/me.vcf" % user}))
        r.raise_for_status()

    begin = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, world.users()))
    return world.recipients / (time.perf_counter() - begin)


def put_series(world: World, after: float) -> tuple[float, float, float, list[float]]:
    """Another user's ordinary PUT at once after the start, then now and then, and
    ``after`` seconds later; returns (first, max in the first 10 s, median later, early)."""
    http = requests.Session()
    http.auth = ("other", "other-pw")
    url = world.url + "/other/contacts/x.vcf"
    n = 0

    def put() -> float:
        nonlocal n
        n += 1
        text = card("x", "X %d %f" % (n, time.time()), "TEL:+1 404 555 0000")
        begin = time.perf_counter()
        r = http.put(url, data=text.encode(), headers={"Content-Type": "text/vcard"})
        elapsed = time.perf_counter() - begin
        assert r.status_code in (201, 204), r.status_code
        return elapsed

    started = time.monotonic()
    early = [put()]
    while time.monotonic() - started < 10:
        time.sleep(0.25)
        early.append(put())
    time.sleep(max(0.0, started + after - time.monotonic()))
    late = [put() for _ in range(5)]
    return early[0], max(early), statistics.median(late), early


def part_c(args: argparse.Namespace) -> None:
    size = args.me_cards
    print("(c) building %d users with a me card each..." % size, file=sys.stderr)
    world = build(args.dir / ("restart-%d" % size), size, 2)
    top = world.folder / "collection-root"
    for i, user in enumerate(world.users()):
        (top / user / "contacts" / "me.vcf").write_text(
            card(user + "-me", "User %s" % user, "TEL;TYPE=CELL:" + number(i),
                 "EMAIL:%s@example.org" % user))
    verify_recipients(world)
    plain = World(world.root, size, 2, stock=True)
    rows: list[tuple[str, tuple[float, float, float, list[float]]]] = []
    failed = 0
    try:
        world.start().ready()
        rate = designate_all(world)
        con = sqlite3.connect("file:%s?mode=ro" % world.database, uri=True, timeout=30)
        try:
            while con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]:
                time.sleep(0.2)  # the worker planned every designation
            owners = con.execute("SELECT COUNT(*) FROM owners WHERE href IS NOT NULL"
                                 ).fetchone()[0]
        finally:
            con.close()
        world.stop()
        print("  %d me cards designated through the API (%.0f /s)" % (owners, rate),
              file=sys.stderr)

        def fan_out() -> None:
            """Alice shares with all of them: the fan-out writes into every book."""
            world.start().ready()
            share(world)
            wait_delivered(world, seq(world), size)
            world.stop()

        for label, server, before in (
                ("ours, 1st restart (me-card stats not yet recorded)", world, None),
                ("plain Radicale, same folder", plain, None),
                ("ours, 2nd restart (nothing changed)", world, None),
                ("ours, restart after a fan-out to all %d" % size, world, fan_out),
                ("plain Radicale, same folder, again", plain, None)):
            for attempt in range(3):
                if before is not None:
                    before()
                server.start()
                found = put_series(server, args.after)
                server.stop()
                if server.stock or not server.start_check_failed():
                    rows.append((label, found))
                    break
                failed += 1  # the start-up check failed: it read nothing; measure again
                print("  note: start-up check failed (%s); measuring again" % label,
                      file=sys.stderr)
            if not server.stock:
                reread = re.findall(r"(\d+) address book\(s\) changed outside the index were "
                                    r"read again", log_since(server, server.log_start))
                rows[-1] = (rows[-1][0] + (" [%s books re-read]" % reread[0] if reread else ""),
                            rows[-1][1])
    finally:
        world.stop()
        plain.stop()
        if not args.keep:
            shutil.rmtree(world.root, ignore_errors=True)
    print("\n(c) another user's ordinary PUT right after a start, %d users with a me card "
          "(goal <= 100 ms)" % size)
    for label, (first, early_max, late, early) in rows:
        print("  %-72s first %s; first 10 s: p50 %s, max %s (%d PUTs); %d s later %s"
              % (label, ms(first), ms(statistics.median(early)), ms(early_max), len(early),
                 args.after, ms(late)))
    if failed:
        print("  note: %d start(s) of ours were measured again: the start-up check failed "
              "(a tmp* folder of Radicale's storage checks)" % failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="abcd", help="which of a, b, c, d to run")
    parser.add_argument("--users", type=int, default=100000)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--shared", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fanouts", type=int, default=1,
                        help="(d) fan-outs in a row, to see whether the peak grows")
    parser.add_argument("--probe", action="store_true",
                        help="(d) the server's peak RSS by phase (bench/memory_probe.py)")
    parser.add_argument("--code", type=Path, default=None,
                        help="(d) run the server from this tree's plugin (before/after)")
    parser.add_argument("--queue", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--queue-rounds", type=int, default=3)
    parser.add_argument("--me-cards", type=int, default=10000)
    parser.add_argument("--after", type=float, default=60)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "mecard-bench")
    parser.add_argument("--keep", action="store_true", help="keep the worlds")
    args = parser.parse_args()
    print("%d cores; %s" % (len(os.sched_getaffinity(0)), time.strftime("%c")), file=sys.stderr)
    if "b" in args.parts:
        part_b(args)
    if "c" in args.parts:
        part_c(args)
    if "a" in args.parts or "d" in args.parts:
        part_a_and_d(args)


if __name__ == "__main__":
    main()
