# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of every test module, and how the suite runs in parallel (``make test``).

``make test`` runs the test files on several pytest-xdist workers (``-n auto``: two per CPU,
see :func:`pytest_xdist_auto_num_workers`).  Tests are independent of each other: each server
has its own free port (``tests/server.py``), its own ``tmp_path`` folder and its own SMTP
sink.  What cannot run beside other tests says so:

- ``@pytest.mark.alone``: the test measures time (an upper bound on how long something
  takes); it runs while no other test runs on any worker, so that another worker's server
  start cannot make it late.
- a module with a module- or class-scoped fixture (a server shared by its tests) runs on one
  worker as a whole, so that its server starts once; :data:`SHARED_RESOURCES` lists the
  modules that share something outside ``tmp_path`` and must not run at the same time.

The other tests run longest first, by the durations the last run kept in pytest's cache.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO, Iterator

import pytest

from tests.postgres import Cluster, running
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


@pytest.fixture(scope="session")
def work_tree_wheel(tmp_path_factory) -> Path:
    """The wheel of this work tree, built once for ``test_install_e2e`` and
    ``test_upgrade_e2e`` (one group: they run on one worker, so the build is shared)."""
    from tests.test_install_e2e import build_wheel
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A throwaway PostgreSQL server for this test process (``tests/postgres.py``); a
    machine without PostgreSQL fails the tests that need it, saying how to install it."""
    yield from running(Cluster())


#: The storages a module marked ``both_backends`` runs its servers on (one suite, not a copy).
BACKENDS = ("files", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module (or test) marked ``both_backends`` runs once per storage backend: its
    ``server``/``public_server`` (and whatever asks for ``backend``) on each."""
    if "backend" in metafunc.fixturenames \
            and metafunc.definition.get_closest_marker("both_backends") is not None:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request) -> str:
    """The storage the test's servers run on: ``files`` unless the module is marked
    ``both_backends`` (then each of :data:`BACKENDS`)."""
    return getattr(request, "param", "files")


@pytest.fixture
def storage_options(request, backend) -> dict[str, str]:
    """RadicaleServer's keywords for the backend: PostgreSQL storage in a fresh database
    of the session's cluster (its tables made: a first start on an empty database is
    ``test_storage_postgres``'s and ``test_migrate_postgres``'s), or nothing (the files)."""
    if backend == "postgres":
        return {"postgres": request.getfixturevalue("postgres").migrated_database()}
    return {}


@pytest.fixture
def server(tmp_path, storage_options) -> Iterator[RadicaleServer]:
    """Everyone pre-authorised and discoverable (looser than the shipped config)."""
    srv = RadicaleServer(tmp_path, USERS, **FAMILY, **storage_options).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def public_server(tmp_path, storage_options) -> Iterator[RadicaleServer]:
    """A server with the shipped defaults: recipients are asked, nobody is pre-authorised."""
    srv = RadicaleServer(tmp_path, USERS, **storage_options).start()
    try:
        yield srv
    finally:
        srv.stop()


# -- running in parallel ---------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "alone: measures time; runs while no other test runs on any xdist worker")
    config.addinivalue_line(
        "markers", "both_backends: the module's servers run on the file storage and on "
                   "PostgreSQL (the `backend` fixture)")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: two workers per CPU (``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides).

    Most of an end-to-end test is waiting (for a server to start, a fan-out round, a timer),
    not computing: with one worker per CPU the CPUs idle a good part of the run.  Tests that
    measure time run ``alone`` whatever the number of workers.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    return 2 * (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count() or 1)


def _shares_a_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a fixture that lives longer than one test, in its module."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(d.scope in ("module", "class", "package")
               for defs in info.name2fixturedefs.values() for d in defs)


def _join_group(config: pytest.Config, item: pytest.Item, group: str) -> None:
    """Mark the test for ``--dist loadgroup``: xdist's scheduler reads the group from the
    end of the test's id (``...::test@group``)."""
    item.add_marker(pytest.mark.xdist_group(group))
    ident = getattr(item, "_id", None)
    if getattr(config.option, "loadgroup", False) and ident is not None:
        # pytest 9 keeps the id in ``_id``; xdist 3.8 still writes the group into
        # ``_nodeid``, which pytest no longer reads: without this no group ever formed
        # (each worker started its own copy of a module's shared server, and both wheel
        # tests built their wheels at once).  Written as xdist means to.
        if not str(ident).endswith("@" + group):
            item._id = type(ident).parse("%s@%s" % (ident, group))


#: where the last runs' test durations are kept (pytest's cache, ``.pytest_cache``)
DURATIONS = "mecard/durations"


# first: xdist reads the groups from the markers in its own hook (a worker's, registered
# after this file), which without tryfirst ran before this one and saw no group at all
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the tests that must run on one worker (``--dist loadgroup``).

    Every other test is scheduled on its own: the workers stay evenly busy to the end.
    The ungrouped tests go longest first, as long as earlier runs timed them (see
    :func:`pytest_runtest_logreport`): a long test picked up last would keep one worker
    busy while the others have nothing left to do.  The ``alone`` tests go last.
    """
    grouped: list[pytest.Item] = []
    single: list[pytest.Item] = []
    for item in items:
        module = item.path.name
        if module in SHARED_RESOURCES:
            _join_group(config, item, SHARED_RESOURCES[module])
        elif _shares_a_fixture(item):
            _join_group(config, item, module)
        (grouped if item.get_closest_marker("xdist_group") else single).append(item)
    cache = getattr(config, "cache", None)
    if cache is None or not hasattr(config, "workerinput"):
        return  # one process: the order of the files, as written
    took = {**_seed_durations(), **cache.get(DURATIONS, {})}

    def guess(item: pytest.Item) -> float:
        """Seconds the last run took (this clone's cache, else :data:`SEED`); never timed: a
        second for a test with a server (``*_e2e.py``), nothing for the rest, so that the
        quick ones end it."""
        return float(took.get(item.nodeid, 1.0 if "_e2e" in item.path.name else 0.0))
    # groups first (xdist hands out the biggest groups first anyway), then the rest, and the
    # ``alone`` tests last: one of them in the middle would idle the other workers while
    # their running tests end; every worker reads the same cache, so all agree on the order
    single.sort(key=lambda item: (item.get_closest_marker("alone") is not None, -guess(item)))
    items[:] = grouped + single


#: Durations of the tests that take a second or more, kept in the tree: a fresh clone (CI)
#: has no cache, and without them its longest tests, guessed short, were handed out last
#: and ran alone at the end.  ``MECARD_KEEP_DURATIONS=1 make test`` writes them again.
SEED = Path(__file__).with_name("durations.json")


def _seed_durations() -> dict[str, float]:
    try:
        return json.loads(SEED.read_text())
    except (OSError, ValueError):
        return {}


_took: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Sum setup, call and teardown of each test (in the process that reports them)."""
    _took[report.nodeid] = _took.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Keep the durations for the next run's order (the controller's, or a lone process's)."""
    cache = getattr(session.config, "cache", None)
    if cache is None or hasattr(session.config, "workerinput") or not _took:
        return
    kept = cache.get(DURATIONS, {})
    kept.update({nodeid: round(took, 2) for nodeid, took in _took.items()})
    cache.set(DURATIONS, kept)
    if os.environ.get("MECARD_KEEP_DURATIONS") == "1":
        SEED.write_text(json.dumps({nodeid: round(took, 1) for nodeid, took in sorted(
            kept.items()) if took >= 1.0 and "@" not in nodeid}, indent=0) + "\n")


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
