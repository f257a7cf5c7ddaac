# SPDX-License-Identifier: GPL-3.0-or-later
"""Target rules: which of an owner's contacts receive the owner's card.

A rule is a short string:

``all``
    every contact of the owner that resolves to a user of this server;
``group:NAME``
    contacts in the group or category NAME, whichever encoding the owner's
    client wrote: vCard 4 ``KIND:group`` + ``MEMBER``, Apple
    ``X-ADDRESSBOOKSERVER-KIND:group`` + ``X-ADDRESSBOOKSERVER-MEMBER``, or
    ``CATEGORIES`` on the contact;
``user:NAME``
    the server user NAME, named directly (the bridge writes these).

Evaluation is pure: cards in, a :class:`Selection` out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from radicale_plugin.errors import BadRequest
from radicale_plugin.vcard.matching import card_keys, email_key, phone_key
from radicale_plugin.index.records import IndexedCard
from radicale_plugin.vcard.groups import categories, contact_name, is_group, members
from radicale_plugin.vcard.codec import Card, split_list, unescape

RULE_KINDS = ("all", "group", "user")


@dataclass(frozen=True)
class Rule:
    """One parsed target rule."""

    kind: str
    arg: str = ""

    def __str__(self) -> str:
        return self.kind if self.kind == "all" else "%s:%s" % (self.kind, self.arg)


def parse_rule(text: str) -> Rule:
    """Parse ``all``, ``group:NAME`` or ``user:NAME``; :class:`BadRequest` otherwise."""
    if not isinstance(text, str):
        raise BadRequest("a target rule must be a string such as 'all', 'group:Family' or 'user:bob'")
    kind, sep, arg = text.strip().partition(":")
    kind = kind.lower()
    if kind == "all" and not sep:
        return Rule("all")
    if kind in ("group", "user") and arg.strip():
        return Rule(kind, arg.strip())
    raise BadRequest("unknown target rule %r: use 'all', 'group:NAME' or 'user:NAME'" % text)


@dataclass
class Contact:
    """One of the owner's contacts with its matching keys."""

    uid: str
    name: str
    keys: set[str]
    categories: set[str]
    ref: tuple[str, str] | None = None  # (book, href) of the card, when known


@dataclass
class Selection:
    """What a set of rules selects: users with reasons, and contacts left out."""

    targets: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def add(self, user: str, reason: str) -> None:
        reasons = self.targets.setdefault(user, [])
        if reason not in reasons:
            reasons.append(reason)


def group_names(cards: Iterable[IndexedCard]) -> dict[str, str]:
    """Case-folded name → name as shown, of every group card and category in ``cards``
    (the index keeps categories case-folded)."""
    names: dict[str, str] = {}
    for card in cards:
        if card.is_group and card.name:
            names[card.name.casefold()] = card.name  # as written: before a category's
        for category in card.categories:
            names.setdefault(category.casefold(), category)
    return names


class Book:
    """The owner's contacts and groups, read once for evaluating many rules."""

    def __init__(self, cards: Iterable[Card], region: str,
                 refs: Sequence[tuple[str, str] | None] = ()) -> None:
        self.contacts: list[Contact] = []
        self._groups: list[tuple[str, list[str]]] = []
        self._region = region
        for n, card in enumerate(cards):
            if is_group(card):
                self._groups.append((contact_name(card).casefold(), members(card)))
            else:
                self.contacts.append(Contact(
                    card.first_value("UID") or "", contact_name(card),
                    card_keys(card, region), categories(card),
                    refs[n] if n < len(refs) else None))

    @classmethod
    def from_index(cls, cards: Iterable[IndexedCard], region: str,
                   skip: tuple[str, str] | None = None) -> "Book":
        """The book as the card-key index knows it (no card is read); ``skip`` one card."""
        book = cls((), region)
        for card in cards:
            if (card.book, card.href) == skip:
                continue
            if card.is_group:
                book._groups.append((card.name.casefold(), list(card.members)))
            else:
                book.contacts.append(Contact(card.uid, card.name, set(card.keys),
                                             set(card.categories), (card.book, card.href)))
        return book

    def group_members(self, name: str) -> list[Contact]:
        """Contacts in group ``name``: group cards (both encodings) and categories."""
        wanted = name.casefold()
        uids: set[str] = set()
        keys: set[str] = set()
        for group_name, group_members in self._groups:
            if group_name != wanted:
                continue
            for member in group_members:
                m = member.strip()
                low = m.lower()
                if low.startswith("urn:uuid:"):
                    uids.add(m[9:])
                elif low.startswith("mailto:"):
                    keys.add(email_key(m) or "")
                elif low.startswith("tel:"):
                    keys.add(phone_key(m, self._region) or "")
                else:
                    uids.add(m)
        return [c for c in self.contacts
                if wanted in c.categories or c.uid in uids or c.keys & keys]


def evaluate(rules: Iterable[Rule], book: Book, resolve: Callable[[Contact], set[str]],
             owner: str, known_users: set[str] | None = None) -> Selection:
    """Resolve ``rules`` over ``book`` to users.

    ``resolve`` gives the users a contact may stand for (see
    :func:`radicale_plugin.vcard.matching.resolve_contact`).  A contact standing
    for two users is skipped and reported, never guessed.
    """
    selection = Selection()
    for rule in rules:
        if rule.kind == "user":
            if known_users is not None and rule.arg not in known_users:
                selection.skipped.append({"contact": rule.arg, "rule": str(rule),
                                          "reason": "no user you may see here (they may "
                                                    "not have you in their contacts)"})
            elif rule.arg != owner:
                selection.add(rule.arg, str(rule))
            continue
        contacts = book.contacts if rule.kind == "all" else book.group_members(rule.arg)
        for contact in contacts:
            users = resolve(contact) - {owner}
            if len(users) == 1:
                selection.add(users.pop(), "%s (contact %s)" % (rule, contact.name))
            elif len(users) > 1:
                selection.skipped.append({
                    "contact": contact.name, "rule": str(rule),
                    "reason": "matches several users (%s); skipped" % ", ".join(sorted(users))})
    return selection
