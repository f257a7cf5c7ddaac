# SPDX-License-Identifier: GPL-3.0-or-later
"""The sharing service: me-card bookkeeping on writes, and the operations of the API.

One service exists per storage folder and process: Radicale creates its
``Storage`` twice (the app, and its own sharing module) and the web plugin
loads a third, and all of them must share one index and one fan-out worker.

Hooks named ``on_*`` run inside a request that already holds the storage
write lock; they only read storage through the collection they are given
and record in the index.  Operations of the API take the lock themselves.
"""

from __future__ import annotations

import os
import threading
from typing import Any, ClassVar

import radicale.item as radicale_item
from radicale import storage
from radicale.log import logger

from radicale_plugin import store
from radicale_plugin.errors import BadCard, BadRequest, NotFound
from radicale_plugin.index import POLICIES, Owner, SharingIndex
from radicale_plugin.rules import Book, evaluate, parse_rule
from radicale_plugin.settings import Settings
from radicale_plugin.sqlite_index import SQLiteIndex
from radicale_plugin.vcard import parse_card, parse_cards
from radicale_plugin.view import check_fields, shared_view

#: Apple's "My Card" pointer on the address-book home, as Radicale names it.
ME_CARD_PROPERTY = "CS:me-card"


class SharingService:
    """Me cards, sharing settings and the fan-out for one storage folder."""

    _services: ClassVar[dict[str, "SharingService"]] = {}
    _services_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, store_: storage.BaseStorage, settings: Settings,
                 index: SharingIndex) -> None:
        from radicale_plugin.fanout import FanoutWorker
        self.storage = store_
        self.settings = settings
        self.index = index
        self.worker = FanoutWorker(self)

    @classmethod
    def for_storage(cls, store_: storage.BaseStorage, settings: Settings) -> "SharingService":
        """The process's service for this storage's database, created once."""
        with cls._services_lock:
            service = cls._services.get(settings.database)
            if service is None:
                os.makedirs(os.path.dirname(settings.database), exist_ok=True)
                service = cls(store_, settings, SQLiteIndex(settings.database))
                cls._services[settings.database] = service
            return service

    def wake(self) -> None:
        """Tell the worker that a write lock was released (work may be queued)."""
        self.worker.wake()

    # -- hooks, called under the request's write lock -----------------------
    def on_item_written(self, collection: storage.BaseCollection, href: str,
                        item: radicale_item.Item) -> None:
        user = store.user_of(collection.path)
        owner = self.index.owner(user)
        if owner.book != collection.path:
            return  # most writes: not into the book holding a me card
        if owner.href != href:
            if not owner.uid or item.uid != owner.uid:
                return
            self.index.set_me_card(user, owner.book, href, item.uid)
        self._refresh_view(owner, item.serialize())

    def on_item_deleted(self, collection_path: str, href: str | None) -> None:
        user = store.user_of(collection_path)
        owner = self.index.owner(user)
        if owner.book is None:
            return
        gone = (owner.book == collection_path and href in (None, owner.href)) or (
            href is None and (owner.book + "/").startswith(collection_path.strip("/") + "/"))
        if gone:
            logger.info("Me card of %r deleted: no further updates go out", user)
            self._forget_me_card(user)

    def on_collection_replaced(self, collection: storage.BaseCollection) -> None:
        user = store.user_of(collection.path)
        owner = self.index.owner(user)
        if owner.book != collection.path:
            return
        for href, text in store.cards(collection):
            try:
                uid = parse_card(text).first_value("UID")
            except BadCard:
                continue
            if uid and uid == owner.uid:
                self.index.set_me_card(user, owner.book, href, uid)
                self._refresh_view(owner, text)
                return
        logger.info("Me card of %r not in the replaced book %r any more", user, collection.path)
        self._forget_me_card(user)

    def on_item_moved(self, from_path: str, from_href: str,
                      to_collection: storage.BaseCollection, to_href: str, text: str) -> None:
        user = store.user_of(from_path)
        owner = self.index.owner(user)
        if owner.book == from_path and owner.href == from_href:
            if store.user_of(to_collection.path) != user:
                self._forget_me_card(user)
                return
            self.index.set_me_card(user, to_collection.path, to_href, owner.uid)
        target = self.index.owner(store.user_of(to_collection.path))
        if target.book == to_collection.path and target.href == to_href:
            self._refresh_view(target, text)

    def on_me_card_property(self, principal: storage.BaseCollection,
                            value: str | None) -> str | None:
        """Designate (or with None forget) the me card named by a property value.

        Returns the value to store.  Raises a ValueError for a path that is
        not a card in one of the user's books, so nothing is stored.
        """
        user = principal.path
        if value is None:
            self._forget_me_card(user)
            return None
        if not value.strip():
            # Radicale keeps only an element's text: Apple's nested <D:href>
            # arrives empty.  Keep what we have rather than forget the card.
            logger.warning("Empty %s for %r ignored; set the me card through the API",
                           ME_CARD_PROPERTY, user)
            owner = self.index.owner(user)
            return "/%s/%s" % (owner.book, owner.href) if owner.href else None
        book_path, href = store.split_card_path(user, value)
        collection = store.book(self.storage_of(principal), book_path)
        if collection is None:
            raise NotFound("no address book /%s/" % book_path)
        text = store.card_text(collection, href)
        if text is None:
            raise NotFound("no card %s in /%s/" % (href, book_path))
        card = parse_card(text)
        self.index.set_me_card(user, book_path, href, card.first_value("UID"))
        logger.info("Me card of %r is now /%s/%s", user, book_path, href)
        self._refresh_view(self.index.owner(user), text)
        return "/%s/%s" % (book_path, href)

    @staticmethod
    def storage_of(collection: storage.BaseCollection) -> storage.BaseStorage:
        return collection._storage  # type: ignore[attr-defined]

    def _refresh_view(self, owner: Owner, text: str) -> None:
        try:
            card = parse_card(text)
        except BadCard as e:
            logger.warning("Me card of %r not shared: %s", owner.user, e)
            return
        view = shared_view(card, owner.shared_fields)
        if self.index.record_view(owner.user, view, view.keys(self.settings.region)):
            logger.info("Me card of %r changed: update queued for its targets", owner.user)

    def _forget_me_card(self, user: str) -> None:
        self.index.set_me_card(user, None, None, None)
        self.index.record_view(user, None, set())

    # -- operations of the API (they take the storage lock) -----------------
    def settings_of(self, user: str) -> dict[str, Any]:
        owner = self.index.owner(user)
        return {
            "user": user,
            "me_card": "/%s/%s" % (owner.book, owner.href) if owner.href else None,
            "shared_fields": owner.shared_fields,
            "seq": owner.seq,
            "targets": owner.rules,
            "policies": self.index.policies(user),
            "default_policy": self.settings.default_policy,
        }

    def set_me_card(self, user: str, path: str | None) -> None:
        with self.storage.acquire_lock("w", user):
            principal = next(iter(self.storage.discover("/%s/" % user)), None)
            if not isinstance(principal, storage.BaseCollection):
                raise NotFound("user %r has no address-book home yet; log in once" % user)
            meta = dict(principal.get_meta())
            if path is None:
                meta.pop(ME_CARD_PROPERTY, None)
            else:
                meta[ME_CARD_PROPERTY] = path
            principal.set_meta(meta)

    def set_shared_fields(self, user: str, fields: list[str]) -> None:
        if not isinstance(fields, list):
            raise BadRequest("'fields' must be a list such as [\"FN\", \"TEL\"]")
        wanted = check_fields(fields)
        with self.storage.acquire_lock("w", user):
            self.index.set_shared_fields(user, wanted)
            owner = self.index.owner(user)
            if owner.book and owner.href:
                collection = store.book(self.storage, owner.book)
                text = store.card_text(collection, owner.href) if collection else None
                if text is not None:
                    self._refresh_view(owner, text)

    def set_targets(self, user: str, rules: list[str]) -> list[str]:
        if not isinstance(rules, list):
            raise BadRequest("'targets' must be a list such as [\"all\"] or [\"group:Family\"]")
        parsed = [parse_rule(r) for r in rules]
        with self.storage.acquire_lock("r", user):
            for rule in parsed:
                if rule.kind == "user" and not store.user_exists(self.storage, rule.arg):
                    raise NotFound("no user %r on this server" % rule.arg)
        normal = list(dict.fromkeys(str(r) for r in parsed))
        self.index.set_rules(user, normal)
        self.index.requeue(user)
        self.wake()
        return normal

    def set_policy(self, user: str, owner: str, policy: str | None) -> None:
        if policy is not None and policy not in POLICIES:
            raise BadRequest("unknown policy %r: use %s" % (policy, " or ".join(POLICIES)))
        if owner != "*":
            with self.storage.acquire_lock("r", user):
                if not store.user_exists(self.storage, owner):
                    raise NotFound("no user %r on this server" % owner)
        self.index.set_policy(user, owner, policy)
        self.wake()

    def policies_of(self, user: str) -> dict[str, Any]:
        return {"policies": self.index.policies(user),
                "default_policy": self.settings.default_policy}

    def policy(self, recipient: str, owner: str) -> str:
        policies = self.index.policies(recipient)
        return policies.get(owner) or policies.get("*") or self.settings.default_policy

    def select(self, user: str) -> tuple[dict[str, list[str]], list[dict[str, str]]]:
        """Evaluate the owner's target rules now (caller holds a lock)."""
        owner = self.index.owner(user)
        rules = [parse_rule(r) for r in owner.rules]
        book_cards = []
        for collection in store.address_books(self.storage, user):
            for href, text in store.cards(collection):
                try:
                    book_cards.extend(parse_cards(text))
                except BadCard:
                    logger.debug("Unreadable card %r in %r skipped", href, collection.path)
        book = Book(book_cards, self.settings.region)
        owners_of = self.index.users_by_keys(k for c in book.contacts for k in c.keys)
        known = {r.arg for r in rules if r.kind == "user"
                 and store.user_exists(self.storage, r.arg)}
        selection = evaluate(rules, book, owners_of, user, known)
        return selection.targets, selection.skipped

    def resolve(self, keys: list[str]) -> dict[str, list[str]]:
        """Which users' me cards carry each key (the bridge shows this before applying)."""
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise BadRequest("'keys' must be a list of strings such as \"tel:+12025550101\"")
        if len(keys) > 100000:
            raise BadRequest("at most 100000 keys per call")
        return {k: sorted(v) for k, v in self.index.users_by_keys(keys).items()}

    def update_me_card(self, user: str, text: str, only: list[str] | None) -> dict[str, Any]:
        """Write new content into the me card and send it (to ``only``, or to all targets)."""
        if not isinstance(text, str):
            raise BadRequest("'card' must be the vCard text of the me card")
        if only is not None and (not isinstance(only, list)
                                 or not all(isinstance(u, str) for u in only)):
            raise BadRequest("'only' must be a list of user names")
        card = parse_card(text)
        with self.storage.acquire_lock("w", user):
            owner = self.index.owner(user)
            if not owner.book or not owner.href:
                raise NotFound("you have no me card yet: designate one first")
            if card.first_value("UID") != owner.uid:
                raise BadRequest("the card's UID must stay %r (the me card's)" % owner.uid)
            for name in only or []:
                if not store.user_exists(self.storage, name):
                    raise NotFound("no user %r on this server" % name)
            collection = store.book(self.storage, owner.book)
            if collection is None:
                raise NotFound("your me card's book /%s/ is gone" % owner.book)
            store.write_card(collection, owner.href, text)
            after = self.index.owner(user)
            if after.seq == owner.seq:
                # unchanged view: send it anyway to whoever lacks it (after an "update some")
                self.index.requeue(user)
            if only is not None:
                self.index.restrict(user, after.seq, only)
        return {"seq": after.seq, "changed": after.seq != owner.seq}

    def targets_report(self, user: str) -> dict[str, Any]:
        """Resolved targets with each one's delivery state."""
        with self.storage.acquire_lock("r", user):
            targets, skipped = self.select(user)
        deliveries = {d.recipient: d for d in self.index.deliveries(user)}
        recipients = []
        for recipient in sorted(set(targets) | set(deliveries)):
            d = deliveries.get(recipient)
            recipients.append({
                "user": recipient,
                "target": recipient in targets,
                "reasons": targets.get(recipient, []),
                "state": d.state if d else "not-sent",
                "copy": "/%s/%s" % (d.book, d.href) if d and d.href else None,
                "updated": d.updated if d else None,
                "seq": d.wanted_seq if d else None,
                "delivered_seq": d.delivered_seq if d else None,
                "error": d.error if d and d.error else None,
            })
        owner = self.index.owner(user)
        return {"targets": owner.rules, "recipients": recipients, "skipped": skipped,
                "seq": owner.seq, "queued": self.index.queued(user)}
