# SPDX-License-Identifier: GPL-3.0-or-later
"""Telling a phone's rollback of a copy from the recipient's deliberate edit.  Pure.

Some clients save a card without ``If-Match`` (Evolution, Thunderbird): an
edit made on a stale local copy writes the older card back over a fresh
update, and the owner's new number is replaced by the old one.  The server
knows what it wrote into the copy (the delivered view) and which values are
provably the owner's (:class:`~radicale_plugin.vcard.merge.Previous`), so it can
tell the two apart, field by field, for the fields the view touches:

* a value in the copy that is provably the owner's (written there before, or
  an earlier value of the owner's view) and that the delivered view does not
  hold is *stale*: an older value of the owner's is back in place of the one
  written.  The copy is ``behind`` and the same merge that delivered the view
  puts it right (it replaces exactly such values);
* a value the owner never had (a number the recipient typed, "Mom" for the
  name) is the recipient's own and is kept; a written value the recipient
  deleted without putting an old one of the owner's in its place is a
  deliberate deletion, not a rollback.  Neither makes the copy ``behind``.

The decision follows :func:`radicale_plugin.vcard.merge.merge` exactly (same
compare keys, same "owned" values, same fields left alone), so that a copy
found stale is no longer stale once merged again: a repair never leaves the
copy still looking rolled back, and never loops by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from radicale_plugin.vcard.merge import REQUIRED_FIELDS, Previous, copy_line_key
from radicale_plugin.vcard.codec import Card
from radicale_plugin.vcard.view import ONLY_IN_4, SINGLE_VALUED, View, entry_from_line

#: How many times one copy is put right for one change of the owner's: a phone that keeps
#: writing the old card back is not fought in a loop (the owner is told instead).
MAX_REPAIRS = 3


@dataclass(frozen=True)
class Stale:
    """An older value of the owner's found in a copy in place of what was written."""

    field: str
    value: str   # its compare key (``tel:+1...``, ``mailto:...``, or the text)


def stale_values(copy: Card, written: View, previous: Previous, region: str,
                 card_region: str | None = None) -> list[Stale]:
    """The owner's older values ``copy`` holds in the fields ``written`` touches.

    ``written`` is the view last delivered into the copy; ``previous`` what in
    the copy is provably the owner's (as the merge is given it); ``region``
    and ``card_region`` the regions the merge reads numbers in (the owner's, the
    recipient's: see :func:`~radicale_plugin.vcard.merge.merge`).  Empty: the copy holds what was
    written, or differs from it only by the recipient's own edits.
    """
    version = copy.version
    owned = previous.owned(region)
    regions = (region, card_region or region)
    found: list[Stale] = []
    for name in written.touched():
        if name in ONLY_IN_4 and not version.startswith("4"):
            continue  # the merge leaves these alone in a 3.0 copy
        wanted = {e.compare_key(region) for e in written.of(name)} \
            if name in written.fields else set()
        known = wanted | {k for f, k in owned if f == name}
        present = [copy_line_key(entry_from_line(ln, version), regions, known)
                   for ln in copy.lines if ln.name == name]
        if name in SINGLE_VALUED:
            present = present[:1]  # the merge reads the first line only
            if not wanted and name in REQUIRED_FIELDS:
                continue  # never removed: an old value here is no sign of anything
        for key in dict.fromkeys(present):
            if key not in wanted and (name, key) in owned:
                found.append(Stale(name, key))
    return found
