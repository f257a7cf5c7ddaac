# SPDX-License-Identifier: GPL-3.0-or-later
"""Talking to the server: CardDAV for the owner's contacts, the sharing API for settings.

The URL the user gives is the server's root, which behind a reverse proxy
carries the proxy's path prefix (``https://host/dav``).  Paths the bridge
builds (``/alice/``, the API's ``/.web/...``, the me card's path from
``GET /me``) are *below* that root; hrefs the server sends back in CardDAV
answers already carry the prefix (Radicale adds ``X-Script-Name``), so they
are turned back into paths below the root before they are requested again
(:meth:`Server.below_root`) — else the prefix would be added twice.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlsplit

import requests

from bridge.errors import BridgeError, ServerUnusable, TryLater, UserError

API = "/.web/mecard/api/v1"
_DAV, _CARD = "{DAV:}", "{urn:ietf:params:xml:ns:carddav}"
_QUERY = ("<?xml version='1.0'?><C:addressbook-query xmlns:D='DAV:' "
          "xmlns:C='urn:ietf:params:xml:ns:carddav'><D:prop><D:getetag/><C:address-data/>"
          "</D:prop></C:addressbook-query>")
_ROOT_HINT = ("check the path of --url: it is the server's root, e.g. https://host/ or, "
              "behind a reverse proxy, https://host/dav/ (not an address book)")


def check_url(url: str) -> str:
    """The server's root URL without a trailing slash; a :class:`BridgeError` if unusable."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        # "host:5232" parses as scheme "host": say what is missing, not what urlsplit saw
        bare = text.split("://", 1)[-1]
        raise ServerUnusable("the server URL %r has no http:// or https://: give it as "
                             "https://%s (or http:// for a server on this computer)" % (url, bare))
    if parts.query or parts.fragment:
        raise ServerUnusable("the server URL %r has a ?query or #fragment: give only "
                             "scheme://host[:port][/path]" % url)
    return text.rstrip("/")


class Server:
    """One user's session with the server at ``url`` (its root, with a proxy's prefix)."""

    def __init__(self, url: str, user: str, password: str, timeout: float = 60,
                 ca_bundle: str | None = None) -> None:
        self.url = check_url(url)
        #: the reverse proxy's path prefix ("/dav"), "" when the server is at the host's root
        self.prefix = urlsplit(self.url).path.rstrip("/")
        self.user = user
        self.timeout = timeout
        self.http = requests.Session()
        self.http.auth = (user, password)
        if ca_bundle:
            # a private CA (a home server's own): trust its certificates, and only them
            if not os.path.isfile(ca_bundle):
                raise ServerUnusable("--ca-bundle %s: no such file (give the PEM file of the CA "
                                     "that signed the server's certificate)" % ca_bundle)
            self.http.verify = ca_bundle
        self.ca_bundle = ca_bundle
        self._me: dict[str, Any] | None = None
        self._me_card: tuple[str | None, str | None] | None = None

    def below_root(self, href: str) -> str:
        """A path or URL the server sent (carrying the proxy's prefix) as a path below
        :attr:`url`, the form :meth:`request` takes."""
        path = urlsplit(href).path or "/"
        if self.prefix and (path == self.prefix or path.startswith(self.prefix + "/")):
            path = path[len(self.prefix):] or "/"
        return path

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """``method`` on ``path`` below the root; every failure is one :class:`BridgeError`."""
        target = self.url + "/" + path.lstrip("/")
        if self.ca_bundle:
            # per request: requests lets REQUESTS_CA_BUNDLE override the session's verify
            kwargs.setdefault("verify", self.ca_bundle)
        try:
            response = self.http.request(method, target, timeout=self.timeout, **kwargs)
        except requests.exceptions.SSLError as e:
            raise self._tls_problem(e) from e
        except requests.ConnectionError as e:
            raise ServerUnusable("cannot reach the server at %s: check --url and that the server "
                                 "is running" % self.url) from e
        except requests.Timeout as e:
            raise TryLater("the server at %s did not answer within %d s: try again later"
                           % (self.url, self.timeout)) from e
        except requests.RequestException as e:
            raise ServerUnusable("cannot use the server URL %s (%s): give it as "
                                 "https://host[:port][/path]" % (self.url, e)) from e
        if response.status_code == 401:
            raise ServerUnusable("the server refused the password of %r: check it "
                                 "(MECARD_PASSWORD, ~/.netrc or the prompt)" % self.user)
        if response.status_code >= 400:
            raise self._refusal(response, path)
        return response

    def _tls_problem(self, error: requests.exceptions.SSLError) -> BridgeError:
        """What a failed TLS connection means: a certificate this computer cannot check
        (a private CA: ``--ca-bundle``), or no TLS at all (a plain-HTTP server)."""
        text = str(error)
        if "CERTIFICATE_VERIFY_FAILED" in text:
            reason = re.search(r"certificate verify failed: ([^(')\]]+)", text)
            why = " (%s)" % reason.group(1).strip() if reason else ""
            if self.ca_bundle:
                return ServerUnusable("the TLS certificate of %s is not signed by the CA in "
                                      "--ca-bundle %s%s: give the CA that signed it, or use the "
                                      "URL its certificate names"
                                      % (self.url, self.ca_bundle, why))
            return ServerUnusable("the TLS certificate of %s could not be checked%s: if the "
                                  "server's certificate comes from a private CA, give that CA "
                                  "with --ca-bundle FILE.pem (or ca_bundle= in the config); else "
                                  "fix the server's certificate, or use the URL it names"
                                  % (self.url, why))
        plain = "http" + self.url[len("https"):] if self.url.startswith("https") else None
        if plain and self._answers_http(plain):
            return ServerUnusable("the server at %s speaks plain HTTP, not HTTPS: give the URL as "
                                  "%s (on a network, put it behind TLS first)" % (self.url, plain))
        return ServerUnusable("the TLS connection to %s failed (%s): check that the server "
                              "speaks HTTPS on that port" % (self.url, text[:160]))

    def _answers_http(self, url: str) -> bool:
        """Whether something answers plain HTTP at ``url`` (a short look, no password)."""
        try:
            requests.get(url + "/", timeout=min(5.0, self.timeout), allow_redirects=False)
        except requests.RequestException:
            return False
        return True

    def _is_radicale_without_plugin(self) -> bool:
        """Whether ``url`` is the root of a Radicale whose sharing API is missing: its
        built-in web interface is there (so the path is right)."""
        try:
            page = self.http.get(self.url + "/.web/", timeout=min(10.0, self.timeout),
                                 verify=self.ca_bundle or True)
        except requests.RequestException:
            return False
        return page.status_code == 200 and "Radicale" in page.text

    def _refusal(self, response: requests.Response, path: str) -> BridgeError:
        status = "%d %s" % (response.status_code, response.reason)
        try:
            message = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            message = None
        if message is None:
            # not the sharing API speaking: the URL's path leads somewhere else (another
            # user's space, another web application behind the same proxy)
            if response.status_code in (404, 405) and path.startswith(API) \
                    and self._is_radicale_without_plugin():
                return ServerUnusable("the server at %s is a Radicale without the sharing plugin "
                                      "(radicale-mecard): its contacts work, sharing does not. "
                                      "Ask its admin to install the plugin (docs/operating.md, 'Installing into an existing Radicale')"
                                      % self.url)
            if response.status_code in (403, 404, 405):
                return ServerUnusable("the server at %s answered %s for %s: %s"
                                      % (self.url, status, path, _ROOT_HINT))
            if response.status_code >= 500:
                return TryLater("the server at %s failed (%s) for %s: try again later, or "
                                "tell its admin" % (self.url, status, path))
            message = status
        wait = response.headers.get("Retry-After", "")
        if response.status_code == 429:
            return TryLater("the server said: %s; wait %s, then try again" % (
                message, "%s seconds" % wait if wait.isdigit() else "a while"))
        if response.status_code == 503:
            return TryLater("the server said: %s; try again later" % message)
        return UserError("the server said: %s" % message)

    # -- sharing API -----------------------------------------------------
    def _json(self, response: requests.Response, call: str) -> Any:
        try:
            return response.json()
        except ValueError as e:
            raise ServerUnusable("%s%s%s did not answer with the sharing API's JSON (%s): is "
                                 "this a radicale-mecard server? %s"
                                 % (self.url, API, call, response.headers.get("Content-Type")
                                    or "no content type", _ROOT_HINT)) from e

    def api_get(self, call: str) -> Any:
        """``GET`` a call of the sharing API; its JSON answer."""
        return self._json(self.request("GET", API + call), call)

    def api_post(self, call: str, data: dict[str, Any]) -> Any:
        """A change: always a JSON object with Content-Type application/json (else 415)."""
        answer = self._json(self.request("POST", API + call, json=data), call)
        self._me = self._me_card = None  # a change may change what GET /me says
        return answer

    def me(self) -> dict[str, Any]:
        """``GET /me``, asked once per command (until a change is posted)."""
        if self._me is None:
            self._me = self.api_get("/me")
        return self._me

    def me_card(self) -> tuple[str | None, str | None]:
        """(path below the root, vCard text) of the owner's me card, or (None, None)."""
        if self._me_card is None:
            path = self.me().get("me_card")
            self._me_card = (path, self.get(path)) if path else (None, None)
        return self._me_card

    def resolve(self, keys: list[str]) -> dict[str, list[str]]:
        """Key → [user], asked in calls of at most the server's bound (GET /me "limits")."""
        if not keys:
            return {}
        limits = self.me().get("limits") or {}
        size = max(1, int(limits.get("resolve_max_keys") or len(keys)))
        found: dict[str, list[str]] = {}
        for start in range(0, len(keys), size):
            found.update(self.api_post("/resolve", {"keys": keys[start:start + size]}))
        return found

    # -- CardDAV ---------------------------------------------------------
    def _multistatus(self, response: requests.Response, path: str) -> ET.Element:
        try:
            return ET.fromstring(response.content)
        except ET.ParseError as e:
            raise ServerUnusable("%s answered %s with something that is not WebDAV XML: %s"
                                 % (self.url, path, _ROOT_HINT)) from e

    def address_books(self) -> list[str]:
        """Paths (below the root) of the user's address books."""
        body = ("<?xml version='1.0'?><D:propfind xmlns:D='DAV:'><D:prop><D:resourcetype/>"
                "</D:prop></D:propfind>")
        home = "/%s/" % self.user
        response = self.request("PROPFIND", home, data=body, headers={"Depth": "1"})
        books = []
        for item in self._multistatus(response, home).iter(_DAV + "response"):
            href = item.findtext(_DAV + "href") or ""
            if item.find(".//%sresourcetype/%saddressbook" % (_DAV, _CARD)) is not None:
                books.append(self.below_root(href))
        return sorted(books)

    def cards(self, book: str) -> dict[str, str]:
        """Path (below the root) → vCard text of every card in one address book."""
        response = self.request("REPORT", book, data=_QUERY, headers={
            "Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
        out = {}
        for item in self._multistatus(response, book).iter(_DAV + "response"):
            text = item.findtext(".//%saddress-data" % _CARD)
            if text:
                out[self.below_root(item.findtext(_DAV + "href") or "")] = text
        return out

    def get(self, path: str) -> str:
        """The text of one resource, ``path`` below the root (e.g. the me card's path)."""
        return self.request("GET", path).text
