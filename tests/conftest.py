# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of every test module, and how the suite runs in parallel (``make test``).

``make test`` runs the test files on several pytest-xdist workers (``-n``).  Tests are
independent of each other: each server has its own free port (``tests/server.py``), its own
``tmp_path`` folder and its own SMTP sink.  What cannot run beside other tests says so:

- ``@pytest.mark.alone``: the test measures time (an upper bound on how long something
  takes); it runs while no other test runs on any worker, so that another worker's server
  start cannot make it late.
- a module with a module- or class-scoped fixture (a server shared by its tests) runs on one
  worker as a whole, so that its server starts once; :data:`SHARED_RESOURCES` lists the
  modules that share something outside ``tmp_path`` and must not run at the same time.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO, Iterator

import pytest

from tests.server import RadicaleServer

#: Loosened defaults for tests of other things: everyone pre-authorised and discoverable.
#: Not what the shipped config does (config/radicale.conf pre-authorises the group "family"
#: and keeps discoverability "contacts"): main scenarios use ``public_server``.
FAMILY = {"mecard_preauthorize": "*", "mecard_default_discoverability": "everyone"}

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw",
         "erin": "erin-pw"}

#: module file -> group: modules of one group run on one worker, one after the other.
#: Both build wheels with ``pip`` into the one wheelhouse beside the venv (``WHEELHOUSE``).
SHARED_RESOURCES = {"test_install_e2e.py": "wheelhouse", "test_upgrade_e2e.py": "wheelhouse"}


@pytest.fixture
def server(tmp_path) -> Iterator[RadicaleServer]:
    """Everyone pre-authorised and discoverable (looser than the shipped config)."""
    srv = RadicaleServer(tmp_path, USERS, **FAMILY).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def public_server(tmp_path) -> Iterator[RadicaleServer]:
    """A server with the shipped defaults: recipients are asked, nobody is pre-authorised."""
    srv = RadicaleServer(tmp_path, USERS).start()
    try:
        yield srv
    finally:
        srv.stop()


# -- running in parallel ---------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "alone: measures time; runs while no other test runs on any xdist worker")


def _shares_a_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a fixture that lives longer than one test, in its module."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(d.scope in ("module", "class", "package")
               for defs in info.name2fixturedefs.values() for d in defs)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the tests that must run on one worker (``--dist loadgroup``).

    Every other test is scheduled on its own: the workers stay evenly busy to the end.
    """
    for item in items:
        module = item.path.name
        if module in SHARED_RESOURCES:
            item.add_marker(pytest.mark.xdist_group(SHARED_RESOURCES[module]))
        elif _shares_a_fixture(item):
            item.add_marker(pytest.mark.xdist_group(module))


class _Turns:
    """A readers-writer lock over all xdist workers of one run (``flock`` on two files).

    Every test holds it shared; an ``alone`` test holds it exclusively.  A writer first
    takes the turnstile, so that tests starting meanwhile wait instead of starving it.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._turnstile: IO[bytes] = open(folder / "turnstile.lock", "ab")
        self._running: IO[bytes] = open(folder / "running.lock", "ab")

    def enter(self, alone: bool) -> None:
        fcntl.flock(self._turnstile, fcntl.LOCK_EX)
        if alone:
            fcntl.flock(self._running, fcntl.LOCK_EX)
            return
        try:
            fcntl.flock(self._running, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)

    def leave(self, alone: bool) -> None:
        fcntl.flock(self._running, fcntl.LOCK_UN)
        if alone:
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)


_turns: _Turns | None = None


def _worker_turns(config: pytest.Config) -> _Turns | None:
    """The run's lock, or None outside xdist (one process: nothing runs beside a test)."""
    global _turns
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None or not hasattr(config, "workerinput"):
        return None
    if _turns is None:
        # the workers' base temp folders are siblings under the run's own
        base = config._tmp_path_factory.getbasetemp().parent  # type: ignore[attr-defined]
        _turns = _Turns(base / ("turns-" + run))
    return _turns


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator:
    """Setup, call and teardown of a test hold the run's lock (see :class:`_Turns`)."""
    turns = _worker_turns(item.config)
    if turns is None:
        yield
        return
    alone = item.get_closest_marker("alone") is not None
    turns.enter(alone)
    try:
        yield
    finally:
        turns.leave(alone)
