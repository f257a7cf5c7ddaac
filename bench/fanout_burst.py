# SPDX-License-Identifier: GPL-3.0-or-later
"""A burst of me-card edits: the owner PUTs her me card many times within a minute.

The owner ``alice`` shares with every recipient (books of ``--cards``
cards) and PUTs her me card ``--changes`` times within ``--seconds``
seconds, a new TEL number each time, evenly spaced (500 in 60 s: one every
120 ms).  The server runs with its default ``mecard_rewrite_spacing``.
Under policy ``auto`` (everybody pre-authorised, the worlds' default) it
prints:

* **time to the last change**: from the last PUT until every recipient
  holds the last change (``deliveries.delivered_seq`` in the index, read-only);
* **writes per copy**: how often each recipient's copy was written during
  the burst and its catch-up (rows of the ``history`` table with action
  ``update`` for owner ``alice``): max, median, and how many were written
  more than 5 times;
* **last value on disk**: how many copy files (found by their link in the
  index) finally hold the last number, and how many still hold an older one;
* **others**: another user's GET, PROPFIND, sync REPORT and PUT (p50/p99)
  while idle (``--idle`` seconds before the burst and as many after its
  catch-up), during a control (``--control`` seconds of the owner's PUTs at
  the burst's rate that change only her unshared note: the same requests,
  no fan-out), during the burst and during its catch-up;
* the owner's own PUT latencies during the burst.

Under policy ``ask`` (no pre-authorisation, ``mecard_default_policy = ask``)
nothing is written; it prints how many recipients end with exactly one
pending offer from ``alice`` whose seq is the last change, and checks that
no copy file changed.

Usage: ``bench/fanout_burst.py [--changes 500] [--seconds 60] [--recipients 5000]
[--cards 10] [--policy auto|ask|both] [--idle 10] [--control 30] [--dir DIR] [--keep]``.
The worlds are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.fanout_latency import Other, pct  # noqa: E402
from bench.world import (World, build, delivered, me_card, number, seq,  # noqa: E402
                         share, verify_recipients)

#: The burst's numbers are number(FIRST + i); the recipients' copies start with number(OLD).
FIRST, OLD = 400000, 999999
OPS = ("GET", "PROPFIND", "REPORT", "PUT")


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def query(world: World, sql: str, args: tuple = ()) -> list[tuple]:
    con = sqlite3.connect("file:%s?mode=ro" % world.database, uri=True, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def wait_all(world: World, change: int, states: tuple[str, ...], timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while delivered(world, change, states) < world.recipients:
        if time.monotonic() > deadline:
            raise RuntimeError("fan-out did not finish")
        time.sleep(0.05)


class Burst(threading.Thread):
    """The owner's PUTs, each at its time (or at once if the last one took longer)."""

    def __init__(self, world: World, changes: int, seconds: float, shared: bool = True) -> None:
        super().__init__(name="burst", daemon=True)
        self.world, self.changes, self.interval = world, changes, seconds / changes
        self.shared = shared
        self.latencies: list[float] = []
        self.began = self.ended = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            http = self.world.session("alice")
            self.began = time.monotonic()
            for i in range(self.changes):
                wait = self.began + i * self.interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                start = time.perf_counter()
                r = http.put(self.world.url + "/alice/contacts/alice.vcf",
                             data=self.text(i).encode(), headers={"Content-Type": "text/vcard"})
                self.latencies.append(time.perf_counter() - start)
                assert r.status_code in (201, 204), r.text
        except BaseException as e:  # reported by the main thread
            self.error = e
        finally:
            self.ended = time.monotonic()

    def text(self, i: int) -> str:
        if self.shared:
            return me_card(number(FIRST + i))
        # the control: only the unshared note changes, so nothing fans out
        return me_card(number(OLD)).replace("NOTE:private", "NOTE:private %d" % i)


class Watch(threading.Thread):
    """Notes when every recipient holds (or was offered) a change."""

    def __init__(self, world: World, change: int, states: tuple[str, ...]) -> None:
        super().__init__(name="watch", daemon=True)
        self.world, self.change, self.states = world, change, states
        self.done = threading.Event()
        self.at = 0.0

    def run(self) -> None:
        while delivered(self.world, self.change, self.states) < self.world.recipients:
            time.sleep(0.02)
        self.at = time.monotonic()
        self.done.set()


def copy_texts(world: World) -> dict[str, str]:
    """Each recipient's copy of Alice's card, found by its link in the index."""
    top = world.folder / "collection-root"
    out = {}
    for recipient, book, href in query(
            world, "SELECT recipient, book, href FROM links WHERE owner = 'alice'"):
        try:
            out[recipient] = (top / book / href).read_text()
        except FileNotFoundError:
            pass
    for user in world.users():  # not linked (policy ask): the card built with her number
        if user not in out:
            out[user] = (top / user / "contacts" / "alice.vcf").read_text()
    return out


def tel_digits(text: str) -> set[str]:
    return {digits(line.split(":", 1)[1]) for line in text.splitlines()
            if line.upper().startswith(("TEL:", "TEL;")) and ":" in line}


def run(policy: str, args: argparse.Namespace) -> None:
    size = args.recipients
    print("building %d recipients with %d-card books (policy %s)..." % (size, args.cards, policy),
          file=sys.stderr)
    world = build(args.dir / ("burst-%s-%d" % (policy, size)), size, args.cards)
    verify_recipients(world)
    states: tuple[str, ...] = ("delivered",)
    if policy == "ask":
        world.options.update({"mecard_preauthorize": "", "mecard_default_policy": "ask"})
        states = ("offered",)
    world.start().ready()
    try:
        share(world)
        wait_all(world, seq(world), states)
        print("shared; measuring idle for %d s..." % args.idle, file=sys.stderr)
        other = Other(world)
        phases: dict[str, dict[str, list[float]]] = {"idle": other.run(seconds=args.idle)}
        if args.control:
            print("control: %d PUTs changing only an unshared note in %d s..."
                  % (round(args.changes * args.control / args.seconds), args.control),
                  file=sys.stderr)
            control = Burst(world, round(args.changes * args.control / args.seconds),
                            args.control, shared=False)
            control.start()
            phases["control"] = other.run(until=lambda: not control.is_alive())
            control.join()
            if control.error is not None:
                raise control.error
        mark = query(world, "SELECT COALESCE(MAX(id), 0) FROM history")[0][0]
        before = copy_texts(world) if policy == "ask" else {}

        print("burst: %d changes in %d s..." % (args.changes, args.seconds), file=sys.stderr)
        burst = Burst(world, args.changes, args.seconds)
        burst.start()
        phases["burst"] = other.run(until=lambda: not burst.is_alive())
        burst.join()
        if burst.error is not None:
            raise burst.error
        last = seq(world)
        watch = Watch(world, last, states)
        watch.start()
        phases["catch-up"] = other.run(until=watch.done.is_set)
        watch.join()
        to_last = watch.at - burst.ended
        for name, values in other.run(seconds=args.idle).items():  # idle again, after
            phases["idle"].setdefault(name, []).extend(values)

        print("\n%d recipients (%d-card books), policy %s, mecard_rewrite_spacing default"
              % (size, args.cards, policy))
        print("  burst: %d PUTs of the me card in %.1f s (planned %d s); last change is seq %d"
              % (len(burst.latencies), burst.ended - burst.began, args.seconds, last))
        print("  owner's PUT during the burst: p50 %.1f ms  p90 %.1f ms  max %.1f ms"
              % (pct(burst.latencies, 50), pct(burst.latencies, 90),
                 max(burst.latencies) * 1000))
        if args.control:
            print("  owner's PUT in the control (same rate, unshared note only): p50 %.1f ms  "
                  "p90 %.1f ms  max %.1f ms; burst p90 ratio %.2f"
                  % (pct(control.latencies, 50), pct(control.latencies, 90),
                     max(control.latencies) * 1000,
                     pct(burst.latencies, 90) / pct(control.latencies, 90)))
        what = "holds" if policy == "auto" else "was offered"
        print("  time from the last PUT until every recipient %s the last change: %.2f s"
              % (what, to_last))
        if policy == "auto":
            report_writes(world, mark)
            report_files(world, args.changes)
        else:
            report_offers(world, last, mark, before)
        names = list(phases)
        print("  another user's requests, p50 / p99 ms (samples); p99 ratios:")
        print("    %-9s" % "" + "".join("%-22s" % n for n in names)
              + "burst/idle  burst/control")
        for op in OPS:
            def p99(name: str) -> float:
                return pct(phases[name].get(op, [0.0]), 99)
            cells = ["%5.1f / %6.1f (%d)" % (pct(phases[n].get(op, [0.0]), 50), p99(n),
                                             len(phases[n].get(op, []))) for n in names]
            ratios = "%10.2f" % (p99("burst") / max(p99("idle"), 1e-6))
            if "control" in phases:
                ratios += "  %13.2f" % (p99("burst") / max(p99("control"), 1e-6))
            print("    %-9s" % op + "".join("%-22s" % c for c in cells) + ratios)
        if world.restarts:
            print("  note: the server was restarted %d time(s) before measuring: its start-up "
                  "check failed" % world.restarts)
    finally:
        world.stop()
        if not args.keep:
            shutil.rmtree(world.root, ignore_errors=True)


def report_writes(world: World, mark: int) -> None:
    counts = dict(query(world, "SELECT recipient, COUNT(*) FROM history WHERE owner = 'alice' "
                               "AND action = 'update' AND id > ? GROUP BY recipient", (mark,)))
    writes = [counts.get(u, 0) for u in world.users()]
    others = query(world, "SELECT action, COUNT(*) FROM history WHERE owner = 'alice' "
                          "AND action != 'update' AND id > ? GROUP BY action", (mark,))
    print("  writes per copy during the burst and catch-up: max %d, median %g, min %d; "
          "written more than 5 times: %d of %d; total %d"
          % (max(writes), statistics.median(writes), min(writes),
             sum(1 for w in writes if w > 5), len(writes), sum(writes)))
    if others:
        print("  other history actions: %s" % ", ".join("%s %d" % a for a in others))


def report_files(world: World, changes: int) -> None:
    last = digits(number(FIRST + changes - 1))
    older = {digits(number(FIRST + i)) for i in range(changes - 1)} | {digits(number(OLD))}
    texts = copy_texts(world)
    holding = sum(1 for t in texts.values() if last in tel_digits(t))
    stale = sum(1 for t in texts.values() if tel_digits(t) & older)
    print("  copy files holding the last number: %d of %d; holding an older number of hers: %d"
          % (holding, world.recipients, stale))


def report_offers(world: World, last: int, mark: int,
                  before: dict[str, str]) -> None:
    rows = query(world, "SELECT recipient, seq, state FROM offers WHERE owner = 'alice'")
    per: dict[str, list[tuple[int, str]]] = {}
    for recipient, offer_seq, state in rows:
        per.setdefault(recipient, []).append((offer_seq, state))
    exact = sum(1 for u in world.users()
                if per.get(u) == [(last, "pending")])
    states = sorted({s for offers in per.values() for _, s in offers})
    print("  recipients with exactly one pending offer from alice at the last change (seq %d): "
          "%d of %d (offers: %d rows, states %s, %d recipients without one)"
          % (last, exact, world.recipients, len(rows), ",".join(states),
             sum(1 for u in world.users() if u not in per)))
    written = query(world, "SELECT COUNT(*) FROM history WHERE owner = 'alice' AND id > ?",
                    (mark,))[0][0]
    after = copy_texts(world)
    changed = sum(1 for u, t in before.items() if after.get(u) != t)
    print("  copies written during the burst: %d history rows; copy files changed: %d"
          % (written, changed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument("--cards", type=int, default=10)
    parser.add_argument("--idle", type=float, default=10, help="seconds of idle measurement")
    parser.add_argument("--control", type=float, default=30,
                        help="seconds of the control: PUTs at the burst's rate that change "
                             "only an unshared note (0: none)")
    parser.add_argument("--policy", choices=("auto", "ask", "both"), default="both")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "mecard-bench")
    parser.add_argument("--keep", action="store_true", help="keep the worlds")
    args = parser.parse_args()
    for policy in ("auto", "ask") if args.policy == "both" else (args.policy,):
        run(policy, args)


if __name__ == "__main__":
    main()
