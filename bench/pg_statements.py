#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Statements per delivery of the fan-out on PostgreSQL, beside the file backend's rate.

One throwaway PostgreSQL (``fsync`` on), the same worlds on both backends, policy
``auto`` (every recipient pre-authorised: copies written) or ``ask`` (offers).  For each
round: the file backend's fan-out, then PostgreSQL's with one Radicale process; then the
statements PostgreSQL ran in the last PostgreSQL fan-out, most often run first, per
delivery (``pg_stat_statements``).  Reuses :mod:`bench.postgres_fanout`'s worlds and
counters.

Usage: ``bench/pg_statements.py [SIZE] [--rounds N] [--top N] [--policy auto|ask]``
(default 200, 3 rounds, ``auto``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import postgres_fanout as bench  # noqa: E402
from bench import world_postgres as pg  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("size", nargs="?", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cards", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--policy", choices=("auto", "ask"), default="auto")
    parser.add_argument("--debug", action="store_true",
                        help="run the servers with debug logs and print their rounds' laps")
    parser.add_argument("--dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "mecard-bench-pgstat")
    args = parser.parse_args()
    cluster = pg.cluster()
    try:
        fw = bench.file_world(args.dir, args.size, args.cards, args.policy)
        pw = bench.pg_world(cluster, args.dir, args.size, args.cards, args.policy)
        if args.debug:  # restarted with debug logs: the rounds' laps are logged
            for world in (fw, pw):
                world.stop()
                world.options["_level"] = "debug"
                world.start().ready()
        starts = {id(w): w.log.stat().st_size for w in (fw, pw)}
        measure = bench.PgBench(cluster, pw)
        files, pgs = [], []
        try:
            change = 0
            for _ in range(args.rounds):
                change += 1
                files.append(bench.file_fan_out(fw, change, args.policy))
                change += 1
                pgs.append(measure.fan_out(change, args.policy, two=False))
            often = measure.top(args.top, by="calls")
        finally:
            fw.stop()
            pw.stop()
            pw.close()
    finally:
        cluster.stop()
    print("%d recipients, policy %s, %d rounds; %s" % (args.size, args.policy, args.rounds,
                                                      bench.load()))
    print("  files          %6.0f /s median (rounds: %s)" % (
        statistics.median(s.rate for s in files), " ".join("%.0f" % s.rate for s in files)))
    print("  pg 1 process   %6.0f /s median (rounds: %s)" % (
        statistics.median(s.rate for s in pgs), " ".join("%.0f" % s.rate for s in pgs)))
    print("  pg per delivery: statements %.1f, transactions %.2f, PostgreSQL CPU %.2f ms, "
          "Radicale CPU %.2f ms (files: %.2f ms); %s" % (
              statistics.median(s.statements / s.deliveries for s in pgs),
              statistics.median(s.xacts / s.deliveries for s in pgs),
              statistics.median(s.pg_cpu / s.deliveries * 1000 for s in pgs),
              statistics.median(s.radicale_cpu / s.deliveries * 1000 for s in pgs),
              statistics.median(s.radicale_cpu / s.deliveries * 1000 for s in files),
              pgs[-1].once))
    if args.debug:
        for label, world in (("files", fw), ("pg", pw)):
            with open(world.log, "rb") as f:
                f.seek(starts[id(world)])
                text = f.read().decode(errors="replace")
            print("  %s rounds:" % label)
            for line in text.splitlines():
                if "Fan-out round:" in line or "Fan-out: " in line and "deliveries" in line:
                    print("    " + line.split("] ", 1)[-1][:200])
    print("  statements of the last PostgreSQL fan-out, most often run first "
          "(per delivery, ms in all, query):")
    for calls, ms, query in often:
        print("    %6.2f %8.1f  %s" % (calls / args.size, ms, query))


if __name__ == "__main__":
    main()
