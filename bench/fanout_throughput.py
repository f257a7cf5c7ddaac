# SPDX-License-Identifier: GPL-3.0-or-later
"""Fan-out throughput, side by side with stock Radicale and with the disk's floor.

For each size (recipients with 50-card books) and policy (``auto``: copies
are written; ``ask``: each recipient gets an offer with its before/after),
in interleaved rounds:

* **fan-out**: the owner's change until every recipient holds it (or was
  offered it), measured through HTTP and the index; the first round finds
  the copies by the owner's old number, the next ones by their links;
* **stock upload()**: stock Radicale writing the same number of copies one
  by one with ``Collection.upload()`` (one lock per copy, as a PUT would);
* **floor**: write + fsync + rename of one small file per recipient.

Prints recipients/s (min and median over rounds) and the ratios.  Usage:
``bench/fanout_throughput.py [SIZES...] [--rounds N] [--policy auto|ask|both] [--before TREE]``;
with ``--before`` each round measures the next change with that tree's plugin, then with
this one's, on the same world (a restart between), and prints after/before instead of
stock and floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.world import (World, build, card, delivered, number, seq,  # noqa: E402
                         share, verify_recipients)


EXTRA: dict[str, str] = {}


def wait_for(world: World, change: int, states: tuple[str, ...], timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while delivered(world, change, states) < world.recipients:
        if time.monotonic() > deadline:
            raise RuntimeError("fan-out did not finish")
        time.sleep(0.02)


def floor(world: World, texts: list[str]) -> float:
    """Recipients/s of write + fsync + rename of one small file per recipient."""
    top = world.folder / "collection-root"
    start = time.perf_counter()
    for user, text in zip(world.users(), texts):
        folder = top / user / "contacts"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".bench-")
        os.write(fd, text.encode())
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, folder / "bench-floor.vcf")
    return len(texts) / (time.perf_counter() - start)


def stock_upload(world: World, texts: list[str]) -> float:
    """Recipients/s of stock Radicale's Collection.upload(), one lock per copy."""
    import radicale.item as radicale_item
    import vobject
    from radicale import config
    from radicale.storage import multifilesystem
    stock = World(world.root, world.recipients, stock=True)
    stock.port = 1
    storage = multifilesystem.Storage(config.load([(str(stock.config()), False)]))
    start = time.perf_counter()
    for user, text in zip(world.users(), texts):
        with storage.acquire_lock("w", user):
            collection = next(iter(storage.discover("/%s/contacts/" % user)))
            item = radicale_item.Item(collection_path=collection.path,
                                      vobject_item=vobject.readOne(text), text=text)
            collection.upload("bench-stock.vcf", item)  # type: ignore[attr-defined]
    return len(texts) / (time.perf_counter() - start)


def fan_out(world: World, change: int, policy: str) -> float:
    """Recipients/s of one change of the owner's number (the PUT to the last recipient)."""
    states = ("offered",) if policy == "ask" else ("delivered",)
    start = time.perf_counter()
    world.put_me_card(number(900000 + change))
    target = seq(world)
    wait_for(world, target, states)
    return world.recipients / (time.perf_counter() - start)


def first_fan_out(world: World, policy: str) -> float:
    """Recipients/s when the owner starts sharing: copies found by her old number."""
    states = ("offered",) if policy == "ask" else ("delivered",)
    start = time.perf_counter()
    world.api("alice", "POST", "/targets", {"targets": ["all"]})
    wait_for(world, seq(world), states)
    return world.recipients / (time.perf_counter() - start)


def run(size: int, rounds: int, policy: str, base: Path,
        before: Path | None = None) -> dict[str, list[float]]:
    print("building %d recipients with 50-card books..." % size, file=sys.stderr)
    world = build(base / ("%s-%d" % (policy, size)), size)
    verify_recipients(world)
    # back-to-back changes are the point here, not the spacing that shields bursts
    world.options["mecard_rewrite_spacing"] = "0"
    world.options.update(EXTRA)
    if policy == "ask":
        world.options["mecard_preauthorize"] = ""
    world.start().ready()
    try:
        world.api("alice", "POST", "/me-card", {"path": "/alice/contacts/alice.vcf"})
        from bench.world import ROOT  # noqa: F401  (the admin command runs from there)
        share_old_number(world)
        results: dict[str, list[float]] = {"first": [], "next": [], "stock": [], "floor": []}
        texts = [card(u + "-alice", "Ally", "TEL;TYPE=CELL:" + number(800000 + i), "NICKNAME:Sis")
                 for i, u in enumerate(world.users())]
        results["first"].append(first_fan_out(world, policy))
        if before is not None:
            return side_by_side(world, rounds, policy, before, results)
        for r in range(rounds):
            results["floor"].append(floor(world, texts))
            results["stock"].append(stock_upload(world, texts))
            results["next"].append(fan_out(world, r + 1, policy))
        return results
    finally:
        world.stop()


def side_by_side(world: World, rounds: int, policy: str, before: Path,
                 results: dict[str, list[float]]) -> dict[str, list[float]]:
    """The next change, with the plugin of ``before`` then this one's, round by round."""
    here = world.code
    for r in range(rounds):
        for n, (label, code) in enumerate((("before", before), ("after", here))):
            world.stop()
            world.code = code
            world.start().ready()
            results.setdefault(label, []).append(fan_out(world, 2 * r + n + 1, policy))
    world.code = here
    return results


def share_old_number(world: World) -> None:
    """Alice's verified old number A is on her me card, then B: recipients still have A."""
    import subprocess
    from bench.world import ROOT
    done = subprocess.run(
        [sys.executable, "-m", "radicale_plugin", "--config", str(world.config()),
         "verify-key", "alice", number(999999)], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    world.put_me_card(number(999998))


def report(size: int, policy: str, results: dict[str, list[float]]) -> None:
    def fig(name: str) -> str:
        values = results[name]
        return "min %7.0f  median %7.0f" % (min(values), statistics.median(values))
    print("\n%d recipients, policy %s" % (size, policy))
    print("  fan-out, first change (copies found by old number): %7.0f /s"
          % results["first"][0])
    if "before" in results:
        for name in ("before", "after"):
            print("  fan-out, next change, %-6s min %7.0f  median %7.0f /s   (rounds: %s)" % (
                name, min(results[name]), statistics.median(results[name]),
                " ".join("%.0f" % v for v in results[name])))
        print("  ratio after/before (median):  %5.2f" % (
            statistics.median(results["after"]) / statistics.median(results["before"])))
        return
    nxt = statistics.median(results["next"])
    print("  fan-out, next change (links known):  %s /s" % fig("next"))
    print("  stock upload() one by one:            %s /s" % fig("stock"))
    print("  floor (write+fsync+rename):           %s /s" % fig("floor"))
    print("  ratio fan-out/stock (median):  %5.2f" % (nxt / statistics.median(results["stock"])))
    print("  ratio fan-out/floor (median):  %5.2f" % (nxt / statistics.median(results["floor"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--policy", choices=("auto", "ask", "both"), default="both")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "mecard-bench")
    parser.add_argument("--before", type=Path, metavar="TREE",
                        help="measure the next change with another tree's plugin too (e.g. "
                             "`git worktree add /tmp/before HEAD`), round by round")
    args = parser.parse_args()
    policies = ("auto", "ask") if args.policy == "both" else (args.policy,)
    for size in args.sizes:
        for policy in policies:
            report(size, policy, run(size, args.rounds, policy, args.dir,
                                     args.before.resolve() if args.before else None))


if __name__ == "__main__":
    main()
