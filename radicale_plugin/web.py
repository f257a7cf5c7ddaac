# SPDX-License-Identifier: GPL-3.0-or-later
"""The sharing API: JSON over HTTP under ``/.web/mecard/api/v1``.

``[web] type = radicale_plugin.web``.  Radicale hands web plugins only GET
and POST below ``/.web``, after its own authentication; every call acts on
the authenticated user's own data.  Everything else under ``/.web`` is
Radicale's built-in web interface, which keeps working.

    GET  /me             my me card, shared fields, targets, policies
    POST /me-card        {"path": "/alice/contacts/alice.vcf"} (null: none)
    POST /shared-fields  {"fields": ["FN", "N", "TEL", "EMAIL"]}
    GET  /targets        my target rules, resolved, with delivery states
    POST /targets        {"targets": [...]} replaces; {"add": [...], "remove": [...]} edits
    GET  /policies       my policy towards each owner
    POST /policies       {"owner": "alice", "policy": "auto" | "block" | null}
    POST /resolve        {"keys": ["tel:+12025550101", "mailto:bob@example.org"]}
    POST /me-card/content  {"card": "BEGIN:VCARD...", "only": ["bob"]} (only: optional)
"""

from __future__ import annotations

import json
from http import client
from typing import Any, Callable

from radicale import config, httputils, types
from radicale import storage as radicale_storage
from radicale.log import logger
from radicale.web import internal

from radicale_plugin.errors import BadRequest, SharingError
from radicale_plugin.service import SharingService

PREFIX = "/.web/mecard/api/v1"


def _json(status: int, data: Any) -> types.WSGIResponse:
    body = json.dumps(data, indent=1, sort_keys=True).encode()
    return status, {"Content-Type": "application/json; charset=utf-8",
                    "Cache-Control": "no-store"}, body, None


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

    def get(self, environ: types.WSGIEnviron, base_prefix: str, path: str,
            user: str, user_groups: set, request_info: dict) -> types.WSGIResponse:
        if not path.startswith(PREFIX):
            return super().get(environ, base_prefix, path, user, user_groups, request_info)
        routes: dict[str, Callable[[str], Any]] = {
            "/me": self._sharing.settings_of,
            "/targets": self._sharing.targets_report,
            "/policies": self._sharing.policies_of,
        }
        return self._dispatch(routes, path, user)

    def post(self, environ: types.WSGIEnviron, base_prefix: str, path: str,
             user: str, user_groups: set, request_info: dict) -> types.WSGIResponse:
        if not path.startswith(PREFIX):
            return super().post(environ, base_prefix, path, user, user_groups, request_info)

        def body() -> dict:
            try:
                raw = httputils.read_raw_request_body(self.configuration, environ)
                data = json.loads(httputils.decode_request(self.configuration, environ, raw)
                                  or "{}")
            except ValueError as e:
                raise BadRequest("the request body is not JSON: %s" % e) from e
            if not isinstance(data, dict):
                raise BadRequest("the request body must be a JSON object")
            return data

        routes: dict[str, Callable[[str], Any]] = {
            "/me-card": lambda u: self._post_me_card(u, body()),
            "/shared-fields": lambda u: self._post_fields(u, body()),
            "/targets": lambda u: self._post_targets(u, body()),
            "/policies": lambda u: self._post_policy(u, body()),
            "/resolve": lambda u: self._sharing.resolve(body().get("keys")),  # type: ignore[arg-type]
            "/me-card/content": lambda u: self._post_content(u, body()),
        }
        return self._dispatch(routes, path, user)

    def _dispatch(self, routes: dict[str, Callable[[str], Any]], path: str,
                  user: str) -> types.WSGIResponse:
        if not user:
            return httputils.NOT_ALLOWED  # Radicale answers 401 and asks to log in
        handler = routes.get(path[len(PREFIX):].rstrip("/"))
        if handler is None:
            return _json(client.NOT_FOUND, {"error": "no API call %s; see README" % path})
        try:
            return _json(client.OK, handler(user))
        except SharingError as e:
            logger.info("Sharing API %s for %r refused: %s", path, user, e)
            return _json(e.status, {"error": str(e)})

    def _post_me_card(self, user: str, data: dict) -> Any:
        if "path" not in data:
            raise BadRequest("give the card as {\"path\": \"/%s/BOOK/CARD.vcf\"}" % user)
        path = data["path"]
        if path is not None and not isinstance(path, str):
            raise BadRequest("'path' must be a string or null")
        self._sharing.set_me_card(user, path)
        return self._sharing.settings_of(user)

    def _post_content(self, user: str, data: dict) -> Any:
        return self._sharing.update_me_card(user, data.get("card"),  # type: ignore[arg-type]
                                            data.get("only"))

    def _post_fields(self, user: str, data: dict) -> Any:
        self._sharing.set_shared_fields(user, data.get("fields"))  # type: ignore[arg-type]
        return self._sharing.settings_of(user)

    def _post_targets(self, user: str, data: dict) -> Any:
        if "targets" in data:
            rules = data["targets"]
        elif "add" in data or "remove" in data:
            add, remove = data.get("add", []), data.get("remove", [])
            if not isinstance(add, list) or not isinstance(remove, list):
                raise BadRequest("'add' and 'remove' must be lists of rules")
            current = self._sharing.index.owner(user).rules
            rules = [r for r in current if r not in remove] + [r for r in add if r not in current]
        else:
            raise BadRequest("give {\"targets\": [...]} or {\"add\": [...], \"remove\": [...]}")
        self._sharing.set_targets(user, rules)
        return self._sharing.settings_of(user)

    def _post_policy(self, user: str, data: dict) -> Any:
        owner = data.get("owner")
        if not isinstance(owner, str) or not owner:
            raise BadRequest("give {\"owner\": \"NAME\" or \"*\", \"policy\": \"auto\"|\"block\"|null}")
        if owner == user:
            raise BadRequest("a policy towards yourself has no effect")
        if "policy" not in data:
            raise BadRequest("give the policy: \"auto\", \"block\" or null to remove it")
        self._sharing.set_policy(user, owner, data["policy"])
        return self._sharing.policies_of(user)
