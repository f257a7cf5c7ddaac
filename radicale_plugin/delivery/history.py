# SPDX-License-Identifier: GPL-3.0-or-later
"""What a change did to a recipient's card, value by value.  Pure.

The history keeps, for every change the sharing code makes, each value
before and after as whole content lines, so that an undo can later put the
``before`` lines back and take the ``after`` lines out without guessing.
"""

from __future__ import annotations

import collections
import re

from radicale_plugin.index import Change
from radicale_plugin.vcard.codec import Card, Line

# Lines the sharing code rewrites as bookkeeping, not as a change of a value.
_BOOKKEEPING = frozenset(("REV", "PRODID", "VERSION", "UID"))


def logical(line: Line) -> str:
    """A content line as one unfolded line of text."""
    text = line.serialize()
    return re.sub(r"\r?\n[ \t]", "", text) if "\n" in text else text


def diff(before: Card | None, after: Card) -> list[Change]:
    """The values that differ between ``before`` (None: no card yet) and ``after``.

    Values of one field are paired in order: a replaced number is one change
    (before → after), an added one has no ``before``, a removed one no ``after``.
    A repeated line counts each time: dropping one of two equal lines is a removal.
    """
    old = [(ln.name, logical(ln)) for ln in (before.lines if before else [])
           if ln.name not in _BOOKKEEPING]
    new = [(ln.name, logical(ln)) for ln in after.lines if ln.name not in _BOOKKEEPING]
    removed = collections.Counter(old) - collections.Counter(new)
    added = collections.Counter(new) - collections.Counter(old)
    changes: list[Change] = []
    for name in dict.fromkeys([n for n, _ in old] + [n for n, _ in new]):
        gone, came = _of(name, old, removed), _of(name, new, added)
        for i in range(max(len(gone), len(came))):
            changes.append(Change(name, gone[i] if i < len(gone) else None,
                                  came[i] if i < len(came) else None))
    return changes


def _of(name: str, lines: list[tuple[str, str]], counts: collections.Counter) -> list[str]:
    """The texts of ``name`` lines counted in ``counts``, in card order (counting them off)."""
    out = []
    for line in lines:
        if line[0] == name and counts[line] > 0:
            counts[line] -= 1
            out.append(line[1])
    return out
