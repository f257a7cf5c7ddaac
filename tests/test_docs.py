# SPDX-License-Identifier: GPL-3.0-or-later
"""The docs cannot rot: every command of ``README.md`` and ``docs/*.md`` runs here.

Every line of a fenced ``sh`` block (lines joined where they continue), and every ``$ ``
line of a plain fenced transcript, is run by bash in the order the pages give them —
``README.md`` first, then the pages in the order of its "Where to read more" — against ONE
real server with the demo's settings (``config/radicale.conf``: users alice, bob and carol
with the demo passwords of ``config/users``, the group ``family`` pre-authorised, the SMS
"gateway" writing to a file, no SMTP server).  The documented host, port and paths are
rewritten to the test's (:meth:`Shell.rewrite`); nothing else of a command is changed.

A command must exit 0 and each of its ``curl`` calls answer 2xx, unless the page says
otherwise in the command's comment: ``# expect 409`` (every curl of the line answers that
status) or ``# expect exit 1``.  A command that cannot run in a test is listed in
:data:`SKIPPED` with the reason, never skipped silently; a command in neither list that
the walk does not reach fails the test.  Shell variables the pages set (``S=…``, ``A=…``,
``export MECARD_URL=…``) carry on to the following commands, as in one terminal.

The walk also checks that every relative link between the README and ``docs/`` resolves,
anchors included.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from tests.postgres import Cluster
from tests.server import RadicaleServer

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PORT = "http://127.0.0.1:5232"
#: docs/postgresql.md's database server and database (the test makes them on its own cluster).
PG_HOST, PG_DB = "db.example.org", "radicale_mecard"


def demo_users() -> dict[str, str]:
    """The demo's users and passwords, as ``config/users`` has them."""
    lines = (ROOT / "config" / "users").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line and not line.startswith("#"))


# --- the pages and their commands ----------------------------------------------------

@dataclass
class Command:
    page: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return "%s:%d" % (self.page, self.line)

    def expected(self) -> tuple[int, str]:
        """(exit code, HTTP status class or code) the page says this command gives."""
        m = re.search(r"#.*\bexpect\s+(?:exit\s+(\d+)|(\d{3}))", self.text)
        if m and m.group(1):
            return int(m.group(1)), "2xx"
        if m and m.group(2):
            return 0, m.group(2)
        return 0, "2xx"


def pages() -> list[Path]:
    """README first, then the docs pages in the order of the README's "Where to read more"."""
    text = README.read_text(encoding="utf-8")
    assert "\n## Where to read more\n" in text, "README.md lost its section 'Where to read more'"
    more = text.split("\n## Where to read more\n", 1)[1].split("\n## ", 1)[0]
    linked = re.findall(r"\]\((docs/[\w.-]+\.md)\)", more)
    ordered: list[Path] = []
    for name in linked:
        if ROOT / name not in ordered:
            ordered.append(ROOT / name)
    return [README] + ordered


def complete(text: str) -> bool:
    """Whether ``text`` is a whole shell command (no open quote, no continuation)."""
    if text.endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return False
    return True


def commands(page: Path) -> Iterator[Command]:
    """Every command of a page's fenced shell blocks and transcripts."""
    name = str(page.relative_to(ROOT))
    lines = page.read_text(encoding="utf-8").split("\n")
    fence: str | None = None
    pending: Command | None = None
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            pending = None
            continue
        if fence is None:
            continue
        if pending is not None:
            pending.text += "\n" + raw
        elif fence in ("sh", "bash", "shell"):
            if not line or line.startswith("#"):
                continue
            pending = Command(name, number, line)
        elif fence == "" and line.startswith("$ "):
            pending = Command(name, number, line[2:])
        else:
            continue
        if complete(pending.text):
            yield pending
            pending = None


def all_commands() -> list[Command]:
    return [c for page in pages() for c in commands(page)]


# --- what cannot run here, and what the test puts in place of the system --------------

#: Commands that cannot run in a test, each with the reason (matched at the start).
SKIPPED: dict[str, str] = {
    "make run": "starts the demo server on port 5232; the test starts its own server",
    "make test": "the whole suite, of which this test is a part",
    "python3 -m pip wheel --no-deps .": "writes dist/ into the work tree; "
                                        "tests/test_install_e2e.py builds the wheel",
    "/opt/radicale/venv/bin/python -m pip install": "tests/test_install_e2e.py installs the "
                                                    "wheel into a fresh virtual environment",
    "useradd": "creates a system user (root)",
    "python3 -m venv /opt/": "a virtual environment in /opt (root); "
                             "tests/test_install_e2e.py makes one",
    "/opt/radicale-mecard/venv/bin/pip install": "tests/test_install_e2e.py installs the wheel",
    "install -d": "creates folders in /var/lib and /etc (root)",
    "install -m 0640": "installs the config into /etc (root)",
    "cp config/radicale-mecard.service": "installs the unit into /etc/systemd (root)",
    "systemctl daemon-reload": "systemd (root); the unit is config/radicale-mecard.service",
    "pip install --upgrade radicale-mecard": "would replace the package of the test's own "
                                             "environment; tests/test_upgrade_e2e.py upgrades "
                                             "with pip",
    "mecard-bridge offers": "a transcript of Bob answering an offer; "
                            "tests/test_bridge_consent_e2e.py runs offers and accept",
    "mecard-bridge accept alice --once": "the same transcript (Bob accepting Alice's offer)",
    "mecard-bridge history --owner alice": "a transcript of Bob undoing a change; "
                                           "tests/test_undo_e2e.py runs history and undo",
    "mecard-bridge undo 14": "the same transcript (Bob undoing Alice's change)",
}

#: What the test does in place of a command that acts on the system's service.
SERVICE = {"systemctl stop radicale-mecard": "stop", "systemctl start radicale-mecard": "start"}


def skip_reason(command: Command) -> str | None:
    for start, reason in SKIPPED.items():
        if command.text.startswith(start):
            return reason
    return None


# --- the server and the shell ---------------------------------------------------------

class DemoServer(RadicaleServer):
    """The demo of ``config/radicale.conf`` on a free port: its users and group, the group
    ``family`` pre-authorised (the demo's one loosened default, as the README says), the
    SMS "gateway" writing to a file and no SMTP server."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, demo_users(), mecard_preauthorize="group:family",
                         mecard_default_region="US", mecard_smtp_host="")
        self.with_groups((ROOT / "config" / "groups").read_text())


def phone_export(work: Path) -> None:
    """The bridge's worked example reads Alice's phone's export (SMS Backup & Restore):
    4 calls and 3 messages with Bob's number in the last weeks, 7 in all, as it shows."""
    now = int(time.time() * 1000)
    day = 86_400_000
    calls = "".join('<call number="202-555-0102" duration="60" date="%d" type="%d" '
                    'presentation="1" contact_name="Bob" />\n' % (now - k * day, 1 + k % 2)
                    for k in range(1, 5))
    (work / "calls-2026.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8" standalone="yes" ?>\n'
        '<calls count="4">\n%s</calls>\n' % calls)
    sms = "".join('<sms protocol="0" address="+1 202-555-0102" date="%d" type="%d" body="hi" '
                  'read="1" status="-1" />\n' % (now - k * day, 1 + k % 2) for k in range(1, 4))
    (work / "sms-2026.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8" standalone="yes" ?>\n'
        '<smses count="3">\n%s</smses>\n' % sms)


class Shell:
    """Runs the pages' commands one at a time, keeping the variables they set."""

    def __init__(self, server: DemoServer, work: Path, postgres: Cluster | None = None) -> None:
        self.server = server
        self.postgres = postgres
        self.work = work
        self.state = work / "shell-state.sh"
        self.state.write_text("")
        for folder in ("backups", "root", "home"):
            (work / folder).mkdir()
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"],
                    "HOME": str(work / "home"), "XDG_CONFIG_HOME": str(work / "home"),
                    # the bridge asks for a password unless told: the pages' user is Alice
                    "MECARD_PASSWORD": demo_users()["alice"]}
        self.env.pop("PYTHONPATH", None)
        phone_export(work)

    def rewrite(self, text: str) -> str:
        """The documented host, port and paths → the test's."""
        server, work = self.server, self.work
        rewrites = [
            (PORT, server.url),
            ("data/sms-outbox.txt", str(server.sms_outbox)),
            ("config/radicale.conf", str(server.root / "config")),
            ("/etc/radicale/config", str(server.root / "config")),
            (".venv/bin/python", sys.executable),
            ("/var/backups/", str(work / "backups") + "/"),
            ("/var/lib/radicale", str(server.root)),
            ("/root/", str(work / "root") + "/"),
            ("calls-2026.xml", str(work / "calls-2026.xml")),
            # docs/postgresql.md's database server -> the test's throwaway PostgreSQL
            *(((f"host={PG_HOST} dbname={PG_DB} user=radicale", self.postgres.dsn(PG_DB)),
               (f"createdb -h {PG_HOST} -U radicale", "createdb -h 127.0.0.1 -p %d -U %s"
                % (self.postgres.port, self.postgres.user))) if self.postgres else ()),
            ("sms-2026.xml", str(work / "sms-2026.xml")),
        ]
        for old, new in rewrites:
            text = text.replace(old, new)
        # a restore names the export of its night: the one the nightly line wrote today
        text = re.sub(r"mecard-\d{4}-\d\d-\d\d\.json", "mecard-$(date +%F).json", text)
        # a time to postpone to is an example date: the test's clock moves on, so three days on
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3 * 86400))
        return re.sub(r'"until": "\d{4}-\d\d-\d\dT[\d:]+Z"', '"until": "%s"' % later, text)

    def run(self, command: Command, names: list[str]) -> tuple[int, list[str], str]:
        """Run one command: (exit code, curl statuses, output)."""
        statuses = self.work / "statuses"
        statuses.write_text("")
        body = self.work / "body"
        body.unlink(missing_ok=True)
        script = "\n".join([
            "source %s" % shlex.quote(str(self.state)),
            "curl() { command curl -sS -o %s -w '%%{http_code}\\n' \"$@\" >> %s; }"
            % (shlex.quote(str(body)), shlex.quote(str(statuses))),
            self.rewrite(command.text),
            "rc=$?",
            "declare -p %s 2>/dev/null > %s" % (" ".join(names), shlex.quote(str(self.state))),
            "exit $rc",
        ])
        done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=self.env, text=True,
                              capture_output=True, timeout=120)
        said = done.stdout + done.stderr
        if body.exists():
            said += "\n[last curl body] " + body.read_text(errors="replace")[:1500]
        return done.returncode, statuses.read_text().split(), said


def variables(found: list[Command]) -> list[str]:
    """The shell variables the pages set."""
    names = set()
    for command in found:
        names.update(re.findall(r"(?:^|[;&|\s])([A-Z][A-Z0-9_]*)=", command.text))
    return sorted(names)


# --- the tests ------------------------------------------------------------------------

#: What the walk needs that the demo world lacks, before the command at ``page:line``
#: starting with the given text; each says why.
def _alice_keeps_a_work_group(server: DemoServer) -> None:
    # the bridge's worked example leaves out Alice's group "Work": the demo has no such group,
    # and a selector naming a group she does not have is (rightly) an error
    r = requests.put(server.url + "/alice/contacts/work.vcf", auth=("alice", "alice-demo"),
                     data=b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:work-colleague\r\nFN:Colleague\r\n"
                          b"TEL:+1 202 555 0177\r\nCATEGORIES:Work\r\nEND:VCARD\r\n",
                     headers={"Content-Type": "text/vcard"})
    assert r.status_code in (201, 204), r.text


def _carol_has_signed_in(server: DemoServer) -> None:
    # the pages' walk never signs Carol in, and a user who never did has nothing to export
    r = requests.request("PROPFIND", server.url + "/carol/", auth=("carol", "carol-demo"),
                         headers={"Depth": "0"})
    assert r.status_code == 207, r.status_code


SETUP: dict[str, Callable[[DemoServer], None]] = {
    "mecard-bridge select frequent:5": _alice_keeps_a_work_group,
    "$A export-user carol": _carol_has_signed_in,
}


def test_every_command_in_the_docs_runs_against_a_real_server(tmp_path, postgres):
    found = all_commands()
    assert len(found) > 40, "the pages' commands were not found: %r" % found[:3]
    (tmp_path / "server").mkdir()
    server = DemoServer(tmp_path / "server")
    server.start()
    shell = Shell(server, tmp_path, postgres)
    names = variables(found)
    failures, ran, skipped = [], 0, []
    try:
        for command in found:
            reason = skip_reason(command)
            if reason:
                skipped.append("%s  %s  (%s)" % (command.where, command.text, reason))
                continue
            service = SERVICE.get(command.text.split("#")[0].strip())
            if service == "stop":
                server.stop(sink=False)
                ran += 1
                continue
            if service == "start":
                server.start()
                ran += 1
                continue
            for start, setup in SETUP.items():
                if command.text.startswith(start):
                    setup(server)
            code, statuses, said = shell.run(command, names)
            ran += 1
            exit_wanted, status_wanted = command.expected()
            bad_status = [s for s in statuses
                          if not (s.startswith("2") if status_wanted == "2xx"
                                  else s == status_wanted)]
            if code != exit_wanted or bad_status:
                failures.append("%s: %s\n  exit %d (wanted %d), HTTP %s (wanted %s)\n  %s" % (
                    command.where, command.text, code, exit_wanted, statuses, status_wanted,
                    said.strip().replace("\n", "\n  ")[-1500:]))
    finally:
        server.stop()
    print("\n%d command(s) run, %d skipped:\n  %s" % (ran, len(skipped), "\n  ".join(skipped)))
    assert not failures, "%d of %d command(s) in the docs failed:\n%s" % (
        len(failures), ran, "\n".join(failures))


def test_every_skipped_command_is_still_in_the_docs():
    texts = [c.text for c in all_commands()]
    for start in list(SKIPPED) + list(SETUP):
        assert any(t.startswith(start) for t in texts), \
            "SKIPPED/SETUP names %r, which no page has any more" % start


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    found, fence = set(), False
    for line in page.read_text(encoding="utf-8").split("\n"):
        if line.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^#+ (.*)$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            found.add(slug)
    return found


def test_every_link_between_the_readme_and_the_docs_resolves():
    everything = [README, *sorted(DOCS.glob("*.md"))]
    broken, links = [], 0
    for page in everything:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:: not ours to check
            links += 1
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append("%s: %s (no such file)" % (page.name, target))
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append("%s: %s (no such heading)" % (page.name, target))
    assert links > 20
    assert not broken, broken


def test_every_docs_page_is_linked_from_the_readme_and_the_readme_stays_short():
    linked = set(pages()[1:])
    assert set(DOCS.glob("*.md")) == linked, "pages not linked from the README: %s" % (
        set(DOCS.glob("*.md")) - linked)
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 400, "README.md has %d lines: move a section to docs/" % lines
    assert "CHANGELOG.md" in README.read_text(encoding="utf-8")


def test_every_file_the_docs_name_exists():
    """Module paths, tests, benchmarks and config files named in the pages (the code moves:
    ``radicale_plugin/fanout/worker.py``, not the flat names of before)."""
    named = re.compile(r"(?<![\w./~-])((?:radicale_plugin|bridge|tests|bench|config)/[\w./-]*\w)")
    missing, count = [], 0
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for number, line in enumerate(page.read_text(encoding="utf-8").split("\n"), 1):
            for path in named.findall(line):
                count += 1
                if not (ROOT / path).exists():
                    missing.append("%s:%d: %s" % (page.name, number, path))
    assert count > 20
    assert not missing, "files named in the docs that do not exist: %s" % missing


def test_every_screenshot_is_shown_with_words_and_stays_small():
    """The pages' screenshots (``docs/screenshots/``): each is shown by a page, every image a
    page shows has alt text saying what it shows (the link test above checks the file is
    there), and none grows past 60 KB (they are committed: shrunk PNGs, not raw captures)."""
    shots = sorted((DOCS / "screenshots").glob("*.png"))
    assert shots, "docs/screenshots/ holds no screenshot"
    shown: set[Path] = set()
    bare = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for alt, target in re.findall(r"!\[([^\]]*)\]\(([^)\s]+)\)", text):
            shown.add((page.parent / target).resolve())
            if len(alt.split()) < 3:
                bare.append("%s: %s" % (page.name, target))
    assert not bare, "images without alt text that says what they show: %s" % bare
    unshown = [s.name for s in shots if s.resolve() not in shown]
    assert not unshown, "screenshots no page shows: %s" % unshown
    big = ["%s (%d KB)" % (s.name, s.stat().st_size // 1024) for s in shots
           if s.stat().st_size > 60 * 1024]
    assert not big, "screenshots over 60 KB (shrink them as docs/development.md says): %s" % big
