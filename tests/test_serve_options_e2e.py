# SPDX-License-Identifier: GPL-3.0-or-later
"""The config as Radicale reads it: ``--config a.conf:b.conf`` (``?`` for an optional file,
``RADICALE_CONFIG``) for the server and the admin command, and Radicale's option flags
(``--server-hosts``, ``--storage-filesystem-folder``, ...) plus the plugin's for
``python -m radicale_plugin.serve``.  Real processes, the shipped defaults."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from radicale_plugin.index import SharingIndex
from tests import zygote
from tests.conftest import USERS
from tests.server import RadicaleServer, free_port
from tests.test_backup import ok, refused
from tests.test_fanout_e2e import person


def split_config(server: RadicaleServer) -> tuple[Path, Path]:
    """The server's config as two files: everything but ``[storage]``, and ``[storage]``."""
    text = (server.root / "config").read_text()
    start = text.index("[storage]")
    end = text.index("[web]")
    main, storage = server.root / "main.conf", server.root / "storage.conf"
    main.write_text(text[:start] + text[end:])
    storage.write_text(text[start:end])
    return main, storage


def admin(config: str | None, *args: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "radicale_plugin"]
    if config is not None:
        command += ["--config", config]
    return zygote.run(command + list(args), env={**os.environ, **(env or {})})


class CompoundServer(RadicaleServer):
    """Started with ``--config main.conf:storage.conf`` and extra command-line flags."""

    def __init__(self, root: Path, flags: list[str], compound: bool = True) -> None:
        super().__init__(root, USERS)
        self.flags = flags
        self.compound = compound

    def command(self) -> list[str]:
        config = str(self.root / "config")
        if self.compound:
            main, storage = split_config(self)
            config = "%s:%s" % (main, storage)
        return [sys.executable, "-m", self.launcher, "--config", config, *self.flags]


def test_the_admin_reads_a_compound_config_as_radicale_does(public_server):
    person(public_server, "alice", "alice-me.vcf")
    main, storage = split_config(public_server)
    database = public_server.root / "collections" / ".mecard.sqlite"
    expected = "schema version {0} (this code writes {0})\n".format(SharingIndex.SCHEMA_VERSION)
    assert ok(admin("%s:%s" % (main, storage), "schema")) == expected
    # a "?" before a file: optional; the last file given wins, as for radicale
    missing = public_server.root / "nowhere.conf"
    assert ok(admin("%s:?%s:%s" % (main, missing, storage), "schema")) == expected
    # RADICALE_CONFIG when --config is not given
    assert ok(admin(None, "schema", env={"RADICALE_CONFIG": "%s:%s" % (main, storage)})) \
        == expected
    assert "verified" in ok(admin("%s:%s" % (main, storage), "keys", "alice"))
    # a missing file without "?": one line naming it
    line = refused(admin("%s:%s:%s" % (main, missing, storage), "schema"))
    assert str(missing) in line and "Traceback" not in line
    # without the [storage] part the admin looks for a database elsewhere, and says where
    line = refused(admin(str(main), "schema"))
    assert line.startswith("python -m radicale_plugin: no sharing database at ")
    assert str(database) not in line


def test_serve_takes_radicales_option_flags_and_the_plugins(tmp_path):
    """``--server-hosts`` and ``--storage-filesystem-folder`` override the config files, and
    ``--storage-mecard-database`` is the plugin's own option."""
    port = free_port()
    folder = tmp_path / "elsewhere"
    database = tmp_path / "state" / "sharing.sqlite"
    database.parent.mkdir()
    srv = CompoundServer(tmp_path, ["--server-hosts", "127.0.0.1:%d" % port,
                                    "--storage-filesystem-folder=%s" % folder,
                                    "--storage-mecard-database", str(database),
                                    "--logging-level", "info"])
    srv.port, srv.url = port, "http://127.0.0.1:%d" % port
    srv.start()
    try:
        alice = person(srv, "alice", "alice-me.vcf", verified=False)
        assert alice.api_ok("GET", "/me")["me_card"] == "/alice/contacts/alice.vcf"
        assert (folder / "collection-root" / "alice" / "contacts" / "alice.vcf").exists()
        assert not (tmp_path / "collections").exists()
        assert database.exists() and not (folder / ".mecard.sqlite").exists()
        log = srv.log.read_text()
        assert "Loaded config file '%s'" % (tmp_path / "storage.conf") in log
        assert "[DEBUG]" not in log  # --logging-level info over the config's debug
    finally:
        srv.stop()


def test_serve_says_what_is_wrong_with_a_flag_in_one_line(tmp_path):
    srv = RadicaleServer(tmp_path, USERS)
    base = [sys.executable, "-m", "radicale_plugin.serve", "--config", str(tmp_path / "config")]
    done = subprocess.run(base + ["--logging-levle", "x"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "unrecognized arguments: --logging-levle" in done.stderr
    # a section with backends passes unknown options on, as radicale does: Radicale says no
    done = subprocess.run(base + ["--server-hostz", "x"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "cannot load the config: Invalid option 'hostz' in section 'server'" in done.stderr
    done = subprocess.run(base + ["--storage-mecard-default-region", "XX"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "cannot load the config" in done.stderr and "mecard_default_region" in done.stderr
    helped = subprocess.run(base[:3] + ["--help"], capture_output=True, text=True, timeout=60)
    for flag in ("--server-hosts", "--storage-filesystem-folder", "--storage-mecard-database",
                 "--storage-mecard-preauthorize", "--logging-level"):
        assert flag in helped.stdout, flag
    assert srv.port  # nothing was started
