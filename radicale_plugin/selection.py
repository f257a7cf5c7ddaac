# SPDX-License-Identifier: GPL-3.0-or-later
"""Who gets an owner's card: the target rules, evaluated over the owner's books.

Rules are evaluated by the pure :mod:`radicale_plugin.rules`; this module
reads the owner's books and says which user each contact stands for: the
owner whose copy the card is, else the user its keys are verified for, as
far as that user lets the owner discover them.
"""

from __future__ import annotations

from typing import Any

from radicale.log import logger

from radicale_plugin import store
from radicale_plugin.context import Context
from radicale_plugin.discovery import Discovery
from radicale_plugin.errors import BadCard, BadRequest, NotFound
from radicale_plugin.matching import resolve_contact
from radicale_plugin.rules import Book, Contact, evaluate, parse_rule
from radicale_plugin.vcard import Card, parse_cards

#: Most target rules one owner may have (``user:NAME`` rules from the bridge add up).
MAX_RULES = 10000


class Targets:
    """The owner's target rules and what they select."""

    def __init__(self, ctx: Context, discovery: Discovery) -> None:
        self._ctx = ctx
        self._discovery = discovery

    def set_targets(self, user: str, rules: Any, withdraw: bool = False) -> list[str]:
        """Replace the owner's rules; recipients left out are withdrawn if asked."""
        if not isinstance(rules, list):
            raise BadRequest("'targets' must be a list such as [\"all\"] or [\"group:Family\"]")
        if len(rules) > MAX_RULES:
            raise BadRequest("at most %d target rules; use group:NAME or all" % MAX_RULES)
        parsed = [parse_rule(r) for r in rules]
        with self._ctx.storage.acquire_lock("r", user):
            for rule in parsed:
                if rule.kind == "user" and not store.user_exists(self._ctx.storage, rule.arg):
                    raise NotFound("no user %r on this server" % rule.arg)
        normal = list(dict.fromkeys(str(r) for r in parsed))
        index = self._ctx.index
        with index.transaction():
            index.owners.set_rules(user, normal)
            index.outbox.requeue(user, withdraw=withdraw)
        self._ctx.wake()
        return normal

    def select(self, user: str) -> tuple[dict[str, list[str]], list[dict[str, str]]]:
        """Evaluate the owner's target rules now (the caller holds a storage lock)."""
        owner = self._ctx.index.owners.get(user)
        rules = [parse_rule(r) for r in owner.rules]
        cards: list[Card] = []
        refs: list[tuple[str, str] | None] = []
        for collection in store.address_books(self._ctx.storage, user):
            for href, text in store.cards(collection):
                if (collection.path, href) == (owner.book, owner.href):
                    continue  # my own card is not one of my contacts
                try:
                    found = parse_cards(text)
                except BadCard:
                    logger.debug("Unreadable card %r in %r skipped", href, collection.path)
                    continue
                cards.extend(found)
                refs.extend([(collection.path, href)] * len(found))
        book = Book(cards, self._ctx.settings.region, refs)
        index = self._ctx.index
        keys = {k for c in book.contacts for k in c.keys}
        all_holders = index.keys.holders(keys)
        visible = set(self._discovery.visible_holders(user, keys).values())
        claimants = index.keys.claimants(k for k in keys if k not in all_holders)
        holding_copy = {link.recipient for link in index.links.of_owner(user)}
        links = index.links

        def resolve(contact: Contact) -> set[str]:
            link = links.at(*contact.ref) if contact.ref else None
            linked = link.owner if link is not None and link.recipient == user else None
            return resolve_contact(linked, contact.keys, all_holders, visible.__contains__,
                                   claimants, holding_copy.__contains__)

        known = {r.arg for r in rules if r.kind == "user"
                 and store.user_exists(self._ctx.storage, r.arg)}
        selection = evaluate(rules, book, resolve, user, known)
        return selection.targets, selection.skipped
