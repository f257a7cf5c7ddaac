# SPDX-License-Identifier: GPL-3.0-or-later
"""Installing into an existing Radicale, as README.md ("Installing into an existing
Radicale") tells an admin: build the wheel, ``pip install`` it into a fresh virtual
environment (no system site-packages), add the two config lines, run stock ``radicale``.

Everything but what needs the WSGI layer must work there: an owner's card reaches a
recipient.  To stay fast and work offline, the dependencies are installed from a
wheelhouse kept beside the test virtualenv (``<sys.prefix>/mecard-test-wheels``), filled
from the package index once with the versions installed here; only when that is not
possible is the index asked directly.  A missing tool is a failure that says what to do,
never a skip.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.conftest import FAMILY, USERS
from tests.server import RadicaleServer, alices_new_number_reaches_bob, fixture
from tests.test_apple_my_card_e2e import apple_patch
from tests.test_fanout_e2e import person

ROOT = Path(__file__).resolve().parent.parent
#: Wheels of the dependencies (and of setuptools and wheel, to build), kept between runs.
WHEELHOUSE = Path(sys.prefix) / "mecard-test-wheels"
#: What a source distribution needs to build the wheel (setup.cfg: packages = find:).
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "radicale_plugin", "bridge")
PIP = ("-m", "pip", "--disable-pip-version-check", "--no-input")


def run(command: list[str], what: str, timeout: float = 300, check: bool = True,
        **kwargs) -> subprocess.CompletedProcess:
    """Run a command; a failure (with ``check``) fails the test with its output."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV", "VIRTUAL_ENV")}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=env, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.fail("%s: %s could not run: %s" % (what, command[0], e))
    if check and done.returncode != 0:
        pytest.fail("%s failed (exit %d): %s\n%s\n%s" % (
            what, done.returncode, " ".join(command), done.stdout[-3000:], done.stderr[-3000:]))
    return done


def constraints(work: Path) -> Path:
    """The versions installed in the test virtualenv: the wheel is tested with those."""
    frozen = run([sys.executable, *PIP, "freeze", "--exclude-editable"], "pip freeze").stdout
    path = work / "constraints.txt"
    path.write_text("".join(
        line + "\n" for line in frozen.splitlines()
        if line and "==" in line and " @ " not in line
        and not line.lower().replace("_", "-").startswith("radicale-mecard")))
    return path


def build_wheel(work: Path) -> Path:
    """``pip wheel --no-deps .`` of a copy of the sources (the work tree stays clean)."""
    WHEELHOUSE.mkdir(exist_ok=True)
    source = work / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    out = work / "dist"
    command = [sys.executable, *PIP, "wheel", "--no-deps", "--wheel-dir", str(out), str(source)]
    offline = run(command + ["--no-index", "--find-links", str(WHEELHOUSE)],
                  "building the wheel offline", check=False)
    if offline.returncode != 0:
        # the build needs setuptools and wheel: bring them once, then build offline again
        run([sys.executable, *PIP, "download", "--dest", str(WHEELHOUSE), "setuptools>=61",
             "wheel"], "downloading setuptools and wheel (needs the package index once)")
        run(command + ["--no-index", "--find-links", str(WHEELHOUSE)], "building the wheel")
    wheels = sorted(out.glob("radicale_mecard-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def install(work: Path, wheel: Path) -> Path:
    """A fresh virtual environment (no system site-packages) with the wheel installed."""
    venv = work / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], "python -m venv", check=False)
    python = venv / "bin" / "python"
    if made.returncode != 0 or not python.exists():
        pytest.fail("cannot create a virtual environment with pip (%s): install Python's venv "
                    "module and ensurepip (Debian/Ubuntu: apt-get install python3-venv)\n%s"
                    % (sys.executable, made.stderr[-2000:]))
    command = [str(python), *PIP, "install", "--no-index", "--find-links", str(WHEELHOUSE),
               str(wheel)]
    if run(command, "pip install offline", check=False).returncode != 0:
        # dependencies missing from the wheelhouse: download the versions tested here once
        got = run([sys.executable, *PIP, "download", "--dest", str(WHEELHOUSE),
                   "--constraint", str(constraints(work)), str(wheel)],
                  "downloading the dependencies", check=False)
        for stale in WHEELHOUSE.glob("radicale_mecard-*.whl"):
            stale.unlink()  # the project itself always comes from the wheel just built
        if got.returncode == 0:
            run(command, "pip install of the wheel")
        else:  # no constraints to honour (e.g. an index without those versions)
            run([str(python), *PIP, "install", "--find-links", str(WHEELHOUSE), str(wheel)],
                "pip install of the wheel, with the package index")
    return venv


class InstalledRadicale(RadicaleServer):
    """Stock ``radicale`` of the new virtual environment, with the config of
    :class:`RadicaleServer` (``[storage] type = radicale_plugin.storage``, ``[web] type =
    radicale_plugin.web``, and the test's SMTP and SMS stand-ins)."""

    def __init__(self, root: Path, venv: Path) -> None:
        super().__init__(root, USERS, **FAMILY)
        self.venv = venv
        # the console script, run from elsewhere: nothing of the work tree is importable
        self.cwd = root

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "radicale"), "--config", str(self.root / "config")]

    def environment(self) -> dict[str, str]:
        return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def venv(tmp_path_factory, work_tree_wheel) -> Path:
    work = tmp_path_factory.mktemp("install")
    WHEELHOUSE.mkdir(exist_ok=True)
    began = time.monotonic()
    installed = install(work, work_tree_wheel)  # built by conftest.py, once per run
    print("\nwheel installed in %.0f s" % (time.monotonic() - began))
    return installed


@pytest.fixture
def stock(venv, tmp_path) -> Iterator[InstalledRadicale]:
    server = InstalledRadicale(tmp_path, venv).start()
    try:
        yield server
    finally:
        server.stop()


def test_the_wheel_installs_with_its_commands_into_a_clean_virtualenv(venv, tmp_path):
    python = venv / "bin" / "python"
    found = run([str(python), "-c", "import radicale, radicale_plugin, bridge; "
                 "print(radicale_plugin.__file__); print(radicale.VERSION)"],
                "importing the installed package", cwd=tmp_path).stdout.split()
    assert Path(found[0]).is_relative_to(venv), "the work tree's copy was imported: %s" % found
    assert found[1].startswith("3.9.")
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    for command in ("radicale", "radicale-mecard", "mecard-bridge"):
        assert (venv / "bin" / command).exists(), command
    helped = run([str(venv / "bin" / "radicale-mecard"), "--help"], "radicale-mecard --help",
                 cwd=tmp_path)
    assert "--config" in helped.stdout


def test_stock_radicale_with_the_two_lines_carries_a_change_to_the_recipient(stock):
    config = (stock.root / "config").read_text()
    assert "type = radicale_plugin.storage" in config and "type = radicale_plugin.web" in config
    alice, bob = person(stock, "alice", "alice-me.vcf"), person(stock, "bob", "bob-me.vcf")
    alices_new_number_reaches_bob(alice, bob)
    # what needs the WSGI layer is refused, never taken for done: Apple's My Card
    r = requests.request("PROPPATCH", stock.url + "/alice/", auth=("alice", "alice-pw"),
                         data=apple_patch("/alice/contacts/ally.vcf").encode(),
                         headers={"Content-Type": "text/xml; charset=utf-8"})
    assert r.status_code >= 400 or "200 OK" not in r.text, r.text
    log = stock.log.read_text()
    assert "storage type is 'radicale_plugin.storage'" in log
    assert "web type is 'radicale_plugin.web'" in log
    assert stock.process is not None
    command = Path("/proc/%d/cmdline" % stock.process.pid).read_bytes().split(b"\0")
    assert command[0].decode() == str(stock.venv / "bin" / "python"), command
