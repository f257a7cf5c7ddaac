# SPDX-License-Identifier: GPL-3.0-or-later
"""A selector expression against the owner's contacts: the rows ``select`` and
``update --only`` show, with the region used and the warnings.

Reads the contacts (from the server or ``--vcf`` files) and the call logs
(``--log``), then lets the pure :mod:`bridge.select` choose; the server
resolves the chosen contacts' numbers and e-mails to its users.
"""

from __future__ import annotations

import argparse
import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radicale_plugin.errors import BadCard
from radicale_plugin.owner.rules import Book
from radicale_plugin.vcard.codec import Card, parse_cards
from tqdm import tqdm

from bridge.client import Server
from bridge.commands.me import me_card
from bridge.commands.pick import pick
from bridge.errors import UserError
from bridge.output import note
from bridge.readers.calllog import FORMATS, KINDS, Log, read_logs
from bridge.region import Region
from bridge.select import (Frequency, Selector, check_groups, count_contacts, evaluate,
                           explain_empty, group_names, parse_selector, unmatched)

#: the share of a log's calls and messages with numbers of no contact above which the
#: region is probably wrong (people's logs also hold shops, doctors and spam: not 0)
UNMATCHED_WARNING = 0.5
#: fewer counted entries than this prove nothing about the region
UNMATCHED_MINIMUM = 4


class _Step(argparse.Action):
    """Collects --or/--and/--except selectors in command-line order."""

    def __call__(self, parser, namespace, value, option_string=None):  # type: ignore[override]
        steps = getattr(namespace, "steps", None) or []
        steps.append((option_string.lstrip("-"), value))  # type: ignore[union-attr]
        namespace.steps = steps


def selection_options() -> argparse.ArgumentParser:
    """The options of a selector expression (``select``, ``update --only``), as a parent
    parser."""
    sel = argparse.ArgumentParser(add_help=False)
    sel.add_argument("--or", dest="steps", action=_Step, metavar="SELECTOR",
                     help="also select these contacts")
    sel.add_argument("--and", dest="steps", action=_Step, metavar="SELECTOR",
                     help="keep only contacts also selected by this")
    sel.add_argument("--except", dest="steps", action=_Step, metavar="SELECTOR",
                     help="leave out contacts selected by this (an unknown group is an error)")
    sel.add_argument("--log", action="append", type=Path, default=[], metavar="FILE",
                     help="call or message log: SMS Backup & Restore XML, adb content query "
                          "output, an iPhone backup folder (or its sms.db, "
                          "CallHistory.storedata), or CSV number,time,kind,direction; "
                          "repeatable")
    sel.add_argument("--months", type=int, default=6,
                     help="frequent:N counts the last M months (default %(default)s)")
    sel.add_argument("--kinds", default="call,sms",
                     help="what frequent:N counts: call, sms (any message) or call,sms "
                          "(default %(default)s)")
    sel.add_argument("--vcf", type=Path, action="append", default=[],
                     help="read contacts from this .vcf export instead of the server")
    sel.add_argument("--now", type=datetime.datetime.fromisoformat, default=None,
                     help=argparse.SUPPRESS)
    return sel


@dataclass
class Selected:
    """The result of a selector expression: table rows, and what to tell the user."""

    rows: list[dict[str, Any]]
    first: Selector
    steps: list[tuple[str, Selector]]
    region: Region
    warnings: list[str] = field(default_factory=list)

    def users(self) -> list[str]:
        """The server users the selection resolved to."""
        return sorted({r["user"] for r in self.rows if r["user"]})

    def tell(self) -> None:
        """The region used and the warnings, on stderr."""
        note(self.region.note())
        for warning in self.warnings:
            note(warning)


def _read_contacts(args: argparse.Namespace, server: Server
                   ) -> tuple[list[Card], list[tuple[str, str] | None], list[str]]:
    """The cards (groups too), each one's (book, path) when read from the server, and
    warnings about cards that were skipped."""
    texts: list[tuple[str, str] | None] = []
    sources: list[str] = []
    for path in args.vcf:
        try:
            sources.append(path.read_text(encoding="utf-8-sig"))
        except OSError as e:
            raise UserError("cannot read %s: %s" % (path, e.strerror)) from e
        except UnicodeDecodeError as e:
            raise UserError("%s is not a .vcf export (not UTF-8 text)" % path) from e
        texts.append(None)
    if not args.vcf:
        for book in server.address_books():
            for href, text in server.cards(book).items():
                sources.append(text)
                texts.append((book, href))
    cards: list[Card] = []
    refs: list[tuple[str, str] | None] = []
    warnings: list[str] = []
    for text, ref in tqdm(list(zip(sources, texts)), desc="contacts", unit="card",
                          disable=None, leave=False):
        try:
            found = parse_cards(text)
        except BadCard as e:
            warnings.append("mecard-bridge: warning: a contact was skipped (%s): %s"
                            % (ref[1] if ref else "in the .vcf file", e))
            continue
        cards.extend(found)
        refs.extend([ref] * len(found))
    return cards, refs, warnings


def _mine(book: Book, server: Server) -> set[int]:
    """Indices of contacts that are the owner's own me card (by path, or UID in a .vcf)."""
    path, card = me_card(server)
    if path is None or card is None:
        return set()
    uid = card.first_value("UID")
    return {i for i, c in enumerate(book.contacts)
            if (c.ref is not None and c.ref[1] == path) or (uid and c.uid == uid)}



_KIND_WORDS = {"call": ("calls", "call"), "sms": ("messages", "write to")}


def _lacking(log: Log, kinds: tuple[str, ...]) -> list[str]:
    """A warning per kind counted that the logs hold none of: the counts are the other
    kind's only (an iPhone backup with "Messages in iCloud" holds no messages)."""
    warnings = []
    for kind in log.lacking(kinds):
        other = next((k for k in kinds if k != kind), None)
        if other is None:
            continue  # nothing at all of the only kind counted: the caller's error says so
        plural, verb = _KIND_WORDS[kind]
        why = log.missing.get(kind) or "the log (%s) holds no %s" % (log.names(), plural)
        warnings.append(
            "mecard-bridge: warning: %s; frequent:N counted %s only, so people you only %s "
            "are not counted (add a --log with the %s, or --kinds %s to count %s on purpose)"
            % (why, _KIND_WORDS[other][0], verb, plural, other, _KIND_WORDS[other][0]))
    return warnings


def _frequency(args: argparse.Namespace, region: str) -> tuple[Frequency, list[str]]:
    """How often each number appears in the logs, and warnings about skipped entries."""
    if not args.log:
        raise UserError("frequent:N needs a call log: add --log FILE (%s)" % FORMATS)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if not kinds or any(k not in KINDS for k in kinds):
        raise UserError("--kinds takes call, sms or call,sms, not %r" % args.kinds)
    if args.months < 1:
        raise UserError("--months takes a number of months of at least 1, not %d"
                        % args.months)
    log = read_logs(args.log)
    if not log.events:
        withheld = " (%d with a withheld number)" % log.withheld if log.withheld else ""
        raise UserError("the call log (%s) holds no calls or messages%s%s: export it again, "
                        "or give another --log" % (log.names(), withheld, "".join(
                            " (%s)" % why for why in log.missing.values())))
    if not log.lacking(kinds) or len(kinds) > 1:
        warnings = _lacking(log, kinds)
    else:  # the one kind counted is not in the logs: nothing could be counted
        plural = _KIND_WORDS[kinds[0]][0]
        raise UserError("%s: --kinds %s counts nothing; add a --log with the %s, or count "
                        "the others with --kinds %s" % (
                            log.missing.get(kinds[0]) or "the log (%s) holds no %s" % (
                                log.names(), plural), kinds[0], plural,
                            ",".join(k for k in KINDS if k != kinds[0])))
    warnings += ["mecard-bridge: warning: skipped %s" % problem
                 for problem in log.malformed[:5]]
    if len(log.malformed) > 5:
        warnings.append("mecard-bridge: warning: %d more malformed entries skipped"
                        % (len(log.malformed) - 5))
    now = args.now or datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=datetime.timezone.utc)
    return count_contacts(log, region, args.months, kinds, now), warnings


def selection(args: argparse.Namespace, first_text: str, server: Server,
               region: Region) -> Selected:
    """Rows of (contact, why, user or why not) for the selector expression."""
    # parse every selector before any network or file work: a typo fails at once
    first = parse_selector(first_text)
    steps = [(op, parse_selector(text)) for op, text in getattr(args, "steps", None) or []]
    selectors = [first] + [s for _, s in steps]
    cards, refs, warnings = _read_contacts(args, server)
    check_groups(selectors, group_names(cards))
    book = Book(cards, region.code, refs)
    frequency = None
    if any(s.kind == "frequent" for s in selectors):
        frequency, log_warnings = _frequency(args, region.code)
        warnings.extend(log_warnings)
        lost, total = unmatched(frequency, book)
        if total >= UNMATCHED_MINIMUM and lost / total >= UNMATCHED_WARNING:
            warnings.append(
                "mecard-bridge: warning: %d of %d %s in the log (%d%%) are with numbers none "
                "of your contacts has; if the phone's national numbers are not %s's, give "
                "--region" % (lost, total, frequency.what(), round(100 * lost / total),
                              region.code))
    picked = pick(book, _mine(book, server)) if any(s.kind == "pick" for s in selectors) \
        else []
    chosen = evaluate(first, steps, book, frequency, region.code, picked)
    if not chosen:
        raise UserError("the selection matches no contact: %s" % explain_empty(
            first, steps, book, frequency, region.code, picked))
    keys = sorted({k for i in chosen for k in book.contacts[i].keys})
    users_of = server.resolve(keys)
    rows = []
    for i in sorted(chosen, key=lambda i: book.contacts[i].name.casefold()):
        contact = book.contacts[i]
        found = {u for k in contact.keys for u in users_of.get(k, [])}
        users = sorted(found - {server.user})
        if not contact.keys:
            why_not = "no number or e-mail"
        elif found == {server.user}:
            why_not = "that is you"
        elif not users:
            # the server names only users who let the owner see them: never claim that
            # somebody does not exist
            why_not = "no user you may see here (they may not have you in their contacts)"
        elif len(users) > 1:
            why_not = "matches several users (%s): skipped" % ", ".join(users)
        else:
            why_not = ""
        rows.append({"contact": contact.name, "why": "; ".join(chosen[i]),
                     "user": users[0] if len(users) == 1 else None, "note": why_not,
                     "keys": sorted(contact.keys)})
    return Selected(rows, first, steps, region, warnings)
