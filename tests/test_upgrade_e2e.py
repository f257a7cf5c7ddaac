# SPDX-License-Identifier: GPL-3.0-or-later
"""Upgrading an installation from the previous release with plain ``pip install --upgrade``.

The previous release (0.1.0, schema 4) is built into a wheel from its own commit in this
repository (``git archive``), installed into a fresh virtual environment and run as the
README says (``python -m radicale_plugin.serve --config ...``) with the shipped defaults:
policy ``ask``, discoverability ``contacts``, nobody pre-authorised.  Real state goes in
through the API and the admin command; the server is stopped; the wheel of this work tree
is installed over it with ``pip install --upgrade``; the server starts again.  The schema
is migrated, everything is still there, and a new change of the owner's arrives.

The wheels come from the sources, the dependencies from the wheelhouse that
``tests/test_install_e2e.py`` keeps beside the test virtualenv (filled once from the
package index with the versions installed here), so the test runs offline after that.
The previous release's wheel is built once and kept beside the test virtualenv (one folder
per commit); the work tree's wheel is built once per run, for ``test_install_e2e`` too.
It needs the previous release's commit: a shallow clone fails with what to do.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from radicale_plugin.index import SharingIndex

from tests.conftest import USERS
from tests.server import Client, RadicaleServer, fixture, settled
from tests.test_fanout_e2e import person
from tests.test_install_e2e import PIP, ROOT, WHEELHOUSE, constraints, install, run

#: The previous release: version 0.1.0, schema 4.
PREVIOUS, PREVIOUS_VERSION = "2c81d19", "0.1.0"
#: Bob's card for Alice holds her e-mail but not her number: her number is offered to him.
ALLY = fixture("bob-contact-alice.vcf").replace("TEL;TYPE=CELL:(202) 555-0101\r\n", "")


def sources_of_previous(dest: Path) -> Path:
    """The previous release's files, from its commit in this clone (``git archive``)."""
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", PREVIOUS],
                              capture_output=True, timeout=120)
    except OSError as e:
        pytest.fail("git is needed to build the previous release's wheel: %s" % e)
    if done.returncode != 0:
        pytest.fail("cannot read commit %s (the previous release) from %s: %s. A shallow "
                    "clone lacks it: run 'git fetch --unshallow'"
                    % (PREVIOUS, ROOT, done.stderr.decode(errors="replace").strip()))
    dest.mkdir()
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(dest, filter="data")
    return dest


def wheel_of(source: Path, out: Path) -> Path:
    """``pip wheel --no-deps`` of ``source``, offline from the wheelhouse (setuptools and
    wheel are brought into it once when missing)."""
    command = [sys.executable, *PIP, "wheel", "--no-deps", "--wheel-dir",
               str(out), str(source), "--no-index", "--find-links", str(WHEELHOUSE)]
    if run(command, "building a wheel offline", check=False).returncode != 0:
        run([sys.executable, *PIP, "download", "--dest", str(WHEELHOUSE), "setuptools>=61",
             "wheel"], "downloading setuptools and wheel (needs the package index once)")
        run(command, "building the wheel of %s" % source.name)
    (wheel,) = out.glob("radicale_mecard-*.whl")
    return wheel


class InstalledServer(RadicaleServer):
    """``python -m radicale_plugin.serve`` of a virtual environment, run from elsewhere (the
    work tree is not importable), with the shipped defaults and the test's SMTP and SMS
    stand-ins."""

    def __init__(self, root: Path, venv: Path) -> None:
        root.mkdir()
        super().__init__(root, USERS)
        self.venv = venv
        self.cwd = root

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "python"), "-m", "radicale_plugin.serve", "--config",
                str(self.root / "config")]

    def environment(self) -> dict[str, str]:
        return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                "PYTHONUNBUFFERED": "1"}

    def admin(self, *args: str) -> str:
        """The installed admin command; its output."""
        return run([str(self.venv / "bin" / "python"), "-m", "radicale_plugin", "--config",
                    str(self.root / "config"), *args], "admin %s" % args[0],
                   cwd=self.root).stdout

    def pip_version(self) -> str:
        shown = run([str(self.venv / "bin" / "python"), *PIP, "show", "radicale-mecard"],
                    "pip show", cwd=self.root).stdout
        return next(line.split(":", 1)[1].strip() for line in shown.splitlines()
                    if line.startswith("Version:"))


#: The previous release's wheel, kept beside the test virtualenv between runs: its commit
#: never changes, so neither does its wheel (one folder per commit).
PREVIOUS_WHEELS = Path(sys.prefix) / "mecard-test-previous-release"


def wheel_of_previous(work: Path) -> Path:
    """The previous release's wheel: built from its commit on the first run, then kept."""
    kept = PREVIOUS_WHEELS / PREVIOUS
    found = sorted(kept.glob("radicale_mecard-*.whl")) if kept.is_dir() else []
    if found:
        return found[0]
    built = wheel_of(sources_of_previous(work / "previous"), work / "dist-previous")
    kept.mkdir(parents=True, exist_ok=True)
    # runs of other work trees share the virtualenv: a wheel appears whole or not at all
    partial = kept / (".%s.%d" % (built.name, os.getpid()))
    shutil.copy2(built, partial)
    os.replace(partial, kept / built.name)
    return kept / built.name


@pytest.fixture(scope="module")
def wheels(tmp_path_factory, work_tree_wheel) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("wheels")
    WHEELHOUSE.mkdir(exist_ok=True)
    # the work tree's wheel is built once per run (conftest.py), for test_install_e2e too
    return {"previous": wheel_of_previous(work), "current": work_tree_wheel}


def recipients(owner: Client) -> dict[str, str]:
    return {r["user"]: r["state"] for r in owner.api_ok("GET", "/targets")["recipients"]}


def test_pip_install_upgrade_from_the_previous_release_migrates_and_keeps_sharing(
        wheels, tmp_path):
    from radicale_plugin import __version__
    assert wheels["previous"].name.startswith("radicale_mecard-%s-" % PREVIOUS_VERSION)
    assert wheels["current"].name.startswith("radicale_mecard-%s-" % __version__)
    assert __version__ != PREVIOUS_VERSION, "a release that changes anything needs a new number"

    venv = install(tmp_path, wheels["previous"])
    server = InstalledServer(tmp_path / "server", venv)
    assert server.pip_version() == PREVIOUS_VERSION
    server.start()
    try:
        # real state, put in the way users and the admin do
        alice = person(server, "alice", "alice-me.vcf", verified=False)
        alice.verify("tel:+12025550101")  # by the code sent "by SMS"
        assert "verified for alice" in server.admin("verify-key", "alice", "alice@example.org")
        bob = person(server, "bob")
        assert bob.put("ally.vcf", ALLY).status_code == 201
        alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
        settled(alice)
        (offer,) = bob.api_ok("GET", "/offers")["offers"]
        bob.api_ok("POST", "/offers/alice/accept", {"seq": offer["seq"]})
        assert "+1 202 555 0101" in bob.card("ally.vcf")
        assert recipients(alice) == {"bob": "delivered"}
        assert server.admin("schema").startswith("schema version 4")
    finally:
        server.stop(sink=False)

    log_before = server.log.read_text()
    upgrade = [str(venv / "bin" / "python"), *PIP, "install", "--upgrade", "--no-index",
               "--find-links", str(WHEELHOUSE), str(wheels["current"])]
    if run(upgrade, "pip install --upgrade", cwd=tmp_path, check=False).returncode != 0:
        # a dependency new in this release is not in the wheelhouse yet: fetch it once
        run([sys.executable, *PIP, "download", "--dest", str(WHEELHOUSE), "--constraint",
             str(constraints(tmp_path)), str(wheels["current"])], "downloading new dependencies")
        for stale in WHEELHOUSE.glob("radicale_mecard-*.whl"):
            stale.unlink()  # the project itself always comes from the wheels just built
        run(upgrade, "pip install --upgrade", cwd=tmp_path)
    assert server.pip_version() == __version__
    server.start()
    try:
        started = server.log.read_text()[len(log_before):]
        assert "migrated from schema version 4 to %d" % SharingIndex.SCHEMA_VERSION in started
        assert "[ERROR]" not in started and "Traceback" not in started
        assert server.admin("schema").startswith("schema version {0} (this code writes {0})".format(
            SharingIndex.SCHEMA_VERSION))

        # everything is still there
        me = alice.api_ok("GET", "/me")
        assert me["me_card"] == "/alice/contacts/alice.vcf"
        assert {k["key"]: bool(k["verified"]) for k in alice.api_ok("GET", "/keys")["keys"]} == {
            "tel:+12025550101": True, "mailto:alice@example.org": True}
        assert alice.api_ok("GET", "/targets")["targets"] == ["user:bob"]
        assert recipients(alice) == {"bob": "delivered"}
        assert [(k["owner"], k["card"], k["made_by"]) for k in
                bob.api_ok("GET", "/links")["links"]] == [
            ("alice", "/bob/contacts/ally.vcf", "accepted")]
        assert bob.api_ok("GET", "/policies")["policies"] == {"alice": "auto"}

        # and a new change of Alice's arrives at Bob by itself
        assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code == 204
        settled(alice)
        copy = bob.card("ally.vcf")
        assert "+1 202 555 0199" in copy and "0101" not in copy and "NICKNAME:Sis" in copy
        assert bob.api_ok("GET", "/offers")["offers"] == []
        assert recipients(alice) == {"bob": "delivered"}
        assert server.admin("check").startswith("consistent: 1 me card(s), 1 link(s)")
    finally:
        server.stop()


def test_the_upgrade_test_builds_the_previous_release_from_its_own_commit(wheels):
    """The wheel really is the previous release: its code says so, and it knows schema 4."""
    with zipfile.ZipFile(wheels["previous"]) as wheel:
        init = wheel.read("radicale_plugin/__init__.py").decode()
        index = wheel.read("radicale_plugin/index.py").decode()
    assert '__version__ = "%s"' % PREVIOUS_VERSION in init
    assert "SCHEMA_VERSION = 4" in index
