# SPDX-License-Identifier: GPL-3.0-or-later
"""Choosing recipients in bulk: selectors over the owner's contacts, and their combinations.

Selectors (the same words as the server's target rules, plus two only the
bridge can evaluate):

``all``            every contact;
``group:NAME``     contacts in group or category NAME (all three encodings);
``frequent:N``     contacts with at least N calls/messages in the call log(s)
                   within the last M months;
``contact:TEXT``   contacts whose name contains TEXT, or with that e-mail or number;
``pick``           contacts chosen by hand from a list (in a terminal).

An expression is a first selector followed by ``--or``, ``--and`` and
``--except`` steps, applied left to right.  Pure: contacts and logs in,
selected contacts with reasons out.
"""

from __future__ import annotations

import collections
import datetime
from dataclasses import dataclass
from typing import Iterable

from radicale_plugin.matching import email_key, phone_key
from radicale_plugin.rules import Book, Contact

from bridge.calllog import Log
from bridge.errors import BridgeError

SERVER_SIDE = ("all", "group")


@dataclass(frozen=True)
class Selector:
    kind: str
    arg: str = ""

    def __str__(self) -> str:
        return "%s:%s" % (self.kind, self.arg) if self.arg else self.kind


def parse_selector(text: str) -> Selector:
    kind, sep, arg = text.strip().partition(":")
    kind = kind.lower()
    if kind in ("all", "pick") and not sep:
        return Selector(kind)
    if kind in ("group", "contact") and arg.strip():
        return Selector(kind, arg.strip())
    if kind == "frequent" and arg.strip().isdigit() and int(arg) > 0:
        return Selector(kind, arg.strip())
    raise BridgeError("unknown selector %r: use all, group:NAME, frequent:N, contact:TEXT "
                      "or pick" % text)


@dataclass
class Frequency:
    """How often each number (by its normal form) appears in the logs."""

    counts: dict[str, int]
    months: int
    kinds: tuple[str, ...]


def count_contacts(log: Log, region: str, months: int, kinds: Iterable[str],
                   now: datetime.datetime) -> Frequency:
    """Count events per normalised number within the last ``months`` months."""
    wanted = tuple(kinds)
    since = now - datetime.timedelta(days=round(months * 30.44))
    counts: collections.Counter[str] = collections.Counter()
    for event in log.events:
        if event.kind in wanted and since <= event.time <= now:
            key = phone_key(event.number, region)
            if key:
                counts[key] += 1
    return Frequency(dict(counts), months, wanted)


def _matches_text(contact: Contact, text: str, region: str) -> bool:
    if text.casefold() in contact.name.casefold():
        return True
    keys = {email_key(text), phone_key(text, region)} - {None}
    return bool(keys & contact.keys)


def evaluate(first: Selector, steps: list[tuple[str, Selector]], book: Book,
             frequency: Frequency | None, region: str,
             picked: Iterable[int] = ()) -> dict[int, list[str]]:
    """Indices into ``book.contacts`` selected, each with the reasons why.

    ``picked``: the indices the user chose by hand, for the ``pick`` selector.
    """

    def one(selector: Selector) -> dict[int, str]:
        if selector.kind == "pick":
            return {i: "picked by hand" for i in picked}
        if selector.kind == "all":
            return {i: "all" for i in range(len(book.contacts))}
        if selector.kind == "group":
            members = {id(c) for c in book.group_members(selector.arg)}
            return {i: str(selector) for i, c in enumerate(book.contacts) if id(c) in members}
        if selector.kind == "contact":
            return {i: str(selector) for i, c in enumerate(book.contacts)
                    if _matches_text(c, selector.arg, region)}
        if frequency is None:
            raise BridgeError("frequent:N needs a call log: add --log FILE")
        out = {}
        for i, contact in enumerate(book.contacts):
            n = sum(frequency.counts.get(k, 0) for k in contact.keys)
            if n >= int(selector.arg):
                out[i] = "%d %s in %d months" % (n, "/".join(frequency.kinds), frequency.months)
        return out

    result = {i: [reason] for i, reason in one(first).items()}
    for op, selector in steps:
        chosen = one(selector)
        if op == "or":
            for i, reason in chosen.items():
                result.setdefault(i, []).append(reason)
        elif op == "and":
            result = {i: reasons + [chosen[i]] for i, reasons in result.items() if i in chosen}
        else:
            result = {i: reasons for i, reasons in result.items() if i not in chosen}
    return result


def is_server_rule(first: Selector, steps: list[tuple[str, Selector]]) -> bool:
    """Whether the expression is one rule the server evaluates itself at every change."""
    return not steps and first.kind in SERVER_SIDE
