# SPDX-License-Identifier: GPL-3.0-or-later
"""Talking to the server: CardDAV for the owner's contacts, the sharing API for settings."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urljoin

import requests

from bridge.errors import BridgeError

API = "/.web/mecard/api/v1"
_DAV, _CARD = "{DAV:}", "{urn:ietf:params:xml:ns:carddav}"
_QUERY = ("<?xml version='1.0'?><C:addressbook-query xmlns:D='DAV:' "
          "xmlns:C='urn:ietf:params:xml:ns:carddav'><D:prop><D:getetag/><C:address-data/>"
          "</D:prop></C:addressbook-query>")


class Server:
    """One user's session with the server."""

    def __init__(self, url: str, user: str, password: str, timeout: float = 60) -> None:
        self.url = url.rstrip("/")
        self.user = user
        self.timeout = timeout
        self.http = requests.Session()
        self.http.auth = (user, password)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.http.request(method, urljoin(self.url + "/", path.lstrip("/")),
                                         timeout=self.timeout, **kwargs)
        except requests.ConnectionError as e:
            raise BridgeError("cannot reach the server at %s: check --url and that the server "
                              "is running" % self.url) from e
        except requests.Timeout as e:
            raise BridgeError("the server at %s did not answer within %d s" %
                              (self.url, self.timeout)) from e
        if response.status_code == 401:
            raise BridgeError("the server refused the password of %r: check it "
                              "(MECARD_PASSWORD, ~/.netrc or the prompt)" % self.user)
        if response.status_code >= 400:
            try:
                message = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = "%d %s" % (response.status_code, response.reason)
            wait = response.headers.get("Retry-After", "")
            if response.status_code == 429 and wait.isdigit():
                raise BridgeError("the server said: %s; wait %s seconds, then try again"
                                  % (message, wait))
            raise BridgeError("the server said: %s" % message)
        return response

    # -- sharing API -----------------------------------------------------
    def api_get(self, call: str) -> Any:
        return self.request("GET", API + call).json()

    def api_post(self, call: str, data: dict[str, Any]) -> Any:
        """A change: always a JSON object with Content-Type application/json (else 415)."""
        return self.request("POST", API + call, json=data).json()

    def resolve(self, keys: list[str]) -> dict[str, list[str]]:
        """Key → [user], asked in calls of at most the server's bound (GET /me "limits")."""
        if not keys:
            return {}
        limits = self.api_get("/me").get("limits") or {}
        size = max(1, int(limits.get("resolve_max_keys") or len(keys)))
        found: dict[str, list[str]] = {}
        for start in range(0, len(keys), size):
            found.update(self.api_post("/resolve", {"keys": keys[start:start + size]}))
        return found

    # -- CardDAV ---------------------------------------------------------
    def address_books(self) -> list[str]:
        """Paths of the user's address books."""
        body = ("<?xml version='1.0'?><D:propfind xmlns:D='DAV:'><D:prop><D:resourcetype/>"
                "</D:prop></D:propfind>")
        response = self.request("PROPFIND", "/%s/" % self.user, data=body,
                                headers={"Depth": "1"})
        books = []
        for item in ET.fromstring(response.content).iter(_DAV + "response"):
            href = item.findtext(_DAV + "href") or ""
            if item.find(".//%sresourcetype/%saddressbook" % (_DAV, _CARD)) is not None:
                books.append(href)
        return sorted(books)

    def cards(self, book: str) -> dict[str, str]:
        """href → vCard text of every card in one address book."""
        response = self.request("REPORT", book, data=_QUERY, headers={
            "Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
        out = {}
        for item in ET.fromstring(response.content).iter(_DAV + "response"):
            text = item.findtext(".//%saddress-data" % _CARD)
            if text:
                out[item.findtext(_DAV + "href") or ""] = text
        return out

    def get(self, path: str) -> str:
        return self.request("GET", path).text
