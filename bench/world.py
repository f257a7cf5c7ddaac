# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark worlds: many users with full books, built straight in a storage folder.

Creating thousands of users through HTTP would take longer than the
measurements, so :func:`build` writes the folders Radicale would have
written (a principal per user, an address book ``contacts`` with its
``.Radicale.props``, ``N`` cards each) and the users file.  The sharing
state is then set up through the server's API and the admin command, and
every measurement goes through HTTP.

The owner ``alice`` shares with ``all`` her contacts: one per recipient,
carrying the recipient's number (verified for them).  Each recipient's book
has ``cards`` cards, one of them their own card for Alice with her current
number, so the first change finds its copies by that number and the next
ones by their links.  A user ``other`` measures what everybody else sees.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
API = "/.web/mecard/api/v1"


def number(i: int) -> str:
    """A distinct valid US number per user (area code 202, exchange 555 is fiction)."""
    return "+1 %03d 555 %04d" % (201 + i // 10000, i % 10000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def card(uid: str, name: str, *lines: str) -> str:
    return "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:%s\r\nFN:%s\r\nN:%s;;;;\r\n%sEND:VCARD\r\n" % (
        uid, name, name, "".join(line + "\r\n" for line in lines))


def me_card(phone: str) -> str:
    return card("alice-me", "Alice Archer", "TEL;TYPE=CELL:" + phone,
                "EMAIL;TYPE=INTERNET:alice@example.org", "NOTE:private")


@dataclass
class World:
    """A storage folder with ``recipients`` users, and a server started on it."""

    root: Path
    recipients: int
    cards: int = 50
    options: dict[str, str] = field(default_factory=dict)
    stock: bool = False          # plain Radicale: no sharing plugin
    process: subprocess.Popen | None = None
    port: int = 0
    log_start: int = 0
    restarts: int = 0            # starts repeated because the start-up check failed
    code: Path = ROOT            # the tree whose plugin the server runs (another: side by side)
    probe: bool = False          # log the storage hooks' waits for the index's writer
    memory_probe: bool = False   # log the fan-out's peak RSS per phase (bench/memory_probe.py)
    launcher: list[str] | None = None  # another script to start Radicale with (a probe's)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    @property
    def folder(self) -> Path:
        return self.root / "collections"

    @property
    def database(self) -> Path:
        return self.folder / ".mecard.sqlite"

    def users(self) -> list[str]:
        return ["r%05d" % i for i in range(self.recipients)]

    def config(self) -> Path:
        path = self.root / ("stock.conf" if self.stock else "config")
        # the daily cap on new offers would hold back all but 100 offers of a big world, and
        # the benchmarks change the owner's number far more than 20 times a day
        options = {"mecard_preauthorize": "*", "mecard_default_discoverability": "everyone",
                   "mecard_offers_per_day": "1000000000", "mecard_new_keys_per_day": "1000000",
                   **{k: v for k, v in self.options.items() if not k.startswith("_")}}
        sharing = "" if self.stock else (
            "type = radicale_plugin.storage\n" + "".join("%s = %s\n" % kv
                                                         for kv in options.items()))
        web = "" if self.stock else "[web]\ntype = radicale_plugin.web\n"
        path.write_text(
            "[server]\nhosts = 127.0.0.1:%d\nmax_connections = 64\n"
            "[auth]\ntype = htpasswd\nhtpasswd_filename = %s\nhtpasswd_encryption = plain\n"
            "htpasswd_cache = True\ndelay = 0\n"
            "[rights]\ntype = owner_only\n"
            "[storage]\nfilesystem_folder = %s\n%s%s"
            "[logging]\nlevel = %s\n" % (self.port, self.root / "users", self.folder, sharing,
                                         web, self.options.get("_level", "info")))
        return path

    @property
    def log(self) -> Path:
        return self.root / ("stock.log" if self.stock else "radicale.log")

    def start(self) -> "World":
        self.port = free_port()
        self.log_start = self.log.stat().st_size if self.log.exists() else 0
        log = open(self.log, "ab")
        command = ([str(ROOT / "bench" / "writer_probe.py")] if self.probe and not self.stock
                   else ["-m", "radicale"])
        if self.memory_probe and not self.stock:
            command = [str(ROOT / "bench" / "memory_probe.py")]
        if self.launcher and not self.stock:
            command = list(self.launcher)
        self.process = subprocess.Popen(
            [sys.executable, *command, "--config", str(self.config())],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.code,
            env={**os.environ, "PYTHONPATH": str(self.code), "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("radicale exited; see %s" % log.name)
            try:
                requests.get(self.url + "/.web/", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("radicale did not start")

    def start_check_failed(self) -> bool:
        """Whether the fan-out's start-up check failed since the last start.

        Radicale's own storage checks make and remove ``tmp*`` folders in the
        collection root while the server starts; the check sometimes lists one
        and then fails on it (the card-key index is then not built).
        """
        with open(self.log, "rb") as f:
            f.seek(self.log_start)
            return b"Fan-out: checking me cards at start failed" in f.read()

    def ready(self, timeout: float = 3600) -> "World":
        """Wait until the server built its card-key index (the first start reads every book);
        a start whose start-up check failed is restarted."""
        import sqlite3
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.start_check_failed():
                print("note: the fan-out's start-up check failed (see %s): restarting"
                      % self.log, file=sys.stderr)
                self.restarts += 1
                self.stop()
                self.start()
            try:
                con = sqlite3.connect("file:%s?mode=ro" % self.database, uri=True, timeout=30)
                try:
                    found = con.execute("SELECT value FROM meta WHERE name = 'card_index'"
                                        ).fetchone()
                finally:
                    con.close()
                if found and found[0] == "built":
                    return self
            except sqlite3.Error:
                pass
            time.sleep(0.1)
        raise RuntimeError("the card-key index was not built")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)

    def session(self, user: str) -> requests.Session:
        http = requests.Session()
        http.auth = (user, user + "-pw")
        http.headers["Content-Type"] = "application/json"
        return http

    def api(self, user: str, method: str, call: str, data: object = None) -> object:
        r = self.session(user).request(method, self.url + API + call,
                                       data=json.dumps(data) if data is not None else None)
        r.raise_for_status()
        return r.json()

    def put_me_card(self, phone: str) -> float:
        """The owner's PUT of her me card; returns its latency in seconds."""
        http = self.session("alice")
        start = time.perf_counter()
        r = http.put(self.url + "/alice/contacts/alice.vcf", data=me_card(phone).encode(),
                     headers={"Content-Type": "text/vcard"})
        elapsed = time.perf_counter() - start
        assert r.status_code in (201, 204), r.text
        return elapsed


def build(root: Path, recipients: int, cards: int = 50) -> World:
    """Write the users, books and cards of a world (no sharing state yet)."""
    shutil.rmtree(root, ignore_errors=True)
    world = World(root, recipients, cards)
    top = world.folder / "collection-root"
    users = ["alice", "other"] + world.users()
    (root / "users").parent.mkdir(parents=True, exist_ok=True)
    (root / "users").write_text("".join("%s:%s-pw\n" % (u, u) for u in users))
    book_props = json.dumps({"tag": "VADDRESSBOOK", "D:displayname": "Contacts"})
    for user in users:
        folder = top / user / "contacts"
        folder.mkdir(parents=True)
        (top / user / ".Radicale.props").write_text("{}")
        (folder / ".Radicale.props").write_text(book_props)
    alice = top / "alice" / "contacts"
    (alice / "alice.vcf").write_bytes(me_card(number(999999)).encode())
    for i, user in enumerate(world.users()):
        (alice / ("c-%s.vcf" % user)).write_bytes(
            card("c-" + user, "Friend %s" % user, "TEL;TYPE=CELL:" + number(i)).encode())
        folder = top / user / "contacts"
        (folder / "alice.vcf").write_bytes(card(
            user + "-alice", "Ally", "TEL;TYPE=CELL:" + number(999999),
            "NICKNAME:Sis", "NOTE:met at the gym").encode())
        for n in range(cards - 1):
            (folder / ("c%02d.vcf" % n)).write_bytes(card(
                "%s-c%02d" % (user, n), "Contact %d of %s" % (n, user),
                "TEL;TYPE=CELL:+1 303 555 %04d" % n, "EMAIL:c%d@example.net" % n).encode())
    (top / "other" / "contacts" / "x.vcf").write_bytes(card("x", "X", "TEL:+1 404 555 0000"
                                                            ).encode())
    return world


def verify_recipients(world: World) -> None:
    """Verify each recipient's number straight in the index (as the admin command would)."""
    from radicale_plugin.index.sqlite import SQLiteIndex
    from radicale_plugin.vcard.matching import phone_key
    index = SQLiteIndex(str(world.database))
    with index.transaction():
        for i, user in enumerate(world.users()):
            key = phone_key(number(i))
            assert key is not None
            index.keys.verify(user, key)
    index.close()


def share(world: World) -> None:
    """Alice designates her me card, verifies her number, and shares with ``all``."""
    world.api("alice", "POST", "/me-card", {"path": "/alice/contacts/alice.vcf"})
    done = subprocess.run(
        [sys.executable, "-m", "radicale_plugin", "--config", str(world.config()),
         "verify-key", "alice", number(999999)], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    world.api("alice", "POST", "/targets", {"targets": ["all"]})


def delivered(world: World, seq: int, states: tuple[str, ...] = ("delivered",)) -> int:
    """How many of Alice's recipients hold (or were offered) change ``seq``, from the index."""
    import sqlite3
    con = sqlite3.connect("file:%s?mode=ro" % world.database, uri=True, timeout=30)
    try:
        if states == ("offered",):
            return con.execute("SELECT COUNT(*) FROM offers WHERE owner = 'alice' AND seq >= ?",
                               (seq,)).fetchone()[0]
        return con.execute(
            "SELECT COUNT(*) FROM deliveries WHERE owner = 'alice' AND delivered_seq >= ? "
            "AND state IN (%s)" % ",".join("?" * len(states)), (seq, *states)).fetchone()[0]
    finally:
        con.close()


def seq(world: World) -> int:
    import sqlite3
    con = sqlite3.connect("file:%s?mode=ro" % world.database, uri=True, timeout=30)
    try:
        return con.execute("SELECT seq FROM owners WHERE user = 'alice'").fetchone()[0]
    finally:
        con.close()
