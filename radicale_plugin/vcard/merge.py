# SPDX-License-Identifier: GPL-3.0-or-later
"""Merge an owner's new shared view into the recipient's copy.

The rule: replace exactly the owner's old values with the new ones and leave
everything else alone.  What counts as the owner's old value is what is
*provably* the owner's (see :class:`Previous`): a value the server wrote into
this copy, or a value the owner's view had before (numbers and e-mails only
if they were verified for the owner).  A value the recipient added (an extra
number, a note, a photo) is none of these, so it stays; a single-valued
field the recipient changed ("Mom" instead of "Robert Smith") stays too.

Only the fields the owner shares, or withdraws, are touched: a field the
owner merely stopped sharing keeps its values in copies.  Untouched lines are
kept byte for byte, the copy keeps its UID and its vCard version.

Merging is idempotent: merging the same view into its own result changes
nothing, which is what makes a fan-out re-run after a crash safe.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field

from radicale_plugin.vcard.codec import Card, Line
from radicale_plugin.vcard.view import (ONLY_IN_4, SINGLE_VALUED, Entry, View, entry_from_line,
                                  fit_params, render)

# Never removed from a copy: a card without them is invalid.
_REQUIRED = ("FN", "N")
REQUIRED_FIELDS = _REQUIRED  # (what :mod:`radicale_plugin.delivery.rollback` must leave alone too)

PRODID = "-//radicale-mecard//copy//EN"


@dataclass(frozen=True)
class Previous:
    """What in a copy is provably the owner's, and may be replaced or removed.

    ``written``: the entries of views the server wrote (or was about to
    write) into this copy, used to follow the owner's parameter changes.
    ``values``: (field, compare key) pairs that are the owner's: everything
    the server ever wrote into this copy, and the owner's earlier values.
    """

    written: tuple[Entry, ...] = ()
    values: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    def owned(self, region: str) -> set[tuple[str, str]]:
        return set(self.values) | {(e.name, e.compare_key(region)) for e in self.written}

    def as_written(self, region: str) -> dict[tuple[str, str], Entry]:
        return {(e.name, e.compare_key(region)): e for e in self.written}


def merge(copy: Card, new: View, previous: Previous, region: str,
          card_region: str | None = None) -> Card:
    """Return ``copy`` with the owner's old values replaced by ``new`` (a new Card).

    ``region`` reads the owner's national numbers (the view, what was written);
    ``card_region`` (default: the same) the recipient's, on the lines of the copy.
    A line of the copy may hold either: the owner's text as the server wrote it, or
    the recipient's as they typed it, so it is the owner's value if it is one read
    either way.
    """
    version = copy.version
    lines = list(copy.lines)
    owned = previous.owned(region)
    written = previous.as_written(region)
    regions = (region, card_region or region)
    for name in new.touched():
        if name in ONLY_IN_4 and not version.startswith("4"):
            continue  # GENDER, ANNIVERSARY...: vCard 3.0 has no such property
        news = new.of(name) if name in new.fields else []
        if name in SINGLE_VALUED:
            lines = _merge_single(lines, name, news, owned, written, version, regions)
        else:
            lines = _merge_multi(lines, name, news, owned, written, version, regions)
    result = Card(lines, copy.newline)
    if [ln.serialize() for ln in lines] != [ln.serialize() for ln in copy.lines]:
        _touch_rev(result)
    return result


def copy_line_key(entry: Entry, regions: tuple[str, str], known: set[str]) -> str:
    """The compare key of a line of the copy: read in the recipient's region, unless read in the
    owner's it is one of the owner's (``known``) values."""
    region, card_region = regions
    key = entry.compare_key(card_region)
    if key in known or card_region == region:
        return key
    other = entry.compare_key(region)
    return other if other in known else key


def _insert_at(lines: list[Line], name: str) -> int:
    """Where a new ``name`` line goes: after the last line of that name, else at the end."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].name == name:
            return i + 1
    return len(lines)


def _follow(line: Line, entry: Entry, new: Entry, written: dict[tuple[str, str], Entry],
            key: str, version: str, region: str) -> Line:
    """The same value: follow the owner's parameter changes if the line is as we wrote it.

    "As we wrote it" is compared in the copy's own version and form: the
    entry read back from what we would have written, so a ``TYPE=internet``
    left out of a 4.0 copy, or a number written as a ``tel:`` URI, still counts.
    """
    was = written.get((new.name, key))
    if was is None or was == new:
        return line
    if entry == was or entry == entry_from_line(
            render(was, version, line.group, like=line, region=region), version):
        return render(new, version, line.group, like=line, region=region)
    return line


def _merge_single(lines: list[Line], name: str, news: list[Entry],
                  owned: set[tuple[str, str]], written: dict[tuple[str, str], Entry],
                  version: str, regions: tuple[str, str]) -> list[Line]:
    region = regions[0]
    new = news[0] if news else None
    present = [i for i, ln in enumerate(lines) if ln.name == name]
    if not present:
        if new is not None:
            lines.insert(_insert_at(lines, name), render(new, version, region=region))
        return lines
    i = present[0]
    entry = entry_from_line(lines[i], version)
    new_key = new.compare_key(region) if new is not None else None
    current = copy_line_key(entry, regions, {k for f, k in owned if f == name} | {new_key or ""})
    if new is not None and current == new_key:
        lines[i] = _follow(lines[i], entry, new, written, current, version, region)
        return lines
    if (name, current) not in owned:
        return lines  # the recipient's own value wins
    if new is not None:
        lines[i] = render(new, version, lines[i].group, like=lines[i], region=region)
    elif name not in _REQUIRED:
        gone = lines.pop(i)
        lines = _without_orphan_labels(lines, [gone.group])
    return lines


@dataclass
class _Freed:
    """A line of the copy holding an old value of the owner's, which the owner no longer has."""

    at: int          # its position in the merged lines
    line: Line
    entry: Entry
    was: Entry | None  # the owner's entry written there, if known


def _merge_multi(lines: list[Line], name: str, news: list[Entry],
                 owned: set[tuple[str, str]], written: dict[tuple[str, str], Entry],
                 version: str, regions: tuple[str, str]) -> list[Line]:
    """Merge a field with several values (TEL, EMAIL, ADR...).

    A new value of the owner replaces an old one in place: same position,
    same group, so that a label a phone put beside the number
    (``item1.X-ABLabel``) stays with it, and in the form the copy used for
    it (see :func:`_replace`).  Old values with no new one to take their
    place are removed (with the labels left without a line); new values with
    no old one are added after the field's last line.
    """
    region = regions[0]
    new_by_key = {e.compare_key(region): e for e in news}
    known = set(new_by_key) | {k for f, k in owned if f == name}
    seen: set[str] = set()
    out: list[Line | None] = []
    freed: list[_Freed] = []
    like: Line | None = None  # a line of this field: new values are written in its form
    anchor = -1
    for line in lines:
        if line.name != name:
            out.append(line)
            continue
        like = like or line
        entry = entry_from_line(line, version)
        key = copy_line_key(entry, regions, known)
        if key in new_by_key:
            if key not in seen:  # a second line with the same value is dropped
                seen.add(key)
                out.append(_follow(line, entry, new_by_key[key], written, key, version,
                                   region))
            anchor = len(out)
        elif (name, key) in owned:
            freed.append(_Freed(len(out), line, entry, written.get((name, key))))
            out.append(None)  # the owner no longer has this value: replaced or removed
            anchor = len(out)
        else:
            out.append(line)  # the recipient's own value
            anchor = len(out)
    added = [e for k, e in new_by_key.items() if k not in seen]
    for slot, entry in _pair(freed, added):
        out[slot.at] = _replace(slot, entry, version, region)
        added.remove(entry)
    removed = [slot.line.group for slot in freed if out[slot.at] is None]
    if added:
        at = anchor if anchor >= 0 else len(out)
        out[at:at] = [render(e, version, like=like, region=region) for e in added]
    result = [ln for ln in out if ln is not None]
    return _without_orphan_labels(result, removed) if any(removed) else result


def _kind(entry: Entry) -> frozenset[str]:
    """What kind of value an entry is (cell, work...), whatever its preference."""
    return frozenset(t for t in entry.types if t != "pref")


def _pair(freed: list[_Freed], added: list[Entry]) -> list[tuple[_Freed, Entry]]:
    """Which new value takes the place of which old one.

    First an old and a new value of the same kind (the owner's new mobile
    number replaces the old mobile number), then the rest in order.
    """
    pairs: list[tuple[_Freed, Entry]] = []
    free, left = list(freed), list(added)
    for entry in list(left):
        slot = next((s for s in free
                     if _kind(s.was if s.was is not None else s.entry) == _kind(entry)), None)
        if slot is not None:
            pairs.append((slot, entry))
            free.remove(slot)
            left.remove(entry)
    pairs.extend(zip(free, left))
    return pairs


def _replace(slot: _Freed, new: Entry, version: str, region: str) -> Line:
    """The line holding ``new`` where the copy had the owner's old value ``slot``.

    If the owner changed the kind of value (types), the line follows the
    owner.  Otherwise the line keeps its own TYPE and PREF as written (a phone
    may have re-saved ``TYPE=cell`` as ``TYPE=CELL``, added ``PREF=1`` or
    ``type=VOICE``): only the value changes, written in the line's form (a
    ``tel:`` URI stays one in a 4.0 copy).  Other parameters are the owner's.
    """
    line = slot.line
    fresh = render(new, version, line.group, like=line, region=region)
    if slot.was is not None and _kind(slot.was) != _kind(new):
        return fresh
    value_type = [(k, v) for k, v in fresh.params if k.upper() == "VALUE"]
    params: list[tuple[str, str]] = []
    for key, val in line.params:  # in the line's order, so that a re-save changes little
        if key.upper() in ("TYPE", "PREF") or not val:
            params.append((key, val))
        elif key.upper() == "VALUE" and value_type:
            params.append(value_type.pop())
    params[:0] = value_type  # a VALUE the line did not have
    params.extend((k, v) for k, v in fresh.params
                  if v and k.upper() not in ("TYPE", "PREF", "VALUE"))
    return Line(line.name, fresh.value, fit_params(line.name, params, version),
                group=line.group)


# Apple's companions of a grouped line: they mean nothing without it.
_GROUP_COMPANIONS = frozenset(("X-ABLABEL", "X-ABADR"))


def _without_orphan_labels(lines: list[Line], groups: list[str]) -> list[Line]:
    """``lines`` without the Apple labels of ``groups`` whose labelled line is gone."""
    orphans = set()
    for group in {g.lower() for g in groups if g}:
        members = [ln for ln in lines if ln.group.lower() == group]
        if members and all(ln.name in _GROUP_COMPANIONS for ln in members):
            orphans.add(group)
    if not orphans:
        return lines
    return [ln for ln in lines if ln.group.lower() not in orphans]


def _touch_rev(card: Card) -> None:
    for i, line in enumerate(card.lines):
        if line.name == "REV":
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            card.lines[i] = Line("REV", stamp, group=line.group)


def new_copy(view: View, uid: str, version: str = "3.0") -> Card:
    """A fresh copy holding only the shared view (and what makes it a valid card)."""
    lines = [Line("VERSION", version), Line("PRODID", PRODID), Line("UID", uid)]
    fn = view.of("FN")
    if not fn:
        label = next((e.value for e in view.entries if e.name in ("EMAIL", "TEL")), "?")
        lines.append(Line("FN", label))
    if not view.of("N") and not version.startswith("4"):
        lines.append(Line("N", (fn[0].value if fn else "") + ";;;;"))
    four = version.startswith("4")
    lines.extend(render(e, version) for e in view.entries if four or e.name not in ONLY_IN_4)
    return Card(lines)


def copy_uid(owner: str, recipient: str) -> str:
    """Deterministic UID of a created copy, so that a re-run finds it again."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "mecard:%s:%s" % (owner, recipient)))
