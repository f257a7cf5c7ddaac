# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the suite's CPU goes: a pytest plugin that charges each test the CPU it cost.

``.venv/bin/python -m pytest -n 4 -p tests.cpu_accounting`` (as root, on a machine with
cgroup v1's ``cpuacct`` at :data:`BASE`): each xdist worker moves itself into a cgroup of
its own, which its children inherit — its zygote and servers, the commands it runs, its
PostgreSQL cluster, its Chromium — and each test is charged the change of that cgroup's
``cpuacct.usage`` over its setup, call and teardown.  Time spent waiting costs nothing, so
this tells what ``--durations`` cannot: which tests keep the CPUs busy.  The run ends with
the test files that cost the most CPU; each test's figures are in
``test-artifacts/cpu/<worker>.tsv`` (CPU s, wall s, test id).  Not loaded by ``make test``.
"""

from __future__ import annotations

import collections
import os
import time
from pathlib import Path
from typing import IO, Iterator

import pytest

BASE = Path("/sys/fs/cgroup/cpuacct/mecard-suite")
OUT = Path(__file__).parent.parent / "test-artifacts" / "cpu"

_usage: Path | None = None
_out: IO[str] | None = None


def _cpu() -> float:
    assert _usage is not None
    return int(_usage.read_text()) / 1e9


def pytest_configure(config: pytest.Config) -> None:
    global _usage, _out
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:  # the controller: a fresh record for this run
        OUT.mkdir(parents=True, exist_ok=True)
        for old in OUT.glob("*.tsv"):
            old.unlink()
        return
    group = BASE / worker
    try:
        group.mkdir(parents=True, exist_ok=True)
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as e:
        raise pytest.UsageError("tests.cpu_accounting needs root and cgroup v1's cpuacct at "
                                "%s: %s" % (BASE, e)) from e
    _usage = group / "cpuacct.usage"
    _out = open(OUT / ("%s.tsv" % worker), "a", encoding="utf-8")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator:
    if _out is None:
        yield
        return
    cpu, wall = _cpu(), time.monotonic()
    yield
    _out.write("%.3f\t%.3f\t%s\n" % (_cpu() - cpu, time.monotonic() - wall, item.nodeid))
    _out.flush()


def pytest_terminal_summary(terminalreporter) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        return
    cpu: collections.Counter[str] = collections.Counter()
    wall: collections.Counter[str] = collections.Counter()
    for record in OUT.glob("*.tsv"):
        for line in record.read_text(encoding="utf-8").splitlines():
            spent, took, nodeid = line.split("\t", 2)
            cpu[nodeid.split("::")[0]] += float(spent)
            wall[nodeid.split("::")[0]] += float(took)
    if not cpu:
        return
    terminalreporter.section("CPU per test file (cgroup cpuacct)")
    terminalreporter.write_line("all tests: %.0f CPU-s, %.0f s of workers' time"
                                % (sum(cpu.values()), sum(wall.values())))
    for path, spent in cpu.most_common(15):
        terminalreporter.write_line("%7.1f CPU-s %7.1f s  %s" % (spent, wall[path], path))
