# SPDX-License-Identifier: GPL-3.0-or-later
"""A real, throwaway PostgreSQL for the tests (and the benchmarks).

:class:`Cluster` runs ``initdb`` and ``pg_ctl`` from Debian's packages in a temporary
folder, on a free port of 127.0.0.1 (its socket in that folder too), and removes it
all at :meth:`Cluster.stop`.  ``initdb`` refuses to run as root, and CI runs as root:
there, the cluster is the ``postgres`` system user's (Debian's package creates it),
started through ``runuser``.  A missing PostgreSQL is an error that says how to
install it (``make test`` installs it when it runs as root), never a skipped test.

Each test that needs an empty database asks :meth:`Cluster.new_database` for one;
the cluster is made once per test process (``postgres`` fixture in ``conftest.py``).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Iterator

#: Where Debian puts the server's programs (one folder per major version).
_DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
INSTALL_ADVICE = ("PostgreSQL is needed by these tests: run `make test` as root (it installs "
                  "it), or `sudo apt-get install postgresql`")


class PostgresMissing(RuntimeError):
    """No PostgreSQL server programs on this machine."""


def server_bindir() -> str:
    """The folder of ``initdb``/``pg_ctl`` (the newest Debian version), or raise."""
    found = sorted(glob.glob(_DEBIAN_BINDIRS), key=lambda p: int(p.split("/")[-2])
                   if p.split("/")[-2].isdigit() else 0)
    for folder in reversed(found):
        if os.path.exists(os.path.join(folder, "initdb")):
            return folder
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(os.path.realpath(initdb))
    raise PostgresMissing(INSTALL_ADVICE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A PostgreSQL server of its own, in a temporary folder, on a free port."""

    #: Settings for a throwaway server: no fsync (the tests kill Radicale, never
    #: PostgreSQL, so what PostgreSQL acknowledged is never lost to them), small memory.
    SETTINGS = {"fsync": "off", "full_page_writes": "off", "shared_buffers": "32MB",
                "max_connections": "300", "listen_addresses": "127.0.0.1",
                "log_min_messages": "warning"}

    def __init__(self) -> None:
        self.bindir = server_bindir()
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix="mecard-pg-")
        self.data = os.path.join(self.folder, "data")
        self._as: list[str] = []
        self.user = pwd.getpwuid(os.getuid()).pw_name
        if os.getuid() == 0:  # initdb refuses root: the cluster is the postgres user's
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresMissing("no `postgres` system user to run PostgreSQL as (root "
                                      "cannot): " + INSTALL_ADVICE) from None
            shutil.chown(self.folder, "postgres")
            os.chmod(self.folder, 0o700)
            self._as = ["runuser", "-u", "postgres", "--"]
            self.user = "postgres"
        self._names = itertools.count(1)
        self._template: str | None = None
        self.started = False

    def _run(self, *args: str) -> None:
        subprocess.run(self._as + list(args), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, cwd=self.folder, timeout=120)

    def start(self) -> "Cluster":
        try:
            self._run(os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", self.user,
                      "-A", "trust", "--locale=C", "-E", "UTF8", "--no-sync")
            options = " ".join("-c %s=%s" % kv for kv in self.SETTINGS.items())
            self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-w", "-t", "60",
                      "-l", os.path.join(self.folder, "server.log"),
                      "-o", "-p %d -k %s %s" % (self.port, self.folder, options), "start")
        except subprocess.CalledProcessError as e:
            log = ""
            with contextlib.suppress(OSError):
                with open(os.path.join(self.folder, "server.log")) as f:
                    log = f.read()[-2000:]
            self.stop()
            raise RuntimeError("PostgreSQL did not start: %s %s" % (
                e.stderr.decode(errors="replace"), log)) from e
        self.started = True
        return self

    def restart(self) -> None:
        """Stop the server (``fast``: every session is ended, as at a crash of theirs) and
        start it again on the same port and data."""
        options = " ".join("-c %s=%s" % kv for kv in self.SETTINGS.items())
        self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "fast", "-w",
                  "-t", "60", "-l", os.path.join(self.folder, "server.log"),
                  "-o", "-p %d -k %s %s" % (self.port, self.folder, options), "restart")

    def dsn(self, dbname: str = "postgres") -> str:
        return "host=127.0.0.1 port=%d user=%s dbname=%s" % (self.port, self.user, dbname)

    def new_database(self, prefix: str = "test") -> str:
        """A fresh, empty database; its connection string."""
        import psycopg
        name = "%s_%d_%d" % (prefix, os.getpid(), next(self._names))
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute('CREATE DATABASE "%s"' % name)
        return self.dsn(name)

    def migrated_database(self, prefix: str = "test") -> str:
        """A fresh database holding the storage's and the index's tables at this code's
        versions, and nothing else: what a server's first start makes of an empty one
        (``tests/test_storage_postgres.py`` and ``test_migrate_postgres.py`` test that
        start).  Copied from a template migrated once per cluster: a server's first start
        spends about 0.4 s on the tables, and most tests start several servers."""
        import psycopg
        if self._template is None:
            from radicale_plugin.index.postgres import schema as index_schema
            from radicale_plugin.index.postgres.database import Database
            from radicale_plugin.storage.postgres import schema as storage_schema
            template = "template_%d" % os.getpid()
            with psycopg.connect(self.dsn(), autocommit=True) as conn:
                conn.execute('CREATE DATABASE "%s"' % template)
            db = Database(self.dsn(template), 1, 1)
            try:
                storage_schema.migrate(db)
                index_schema.migrate(db)
            finally:
                db.close()
            self._template = template
        name = "%s_%d_%d" % (prefix, os.getpid(), next(self._names))
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute('CREATE DATABASE "%s" TEMPLATE "%s"' % (name, self._template))
        return self.dsn(name)

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m",
                          "immediate", "-w", "-t", "30", "stop")
            self.started = False
        for _ in range(3):  # the server's last files may still be closing
            shutil.rmtree(self.folder, ignore_errors=True)
            if not os.path.exists(self.folder):
                break
            time.sleep(0.2)


def running(cluster: Cluster) -> Iterator[Cluster]:
    """A fixture's body: ``cluster`` started (a machine without PostgreSQL fails the test,
    saying how to install it, never skips it), stopped after."""
    import pytest
    try:
        cluster.start()
    except PostgresMissing as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
