# SPDX-License-Identifier: GPL-3.0-or-later
"""Who gets an owner's card: the target rules, evaluated over the owner's books.

Rules are evaluated by the pure :mod:`radicale_plugin.owner.rules` over the books as
the card-key index knows them (no book is read, no storage lock is taken);
this module says which user each contact stands for: the owner whose copy
the card is, else the user its keys are verified for, as far as that user
lets the owner discover them — or holds the owner's copy by a link that
keeps them (:mod:`radicale_plugin.consent.keeping`: discoverability governs finding
people, not keeping them).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from radicale_plugin import store
from radicale_plugin.consent.decisions import effective_policy
from radicale_plugin.context import Context
from radicale_plugin.consent.discovery import Discovery
from radicale_plugin.errors import BadRequest, NotFound
from radicale_plugin.index import IndexedCard, Link
from radicale_plugin.consent.keeping import keeps
from radicale_plugin.vcard.matching import resolve_contact
from radicale_plugin.owner.rules import (Book, Contact, Rule, Selection, evaluate, group_names,
                                         parse_rule)

#: Most target rules one owner may have (``user:NAME`` rules from the bridge add up).
MAX_RULES = 10000
#: Contacts of the owner's book evaluated at a time (see :meth:`Targets.select`).
PAGE = 2000


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
        self._check_groups(user, parsed)
        # a user:NAME rule is kept whether or not NAME exists or may be seen (the report
        # says "no user you may see here" for both): the answer tells nothing about NAME;
        # each new name counts like a key looked up through /resolve
        current = set(self._ctx.index.owners.get(user).rules)
        named = {str(r) for r in parsed if r.kind == "user"} - current
        if named:
            self._discovery.charge(user, len(named))
        normal = list(dict.fromkeys(str(r) for r in parsed))
        index = self._ctx.index
        with index.transaction():
            index.owners.set_rules(user, normal)
            owner = index.owners.get(user)
            if owner.audiences and owner.view is not None:
                # who gets which field set may change with the rules: a new change, so that
                # copies already holding the current one get their audience's view too
                index.owners.record_view(user, owner.card_view, owner.view, (), force=True)
            index.outbox.requeue(user, withdraw=withdraw)
        self._ctx.wake()
        return normal

    def seen_by_name(self, owner: str, names: set[str]) -> set[str]:
        """Those of ``names`` that the owner's ``user:NAME`` rules reach.

        A user with an address book here whom the owner may discover, or who
        chose the owner: holds the owner's copy, names the owner in a policy
        (other than ``block``), or is pre-authorised with them by the admin.
        A name that is no user and a user who may not be seen are left out
        alike ("no user you may see here"): the report tells them apart no
        more than the answer to ``POST /targets`` does.
        """
        index = self._ctx.index
        existing = {n for n in names if index.cards.books_of(n)}
        if not existing:
            return set()
        seen = self._discovery.visible_users(owner, existing) & existing
        holding = {r for _, r in index.links.get_many((owner, n) for n in existing - seen)}
        for name in sorted(existing - seen):
            if (name in holding or self._ctx.preauthorized(owner, name)
                    or index.consent.policies(name).get(owner) in ("auto", "ask")):
                seen.add(name)
        return seen

    def _check_groups(self, user: str, rules: list[Rule]) -> None:
        """A new ``group:NAME`` rule must name a group or category of the owner's contacts
        (the bridge refuses the same typo); one the owner already has may name a group
        deleted since, so that adding another rule still works."""
        index = self._ctx.index
        owner = index.owners.get(user)
        current = {r.casefold() for r in owner.rules}
        new = [r for r in rules if r.kind == "group" and str(r).casefold() not in current]
        if not new:
            return
        names = group_names(c for page in index.cards.card_pages(user) for c in page
                            if (c.book, c.href) != (owner.book, owner.href))
        for rule in new:
            if rule.arg.casefold() not in names:
                known = ", ".join(sorted(names.values(), key=str.casefold)) or "none"
                raise BadRequest("no group or category %r in your contacts (yours: %s); "
                                 "names are matched without case" % (rule.arg, known))

    def select(self, user: str) -> tuple[dict[str, list[str]], list[dict[str, str]]]:
        """Evaluate the owner's target rules now, from the card-key index (no book is read).

        The owner's book is evaluated in pages of :data:`PAGE` contacts, each with its own
        look-ups (the keys' holders, who may be found, the links of those who may need
        one): what a page needs is let go of before the next one is read.  At 100,000
        contacts the whole book, its contacts and their keys' holders at once were
        ~130 MiB, the peak of the server's memory (docs/performance.md).
        """
        index = self._ctx.index
        owner = index.owners.get(user)
        rules = [parse_rule(r) for r in owner.rules]
        region = self._ctx.region_of(owner)
        skip = (owner.book or "", owner.href or "")  # not my own card
        # the groups' members are needed by every page (a group card names contacts that
        # may be in any page), the groups themselves are in no page's contacts
        groups = index.cards.groups_of(user) \
            if any(r.kind == "group" for r in rules) else []
        mine = {(link.book, link.href): link.owner for link in index.links.under(user)
                if link.recipient == user}
        seen = self.seen_by_name(user, {r.arg for r in rules if r.kind == "user"})
        selection, n = Selection(), -1
        for n, page in enumerate(index.cards.card_pages(user, PAGE)):
            book = Book.from_index(groups + [c for c in _drained(page) if not c.is_group],
                                   region, skip=skip)
            # user:NAME rules once, with the first page: the order of a one-page book's
            # reasons is the rules' order, as it was
            _merge(selection, evaluate(rules if n == 0 else [r for r in rules
                                                             if r.kind != "user"],
                                       book, self._resolver(user, book, mine), user, seen))
        if n < 0:  # not a card in the owner's books: the named users still
            selection = evaluate([r for r in rules if r.kind == "user"], Book((), region),
                                 lambda contact: set(), user, seen)
        return selection.targets, selection.skipped

    def _resolver(self, user: str, book: Book,
                  mine: dict[tuple[str, str], str]) -> Callable[[Contact], set[str]]:
        """Who each contact of one page of the owner's book stands for (see
        :func:`radicale_plugin.vcard.matching.resolve_contact`): the page's look-ups
        in a few batched queries."""
        index = self._ctx.index
        keys = {k for c in book.contacts for k in c.keys}
        all_holders = index.keys.holders(keys)
        visible = self._discovery.visible_users(user, set(all_holders.values()))
        claimants = index.keys.claimants(k for k in keys if k not in all_holders)
        del keys
        # the owner's links only of those who may need one (not found, or claiming a key):
        # all of them are as many as the recipients, 60 MiB of links at 100,000
        asked = set(all_holders.values()) - visible
        asked.update(u for users in claimants.values() for u in users)
        copies: dict[str, Link | None] = dict.fromkeys(asked)
        copies.update((link.recipient, link) for link in
                      index.links.get_many((user, u) for u in asked).values())
        del asked
        kept: dict[str, bool] = {}

        def copy_of(holder: str) -> Link | None:
            if holder not in copies:  # one of several found for a contact: rare
                copies[holder] = index.links.get(user, holder)
            return copies[holder]

        def reachable(holder: str) -> bool:
            # found (discoverability), or kept: the link is a relationship (see keeping)
            if holder in visible:
                return True
            if holder not in kept:
                link = copy_of(holder)
                kept[holder] = link is not None and self._keeps(user, link)
            return kept[holder]

        def resolve(contact: Contact) -> set[str]:
            linked = mine.get(contact.ref) if contact.ref else None
            return resolve_contact(linked, contact.keys, all_holders, reachable,
                                   claimants, lambda u: copy_of(u) is not None)

        return resolve

    def _keeps(self, owner: str, link: Link) -> bool:
        """Whether the recipient of ``link`` stays selectable whatever the owner's keys
        (:func:`radicale_plugin.consent.keeping.keeps`); asked only of those not found anyway."""
        index = self._ctx.index
        recipient = link.recipient
        policies = index.consent.policies(recipient)
        policy = effective_policy(policies, owner, self._ctx.preauthorized(owner, recipient),
                                  self._ctx.settings.default_policy)
        chosen = index.owners.discoverability_of({recipient}).get(recipient)
        return keeps(link.made_by, index.cards.card(link.book, link.href) is not None,
                     policy, owner in policies,
                     chosen or self._ctx.settings.default_discoverability)


def _merge(selection: Selection, page: Selection) -> None:
    """One page's selection added to the book's (a user found in two pages has the
    reasons of both, once each)."""
    for user, reasons in page.targets.items():
        for reason in reasons:
            selection.add(user, reason)
    selection.skipped += page.skipped


def _drained(items: list[IndexedCard]) -> Iterator[IndexedCard]:
    """The items of a list, each let go of as it is taken: the owner's book is not held
    twice (as the index's cards and as contacts) while it is read, 50 MiB at 100,000."""
    items.reverse()
    while items:
        yield items.pop()
