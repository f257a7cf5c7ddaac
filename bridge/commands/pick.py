# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``pick`` selector: choose contacts by hand from a numbered list, in a terminal."""

from __future__ import annotations

import re
import sys

import phonenumbers
from radicale_plugin.owner.rules import Book

from bridge.errors import UserError
from bridge.output import note


def _shown_key(key: str) -> str:
    """A contact key as people write it: ``+49 30 23125000``, ``bob@example.org``."""
    if key.startswith("mailto:"):
        return key[7:]
    try:
        return phonenumbers.format_number(phonenumbers.parse(key[4:], None),
                                          phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return key[4:]


def pick(book: Book, mine: set[int]) -> list[int]:
    """Interactive pick list, sorted by name with numbers (a terminal is needed).

    The list and the question go to stderr, so ``--json`` keeps stdout clean.
    """
    if not sys.stdin.isatty():
        raise UserError("'pick' needs a terminal; use contact:TEXT to choose by name")
    order = sorted((i for i in range(len(book.contacts)) if i not in mine),
                   key=lambda i: (book.contacts[i].name.casefold(), i))
    if not order:
        raise UserError("you have no contacts to pick from")
    width = max(len(book.contacts[i].name) for i in order)
    for n, i in enumerate(order, 1):
        contact = book.contacts[i]
        keys = sorted(contact.keys, key=lambda k: (not k.startswith("tel:"), k))
        shown = ", ".join(_shown_key(k) for k in keys[:3]) + (", ..." if len(keys) > 3 else "")
        note("%4d  %-*s  %s" % (n, width, contact.name, shown or "(no number or e-mail)"))
    print("Numbers to select (e.g. 1,3,5-7): ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not answer.strip():
        raise UserError("no number typed: nothing was picked")
    chosen: list[int] = []
    for part in answer.replace(" ", "").strip().split(","):
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise UserError("%r is not a number or a range such as 5-7" % part)
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        if lo > hi:
            raise UserError("the range %r runs backwards: write %d-%d" % (part, hi, lo))
        for n in (lo, hi):
            if not 1 <= n <= len(order):
                raise UserError("there is no %d in the list: pick numbers from 1 to %d"
                                % (n, len(order)))
        chosen.extend(order[n - 1] for n in range(lo, hi + 1))
    return list(dict.fromkeys(chosen))
