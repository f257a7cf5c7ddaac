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

from radicale_plugin.vcard.matching import email_key, phone_key
from radicale_plugin.owner.rules import Book, Contact
from radicale_plugin.vcard.groups import contact_name, is_group
from radicale_plugin.vcard.codec import Card, split_list

from bridge.readers.calllog import Log
from bridge.errors import UserError

SERVER_SIDE = ("all", "group")


@dataclass(frozen=True)
class Selector:
    """One selector: its kind (``all``, ``group``, ``frequent``, ``contact``, ``pick``)
    and argument."""

    kind: str
    arg: str = ""

    def __str__(self) -> str:
        return "%s:%s" % (self.kind, self.arg) if self.arg else self.kind


def parse_selector(text: str) -> Selector:
    """``frequent:5`` → Selector("frequent", "5"); a :class:`UserError` for anything else."""
    kind, sep, arg = text.strip().partition(":")
    kind = kind.lower()
    if kind in ("all", "pick") and not sep:
        return Selector(kind)
    if kind in ("group", "contact") and arg.strip():
        return Selector(kind, arg.strip())
    if kind == "frequent" and arg.strip().isdigit() and int(arg) > 0:
        return Selector(kind, arg.strip())
    raise UserError("unknown selector %r: use all, group:NAME, frequent:N, contact:TEXT "
                    "or pick" % text)


@dataclass
class Frequency:
    """How often each number (by its normal form) appears in the logs, and what was read."""

    counts: dict[str, int]
    months: int
    kinds: tuple[str, ...]
    #: for saying why nobody was selected: events read, those of the kinds counted in the
    #: window, the newest of the kinds counted, the end of the window, the files read
    events: int = 0
    in_window: int = 0
    newest: datetime.datetime | None = None
    now: datetime.datetime | None = None
    sources: str = ""

    def what(self) -> str:
        """``call/sms`` (for messages)."""
        return "/".join(self.kinds)


def event_key(number: str, region: str) -> str | None:
    """The key of a log entry's number; iMessage and FaceTime log e-mail addresses too."""
    return email_key(number) if "@" in number else phone_key(number, region)


def count_contacts(log: Log, region: str, months: int, kinds: Iterable[str],
                   now: datetime.datetime) -> Frequency:
    """Count events per normalised number within the last ``months`` months."""
    wanted = tuple(kinds)
    since = now - datetime.timedelta(days=round(months * 30.44))
    counts: collections.Counter[str] = collections.Counter()
    in_window = 0
    newest: datetime.datetime | None = None
    for event in log.events:
        if event.kind not in wanted:
            continue
        if newest is None or event.time > newest:
            newest = event.time
        if since <= event.time <= now:
            in_window += 1
            key = event_key(event.number, region)
            if key:
                counts[key] += 1
    return Frequency(dict(counts), months, wanted, len(log.events), in_window, newest, now,
                     log.names())


def unmatched(frequency: Frequency, book: Book) -> tuple[int, int]:
    """(events, of all counted) with numbers that are no contact's: a high share means the
    numbers were read in the wrong region, or the contacts are not the phone's."""
    known = {k for c in book.contacts for k in c.keys}
    total = sum(frequency.counts.values())
    return sum(n for k, n in frequency.counts.items() if k not in known), total


def group_names(cards: Iterable[Card]) -> dict[str, str]:
    """Case-folded name → name as written, of every group card and category in ``cards``."""
    names: dict[str, str] = {}
    for card in cards:
        if is_group(card):
            name = contact_name(card)
            names.setdefault(name.casefold(), name)
        for line in card.get("CATEGORIES"):
            for category in split_list(line.value):
                if category:
                    names.setdefault(category.casefold(), category)
    return names


def check_groups(selectors: Iterable[Selector], groups: dict[str, str]) -> None:
    """A :class:`UserError` for a ``group:NAME`` naming no group or category: a typo in
    ``--except group:Wrok`` would otherwise leave out nobody without a word."""
    for selector in selectors:
        if selector.kind == "group" and selector.arg.casefold() not in groups:
            known = ", ".join(sorted(groups.values(), key=str.casefold)) or "none"
            raise UserError("no group or category %r in your contacts (yours: %s); "
                            "names are matched without case" % (selector.arg, known))


def _matches_text(contact: Contact, text: str, region: str) -> bool:
    if text.casefold() in contact.name.casefold():
        return True
    keys = {email_key(text), phone_key(text, region)} - {None}
    return bool(keys & contact.keys)


def select_one(selector: Selector, book: Book, frequency: Frequency | None, region: str,
               picked: Iterable[int] = ()) -> dict[int, str]:
    """Indices into ``book.contacts`` one selector selects, each with the reason why."""
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
        raise UserError("frequent:N needs a call log: add --log FILE")
    out = {}
    for i, contact in enumerate(book.contacts):
        n = sum(frequency.counts.get(k, 0) for k in contact.keys)
        if n >= int(selector.arg):
            out[i] = "%d %s in %d months" % (n, frequency.what(), frequency.months)
    return out


def evaluate(first: Selector, steps: list[tuple[str, Selector]], book: Book,
             frequency: Frequency | None, region: str,
             picked: Iterable[int] = ()) -> dict[int, list[str]]:
    """Indices into ``book.contacts`` selected, each with the reasons why.

    ``picked``: the indices the user chose by hand, for the ``pick`` selector.
    """
    picked = list(picked)
    result = {i: [reason] for i, reason in
              select_one(first, book, frequency, region, picked).items()}
    for op, selector in steps:
        chosen = select_one(selector, book, frequency, region, picked)
        if op == "or":
            for i, reason in chosen.items():
                result.setdefault(i, []).append(reason)
        elif op == "and":
            result = {i: reasons + [chosen[i]] for i, reasons in result.items() if i in chosen}
        else:
            result = {i: reasons for i, reasons in result.items() if i not in chosen}
    return result


def _why_none(selector: Selector, book: Book, frequency: Frequency | None,
              region: str) -> str:
    """Why one selector selects nobody, in words that say what to change."""
    if selector.kind == "all":
        return "you have no contacts"
    if selector.kind == "pick":
        return "you picked no contact"
    if selector.kind == "group":
        return "group %r has no contacts" % selector.arg
    if selector.kind == "contact":
        return "no contact's name, e-mail or number matches %r" % selector.arg
    assert frequency is not None  # select_one refused frequent:N without a log
    window = "the %d months before %s" % (frequency.months, frequency.now.date().isoformat()
                                          if frequency.now else "now")
    if not frequency.in_window:
        newest = (" (the newest is from %s)" % frequency.newest.date().isoformat()
                  if frequency.newest else "")
        return ("the call log (%s) holds no %s in %s%s: give more --months, other --kinds or "
                "a newer export" % (frequency.sources, frequency.what(), window, newest))
    # the most frequent contact; of equally frequent ones the first by name
    best = min(((sum(frequency.counts.get(k, 0) for k in c.keys), c.name)
                for c in book.contacts), key=lambda t: (-t[0], t[1].casefold()),
               default=(0, ""))
    if not best[0]:
        return ("none of the %d numbers in the call log (%s) is one of your contacts' "
                "numbers, read as region %s: if that is not the phone's region, give --region"
                % (len(frequency.counts), frequency.sources, region))
    return ("nobody reaches %s: the most frequent of your contacts, %s, has %d %s in %s"
            % (selector, best[1], best[0], frequency.what(), window))


def explain_empty(first: Selector, steps: list[tuple[str, Selector]], book: Book,
                  frequency: Frequency | None, region: str,
                  picked: Iterable[int] = ()) -> str:
    """Why :func:`evaluate` selected nobody: the first selector or step that left none."""
    picked = list(picked)
    result = set(select_one(first, book, frequency, region, picked))
    if not result:
        return _why_none(first, book, frequency, region)
    for op, selector in steps:
        chosen = set(select_one(selector, book, frequency, region, picked))
        before = len(result)
        if op == "or":
            result |= chosen
        elif op == "and":
            result &= chosen
        else:
            result -= chosen
        if not result:
            if op == "and" and not chosen:
                return "--and %s: %s" % (selector, _why_none(selector, book, frequency, region))
            return "--%s %s leaves none of the %d contact(s) selected before it" % (
                op, selector, before)
    return "no contact is selected"


def is_server_rule(first: Selector, steps: list[tuple[str, Selector]]) -> bool:
    """Whether the expression is one rule the server evaluates itself at every change."""
    return not steps and first.kind in SERVER_SIDE
