# SPDX-License-Identifier: GPL-3.0-or-later
"""A real Radicale process with the plugin, and a small CardDAV client for tests."""

from __future__ import annotations

import email
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

import requests
from aiosmtpd.controller import Controller

from tests import zygote

FIXTURES = Path(__file__).parent / "fixtures"
DAV = "{DAV:}"
CARD = "{urn:ietf:params:xml:ns:carddav}"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode("utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailSink:
    """A real SMTP server on 127.0.0.1 that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's handler API
        message = email.message_from_bytes(envelope.content)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def start(self) -> "MailSink":
        for attempt in range(3):
            try:
                self._controller.start()
                return self
            except OSError as error:
                # another test (another xdist worker) took the free port before our bind
                if error.errno != errno.EADDRINUSE or attempt == 2:
                    raise
                self.port = free_port()
                self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        raise AssertionError("not reached")

    def stop(self) -> None:
        self._controller.stop()

    def to(self, address: str) -> list[str]:
        """Bodies of the messages sent to ``address``."""
        with self._lock:
            return [m.get_payload(decode=True).decode() for m in self.messages
                    if address.lower() in (m["To"] or "").lower()]


def last_code(texts: list[str]) -> str:
    """The code in the last verification message (not in a notification sent meanwhile)."""
    codes = [t for t in texts if "code" in t.lower() and re.search(r"\b\d{6,}\b", t)
             and "unsubscribe" not in t.lower()]
    found = re.findall(r"\b(\d{6,})\b", codes[-1]) if codes else []
    assert found, "no code was sent: %r" % texts[-1:]
    return found[0]


class RadicaleServer:
    """Starts ``radicale`` with the plugin on 127.0.0.1 and a free port.

    Each server has its own SMTP sink (``mail``) and SMS outbox file
    (``sms_to``), so that keys are verified the way users verify them.
    """

    def __init__(self, root: Path, users: dict[str, str], postgres: str = "",
                 log_level: str = "info", **storage: str) -> None:
        """``postgres``: a connection string: the server's storage is then Radicale's
        storage on PostgreSQL with the sharing hooks, in that database (else the files).
        ``log_level``: Radicale's; ``info`` logs every request and what the sharing code
        did (``debug`` adds a few lines per request, a tenth of a server's CPU)."""
        self.root = root
        self.postgres = postgres
        self.users = users
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = root / "radicale.log"
        self.mail = MailSink()
        self.sms_outbox = root / "sms-outbox.txt"
        (root / "users").write_text("".join("%s:%s\n" % kv for kv in users.items()))
        # the demo config's stand-in SMS gateway: it appends NUMBER<TAB>TEXT to a file; -S:
        # it needs no site-packages, whose start-up hooks would triple each text's CPU time
        sms = "%s -S %s %s" % (sys.executable,
                            Path(__file__).parent.parent / "config" / "sms_to_file.py",
                            self.sms_outbox)
        # rewrite spacing 0: tests change a card twice in a row and want both at once
        options = {"mecard_poll_interval": "2", "mecard_rewrite_spacing": "0",
                   "predefined_collections":
                   '{"contacts": {"tag": "VADDRESSBOOK"}}',
                   "mecard_smtp_host": "127.0.0.1", "mecard_smtp_port": str(self.mail.port),
                   "mecard_sms_command": sms, **storage}
        extra = "".join("%s = %s\n" % kv for kv in options.items())
        (root / "config").write_text(f"""
[server]
hosts = 127.0.0.1:{self.port}
# Radicale waits this long before each 5xx answer (against hammering); the tests that make
# a book unreadable on purpose would wait for nothing
delay_on_error = 0
[auth]
type = htpasswd
htpasswd_filename = {root / 'users'}
htpasswd_encryption = plain
delay = 0
[rights]
type = owner_only
[storage]
type = {"radicale_plugin.storage.postgres" if postgres else "radicale_plugin.storage"}
filesystem_folder = {root / 'collections'}
{"postgresql_dsn = " + postgres if postgres else ""}
{extra}
[web]
type = radicale_plugin.web
[logging]
level = {log_level}
""")
        self.process: subprocess.Popen | zygote.Forked | None = None
        #: the project's run command (Radicale's server with the WSGI layer); "radicale"
        #: runs stock Radicale's launcher, as a server installed without the layer does
        self.launcher = "radicale_plugin.serve"
        self.cwd: Path | None = None  # where the server runs (None: here)

    def with_groups(self, groups: str) -> "RadicaleServer":
        """Radicale's user groups (``[group] type = htgroup``) from ``groups``, the text of
        an htgroup file (``family: alice bob carol``), as the shipped example has them."""
        path = self.root / "groups"
        path.write_text(groups)
        config = self.root / "config"
        config.write_text(config.read_text() + "[group]\ntype = htgroup\n"
                          "htgroup_filename = %s\n" % path)
        return self

    def sms_to(self, number: str) -> list[str]:
        """Texts the fake SMS gateway sent to ``number`` (E.164)."""
        if not self.sms_outbox.exists():
            return []
        lines = self.sms_outbox.read_text(encoding="utf-8").splitlines()
        return [ln.split("\t", 1)[1] for ln in lines if ln.split("\t", 1)[0] == number]

    def start(self) -> "RadicaleServer":
        if not getattr(self, "_mail_started", False):
            chosen = self.mail.port
            self.mail.start()
            self._mail_started = True
            if self.mail.port != chosen:  # the sink moved to another port: tell the server
                config, line = self.root / "config", "mecard_smtp_port = %d\n"
                config.write_text(config.read_text().replace(line % chosen,
                                                             line % self.mail.port))
        self._logfile = open(self.log, "ab")
        for attempt in range(3):
            logged = self.log.stat().st_size
            self.process = self._spawn()
            if self._came_up():
                self._started = True
                return self
            said = self.log.read_bytes()[logged:].decode(errors="replace")
            # clients made since the first start know its port: only a first start may move
            first = not getattr(self, "_started", False)
            if "Address already in use" not in said or attempt == 2 or not first:
                raise RuntimeError("radicale exited:\n" + said[-3000:])
            # another test took the free port between our choice and the bind: choose again
            self._move_to(free_port())
        raise AssertionError("not reached")

    def _spawn(self) -> "subprocess.Popen | zygote.Forked":
        """The server process: forked from this worker's zygote when it runs the default
        command exactly (Radicale already imported: ~0.4 CPU-s less a start), else Popen."""
        command, env = self.command(), self.environment()
        if (type(self).command is RadicaleServer.command and self.cwd is None
                and self.launcher == "radicale_plugin.serve"
                and type(self).environment is RadicaleServer.environment):
            forked = zygote.spawn(command, env, os.getcwd(), self.log)
            if forked is not None:
                return forked
        return subprocess.Popen(command, stdout=self._logfile, stderr=subprocess.STDOUT,
                                cwd=self.cwd, env=env)

    def _move_to(self, port: int) -> None:
        config = self.root / "config"
        config.write_text(config.read_text().replace(
            "hosts = 127.0.0.1:%d" % self.port, "hosts = 127.0.0.1:%d" % port))
        self.port, self.url = port, "http://127.0.0.1:%d" % port

    def _came_up(self) -> bool:
        """Wait until the server answers (True) or exits (False)."""
        assert self.process is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                # a bare connect costs next to nothing (a refused request through requests
                # some CPU): look often, as ~350 starts of a run each wait here
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                requests.get(self.url + "/.web/", timeout=1)
                return True
            except (OSError, requests.ConnectionError):
                time.sleep(0.01)
        raise RuntimeError("radicale did not start:\n" + self.log.read_text()[-3000:])

    def command(self) -> list[str]:
        """The command line that starts the server."""
        return [sys.executable, "-m", self.launcher, "--config", str(self.root / "config")]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def stop(self, sig: int = signal.SIGTERM, sink: bool = True) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)
        self._logfile.close()
        if sink and getattr(self, "_mail_started", False):
            self.mail.stop()
            self._mail_started = False

    def kill(self) -> None:
        """kill -9, keeping the SMTP sink for a restart of the same server."""
        self.stop(signal.SIGKILL, sink=False)

    def client(self, user: str) -> "Client":
        return Client(self.url, user, self.users[user], self)


class Client:
    """CardDAV and sharing API calls as one user."""

    def __init__(self, url: str, user: str, password: str,
                 server: "RadicaleServer | None" = None) -> None:
        self.url = url
        self.user = user
        self.server = server
        self.http = requests.Session()
        self.http.auth = (user, password)

    # -- CardDAV --------------------------------------------------------
    def book(self, name: str = "contacts") -> str:
        return "/%s/%s/" % (self.user, name)

    def mkbook(self, name: str = "contacts") -> None:
        body = ("<?xml version='1.0'?><D:mkcol xmlns:D='DAV:' "
                "xmlns:C='urn:ietf:params:xml:ns:carddav'><D:set><D:prop><D:resourcetype>"
                "<D:collection/><C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>")
        r = self.http.request("MKCOL", self.url + self.book(name), data=body)
        assert r.status_code == 201, r.text

    def put(self, href: str, text: str, book: str = "contacts", **headers: str
            ) -> requests.Response:
        return self.http.put(self.url + self.book(book) + href, data=text.encode(),
                             headers={"Content-Type": "text/vcard", **headers})

    def get(self, href: str, book: str = "contacts") -> requests.Response:
        return self.http.get(self.url + self.book(book) + href)

    def card(self, href: str, book: str = "contacts") -> str:
        r = self.get(href, book)
        assert r.status_code == 200, (r.status_code, href)
        return r.text

    def hrefs(self, book: str = "contacts") -> list[str]:
        r = self.http.request("PROPFIND", self.url + self.book(book), headers={"Depth": "1"},
                              data="<D:propfind xmlns:D='DAV:'><D:prop><D:getetag/>"
                                   "</D:prop></D:propfind>")
        tree = ET.fromstring(r.content)
        return sorted(h.text.rsplit("/", 1)[1] for h in tree.iter(DAV + "href")
                      if h.text and not h.text.endswith("/"))

    def sync(self, token: str = "", book: str = "contacts") -> tuple[str, list[str]]:
        """RFC 6578 sync-collection: (new token, changed hrefs)."""
        body = ("<?xml version='1.0'?><D:sync-collection xmlns:D='DAV:'>"
                "<D:sync-token>%s</D:sync-token><D:sync-level>1</D:sync-level>"
                "<D:prop><D:getetag/></D:prop></D:sync-collection>" % token)
        r = self.http.request("REPORT", self.url + self.book(book), data=body,
                              headers={"Content-Type": "application/xml"})
        assert r.status_code == 207, r.text
        tree = ET.fromstring(r.content)
        new_token = tree.findtext(DAV + "sync-token") or ""
        changed = sorted(h.text.rsplit("/", 1)[1] for h in tree.iter(DAV + "href") if h.text)
        return new_token, changed

    def ctag(self, book: str = "contacts") -> str:
        r = self.http.request(
            "PROPFIND", self.url + self.book(book), headers={"Depth": "0"},
            data="<D:propfind xmlns:D='DAV:' xmlns:CS='http://calendarserver.org/ns/'>"
                 "<D:prop><CS:getctag/></D:prop></D:propfind>")
        return ET.fromstring(r.content).findtext(".//{http://calendarserver.org/ns/}getctag")

    def login(self) -> None:
        """The first request creates the user's home and predefined book."""
        r = self.http.request("PROPFIND", self.url + "/%s/" % self.user,
                              headers={"Depth": "0"})
        assert r.status_code == 207, r.status_code

    # -- sharing API ---------------------------------------------------
    def api(self, method: str, call: str, data: Any = None) -> requests.Response:
        return self.http.request(method, self.url + "/.web/mecard/api/v1" + call, json=data)

    def api_ok(self, method: str, call: str, data: Any = None) -> Any:
        r = self.api(method, call, data)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def copy_of(self, owner: str) -> str:
        """The href of the card in my book that holds ``owner``'s copy."""
        links = {link["owner"]: link["card"] for link in self.api_ok("GET", "/links")["links"]}
        assert owner in links, "no copy of %s's card in %s's books: %r" % (owner, self.user, links)
        return links[owner].rsplit("/", 1)[1]

    def verify(self, key: str) -> None:
        """Verify a number or e-mail of my me card with the code the server sends to it."""
        assert self.server is not None
        answer = self.api_ok("POST", "/keys/verify", {"key": key})
        normal = answer["key"]
        if normal.startswith("mailto:"):
            code = last_code(self.server.mail.to(normal[7:]))
        else:
            code = last_code(self.server.sms_to(normal[4:]))
        self.api_ok("POST", "/keys/confirm", {"key": normal, "code": code})

    def verify_me_card(self) -> list[str]:
        """Verify every number and e-mail on my me card; return their keys."""
        keys = [k["key"] for k in self.api_ok("GET", "/keys")["keys"] if k["on_me_card"]]
        for key in keys:
            self.verify(key)
        return keys


def settled(owner: Client, timeout: float = 60) -> dict:
    """Wait until the owner's queued changes are planned and delivered; return the report."""
    def done() -> dict | None:
        report = owner.api_ok("GET", "/targets")
        busy = report["queued"] or any(r["state"] == "pending" for r in report["recipients"])
        return None if busy else report
    return wait_until(done, timeout, "the fan-out of %s's card" % owner.user)


#: Seconds between two looks of :func:`wait_until`: the first ones quick (most waits end
#: within a fan-out round), then further apart, since each look is a request the server
#: and the test both spend CPU on and the long waits are for timers of seconds.
FIRST_LOOK, LAST_LOOK = 0.02, 0.2


def wait_until(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    pause = FIRST_LOOK
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(pause)
        pause = min(LAST_LOOK, pause * 1.25)


def alices_new_number_reaches_bob(alice: Client, bob: Client) -> None:
    """Bob keeps a card for Alice; Alice shares with him and changes her number: his card
    gets it with his own lines kept, and his incremental sync lists exactly that card."""
    assert bob.put("ally.vcf", fixture("bob-contact-alice.vcf")).status_code == 201
    alice.api_ok("POST", "/targets", {"targets": ["user:bob"]})
    settled(alice)
    token, _ = bob.sync()

    assert alice.put("alice.vcf", fixture("alice-me-new-number.vcf")).status_code in (201, 204)
    report = settled(alice)
    assert [(r["user"], r["state"]) for r in report["recipients"]] == [("bob", "delivered")]
    copy = bob.card("ally.vcf")
    assert "+1 202 555 0199" in copy and "NICKNAME:Sis" in copy
    assert bob.sync(token)[1] == ["ally.vcf"]
