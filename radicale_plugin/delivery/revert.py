# SPDX-License-Identifier: GPL-3.0-or-later
"""Undoing one history entry on the recipient's card as it is now.  Pure.

A history entry holds each value before and after as whole content lines
(:mod:`.history`).  Undoing it puts the ``before`` lines back and takes the
``after`` lines out, and leaves every other line alone: what the recipient
changed since (a note, another number) stays.  Where the recipient has since
changed a line the entry wrote, their word wins: that value is not put back,
and the answer says so (:attr:`Reverted.left`).  A line the entry wrote is
found by its exact text, else by its value (a phone may have re-saved
``TYPE=CELL`` as ``TYPE=cell``).  A card never loses its name to an undo.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Sequence

from radicale_plugin.delivery.history import logical
from radicale_plugin.delivery.undone import line_keys
from radicale_plugin.errors import BadCard
from radicale_plugin.index.records import Change
from radicale_plugin.vcard.codec import Card, Line, parse_line
from radicale_plugin.vcard.merge import REQUIRED_FIELDS
from radicale_plugin.vcard.view import SINGLE_VALUED

CHANGED_SINCE = "you changed or removed this value since: your version is kept"
ALREADY_THERE = "the earlier value is on your card already"
TAKEN_SINCE = "you gave this field another value since: yours is kept"
NEEDS_NAME = "a card keeps its name: the value stays"
UNREADABLE = "the recorded value cannot be read back"

# Apple's companions of a grouped line: they mean nothing without it.
_COMPANIONS = frozenset(("X-ABLABEL", "X-ABADR"))


@dataclass
class Reverted:
    """The card after the undo, the changes put back, and those not put back with why."""

    card: Card
    put_back: list[Change] = field(default_factory=list)
    left: list[tuple[Change, str]] = field(default_factory=list)


def revert(card: Card, changes: Sequence[Change], regions: tuple[str, str]) -> Reverted:
    """``card`` with ``changes`` undone as far as the recipient's later edits allow.

    ``regions``: the owner's and the recipient's (a number's value is read in both).
    """
    lines = list(card.lines)
    out = Reverted(card)
    for change in changes:
        why = _undo_one(lines, change, regions)
        if why:
            out.left.append((change, why))
        else:
            out.put_back.append(change)
    if out.put_back:
        result = Card(lines, card.newline)
        _touch_rev(result)
        out.card = result
    return out


def _undo_one(lines: list[Line], change: Change, regions: tuple[str, str]) -> str:
    """Undo one change in ``lines`` (in place); "" if done, else why not."""
    name = change.field
    try:
        before = parse_line(change.before) if change.before else None
    except BadCard:
        return UNREADABLE
    at = _find(lines, name, change.after, regions) if change.after else None
    if change.after and at is None:
        return CHANGED_SINCE
    if before is not None and _find(lines, name, change.before, regions,
                                    skip=at) is not None:
        if at is None:
            return ALREADY_THERE
        _remove(lines, at)  # the earlier value is there already: only the later one goes
        return ""
    if at is not None:
        if before is not None:
            lines[at] = before
            return ""
        if name in REQUIRED_FIELDS and sum(ln.name == name for ln in lines) == 1:
            return NEEDS_NAME
        _remove(lines, at)
        return ""
    assert before is not None  # a change has a before or an after
    if name in SINGLE_VALUED and any(ln.name == name for ln in lines):
        return TAKEN_SINCE
    lines.insert(_insert_at(lines, name), before)
    return ""


def _find(lines: list[Line], name: str, text: str | None, regions: tuple[str, str],
          skip: int | None = None) -> int | None:
    """The line of ``name`` that is ``text``: the same text, else the same value."""
    if not text:
        return None
    candidates = [i for i, ln in enumerate(lines) if ln.name == name and i != skip]
    for i in candidates:
        if logical(lines[i]) == text:
            return i
    wanted = line_keys(name, text, regions)
    for i in candidates:
        if line_keys(name, logical(lines[i]), regions) & wanted:
            return i
    return None


def _remove(lines: list[Line], at: int) -> None:
    gone = lines.pop(at)
    group = gone.group.lower()
    if group:
        members = [ln for ln in lines if ln.group.lower() == group]
        if members and all(ln.name in _COMPANIONS for ln in members):
            lines[:] = [ln for ln in lines if ln.group.lower() != group]


def _insert_at(lines: list[Line], name: str) -> int:
    """After the last line of ``name``, else at the end."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].name == name:
            return i + 1
    return len(lines)


def _touch_rev(card: Card) -> None:
    for i, line in enumerate(card.lines):
        if line.name == "REV":
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            card.lines[i] = Line("REV", stamp, group=line.group)
