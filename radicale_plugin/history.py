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
from radicale_plugin.vcard import Card, Line

# Lines the sharing code rewrites as bookkeeping, not as a change of a value.
_BOOKKEEPING = frozenset(("REV", "PRODID", "VERSION", "UID"))


def logical(line: Line) -> str:
    """A content line as one unfolded line of text."""
    return re.sub(r"\r?\n[ \t]", "", line.serialize())


def diff(before: Card | None, after: Card) -> list[Change]:
    """The values that differ between ``before`` (None: no card yet) and ``after``.

    Values of one field are paired in order: a replaced number is one change
    (before → after), an added one has no ``before``, a removed one no ``after``.
    """
    old = [ln for ln in (before.lines if before else []) if ln.name not in _BOOKKEEPING]
    new = [ln for ln in after.lines if ln.name not in _BOOKKEEPING]
    changes: list[Change] = []
    for name in dict.fromkeys([ln.name for ln in old] + [ln.name for ln in new]):
        was = [logical(ln) for ln in old if ln.name == name]
        now = [logical(ln) for ln in new if ln.name == name]
        # a repeated line counts each time: dropping one of two equal lines is a removal
        removed = list((collections.Counter(was) - collections.Counter(now)).elements())
        added = list((collections.Counter(now) - collections.Counter(was)).elements())
        for i in range(max(len(removed), len(added))):
            changes.append(Change(name, removed[i] if i < len(removed) else None,
                                  added[i] if i < len(added) else None))
    return changes
