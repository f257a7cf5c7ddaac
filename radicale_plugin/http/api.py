# SPDX-License-Identifier: GPL-3.0-or-later
"""The sharing API's calls: what each one reads, checks and does.

JSON over HTTP under ``/.web/mecard/api/v1`` (docs/api.md describes each call
with curl).  Every call acts on the authenticated user's own data.  Changes
are ``POST`` (Radicale hands web plugins only GET and POST) and must come as
``application/json`` from this server's own pages or a client that sends no
``Origin``: a form on another web site cannot change anything (see
:mod:`radicale_plugin.web`).  Bad input is a 4xx with
``{"error": "what to fix"}`` and changes nothing.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from radicale import pathutils

from radicale_plugin import store
from radicale_plugin.owner import key_notices
from radicale_plugin.errors import BadRequest, Conflict, NotFound
from radicale_plugin.index import DISCOVERABILITY, POLICIES
from radicale_plugin.delivery.reports import dropped, held_back, recipient_row
from radicale_plugin.http import api_cards, api_qr, api_send
from radicale_plugin.http.api_history import HistoryApi
from radicale_plugin.http.api_notify import NotifyApi
from radicale_plugin.http.api_audiences import AudiencesApi
from radicale_plugin.owner.field_sets import listing as audience_listing
from radicale_plugin.service import SharingService

Handler = Callable[[str, dict], Any]

#: Most policies one recipient may keep (one per named owner, and ``*``).
MAX_POLICIES = 10000
Query = dict[str, str]


def _field(data: dict, name: str, kinds: tuple[type, ...], what: str,
           required: bool = True, default: Any = None, nullable: bool = False) -> Any:
    if name not in data or (nullable and data[name] is None):
        if required:
            raise BadRequest("give %r: %s" % (name, what))
        return default
    value = data[name]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise BadRequest("%r must be %s" % (name, what))
    return value


def _flag(data: dict, name: str) -> bool:
    return bool(_field(data, name, (bool,), "true or false", required=False, default=False))


def _names(data: dict, name: str, what: str, required: bool = True) -> list[str] | None:
    value = _field(data, name, (list,), what, required, nullable=not required)
    if value is None:
        return None
    if not all(isinstance(v, str) for v in value):
        raise BadRequest("%r must be %s" % (name, what))
    return value


def _user_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 256 \
            or not pathutils.is_safe_path_component(value) or value.startswith("."):
        raise BadRequest("%s must be a user name" % what)
    return value


class Api:
    """Routes calls to the sharing service and turns answers into JSON-able data."""

    def __init__(self, service: SharingService) -> None:
        self._s = service
        self.get_routes: dict[str, Callable[[str], Any]] = {
            "/me": self.me,
            "/targets": self.targets_report,
            "/policies": self.policies,
            "/privacy": self.privacy,
            "/keys": lambda u: {"keys": self._s.verification.keys_of(u)},
            "/links": self.links,
            "/push/subscriptions": lambda u: self._s.push.subscriptions(u),
            "/invites": lambda u: self._s.invites.of_owner(u),
        }
        # the owner's pages: my cards and groups (http/api_cards.py)
        self.get_routes.update(api_cards.routes(service))
        #: GET calls that read the query string.
        self.query_routes: dict[str, Callable[[str, Query], Any]] = {
            "/push/book": lambda u, q: self._s.push.book_info(u, q.get("path")),
        }
        # ?owner=NAME: that owner's offer; &card=PATH|new: what accepting into it would do
        self.query_routes["/offers"] = lambda u, q: {"offers": self._s.offers.open_offers(
            u, q.get("owner"), q.get("card"))}
        self._history = HistoryApi(service)  # history and undo (api_history.py)
        self.query_routes["/history"] = self._history.get
        self._audiences = AudiencesApi(service)  # field sets per rule (api_audiences.py)
        self.query_routes["/preview"] = self._audiences.preview
        self.post_routes: dict[str, Handler] = {
            "/me-card": self.post_me_card,
            "/me-card/content": self.post_content,
            "/shared-fields": self.post_fields,
            "/targets": self.post_targets,
            "/withdraw": self.post_withdraw,
            "/policies": self.post_policy,
            "/privacy": self.post_privacy,
            "/region": self.post_region,
            "/resolve": lambda u, d: self._s.discovery.resolve(
                u, _names(d, "keys", "a list of keys such as [\"tel:+12025550101\"]") or []),
            "/keys/verify": lambda u, d: self._s.verification.start(
                u, _field(d, "key", (str,), "the number or e-mail to verify")),
            "/keys/confirm": lambda u, d: self._s.verification.confirm(
                u, _field(d, "key", (str,), "the number or e-mail being verified"),
                _field(d, "code", (str,), "the code you received, as a string")),
            "/push/subscriptions": lambda u, d: self._s.push.subscribe(u, d),
        }
        self.post_routes["/audiences"] = lambda u, d: self._audiences.post(u, d, self.me)
        # send now, to all or chosen people (http/api_send.py)
        self.post_routes["/send"] = lambda u, d: api_send.send(service, u, d)
        self._notify = NotifyApi(service)  # notification e-mails (api_notify.py)
        self.get_routes["/notifications"] = self._notify.get
        self.post_routes["/notifications"] = self._notify.post
        self._offer_actions: dict[str, Callable[[str, str, dict], Any]] = {
            "accept": lambda u, o, d: self._s.offers.accept(
                u, o, _field(d, "card", (str,), "the path of one of your cards, or \"new\"",
                             required=False, nullable=True),
                _flag(d, "once"),
                _field(d, "seq", (int,), "the number of the offer you looked at",
                       required=False, nullable=True)),
            "postpone": lambda u, o, d: self._s.offers.postpone(
                u, o, _field(d, "until", (str,), "a time such as \"2026-12-01T09:00:00Z\"")),
            "refuse": lambda u, o, d: self._s.offers.refuse(u, o),
            "block": lambda u, o, d: self._s.offers.block(u, o),
        }

    def get(self, call: str, user: str, query: Query | None = None) -> Any:
        with_query = self.query_routes.get(call)
        if with_query is not None:
            return with_query(user, query or {})
        handler = self.get_routes.get(call)
        match = re.fullmatch(r"/invite/([^/]+)", call)
        if handler is None and match:
            return self._s.invites.preview(user, match.group(1), (query or {}).get("card"))
        if handler is None:
            raise NotFound("no API call GET %s; see docs/api.md" % call)
        return handler(user)

    def post(self, call: str, user: str, data: dict, base: str = "") -> Any:
        """A change; ``base`` is the server's root URL as the request reached it (links)."""
        handler = self.post_routes.get(call)
        if handler is not None:
            return handler(user, data)
        answer = self._history.post(call, user, data)  # POST /history/ID/undo
        if answer is not None:
            return answer
        if call == "/invites":
            return self._s.invites.create(
                user, base,
                _field(data, "expires_in", (int, float), "a number of seconds, e.g. 604800 "
                       "for a week", required=False, nullable=True),
                _field(data, "max_uses", (int,), "how many people may accept it, e.g. 1",
                       required=False, nullable=True),
                _field(data, "label", (str,), "a note for you, e.g. \"for Bob\"",
                       required=False, nullable=True))
        if call == "/invites/qr":  # the QR code of a new invite's link (http/api_qr.py)
            return api_qr.invite_qr(self._s, user, data, base)
        match = re.fullmatch(r"/invites/([^/]+)/revoke", call)
        if match:
            return self._s.invites.revoke(user, match.group(1))
        match = re.fullmatch(r"/invite/([^/]+)/accept", call)
        if match:
            return self._s.invites.accept(user, match.group(1), _field(
                data, "card", (str,), "the path of one of your cards, or \"new\"",
                required=False, nullable=True))
        match = re.fullmatch(r"/offers/([^/]+)/([a-z]+)", call)
        if match and match.group(2) in self._offer_actions:
            owner = _user_name(match.group(1), "the owner in /offers/OWNER/%s" % match.group(2))
            return self._offer_actions[match.group(2)](user, owner, data)
        match = re.fullmatch(r"/push/subscriptions/([A-Za-z0-9_-]{1,100})/delete", call)
        if match:
            return self._s.push.unsubscribe(user, match.group(1))
        raise NotFound("no API call POST %s; see docs/api.md" % call)

    # -- reads --------------------------------------------------------------------
    def me(self, user: str) -> dict[str, Any]:
        s = self._s
        owner = s.index.owners.get(user)
        unverified = key_notices.unverified(s.index.keys.of_user(user))
        return {
            "user": user,
            "me_card": "/%s/%s" % (owner.book, owner.href) if owner.href else None,
            "shared_fields": owner.shared_fields,
            "withdrawn_fields": owner.withdrawn_fields,
            # field sets per target rule (a rule not listed gets the shared fields)
            "audiences": audience_listing(owner),
            "seq": owner.seq,
            "targets": owner.rules,
            "policies": s.index.consent.policies(user),
            "default_policy": s.settings.default_policy,
            # the region numbers without a country code are read in (the bridge uses it)
            "default_region": s.settings.region,
            # the region this user's national numbers are read in, and why (regions.py)
            "region": s.ctx.region(owner).to_json(),
            "discoverability": s.ctx.discoverability(owner),
            # numbers and e-mails of the me card not verified (key_notices), then the rest
            "unverified": unverified,
            "notices": [u["notice"] for u in unverified] + owner.notices,
            "limits": {"resolve_max_keys": s.settings.resolve_max_keys,
                       "max_body": s.settings.max_body},
        }

    def policies(self, user: str) -> dict[str, Any]:
        return {"policies": self._s.index.consent.policies(user),
                "default_policy": self._s.settings.default_policy}

    def privacy(self, user: str) -> dict[str, Any]:
        owner = self._s.index.owners.get(user)
        return {"discoverability": self._s.ctx.discoverability(owner)}

    def targets_report(self, user: str) -> dict[str, Any]:
        """Resolved targets with each one's state (never the recipient's card)."""
        s = self._s
        targets, skipped = s.targets.select(user)  # from the index: no lock
        # one moment (the worker may be between two steps), read-only: a read transaction
        # on a reader connection, which neither waits for nor holds up any writer
        with s.index.snapshot():
            owner = s.index.owners.get(user)
            deliveries = {d.recipient: d for d in s.index.outbox.deliveries(user)}
            offers = {o.recipient: o for o in s.index.consent.offers_from(user)}
            queued = s.index.outbox.queued(user)
        recipients = [
            recipient_row(r, r in targets, targets.get(r, []), deliveries.get(r), offers.get(r),
                          owner.seq)
            for r in sorted(set(targets) | set(deliveries))]
        # a recipient no longer a target is in "skipped" too, always with the reason
        gone = dropped(deliveries.values(), targets, owner.rules, skipped)
        why = {g["user"]: g["reason"] for g in gone}
        for row in recipients:
            if row["user"] in why and not row["reason"]:
                row["reason"] = why[row["user"]]
        return {"targets": owner.rules, "recipients": recipients, "skipped": skipped + gone,
                "seq": owner.seq, "queued": queued,
                # offers waiting for the owner's daily limit: {"count", "next", "per_day"}
                "held_back": held_back(deliveries.values(), s.settings.offers_per_day)}

    def links(self, user: str) -> dict[str, Any]:
        """Which cards of mine hold whose copy."""
        return {"links": [{"owner": link.owner, "card": "/%s/%s" % (link.book, link.href),
                           "made_by": link.made_by, "made": link.made}
                          for link in self._s.index.links.under(user)
                          if link.recipient == user]}

    # -- changes ------------------------------------------------------------------
    def post_me_card(self, user: str, data: dict) -> Any:
        if "path" not in data:
            raise BadRequest("give the card as {\"path\": \"/%s/BOOK/CARD.vcf\"}" % user)
        path = data["path"]
        if path is not None and not isinstance(path, str):
            raise BadRequest("'path' must be a string or null")
        if path is not None and not path.strip():  # not Apple's empty <D:href> (its advice)
            raise BadRequest("'path' is empty: give the card as {\"path\": "
                             "\"/%s/BOOK/CARD.vcf\"}, or null for none" % user)
        self._s.owners.designate(user, path, _flag(data, "withdraw"))
        return self.me(user)

    def post_content(self, user: str, data: dict) -> Any:
        card = _field(data, "card", (str,), "the vCard text of your me card")
        only = _names(data, "only", "a list of user names", required=False)
        if only:
            # a name that is no user and a user the owner may not see are left out alike
            # (the same answer, the same report); the names count like keys in /resolve
            self._s.discovery.charge(user, len(set(only)))
            only = sorted(self._s.targets.seen_by_name(user, set(only)))
        return self._s.owners.update_me_card(user, card, only)

    def post_fields(self, user: str, data: dict) -> Any:
        fields = _names(data, "fields", "a list of field names such as [\"FN\", \"TEL\"]")
        self._s.owners.set_shared_fields(user, fields or [], _flag(data, "withdraw"))
        return self.me(user)

    def post_targets(self, user: str, data: dict) -> Any:
        if "targets" in data:
            rules = _names(data, "targets", "a list of rules such as [\"all\"]") or []
        elif "add" in data or "remove" in data:
            add = _names(data, "add", "a list of rules", required=False) or []
            remove = _names(data, "remove", "a list of rules", required=False) or []
            current = self._s.index.owners.get(user).rules
            rules = [r for r in current if r not in remove] + [r for r in add if r not in current]
        else:
            raise BadRequest("give {\"targets\": [...]} or {\"add\": [...], \"remove\": [...]}")
        self._s.targets.set_targets(user, rules, _flag(data, "withdraw"))
        return self.me(user)

    def post_withdraw(self, user: str, data: dict) -> Any:
        value = data.get("recipients")
        if value == "all":
            names = None
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            names = value
        else:
            raise BadRequest("give {\"recipients\": [\"bob\", ...]} or {\"recipients\": \"all\"}")
        return {"withdrawn": self._s.owners.withdraw(user, names)}

    def post_policy(self, user: str, data: dict) -> Any:
        owner = data.get("owner")
        if owner != "*":
            owner = _user_name(owner, "'owner' (or \"*\" for your default)")
        if owner == user:
            raise BadRequest("a policy towards yourself has no effect")
        if "policy" not in data:
            raise BadRequest("give the policy: %s, or null to remove it" % ", ".join(POLICIES))
        policy = data["policy"]
        if policy is not None and policy not in POLICIES:
            raise BadRequest("unknown policy %r: use %s, or null" % (
                policy if isinstance(policy, str) else type(policy).__name__,
                ", ".join(POLICIES)))
        if owner != "*":
            # kept whether or not such a user exists or may be seen: the answer tells
            # nothing about them (a policy for a future user applies once they exist);
            # the names asked about count like /resolve, and their number is bounded
            self._s.discovery.charge(user, 1)
            current = self._s.index.consent.policies(user)
            if owner not in current and len(current) >= MAX_POLICIES:
                raise Conflict("you have %d policies, the most there may be: remove some "
                               "(\"policy\": null) first" % len(current))
        self._s.policies.set(user, owner, policy)
        return self.policies(user)

    def post_region(self, user: str, data: dict) -> Any:
        if "region" not in data:
            raise BadRequest("give {\"region\": \"DE\"} (a two-letter country code), or "
                             "{\"region\": null} to use your me card's or the server's")
        self._s.owners.set_region(user, data["region"])
        # the books are read again now (no lock held meanwhile): the answer is in effect
        self._s.card_keys.reindex(user, self._s.deliverer.files)
        return self.me(user)

    def post_privacy(self, user: str, data: dict) -> Any:
        value = data.get("discoverability")
        if value not in DISCOVERABILITY:
            raise BadRequest("give {\"discoverability\": \"everyone\" | \"contacts\" | "
                             "\"nobody\"}")
        self._s.index.owners.set_discoverability(user, value)
        return self.privacy(user)

