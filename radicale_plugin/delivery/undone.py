# SPDX-License-Identifier: GPL-3.0-or-later
"""Owner values a recipient undid, left out of later deliveries.  Pure.

When a recipient undoes a change the sharing code made to their card
(:mod:`radicale_plugin.recipient.undo`), each owner value the undo took out is
remembered (an :class:`~radicale_plugin.index.UndoneValue`): the field, the
value's compare key, and the line the undo put back in its place.  Until the
owner changes that value, every later delivery (fan-out, offer, accepted offer,
repair of a rolled-back copy) merges the owner's view *minus* it, and the line
put back counts as the recipient's own, so that neither the merge nor the
rollback check takes it for a stale value of the owner's.  Once the owner's view
no longer holds the undone value (the owner changed it), the record no longer
applies (:func:`changed`) and the owner's new value is delivered like any other.

An undo of a removal (the owner dropped a value, the undo put it back) has no
undone value: the line put back stays the recipient's while the owner does not
have that value again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from radicale_plugin.errors import BadCard
from radicale_plugin.index.records import UndoneValue
from radicale_plugin.vcard.codec import parse_line
from radicale_plugin.vcard.merge import Previous
from radicale_plugin.vcard.view import View, entry_from_line


def line_keys(field: str, text: str, regions: Iterable[str]) -> set[tuple[str, str]]:
    """(field, compare key) of a content line as stored in the history, read in each of
    ``regions`` (a national number reads differently in another region); empty for a
    line that cannot be read."""
    if not text:
        return set()
    try:
        line = parse_line(text)
    except BadCard:
        return set()
    entry = entry_from_line(line, "4.0")  # the version matters to no compare key
    return {(field, entry.compare_key(region)) for region in dict.fromkeys(regions)}


def value_key(field: str, text: str | None, region: str) -> str:
    """The compare key of an owner's value written as the line ``text`` (read in the
    owner's ``region``, as the merge reads the owner's view); "" for none."""
    keys = line_keys(field, text or "", (region,))
    return next(iter(keys))[1] if keys else ""


def changed(value: UndoneValue, view: View, region: str) -> bool:
    """Whether the owner changed what the recipient undid, so that the record no longer
    applies: the undone value left the owner's view, or (an undone removal) the value the
    undo put back is the owner's again."""
    values = view.values(region)
    if value.value_key:
        return (value.field, value.value_key) not in values
    return bool(line_keys(value.field, value.kept, (region,)) & values)


@dataclass(frozen=True)
class Applied:
    """The view a delivery merges and what counts as the owner's, with undone values out."""

    view: View
    previous: Previous


def apply(view: View, previous: Previous, undone: Iterable[UndoneValue], region: str,
          card_region: str | None = None) -> Applied:
    """``view`` without the owner values the recipient undid, and ``previous`` without the
    lines the undo put back (they are the recipient's now: the merge keeps them).

    ``region`` reads the owner's values, ``card_region`` (default: the same) the
    recipient's lines, as :func:`radicale_plugin.vcard.merge.merge` does.  Records the
    owner has changed since (:func:`changed`) do not apply.
    """
    regions = (region, card_region or region)
    drop: set[tuple[str, str]] = set()
    kept: set[tuple[str, str]] = set()
    for value in undone:
        if changed(value, view, region):
            continue
        if value.value_key:
            drop.add((value.field, value.value_key))
        kept |= line_keys(value.field, value.kept, regions)
    if not drop and not kept:
        return Applied(view, previous)
    if drop:
        view = View(tuple(e for e in view.entries
                          if (e.name, e.compare_key(region)) not in drop),
                    view.fields, view.withdrawn)
    if kept:
        previous = Previous(
            tuple(e for e in previous.written if (e.name, e.compare_key(region)) not in kept),
            frozenset(v for v in previous.values if v not in kept))
    return Applied(view, previous)
