# SPDX-License-Identifier: GPL-3.0-or-later
"""The web plugin: the sharing API under ``/.web/mecard/api/v1``, beside Radicale's web UI.

``[web] type = radicale_plugin.web``.  Radicale hands web plugins only GET
and POST below ``/.web``, after its own authentication.  This module is the
HTTP side: it refuses what no call should see (no login, a cross-site
request, a body that is not JSON or too big) and turns answers and errors
into JSON; :mod:`radicale_plugin.http.api` holds the calls.

A change must be ``Content-Type: application/json`` and, when the browser
sends an ``Origin``, come from this server (or an origin the admin allows):
an HTML form on another web site can send neither, so it cannot use the
browser's remembered password to change anything here.
"""

from __future__ import annotations

import json
import re
from http import client
from typing import Any
from urllib.parse import parse_qs, urlsplit

from radicale import config, httputils, types
from radicale import storage as radicale_storage
from radicale.log import logger
from radicale.web import internal

from radicale_plugin.http import pages
from radicale_plugin.http.api import Api
from radicale_plugin.http import unsubscribe
from radicale_plugin.errors import (BadMediaType, BadRequest, Forbidden, SharingError,
                                    TooLarge, TooMany)
from radicale_plugin.service import SharingService
from radicale_plugin.settings import Settings

PREFIX = "/.web/mecard/api/v1"


def _json(status: int, data: Any, headers: dict[str, str] | None = None
          ) -> types.WSGIResponse:
    body = json.dumps(data, indent=1, sort_keys=True).encode()
    return status, {"Content-Type": "application/json; charset=utf-8",
                    "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                    **(headers or {})}, body, None


def _netloc(url: str) -> str:
    try:
        return (urlsplit(url).netloc or "").lower()
    except ValueError:
        return ""


def _query(environ: types.WSGIEnviron) -> dict[str, str]:
    """The query string's parameters (the first value of each)."""
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def request_base(environ: types.WSGIEnviron, base_prefix: str) -> str:
    """The server's root URL as this request reached it (for links handed out, e.g. invites).

    A proxy's ``X-Forwarded-Proto`` is believed: the URL goes only to the one who asked,
    and only their own request names the host (no ``X-Forwarded-Host``: a header anybody
    may send is no name of this server).  ``mecard_public_url`` overrides it all
    (:meth:`radicale_plugin.recipient.invites.Invites.create`).
    """
    scheme = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[0].strip().lower()
    if scheme not in ("http", "https"):
        scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST", "")
    if not re.fullmatch(r"[A-Za-z0-9.:\[\]-]{1,300}", host):
        host = "%s:%s" % (environ.get("SERVER_NAME", "localhost"),
                          environ.get("SERVER_PORT", "80"))
    return "%s://%s%s" % (scheme, host, base_prefix.rstrip("/"))


def check_change(environ: types.WSGIEnviron, settings: Settings) -> None:
    """Refuse a state-changing request that a web page elsewhere could have sent."""
    media = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise BadMediaType("send changes as JSON with the header "
                           "'Content-Type: application/json'")
    origin = environ.get("HTTP_ORIGIN")
    fetch_site = environ.get("HTTP_SEC_FETCH_SITE", "").lower()
    if origin is not None:
        own = (environ.get("HTTP_HOST") or "").lower()
        allowed = {o.rstrip("/").lower() for o in settings.allowed_origins}
        if origin.rstrip("/").lower() not in allowed and (not own or _netloc(origin) != own):
            raise Forbidden("requests from other web sites (Origin %s) may not change "
                            "anything here" % origin[:100])
    elif fetch_site in ("cross-site", "same-site"):
        raise Forbidden("requests from other web sites may not change anything here")


def read_json(environ: types.WSGIEnviron, settings: Settings) -> dict:
    """The request body as a JSON object, within the size limit."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError as e:
        raise BadRequest("Content-Length is not a number") from e
    if length < 0:
        raise BadRequest("Content-Length is negative")
    if length > settings.max_body:
        raise TooLarge("the request body is %d bytes; at most %d are accepted"
                       % (length, settings.max_body))
    raw = environ["wsgi.input"].read(length) if length else b""
    if len(raw) < length:
        raise BadRequest("the request body is shorter than its Content-Length")
    try:
        data = json.loads(raw.decode("utf-8") or "{}")
    except UnicodeDecodeError as e:
        raise BadRequest("the request body is not UTF-8") from e
    except RecursionError as e:
        raise BadRequest("the request body is nested too deeply") from e
    except ValueError as e:
        raise BadRequest("the request body is not JSON: %s" % e) from e
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object, such as {\"fields\": [...]}")
    try:
        # "\ud800" is valid JSON but no text: nothing downstream could store or look it up
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadRequest("the request body holds a lone surrogate (%s); send real text"
                         % e.object[e.start:e.end].encode("unicode_escape").decode()) from e
    return data


class Web(internal.Web):
    """Radicale's web interface plus the sharing API."""

    def __init__(self, configuration: config.Configuration) -> None:
        super().__init__(configuration)
        store = radicale_storage.load(configuration)
        sharing = getattr(store, "sharing", None)
        if not isinstance(sharing, SharingService):
            raise RuntimeError("[web] type = radicale_plugin.web needs "
                               "[storage] type = radicale_plugin.storage")
        self._sharing = sharing
        self._api = Api(sharing)

    def get(self, environ: types.WSGIEnviron, base_prefix: str, path: str,
            user: str, user_groups: set, request_info: dict) -> types.WSGIResponse:
        if unsubscribe.is_route(path):  # no login: its signed token is its only authority
            return unsubscribe.answer(self._sharing, environ, "GET", path)
        if user:  # links in this user's notification e-mails may use this address
            self._sharing.notify.saw(user, request_base(environ, base_prefix))
        if not path.startswith(PREFIX + "/") and path != PREFIX:
            if path == pages.ROOT or path.startswith(pages.ROOT + "/"):
                # the pages sign in, refuse and answer on their own (http/pages/)
                return pages.answer(self._api, path, user, _query(environ), base_prefix)
            return super().get(environ, base_prefix, path, user, user_groups, request_info)
        # an invite's preview is for whoever holds its link (the invite page shows it)
        if not user and not re.fullmatch(re.escape(PREFIX) + r"/invite/[^/]+/?", path):
            return httputils.NOT_ALLOWED  # Radicale answers 401 and asks to log in
        return self._answer(environ, path, user,
                            lambda call: self._api.get(call, user, _query(environ)))

    def post(self, environ: types.WSGIEnviron, base_prefix: str, path: str,
             user: str, user_groups: set, request_info: dict) -> types.WSGIResponse:
        if unsubscribe.is_route(path):  # RFC 8058 one-click: no login, the token decides
            return unsubscribe.answer(self._sharing, environ, "POST", path)
        if user:
            self._sharing.notify.saw(user, request_base(environ, base_prefix))
        if not path.startswith(PREFIX + "/") and path != PREFIX:
            return super().post(environ, base_prefix, path, user, user_groups, request_info)
        if not user:
            return httputils.NOT_ALLOWED

        def call(name: str) -> Any:
            settings = self._sharing.settings
            check_change(environ, settings)
            return self._api.post(name, user, read_json(environ, settings),
                                  request_base(environ, base_prefix))
        return self._answer(environ, path, user, call)

    def _answer(self, environ: types.WSGIEnviron, path: str, user: str, run
                ) -> types.WSGIResponse:
        call = path[len(PREFIX):].rstrip("/") or "/"
        try:
            if environ.get("PATH_INFO", path).rstrip("/") != path.rstrip("/"):
                # Radicale resolved "." / ".." / "//" in the path: a call must say what it means
                raise BadRequest("the path %r is not in its plain form (no ., .., // or "
                                 "escaped slashes)" % environ.get("PATH_INFO", "")[:200])
            return _json(client.OK, run(call))
        except TooMany as e:
            logger.info("Sharing API %s for %r refused: %s", call, user, e)
            return _json(e.status, {"error": str(e)}, {"Retry-After": str(e.retry_after)})
        except SharingError as e:
            logger.info("Sharing API %s for %r refused: %s", call, user, e)
            return _json(e.status, {"error": str(e)})
