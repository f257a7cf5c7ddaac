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

from radicale_plugin.vcard import Card, Line
from radicale_plugin.view import SINGLE_VALUED, Entry, View, entry_from_line, render

# Never removed from a copy: a card without them is invalid.
_REQUIRED = ("FN", "N")

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


def merge(copy: Card, new: View, previous: Previous, region: str) -> Card:
    """Return ``copy`` with the owner's old values replaced by ``new`` (a new Card)."""
    version = copy.version
    lines = list(copy.lines)
    owned = previous.owned(region)
    written = previous.as_written(region)
    for name in new.touched():
        news = new.of(name) if name in new.fields else []
        if name in SINGLE_VALUED:
            lines = _merge_single(lines, name, news, owned, written, version, region)
        else:
            lines = _merge_multi(lines, name, news, owned, written, version, region)
    result = Card(lines, copy.newline)
    if [ln.serialize() for ln in lines] != [ln.serialize() for ln in copy.lines]:
        _touch_rev(result)
    return result


def _insert_at(lines: list[Line], name: str) -> int:
    """Where a new ``name`` line goes: after the last line of that name, else at the end."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].name == name:
            return i + 1
    return len(lines)


def _follow(line: Line, entry: Entry, new: Entry, written: dict[tuple[str, str], Entry],
            key: str, version: str) -> Line:
    """The same value: follow the owner's parameter changes if the line is as we wrote it."""
    was = written.get((new.name, key))
    if was is not None and was != new and entry == was:
        return render(new, version, line.group)
    return line


def _merge_single(lines: list[Line], name: str, news: list[Entry],
                  owned: set[tuple[str, str]], written: dict[tuple[str, str], Entry],
                  version: str, region: str) -> list[Line]:
    new = news[0] if news else None
    present = [i for i, ln in enumerate(lines) if ln.name == name]
    if not present:
        if new is not None:
            lines.insert(_insert_at(lines, name), render(new, version))
        return lines
    i = present[0]
    entry = entry_from_line(lines[i], version)
    current = entry.compare_key(region)
    if new is not None and current == new.compare_key(region):
        lines[i] = _follow(lines[i], entry, new, written, current, version)
        return lines
    if (name, current) not in owned:
        return lines  # the recipient's own value wins
    if new is not None:
        lines[i] = render(new, version, lines[i].group)
    elif name not in _REQUIRED:
        del lines[i]
    return lines


def _merge_multi(lines: list[Line], name: str, news: list[Entry],
                 owned: set[tuple[str, str]], written: dict[tuple[str, str], Entry],
                 version: str, region: str) -> list[Line]:
    new_by_key = {e.compare_key(region): e for e in news}
    seen: set[str] = set()
    out: list[Line] = []
    anchor = -1
    for line in lines:
        if line.name != name:
            out.append(line)
            continue
        entry = entry_from_line(line, version)
        key = entry.compare_key(region)
        if key in new_by_key:
            if key not in seen:  # a second line with the same value is dropped
                seen.add(key)
                out.append(_follow(line, entry, new_by_key[key], written, key, version))
            anchor = len(out)
        elif (name, key) in owned:
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
