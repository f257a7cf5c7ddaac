#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fan-out on PostgreSQL, side by side with the file backend, with 1 and 2 processes.

One run, one throwaway PostgreSQL (``fsync`` on), the same worlds on both backends
(:mod:`bench.world`, :mod:`bench.world_postgres`; ``--cards``-card books).  For each size
and policy (``auto``: copies written; ``ask``: offers), in interleaved rounds:

* **throughput** (recipients/s) of the owner's next change until every recipient holds
  it (or was offered it): (a) the file backend, (b) PostgreSQL with 1 Radicale process,
  (c) PostgreSQL with 2 Radicale processes on the same database (the PUT through the
  first; both run workers).  For (c): every delivery happened exactly once (``auto``: each
  recipient's book numbered exactly one change and got one history entry; ``ask``: one
  offer of the change each), and each process's share (the deliveries its worker logged);
* **costs per delivery**: CPU seconds of the Radicale process(es) (``/proc/PID/stat``,
  utime + stime) and of PostgreSQL (every server process of the cluster, the bench's own
  connection left out), transactions (``pg_stat_database.xact_commit``) and write
  transactions (transaction ids assigned), statements (``pg_stat_statements``) per delivery;
  the file backend's Radicale CPU per delivery beside them;
* **latency** (``--latency-recipients``, ``auto``): the owner's PUT (p50/p90) and another
  user's GET/PROPFIND/REPORT/PUT (p50/p99), idle and during a fan-out, on each backend (with
  2 processes: the owner on the first, the other user on the second).

Usage: ``bench/postgres_fanout.py [SIZES...] [--rounds N] [--cards C] [--policy auto|ask|both]
[--latency-recipients N] [--skip-latency] [--top N]``.  Defaults: 1,000 and 5,000 recipients,
10-card books, 2 rounds (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import world as files  # noqa: E402
from bench import world_postgres as pg  # noqa: E402
from bench.fanout_latency import Other, owner_puts, pct  # noqa: E402
from bench.world import World, number  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
#: pg_stat_database is flushed by each backend at most once a second: wait that long
STATS_FLUSH = 1.3


# -- CPU from /proc ---------------------------------------------------------------------
def cpu_of(pid: int) -> float:
    """utime + stime of a process, in seconds (0 when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


class PgCpu:
    """CPU seconds of every process of the cluster (the postmaster and its children)."""

    def __init__(self, cluster: Any) -> None:
        with open(os.path.join(cluster.data, "postmaster.pid")) as f:
            self.postmaster = int(f.readline())
        self.exclude: set[int] = set()

    def sample(self) -> dict[int, float]:
        pids = [self.postmaster] + children(self.postmaster)
        return {p: cpu_of(p) for p in pids if p not in self.exclude}

    @staticmethod
    def spent(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(t - before.get(p, 0.0) for p, t in after.items())


# -- one measured fan-out -----------------------------------------------------------------
@dataclass
class Sample:
    """One fan-out: its rate and what it cost."""

    rate: float
    deliveries: int
    radicale_cpu: float = 0.0        # seconds, all Radicale processes
    pg_cpu: float = 0.0              # seconds, all PostgreSQL processes
    xacts: int = 0                   # transactions committed (pg_stat_database)
    xids: int = 0                    # transaction ids assigned (writing transactions and
    #                                  writing savepoints)
    statements: int = 0              # statements run (pg_stat_statements)
    savepoints: int = 0              # savepoints set (each that writes takes an xid)
    shares: dict[str, int] = field(default_factory=dict)
    once: str = ""                   # the exactly-once check's verdict


def logged_deliveries(world: World, start: int) -> int:
    """Deliveries a process's worker logged since ``start`` (a log offset)."""
    with open(world.log, "rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    return sum(int(n) for n in re.findall(r"Fan-out: (\d+) deliveries", text))


def settle(pids: list[int], timeout: float = 30) -> None:
    """Wait until these processes are idle (under 20 ms of CPU in half a second): a
    start-up check or the last fan-out's housekeeping is not measured."""
    deadline = time.monotonic() + timeout
    last = sum(cpu_of(p) for p in pids)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = sum(cpu_of(p) for p in pids)
        if now - last < 0.02:
            return
        last = now


def wait_until(done: Callable[[], bool], timeout: float = 3600, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError("fan-out did not finish within %.0f s" % timeout)
        time.sleep(step)


def states_of(policy: str) -> tuple[str, ...]:
    return ("offered",) if policy == "ask" else ("delivered",)


def file_fan_out(world: World, change: int, policy: str) -> Sample:
    assert world.process is not None
    states = states_of(policy)
    settle([world.process.pid])
    cpu0 = cpu_of(world.process.pid)
    start = time.perf_counter()
    world.put_me_card(number(900000 + change))
    target = files.seq(world)
    wait_until(lambda: files.delivered(world, target, states) >= world.recipients)
    rate = world.recipients / (time.perf_counter() - start)
    return Sample(rate, world.recipients, radicale_cpu=cpu_of(world.process.pid) - cpu0)


class PgBench:
    """The PostgreSQL side: a world, its processes, and the counters read around a fan-out."""

    def __init__(self, cluster: Any, world: pg.PgWorld) -> None:
        self.world = world
        self.second = world.beside("b")
        self.cpu = PgCpu(cluster)
        self.cpu.exclude.add(world.backend_pid())
        world.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def processes(self, two: bool) -> list[pg.PgWorld]:
        return [self.world, self.second] if two else [self.world]

    def counters(self) -> tuple[int, int]:
        """(transactions committed, next transaction id) of the database, now."""
        row = self.world.sql(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = "
            "current_database()), pg_snapshot_xmax(pg_current_snapshot())::text::bigint")[0]
        return int(row[0]), int(row[1])

    def books(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.world.sql(
            "SELECT path, sync FROM dav_collections WHERE tag = 'VADDRESSBOOK' "
            "AND path LIKE 'r%%'")}

    def fan_out(self, change: int, policy: str, two: bool) -> Sample:
        w = self.world
        procs = self.processes(two)
        states = states_of(policy)
        settle([p.process.pid for p in procs if p.process])
        books0 = self.books() if policy == "auto" else {}
        history0 = int(w.sql("SELECT COALESCE(MAX(id), 0) FROM history")[0][0])
        logs = [os.path.getsize(p.log) for p in procs]
        w.sql("SELECT pg_stat_statements_reset()")
        time.sleep(STATS_FLUSH)
        mine0 = w.statements
        xacts0, xid0 = self.counters()
        rad0 = [cpu_of(p.process.pid) for p in procs if p.process]
        pg0 = self.cpu.sample()
        start = time.perf_counter()
        w.put_me_card(number(900000 + change))
        target = w.seq()
        # every 0.1 s: the count is a query of PostgreSQL's, on the same cores
        wait_until(lambda: w.delivered(target, states) >= w.recipients, step=0.1)
        rate = w.recipients / (time.perf_counter() - start)
        rad1 = [cpu_of(p.process.pid) for p in procs if p.process]
        pg1 = self.cpu.sample()
        xid1 = self.counters()[1]
        # the workers log their share when their queue runs dry
        wait_until(lambda: sum(logged_deliveries(p, s) for p, s in zip(procs, logs))
                   >= w.recipients, timeout=30)
        time.sleep(STATS_FLUSH)
        xacts1 = self.counters()[0]
        statements = int(w.sql(
            "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON "
            "d.oid = s.dbid WHERE d.datname = current_database() AND s.userid <> (SELECT oid "
            "FROM pg_roles WHERE rolname = %s)", pg.OBSERVER)[0][0])
        utility = dict(w.sql(
            "SELECT 'SAVEPOINT', COALESCE(SUM(calls), 0) FROM pg_stat_statements s JOIN "
            "pg_database d ON "
            "d.oid = s.dbid WHERE d.datname = current_database() AND query LIKE "
            "'SAVEPOINT%%'"))
        sample = Sample(rate, w.recipients, radicale_cpu=sum(rad1) - sum(rad0),
                        savepoints=int(utility.get("SAVEPOINT", 0)),
                        pg_cpu=PgCpu.spent(pg0, pg1),
                        # this bench's own statements are transactions too
                        xacts=xacts1 - xacts0 - (w.statements - mine0 - 1),
                        xids=xid1 - xid0, statements=statements,
                        shares={p.name: logged_deliveries(p, s) for p, s in zip(procs, logs)})
        sample.once = self.exactly_once(policy, target, books0, history0)
        return sample

    def exactly_once(self, policy: str, target: int, books0: dict[str, int],
                     history0: int) -> str:
        w = self.world
        if policy == "auto":
            moved = {p: n - books0.get(p, 0) for p, n in self.books().items()}
            history = dict(w.sql("SELECT recipient, COUNT(*) FROM history WHERE id > %s AND "
                                 "owner = 'alice' GROUP BY recipient", history0))
            bad = sorted({p.split("/")[0] for p, n in moved.items() if n != 1}
                         | {u for u in w.users() if history.get(u, 0) != 1})
            if not bad:
                return ("exactly once: %d books one change each, %d history entries, one "
                        "each" % (len(moved), sum(history.values())))
            return ("NOT exactly once: %d recipients (e.g. %s: book changes %s, history "
                    "entries %s)" % (len(bad), bad[0], moved.get(bad[0] + "/contacts"),
                                     history.get(bad[0], 0)))
        offers = dict(w.sql("SELECT recipient, seq FROM offers WHERE owner = 'alice'"))
        bad = [u for u in w.users() if offers.get(u) != target]
        return ("exactly once: %d offers, each of change %d" % (len(offers), target)
                if not bad else "NOT exactly once: %d recipients without the offer of change "
                "%d (e.g. %s)" % (len(bad), target, bad[0]))

    def top(self, n: int, by: str = "total_exec_time") -> list[tuple[int, float, str]]:
        """The statements of the last fan-out taking the most time (or ``by="calls"``: run
        the most often): (calls, ms, query)."""
        assert by in ("total_exec_time", "calls")
        return [(int(r[0]), float(r[1]), " ".join(r[2].split())[:110]) for r in self.world.sql(
            "SELECT calls, total_exec_time, query FROM pg_stat_statements s JOIN pg_database "
            "d ON d.oid = s.dbid WHERE d.datname = current_database() AND s.userid <> (SELECT "
            "oid FROM pg_roles WHERE rolname = %s) ORDER BY " + by + " DESC LIMIT %s",
            pg.OBSERVER, n)]


# -- worlds ---------------------------------------------------------------------------------
def options(world: World, policy: str) -> None:
    # back-to-back changes are the point here, not the spacing that shields bursts
    world.options["mecard_rewrite_spacing"] = "0"
    if policy == "ask":
        world.options["mecard_preauthorize"] = ""


PROBE = [str(Path(__file__).resolve().parent / "cpu_probe.py")]


def file_world(base: Path, size: int, cards: int, policy: str, probe: bool = False) -> World:
    world = files.build(base / ("file-%s-%d" % (policy, size)), size, cards)
    files.verify_recipients(world)
    options(world, policy)
    world.launcher = PROBE if probe else None
    world.start().ready()
    world.api("alice", "POST", "/me-card", {"path": "/alice/contacts/alice.vcf"})
    done = subprocess.run(
        [sys.executable, "-m", "radicale_plugin", "--config", str(world.config()),
         "verify-key", "alice", number(999999)], cwd=files.ROOT, capture_output=True,
        text=True, env={**os.environ, "PYTHONPATH": str(files.ROOT)})
    assert done.returncode == 0, done.stderr
    world.put_me_card(number(999998))  # recipients still know her old number
    world.api("alice", "POST", "/targets", {"targets": ["all"]})
    target = files.seq(world)
    wait_until(lambda: files.delivered(world, target, states_of(policy)) >= size)
    return world


def pg_world(cluster: Any, base: Path, size: int, cards: int, policy: str,
             probe: bool = False) -> pg.PgWorld:
    world = pg.build(base / ("pg-%s-%d" % (policy, size)), cluster.new_database("bench"),
                     size, cards)
    pg.verify_recipients(world)  # and Alice's old number
    options(world, policy)
    world.launcher = PROBE if probe else None
    world.start().ready()
    world.api("alice", "POST", "/me-card", {"path": "/alice/contacts/alice.vcf"})
    world.put_me_card(number(999998))
    world.api("alice", "POST", "/targets", {"targets": ["all"]})
    target = world.seq()
    wait_until(lambda: world.delivered(target, states_of(policy)) >= size)
    return world


# -- latency ----------------------------------------------------------------------------------
def latency(label: str, owner: World, other_on: World, delivered: Callable[[int], int],
            seq: Callable[[], int], change: int, into: dict[str, dict[str, list[float]]]
            ) -> None:
    """The owner's PUTs and another user's requests, idle then during a fan-out."""
    got = into.setdefault(label, {})
    settle([w.process.pid for w in {id(owner): owner, id(other_on): other_on}.values()
            if w.process])
    got.setdefault("owner idle", []).extend(owner_puts(owner, 20, False, 1000 * change))
    other = Other(other_on)
    for name, values in other.run(seconds=6).items():
        got.setdefault(name + " idle", []).extend(values)
    owner.put_me_card(number(600000 + change))
    target = seq()
    got.setdefault("owner during", []).extend(
        owner_puts(owner, 10, True, 1000 * change + 100))
    for name, values in other.run(
            until=lambda: delivered(target) >= owner.recipients * 0.9).items():
        got.setdefault(name + " during", []).extend(values)
    wait_until(lambda: delivered(seq()) >= owner.recipients)


def report_latency(size: int, found: dict[str, dict[str, list[float]]]) -> None:
    print("\nlatency, %d recipients, policy auto (ms; the ratio: during / idle)" % size)
    for label, got in found.items():
        print("  %s:" % label)
        idle, during = got["owner idle"], got["owner during"]
        print("    owner's PUT             p50 %6.1f -> %6.1f   p90 %6.1f -> %6.1f   "
              "p90 ratio %.2f" % (pct(idle, 50), pct(during, 50), pct(idle, 90),
                                  pct(during, 90), pct(during, 90) / pct(idle, 90)))
        for op in ("GET", "PROPFIND", "REPORT", "PUT"):
            idle, during = got.get(op + " idle", [0.0]), got.get(op + " during", [0.0])
            print("    another user's %-8s p50 %6.1f -> %6.1f   p99 %6.1f -> %6.1f   "
                  "p99 ratio %.2f  (%d/%d)" % (op, pct(idle, 50), pct(during, 50),
                                               pct(idle, 99), pct(during, 99),
                                               pct(during, 99) / max(pct(idle, 99), 1e-6),
                                               len(idle), len(during)))
    base = found.get("files")
    if base:
        for label, got in found.items():
            if label != "files":
                print("  %s / files: owner's PUT p90 idle %.2f, during %.2f; another user's "
                      "p99 during: %s" % (
                          label, pct(got["owner idle"], 90) / pct(base["owner idle"], 90),
                          pct(got["owner during"], 90) / pct(base["owner during"], 90),
                          " ".join("%s %.2f" % (op, pct(got[op + " during"], 99)
                                                / pct(base[op + " during"], 99))
                                   for op in ("GET", "PROPFIND", "REPORT", "PUT"))))


# -- the run -----------------------------------------------------------------------------------
def run(cluster: Any, size: int, policy: str, args: argparse.Namespace) -> None:
    print("building %d recipients with %d-card books (%s), files and PostgreSQL..."
          % (size, args.cards, policy), file=sys.stderr)
    t0 = time.monotonic()
    fw = file_world(args.dir, size, args.cards, policy)
    t1 = time.monotonic()
    try:
        pw = pg_world(cluster, args.dir, size, args.cards, policy)
    except BaseException:
        fw.stop()
        raise
    t2 = time.monotonic()
    print("  worlds ready: files %.0f s, PostgreSQL %.0f s (built, indexed, first fan-out)"
          % (t1 - t0, t2 - t1), file=sys.stderr)
    results: dict[str, list[Sample]] = {"files": [], "pg 1 process": [], "pg 2 processes": []}
    change = 0
    try:
        bench = PgBench(cluster, pw)
        for r in range(args.rounds):
            change += 1
            results["files"].append(file_fan_out(fw, change, policy))
            change += 1
            results["pg 1 process"].append(bench.fan_out(change, policy, two=False))
            top = bench.top(args.top) if r == args.rounds - 1 else []
            bench.second.start()
            try:
                change += 1
                results["pg 2 processes"].append(bench.fan_out(change, policy, two=True))
            finally:
                bench.second.stop()
        report(size, policy, args.cards, results, top)
        if policy == "auto" and size == args.latency_recipients and not args.skip_latency:
            found: dict[str, dict[str, list[float]]] = {}
            for r in range(args.rounds):
                latency("files", fw, fw, lambda s: files.delivered(fw, s),
                        lambda: files.seq(fw), 100 + 3 * r, found)
                latency("pg 1 process", pw, pw, pw.delivered, pw.seq, 101 + 3 * r, found)
                bench.second.start()
                try:
                    latency("pg 2 processes", pw, bench.second, pw.delivered, pw.seq,
                            102 + 3 * r, found)
                finally:
                    bench.second.stop()
            report_latency(size, found)
    finally:
        fw.stop()
        pw.stop()
        pw.close()


def report(size: int, policy: str, cards: int, results: dict[str, list[Sample]],
           top: list[tuple[int, float, str]]) -> None:
    print("\n%d recipients (%d-card books), policy %s, %d rounds; %s"
          % (size, cards, policy, len(results["files"]), load()))
    medians = {k: statistics.median(s.rate for s in v) for k, v in results.items()}
    for label, samples in results.items():
        print("  %-15s fan-out %6.0f /s median (rounds: %s)" % (
            label, medians[label], " ".join("%.0f" % s.rate for s in samples)))
    print("  ratios: pg 1 process / files %.2f;  pg 2 processes / files %.2f;  "
          "pg 2 / pg 1 %.2f" % (medians["pg 1 process"] / medians["files"],
                                medians["pg 2 processes"] / medians["files"],
                                medians["pg 2 processes"] / medians["pg 1 process"]))
    print("  per delivery (median of rounds):")
    for label, samples in results.items():
        def per(attr: str, scale: float = 1.0) -> float:
            return statistics.median(getattr(s, attr) / s.deliveries * scale for s in samples)
        # the cores the measured processes got: rate x CPU per delivery (the rest of the
        # machine's cores went to others, or stayed idle)
        busy = statistics.median(s.rate * (s.radicale_cpu + s.pg_cpu) / s.deliveries
                                 for s in samples)
        line = "    %-15s cores busy %4.2f   Radicale CPU %5.2f ms" % (
            label, busy, per("radicale_cpu", 1000))
        if label != "files":
            # xids: writing transactions and writing savepoints (subtransactions); a
            # transaction's commit waits for the disk, a savepoint's does not
            line += ("   PostgreSQL CPU %5.2f ms   transactions %5.2f (%.3f ms CPU each; "
                     "xids %5.3f, savepoints %5.3f)   statements %5.1f" % (
                         per("pg_cpu", 1000), per("xacts"),
                         statistics.median(s.pg_cpu / max(s.xacts, 1) * 1000
                                           for s in samples),
                         per("xids"), per("savepoints"), per("statements")))
        print(line)
    for s in results["pg 2 processes"]:
        total = sum(s.shares.values()) or 1
        print("  2 processes: shares %s; %s" % (
            ", ".join("%s %d (%.0f%%)" % (name, n, 100.0 * n / total)
                      for name, n in s.shares.items()), s.once))
    for s in results["pg 1 process"][-1:]:
        print("  1 process: %s" % s.once)
    if top:
        print("  PostgreSQL's statements by time, last 1-process fan-out (calls, ms, query):")
        for calls, ms, query in top:
            print("    %7d %8.1f  %s" % (calls, ms, query))
    sys.stdout.flush()


def profile(cluster: Any, args: argparse.Namespace) -> None:
    """Where the Radicale process's fan-out threads spend their time, files vs PostgreSQL
    (one fan-out each, policy ``--policy``: auto if both, sampled by :mod:`bench.cpu_probe`)."""
    import signal

    from bench.cpu_probe import summary
    size = args.profile
    policy = "auto" if args.policy == "both" else args.policy
    fw = file_world(args.dir, size, args.cards, policy, probe=True)
    try:
        pw = pg_world(cluster, args.dir, size, args.cards, policy, probe=True)
    except BaseException:
        fw.stop()
        raise
    try:
        bench = PgBench(cluster, pw)
        for world in (fw, pw):
            settle([world.process.pid])  # type: ignore[union-attr]
            world.process.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
        measured = {"files": file_fan_out(fw, 1, policy),
                    "pg 1 process": bench.fan_out(2, policy, two=False)}
        often = bench.top(3 * args.top, by="calls")
    finally:
        starts = {id(w): os.path.getsize(w.log) for w in (fw, pw)}
        fw.stop()
        pw.stop()
        pw.close()
    print("\nwhere the fan-out's threads spend their time, %d recipients (%d-card books), "
          "policy %s; %s" % (size, args.cards, policy, load()))
    for (label, sample), world in zip(measured.items(), (fw, pw)):
        print("  %s: %.0f /s, Radicale CPU %.2f ms per delivery; busy samples:" % (
            label, sample.rate, sample.radicale_cpu / sample.deliveries * 1000))
        found = summary(world.log, starts[id(world)])
        kinds: dict[str, float] = {}
        for share, n, where in found:
            kind = where.split(" (")[0] if where.startswith(("psycopg", "sqlite3")) \
                else "the plugin's own code"
            kinds[kind] = kinds.get(kind, 0.0) + share
        print("    in all: " + ", ".join("%s %.0f%%" % kv for kv in sorted(
            kinds.items(), key=lambda kv: -kv[1])))
        for share, n, where in found[:args.top + 6]:
            print("    %5.1f%%  %6d  %s" % (share, n, where))
    print("  PostgreSQL's statements run most often in that fan-out, per delivery "
          "(calls, ms in all, query):")
    for calls, ms, query in often:
        print("    %5.2f %8.1f  %s" % (calls / size, ms, query))


def load() -> str:
    with open("/proc/loadavg") as f:
        return "load average %s" % " ".join(f.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 5000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cards", type=int, default=10)
    parser.add_argument("--policy", choices=("auto", "ask", "both"), default="both")
    parser.add_argument("--latency-recipients", type=int, default=1000,
                        help="the size (one of SIZES) whose auto worlds are also measured "
                             "for latency")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--top", type=int, default=6,
                        help="PostgreSQL's statements to list by time")
    parser.add_argument("--profile", type=int, metavar="N",
                        help="only sample where the fan-out's threads spend their time, "
                             "files vs PostgreSQL, with N recipients (bench/cpu_probe.py)")
    parser.add_argument("--dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "mecard-bench-pg")
    args = parser.parse_args()
    print("machine: %d cores, %s; PostgreSQL with fsync on (a throwaway cluster)"
          % (os.cpu_count() or 0, load()))
    cluster = pg.cluster()
    try:
        if args.profile:
            profile(cluster, args)
            return
        for size in args.sizes:
            for policy in (("auto", "ask") if args.policy == "both" else (args.policy,)):
                run(cluster, size, policy, args)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
