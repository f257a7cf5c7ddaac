# SPDX-License-Identifier: GPL-3.0-or-later
"""A real Radicale process with the plugin, and a small CardDAV client for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

import requests

FIXTURES = Path(__file__).parent / "fixtures"
DAV = "{DAV:}"
CARD = "{urn:ietf:params:xml:ns:carddav}"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode("utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RadicaleServer:
    """Starts ``radicale`` with the plugin on 127.0.0.1 and a free port."""

    def __init__(self, root: Path, users: dict[str, str], **storage: str) -> None:
        self.root = root
        self.users = users
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = root / "radicale.log"
        (root / "users").write_text("".join("%s:%s\n" % kv for kv in users.items()))
        options = {"mecard_poll_interval": "2", "predefined_collections":
                   '{"contacts": {"tag": "VADDRESSBOOK"}}', **storage}
        extra = "".join("%s = %s\n" % kv for kv in options.items())
        (root / "config").write_text(f"""
[server]
hosts = 127.0.0.1:{self.port}
[auth]
type = htpasswd
htpasswd_filename = {root / 'users'}
htpasswd_encryption = plain
delay = 0
[rights]
type = owner_only
[storage]
type = radicale_plugin.storage
filesystem_folder = {root / 'collections'}
{extra}
[web]
type = radicale_plugin.web
[logging]
level = debug
""")
        self.process: subprocess.Popen | None = None

    def start(self) -> "RadicaleServer":
        self._logfile = open(self.log, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--config", str(self.root / "config")],
            stdout=self._logfile, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("radicale exited:\n" + self.log.read_text()[-3000:])
            try:
                requests.get(self.url + "/.web/", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("radicale did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)
        self._logfile.close()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def client(self, user: str) -> "Client":
        return Client(self.url, user, self.users[user])


class Client:
    """CardDAV and sharing API calls as one user."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url
        self.user = user
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


def settled(owner: Client, timeout: float = 60) -> dict:
    """Wait until the owner's queued changes are planned and delivered; return the report."""
    def done() -> dict | None:
        report = owner.api_ok("GET", "/targets")
        busy = report["queued"] or any(r["state"] == "pending" for r in report["recipients"])
        return None if busy else report
    return wait_until(done, timeout, "the fan-out of %s's card" % owner.user)


def wait_until(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.05)
