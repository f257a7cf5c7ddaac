# SPDX-License-Identifier: GPL-3.0-or-later
"""WebDAV-Push subscriptions: who may register what, for how long, and each book's topic.

This is the side of WebDAV-Push that answers requests (the API calls under
``/push``); :mod:`radicale_plugin.push.sender` sends the messages and
:mod:`radicale_plugin.push.dav` speaks the draft's XML.

* Only a book's owner registers subscriptions to it, lists them and removes
  them: any book of another user is refused (403, whether it exists or not),
  and somebody else's subscription is answered like one that does not exist.
* A push resource must pass the admin's allow-list and resolve to public
  addresses (:mod:`radicale_plugin.push.hosts`), and a user may have only so
  many subscriptions, a book only so many: registering cannot turn the
  server into a tool for sending requests elsewhere.
* Every subscription expires (``mecard_push_max_expiry`` at most); an
  expired one is ignored, and purged by the sender.
* A book's topic is random (it tells the push service nothing about the
  book), made when first needed and kept for good.
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric import ec
from radicale import pathutils
from radicale.log import logger

from radicale_plugin import store
from radicale_plugin.push import dav as push_dav
from radicale_plugin.push import hosts as push_hosts
from radicale_plugin.push import http as push_http
from radicale_plugin.context import Context
from radicale_plugin.errors import BadRequest, Conflict, Forbidden, NotFound
from radicale_plugin.index import PushSubscription
from radicale_plugin.push.keys import VapidKeys

Resolver = Callable[[push_hosts.Destination, bool], list[str]]

#: Transports this server offers (the draft's names).
TRANSPORTS = ["web-push"]


def new_topic() -> str:
    """A random topic: 22 characters of base64url, within RFC 8030's 32 for ``Topic``."""
    return secrets.token_urlsafe(16)


def new_id() -> str:
    """A random subscription id (it is part of the registration URL)."""
    return secrets.token_urlsafe(18)


def book_path(value: Any) -> str:
    """``/alice/contacts/`` (as clients write it) → ``alice/contacts``; BadRequest otherwise."""
    if not isinstance(value, str) or not value or len(value) > 1024 \
            or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadRequest("give the address book as a path such as \"/alice/contacts/\"")
    path = pathutils.strip_path(pathutils.sanitize_path(value))
    parts = path.split("/")
    if len(parts) != 2 or not all(parts):
        raise BadRequest("%r is not the path of an address book such as \"/alice/contacts/\""
                         % value[:100])
    return path


class Push:
    """Topics and subscriptions, for the API."""

    def __init__(self, ctx: Context, keys: VapidKeys,
                 resolve: Resolver = push_http.resolve) -> None:
        self._ctx = ctx
        self.keys = keys
        self._resolve = resolve

    @property
    def offered(self) -> bool:
        """Push is offered unless the admin allows no push service at all."""
        return bool(self._ctx.settings.push_services)

    def _check_offered(self) -> None:
        if not self.offered:
            raise NotFound("this server offers no push (mecard_push_services is empty)")

    def own_book(self, user: str, value: Any) -> str:
        """The path of ``user``'s address book named by ``value``.

        Forbidden for any path of another user (whether it exists or not: the
        answer tells nothing about their books, as the draft's 403
        ``push-not-available`` says); NotFound for a book of one's own that does
        not exist.
        """
        path = book_path(value)
        if store.user_of(path) != user:
            raise Forbidden("push subscriptions are for your own address books only, not "
                            "/%s/" % path)
        with self._ctx.storage.acquire_lock("r", user):
            if store.book(self._ctx.storage, path) is not None:
                return path
        raise NotFound("you have no address book /%s/" % path)

    def topic(self, book: str) -> str:
        """The book's topic, made now if it has none."""
        index = self._ctx.index
        return index.push.topic(book) or index.push.ensure_topic(book, new_topic())

    # -- API calls -------------------------------------------------------------------
    def book_info(self, user: str, path: Any) -> dict[str, Any]:
        """What a PROPFIND on the user's book shows of WebDAV-Push."""
        self._check_offered()
        book = self.own_book(user, path)
        return {"topic": self.topic(book), "vapid_public_key": self.keys.public_key,
                "transports": list(TRANSPORTS)}

    def subscriptions(self, user: str) -> dict[str, Any]:
        """The user's subscriptions that have not expired."""
        return {"subscriptions": [_row(s) for s in self._ctx.index.push.of_user(
            user, time.time())]}

    def subscribe(self, user: str, data: dict) -> dict[str, Any]:
        """Register (or renew) a subscription of the user's book; the answer says its expiry."""
        self._check_offered()
        settings = self._ctx.settings
        resource = _string(data, "push_resource", "the push service's URL for this "
                                                  "subscription (https://...)")
        try:
            public_key = push_dav.check_public_key(_string(
                data, "public_key", "the subscription's P-256 public key (base64url)"))
            auth_secret = push_dav.check_auth_secret(_string(
                data, "auth_secret", "the subscription's auth secret (base64url)"))
        except ValueError as e:
            raise BadRequest(str(e)) from e
        _check_point(public_key)
        encoding = data.get("content_encoding", push_dav.ENCODING)
        if encoding != push_dav.ENCODING:
            raise BadRequest("'content_encoding' must be %s" % push_dav.ENCODING)
        now = time.time()
        expires = _expiry(data.get("expires"), now, settings.push_max_expiry)
        book = self.own_book(user, data.get("book"))
        insecure = settings.push_allow_insecure_loopback
        try:
            target = push_hosts.destination(resource, settings.push_services, insecure)
            self._resolve(target, insecure)
        except push_hosts.PushRefused as e:
            raise BadRequest(str(e)) from e
        except OSError as e:
            raise BadRequest("the push service's host %s does not resolve (%s)"
                             % (target.host, e.strerror or e)) from e
        wanted = PushSubscription(new_id(), user, book, resource, public_key, auth_secret,
                                  expires, encoding, now)
        index = self._ctx.index
        self.topic(book)  # the sender needs it; made outside the transaction below
        with index.transaction():
            renewal = any(s.push_resource == resource for s in index.push.of_book(book, now))
            if not renewal:
                if index.push.count(now, book=book) >= settings.push_per_book:
                    raise Conflict("the address book /%s/ has %d push subscriptions, the most "
                                   "allowed: remove one first" % (book, settings.push_per_book))
                if index.push.count(now, user=user) >= settings.push_per_user:
                    raise Conflict("you have %d push subscriptions, the most allowed: remove "
                                   "one first" % settings.push_per_user)
            stored = index.push.put(wanted)
        logger.info("WebDAV-Push: %s subscription %s of %r to /%s/ at %s, until %s",
                    "renewed" if renewal else "new", stored.id, user, book, target.host,
                    push_dav.http_date(stored.expires))
        return _row(stored)

    def unsubscribe(self, user: str, subscription_id: str) -> dict[str, Any]:
        """Remove one of the user's subscriptions."""
        found = self._ctx.index.push.get(subscription_id)
        if found is None or found.user != user or found.expires <= time.time():
            # somebody else's looks like none: the answer tells nothing about it
            raise NotFound("you have no push subscription %r" % subscription_id[:100])
        self._ctx.index.push.remove(subscription_id)
        logger.info("WebDAV-Push: subscription %s of %r to /%s/ removed", found.id, user,
                    found.book)
        return {"deleted": True}


def _string(data: dict, name: str, what: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("give %r: %s" % (name, what))
    return value.strip()


def _check_point(public_key: str) -> None:
    raw = push_dav.b64url_decode(public_key, "the subscription's public key")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as e:
        raise BadRequest("the subscription's public key is not a point of P-256") from e


def _expiry(value: Any, now: float, longest: float) -> float:
    """The expiry granted: the one asked for, but not beyond ``longest`` from now."""
    if value is None:
        return float(math.floor(now + longest))
    if not isinstance(value, str):
        raise BadRequest("'expires' must be an HTTP date such as "
                         "\"Wed, 20 Dec 2023 10:03:31 GMT\"")
    try:
        asked = push_dav.parse_http_date(value)
    except ValueError as e:
        raise BadRequest("'expires': %s" % e) from e
    granted = float(math.floor(min(asked, now + longest)))  # whole seconds, as Expires says
    if granted <= now:
        raise BadRequest("'expires' (%s) is in the past" % value[:80])
    return granted


def _row(subscription: PushSubscription) -> dict[str, Any]:
    return {"id": subscription.id, "book": "/%s/" % subscription.book,
            "push_resource": subscription.push_resource,
            "expires": push_dav.http_date(subscription.expires)}
