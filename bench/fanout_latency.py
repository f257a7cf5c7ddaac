# SPDX-License-Identifier: GPL-3.0-or-later
"""What a fan-out costs everybody else, measured side by side with plain Radicale.

* **owner's PUT**: the owner's PUT of her me card (p50/p90) on a server with
  ``recipients`` targets, idle and while her previous change fans out, next
  to the same PUT on plain Radicale (no plugin) on the same folder;
* **others**: another user's GET, PROPFIND (depth 1), sync REPORT and PUT
  (p50/p99) while idle and during a fan-out to every recipient;
* **time to visible**: from the owner's PUT until the last recipient's
  incremental sync-collection lists the copy (a separate 1,000-recipient world);
* **lock**: the longest hold of the storage lock by the fan-out (the server's
  log says it for each fan-out).

Rounds are interleaved; figures are medians of rounds.  Usage:
``bench/fanout_latency.py [--recipients N] [--rounds R] [--before TREE]``; with
``--before`` each round runs that tree's plugin, then this one's, on the same world.  The
storage hooks' waits for the index's writer, and the fan-out's holds of it, are probed
(:mod:`bench.writer_probe`).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.world import (World, build, card, delivered, me_card, number, seq,  # noqa: E402
                         share, verify_recipients)
from bench.writer_probe import holds, waits  # noqa: E402

DAV = "{DAV:}"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000


def owner_puts(world: World, count: int, change_number: bool, start: int) -> list[float]:
    """Latencies of the owner's PUTs: a shared value (number) or only an unshared note."""
    http = world.session("alice")
    times = []
    for i in range(count):
        phone = number(500000 + start + i) if change_number else number(999998)
        text = me_card(phone).replace("NOTE:private", "NOTE:private %d" % (start + i))
        begin = time.perf_counter()
        r = http.put(world.url + "/alice/contacts/alice.vcf", data=text.encode(),
                     headers={"Content-Type": "text/vcard"})
        times.append(time.perf_counter() - begin)
        assert r.status_code in (201, 204), r.text
    return times


class Other:
    """Another user going about their business: GET, PROPFIND, sync REPORT, PUT."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.http = world.session("other")
        self.token = ""
        self.n = 0

    def once(self, results: dict[str, list[float]]) -> None:
        base = self.world.url + "/other/contacts/"
        ops = {
            "GET": lambda: self.http.get(base + "x.vcf"),
            "PROPFIND": lambda: self.http.request(
                "PROPFIND", base, headers={"Depth": "1", "Content-Type": "application/xml"},
                data="<D:propfind xmlns:D='DAV:'><D:prop><D:getetag/></D:prop></D:propfind>"),
            "REPORT": lambda: self.http.request(
                "REPORT", base, headers={"Content-Type": "application/xml"},
                data="<D:sync-collection xmlns:D='DAV:'><D:sync-token>%s</D:sync-token>"
                     "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>"
                     "</D:sync-collection>" % self.token),
            "PUT": lambda: self.http.put(
                base + "x.vcf", headers={"Content-Type": "text/vcard"},
                data=card("x", "X %d" % self.n, "TEL:+1 404 555 0000").encode()),
        }
        for name, op in ops.items():
            begin = time.perf_counter()
            r = op()
            results.setdefault(name, []).append(time.perf_counter() - begin)
            assert r.status_code < 400, (name, r.status_code)
            if name == "REPORT":
                self.token = ET.fromstring(r.content).findtext(DAV + "sync-token") or ""
        self.n += 1

    def run(self, seconds: float | None = None, until=None) -> dict[str, list[float]]:
        results: dict[str, list[float]] = {}
        deadline = time.monotonic() + (seconds or 3600)
        while time.monotonic() < deadline and not (until and until()):
            self.once(results)
        return results


def longest_hold(world: World, start: int = 0) -> float:
    with open(world.root / "radicale.log", "rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    found = re.findall(r"longest hold of the storage lock ([0-9.]+) ms", text)
    return max(map(float, found)) if found else 0.0


def wait_fan_out(world: World, change: int) -> None:
    while delivered(world, change) < world.recipients:
        time.sleep(0.05)


def latency_rounds(size: int, cards: int, rounds: int, base: Path,
                   codes: dict[str, Path] | None = None) -> None:
    """``codes``: the trees to measure side by side (label → tree), in interleaved rounds on
    the same world; by default this tree alone."""
    codes = codes or {"ours": Path(__file__).resolve().parent.parent}
    print("building %d recipients with %d-card books..." % (size, cards), file=sys.stderr)
    world = build(base / ("latency-%d" % size), size, cards)
    verify_recipients(world)
    world.probe = True
    plain = World(world.root, size, cards, stock=True)
    puts: dict[str, list[float]] = {"plain": []}
    others: dict[str, dict[str, dict[str, list[float]]]] = {}
    hook_waits: dict[str, dict[str, list[float]]] = {}
    lock_holds: dict[str, float] = {}
    writer_holds: dict[str, list[tuple[float, str]]] = {}
    world.start().ready()
    share(world)
    wait_fan_out(world, seq(world))
    world.stop()
    for r in range(rounds):
        plain.start()
        puts["plain"] += owner_puts(plain, 20, False, 1000 * r)
        plain.stop()
        for n, (label, code) in enumerate(codes.items()):
            world.code = code
            world.start().ready()
            mine = others.setdefault(label, {"idle": {}, "during": {}})
            windows: dict[str, list[tuple[float, float]]] = {"idle": [], "during": []}
            try:
                puts.setdefault(label + " idle", []).extend(
                    owner_puts(world, 20, False, 1000 * r + 100 + 10 * n))
                other = Other(world)
                begin = time.time()
                for name, values in other.run(seconds=8).items():
                    mine["idle"].setdefault(name, []).extend(values)
                windows["idle"].append((begin, time.time()))
                world.put_me_card(number(600000 + 10 * r + n))
                change = seq(world)
                begin = time.time()
                puts.setdefault(label + " during", []).extend(
                    owner_puts(world, 10, True, 1000 * r + 200 + 20 * n))
                for name, values in other.run(
                        until=lambda: delivered(world, change) >= world.recipients * 0.9
                ).items():
                    mine["during"].setdefault(name, []).extend(values)
                windows["during"].append((begin, time.time()))
                wait_fan_out(world, seq(world))
            finally:
                world.stop()
            found = waits(world.log, world.log_start)
            for phase, spans in windows.items():
                hook_waits.setdefault(label, {}).setdefault(phase, []).extend(
                    ms for t, ms in found if any(a <= t <= b for a, b in spans))
            lock_holds[label] = max(lock_holds.get(label, 0.0),
                                    longest_hold(world, world.log_start))
            writer_holds.setdefault(label, []).extend(holds(world.log, world.log_start))
    print("\n%d recipients (%d-card books), %d rounds%s" % (
        size, cards, rounds, ", side by side: " + " / ".join(codes) if len(codes) > 1 else ""))
    base_p90 = pct(puts["plain"], 90)
    for name in puts:
        print("  owner's PUT, %-34s p50 %6.1f ms  p90 %6.1f ms  p90 ratio %.2f"
              % ("plain Radicale" if name == "plain" else name, pct(puts[name], 50),
                 pct(puts[name], 90), pct(puts[name], 90) / base_p90))
    for label in codes:
        print("  %s:" % label)
        for op in ("GET", "PROPFIND", "REPORT", "PUT"):
            idle = others[label]["idle"].get(op, [0])
            during = others[label]["during"].get(op, [0])
            print("    another user's %-8s p50 %6.1f → %6.1f ms   p99 %6.1f → %6.1f ms   "
                  "p99 ratio %.2f  (%d/%d samples)"
                  % (op, pct(idle, 50), pct(during, 50), pct(idle, 99), pct(during, 99),
                     pct(during, 99) / max(pct(idle, 99), 1e-6), len(idle), len(during)))
        for phase in ("idle", "during"):
            found = hook_waits.get(label, {}).get(phase, [])
            print("    storage hooks' waits for the index's writer, %-6s: %d of 1 ms or more, "
                  "%d over 10 ms, longest %.1f ms" % (
                      phase, len(found), sum(ms > 10 for ms in found),
                      max(found, default=0.0)))
        print("    longest hold of the storage lock by the fan-out: %.1f ms" % lock_holds[label])
        longest: dict[str, float] = {}
        for ms, where in writer_holds[label]:
            longest[where] = max(longest.get(where, 0.0), ms)
        print("    the fan-out's holds of the index's writer: %d of 5 ms or more, %d over 10 ms; "
              "longest by where:" % (len(writer_holds[label]),
                                     sum(ms > 10 for ms, _ in writer_holds[label])))
        for where, ms in sorted(longest.items(), key=lambda kv: -kv[1])[:4]:
            print("      %7.1f ms  %s" % (ms, where))


def time_to_visible(rounds: int, base: Path) -> None:
    size = 1000
    world = build(base / "visible", size, 10)
    verify_recipients(world)
    world.options["mecard_rewrite_spacing"] = "0"
    world.start().ready()
    try:
        share(world)
        wait_fan_out(world, seq(world))
        last = world.session(world.users()[-1])
        book = world.url + "/%s/contacts/" % world.users()[-1]
        body = ("<D:sync-collection xmlns:D='DAV:'><D:sync-token>%s</D:sync-token>"
                "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>"
                "</D:sync-collection>")
        times = []
        for r in range(rounds):
            r0 = last.request("REPORT", book, data=body % "",
                              headers={"Content-Type": "application/xml"})
            token = ET.fromstring(r0.content).findtext(DAV + "sync-token")
            begin = time.perf_counter()
            world.put_me_card(number(700000 + r))
            while True:
                r1 = last.request("REPORT", book, data=body % token,
                                  headers={"Content-Type": "application/xml"})
                if b"alice.vcf" in r1.content:
                    break
            times.append(time.perf_counter() - begin)
            wait_fan_out(world, seq(world))
        print("\ntime to visible, owner's PUT → the 1,000th recipient's sync-collection lists "
              "the copy: min %.2f s, median %.2f s" % (min(times), statistics.median(times)))
    finally:
        world.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10000)
    parser.add_argument("--cards", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "mecard-bench")
    parser.add_argument("--before", type=Path, metavar="TREE",
                        help="also run the plugin of another tree of this repository (e.g. "
                             "`git worktree add /tmp/before HEAD`), side by side, round by "
                             "round on the same world")
    parser.add_argument("--skip-visible", action="store_true",
                        help="measure only the latency rounds")
    args = parser.parse_args()
    if not args.skip_visible:
        time_to_visible(max(3, args.rounds), args.dir)
    here = Path(__file__).resolve().parent.parent
    codes = {"before": args.before.resolve(), "after": here} if args.before else None
    latency_rounds(args.recipients, args.cards, args.rounds, args.dir, codes)


if __name__ == "__main__":
    main()
