# SPDX-License-Identifier: GPL-3.0-or-later
"""Who gets an owner's card: the target rules, evaluated over the owner's books.

Rules are evaluated by the pure :mod:`radicale_plugin.rules` over the books as
the card-key index knows them (no book is read, no storage lock is taken);
this module says which user each contact stands for: the owner whose copy
the card is, else the user its keys are verified for, as far as that user
lets the owner discover them.
"""

from __future__ import annotations

from typing import Any

from radicale_plugin import store
from radicale_plugin.context import Context
from radicale_plugin.discovery import Discovery
from radicale_plugin.errors import BadRequest, NotFound
from radicale_plugin.matching import resolve_contact
from radicale_plugin.rules import Book, Contact, evaluate, parse_rule

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
        """Evaluate the owner's target rules now, from the card-key index (no book is read)."""
        index = self._ctx.index
        owner = index.owners.get(user)
        rules = [parse_rule(r) for r in owner.rules]
        book = Book.from_index(index.cards.cards_of(user), self._ctx.settings.region,
                               skip=(owner.book or "", owner.href or ""))  # not my own card
        keys = {k for c in book.contacts for k in c.keys}
        all_holders = index.keys.holders(keys)
        visible = self._discovery.visible_users(user, set(all_holders.values()))
        claimants = index.keys.claimants(k for k in keys if k not in all_holders)
        holding_copy = {link.recipient for link in index.links.of_owner(user)}
        mine = {(link.book, link.href): link.owner for link in index.links.under(user)
                if link.recipient == user}

        def resolve(contact: Contact) -> set[str]:
            linked = mine.get(contact.ref) if contact.ref else None
            return resolve_contact(linked, contact.keys, all_holders, visible.__contains__,
                                   claimants, holding_copy.__contains__)

        selection = evaluate(rules, book, resolve, user)
        return selection.targets, selection.skipped
