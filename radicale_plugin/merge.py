# SPDX-License-Identifier: GPL-3.0-or-later
"""Merge an owner's new shared view into the recipient's copy.

The rule: replace exactly the owner's old values with the new ones and leave
everything else alone.  A value the recipient added (an extra number, a
note, a photo) is not in the old view, so it stays; a single-valued field the
recipient changed ("Mom" instead of "Robert Smith") no longer equals the old
value, so it stays too.  Untouched lines are kept byte for byte, the copy
keeps its UID and its vCard version.

Merging is idempotent: merging the same (old, new) into its own result
changes nothing, which is what makes a fan-out re-run after a crash safe.
"""

from __future__ import annotations

import datetime
import uuid

from radicale_plugin.vcard import Card, Line
from radicale_plugin.view import SINGLE_VALUED, Entry, View, entry_from_line, render

# Never removed from a copy: a card without them is invalid.
_REQUIRED = ("FN", "N")

PRODID = "-//radicale-mecard//copy//EN"


def merge(copy: Card, old: View | None, new: View, region: str) -> Card:
    """Return ``copy`` with ``old`` values replaced by ``new`` (a new Card)."""
    version = copy.version
    lines = list(copy.lines)
    old_entries = old.entries if old else ()
    names = list(dict.fromkeys([e.name for e in new.entries] + [e.name for e in old_entries]))
    for name in names:
        olds = [e for e in old_entries if e.name == name]
        news = new.of(name)
        if name in SINGLE_VALUED:
            lines = _merge_single(lines, name, olds, news, version, region)
        else:
            lines = _merge_multi(lines, name, olds, news, version, region)
    result = Card(lines, copy.newline)
    if [ln.serialize() for ln in lines] != [ln.serialize() for ln in copy.lines]:
        _touch_rev(result)
    return result


def _key(line: Line, version: str, region: str) -> str:
    return entry_from_line(line, version).compare_key(region)


def _insert_at(lines: list[Line], name: str) -> int:
    """Where a new ``name`` line goes: after the last line of that name, else at the end."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].name == name:
            return i + 1
    return len(lines)


def _merge_single(lines: list[Line], name: str, olds: list[Entry], news: list[Entry],
                  version: str, region: str) -> list[Line]:
    old = olds[0] if olds else None
    new = news[0] if news else None
    present = [i for i, ln in enumerate(lines) if ln.name == name]
    if not present:
        if new is not None:
            lines.insert(_insert_at(lines, name), render(new, version))
        return lines
    i = present[0]
    current = _key(lines[i], version, region)
    if new is not None and current == new.compare_key(region):
        # same value; follow the owner's parameter changes only
        if old is not None and old != new and entry_from_line(lines[i], version) == old:
            lines[i] = render(new, version, lines[i].group)
        return lines
    if old is None or current != old.compare_key(region):
        return lines  # the recipient's own value wins
    if new is not None:
        lines[i] = render(new, version, lines[i].group)
    elif name not in _REQUIRED:
        del lines[i]
    return lines


def _merge_multi(lines: list[Line], name: str, olds: list[Entry], news: list[Entry],
                 version: str, region: str) -> list[Line]:
    old_by_key = {e.compare_key(region): e for e in olds}
    new_by_key = {e.compare_key(region): e for e in news}
    seen: set[str] = set()
    out: list[Line] = []
    anchor = -1
    for line in lines:
        if line.name != name:
            out.append(line)
            continue
        key = _key(line, version, region)
        if key in new_by_key:
            old, new = old_by_key.get(key), new_by_key[key]
            if key not in seen:
                seen.add(key)
                if old is not None and old != new and entry_from_line(line, version) == old:
                    line = render(new, version, line.group)
                out.append(line)
            anchor = len(out)
        elif key in old_by_key:
            anchor = len(out)  # dropped: the owner no longer has this value
        else:
            out.append(line)  # the recipient's own value
            anchor = len(out)
    added = [render(e, version) for k, e in new_by_key.items() if k not in seen]
    if added:
        at = anchor if anchor >= 0 else len(out)
        out[at:at] = added
    return out


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
    lines.extend(render(e, version) for e in view.entries)
    return Card(lines)


def copy_uid(owner: str, recipient: str) -> str:
    """Deterministic UID of a created copy, so that a re-run finds it again."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "mecard:%s:%s" % (owner, recipient)))
