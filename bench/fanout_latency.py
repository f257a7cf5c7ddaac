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
``bench/fanout_latency.py [--recipients N] [--rounds R]``.
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


def longest_hold(world: World) -> float:
    found = re.findall(r"longest hold of the storage lock ([0-9.]+) ms",
                       (world.root / "radicale.log").read_text(errors="replace"))
    return max(map(float, found)) if found else 0.0


def wait_fan_out(world: World, change: int) -> None:
    while delivered(world, change) < world.recipients:
        time.sleep(0.05)


def latency_rounds(size: int, cards: int, rounds: int, base: Path) -> None:
    print("building %d recipients with %d-card books..." % (size, cards), file=sys.stderr)
    world = build(base / ("latency-%d" % size), size, cards)
    verify_recipients(world)
    plain = World(world.root, size, cards, stock=True)
    puts: dict[str, list[float]] = {"plain": [], "idle": [], "during": []}
    others: dict[str, dict[str, list[float]]] = {"idle": {}, "during": {}}
    world.start().ready()
    share(world)
    wait_fan_out(world, seq(world))
    world.stop()
    for r in range(rounds):
        plain.start()
        puts["plain"] += owner_puts(plain, 20, False, 1000 * r)
        plain.stop()
        world.start().ready()
        try:
            puts["idle"] += owner_puts(world, 20, False, 1000 * r + 100)
            other = Other(world)
            for name, values in other.run(seconds=8).items():
                others["idle"].setdefault(name, []).extend(values)
            world.put_me_card(number(600000 + r))
            change = seq(world)
            during = owner_puts(world, 10, True, 1000 * r + 200)
            puts["during"] += during
            for name, values in other.run(
                    until=lambda: delivered(world, change) >= world.recipients * 0.9).items():
                others["during"].setdefault(name, []).extend(values)
            wait_fan_out(world, seq(world))
        finally:
            world.stop()
    print("\n%d recipients (%d-card books), %d rounds" % (size, cards, rounds))
    base_p90 = pct(puts["plain"], 90)
    for name in ("plain", "idle", "during"):
        label = {"plain": "plain Radicale", "idle": "ours, idle",
                 "during": "ours, during her previous fan-out"}[name]
        print("  owner's PUT, %-34s p50 %6.1f ms  p90 %6.1f ms  p90 ratio %.2f"
              % (label, pct(puts[name], 50), pct(puts[name], 90),
                 pct(puts[name], 90) / base_p90))
    for op in ("GET", "PROPFIND", "REPORT", "PUT"):
        idle, during = others["idle"].get(op, [0]), others["during"].get(op, [0])
        print("  another user's %-8s p50 %6.1f → %6.1f ms   p99 %6.1f → %6.1f ms   "
              "p99 ratio %.2f  (%d/%d samples)"
              % (op, pct(idle, 50), pct(during, 50), pct(idle, 99), pct(during, 99),
                 pct(during, 99) / max(pct(idle, 99), 1e-6), len(idle), len(during)))
    print("  longest hold of the storage lock by the fan-out: %.1f ms" % longest_hold(world))


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
    args = parser.parse_args()
    time_to_visible(max(3, args.rounds), args.dir)
    latency_rounds(args.recipients, args.cards, args.rounds, args.dir)


if __name__ == "__main__":
    main()
