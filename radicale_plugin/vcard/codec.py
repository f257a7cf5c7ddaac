# SPDX-License-Identifier: GPL-3.0-or-later
"""A line-level vCard codec that keeps untouched lines byte for byte.

vobject reorders properties, merges parameters and damages vCard 4.0
``data:`` photos (see ``shared/docs/radicale-notes.md``), so cards that we
merge into are never round-tripped through it.  A :class:`Card` is the list
of its content lines; each :class:`Line` remembers the exact folded text it
was read from and is re-emitted unchanged unless it was replaced.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from radicale_plugin.errors import BadCard

_NAME_RE = re.compile(r"^(?:([A-Za-z0-9-]+)\.)?([A-Za-z0-9-]+)$")


@dataclass
class Line:
    """One content line: ``[group.]NAME[;PARAM=v,...]:value``."""

    name: str
    value: str
    params: list[tuple[str, str]] = field(default_factory=list)
    group: str = ""
    raw: str | None = None  # the folded text as read; None for new lines

    def param(self, key: str) -> list[str]:
        """All values of parameter ``key`` (case-insensitive), split at commas."""
        out: list[str] = []
        for k, v in self.params:
            if k.upper() == key.upper():
                out.extend(x for x in _split_unquoted(v, ",") if x != "")
        return out

    def type_values(self) -> list[str]:
        """TYPE values as written, unquoted: vCard 4.0 may quote a list
        (``TYPE="voice,home"``), iOS repeats the parameter (``type=CELL;type=pref``)."""
        out: list[str] = []
        for value in self.param("TYPE"):
            if len(value) > 1 and value[0] == value[-1] == '"':
                out.extend(v for v in value[1:-1].split(",") if v)
            else:
                out.append(value)
        return out

    def types(self) -> set[str]:
        """TYPE values, upper-cased, including vCard 2.1 style bare params."""
        found = {t.upper() for t in self.type_values()}
        found.update(k.upper() for k, v in self.params if v == "" and k)
        return found

    def serialize(self) -> str:
        if self.raw is not None:
            return self.raw
        head = (self.group + "." if self.group else "") + self.name
        for k, v in self.params:
            head += ";" + k if v == "" else ";%s=%s" % (k, v)
        return fold(head + ":" + self.value)


@dataclass
class Card:
    """One vCard: its content lines between BEGIN:VCARD and END:VCARD."""

    lines: list[Line]
    newline: str = "\r\n"

    @property
    def version(self) -> str:
        return self.first_value("VERSION") or "3.0"

    def get(self, name: str) -> list[Line]:
        name = name.upper()
        return [ln for ln in self.lines if ln.name == name]

    def first_value(self, name: str) -> str | None:
        found = self.get(name)
        return found[0].value if found else None

    def serialize(self) -> str:
        out = ["BEGIN:VCARD"]
        out.extend(ln.serialize() for ln in self.lines)
        out.append("END:VCARD")
        return self.newline.join(out) + self.newline


def fold(line: str, limit: int = 75) -> str:
    """Fold a logical line into physical lines of at most ``limit`` octets."""
    data = line.encode("utf-8")
    if len(data) <= limit:
        return line
    parts: list[str] = []
    start = 0
    width = limit
    while start < len(data):
        end = min(start + width, len(data))
        # never split a UTF-8 sequence
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1
        parts.append(data[start:end].decode("utf-8"))
        start = end
        width = limit - 1  # continuation lines start with a space
    return "\r\n ".join(parts)


def _split_unquoted(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside double quotes."""
    if '"' not in text:
        return text.split(sep)  # the common case, at C speed
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _physical_groups(text: str) -> Iterator[tuple[str, str]]:
    """Yield (logical line, raw folded text) pairs."""
    raw_lines = re.split(r"\r\n|\n|\r", text)
    logical: list[str] = []
    raw: list[str] = []
    for physical in raw_lines:
        if physical[:1] in (" ", "\t") and logical:
            logical.append(physical[1:])
            raw.append(physical)
            continue
        if logical:
            yield "".join(logical), "\r\n".join(raw)
        logical, raw = ([physical], [physical]) if physical else ([], [])
    if logical:
        yield "".join(logical), "\r\n".join(raw)


def parse_line(logical: str, raw: str | None = None) -> Line:
    """Parse one unfolded content line."""
    # the name and params end at the first colon outside quotes
    colon = logical.find(":")
    if colon < 0:
        raise BadCard("line without a colon: %r" % logical[:60])
    if '"' not in logical[:colon]:
        head, value = logical[:colon], logical[colon + 1:]
    else:
        quoted = False
        for i, ch in enumerate(logical):
            if ch == '"':
                quoted = not quoted
            elif ch == ":" and not quoted:
                head, value = logical[:i], logical[i + 1:]
                break
        else:
            raise BadCard("line without a colon: %r" % logical[:60])
    pieces = _split_unquoted(head, ";")
    match = _NAME_RE.match(pieces[0])
    if not match:
        raise BadCard("bad property name %r" % pieces[0][:40])
    params: list[tuple[str, str]] = []
    for piece in pieces[1:]:
        key, _, val = piece.partition("=")
        params.append((key, val))
    return Line(name=match.group(2).upper(), value=value, params=params,
                group=match.group(1) or "", raw=raw)


def parse_cards(text: str) -> list[Card]:
    """Parse every vCard in ``text``; raise :class:`BadCard` when malformed."""
    cards: list[Card] = []
    current: list[Line] | None = None
    newline = "\r\n" if "\r\n" in text else "\n"
    for logical, raw in _physical_groups(text):
        if not logical.strip():
            continue
        upper = logical.strip().upper()
        if upper == "BEGIN:VCARD":
            if current is not None:
                raise BadCard("nested BEGIN:VCARD")
            current = []
        elif upper == "END:VCARD":
            if current is None:
                raise BadCard("END:VCARD without BEGIN:VCARD")
            cards.append(Card(current, newline))
            current = None
        elif current is None:
            raise BadCard("text outside BEGIN:VCARD/END:VCARD: %r" % logical[:60])
        else:
            current.append(parse_line(logical, raw.replace("\r\n", newline)))
    if current is not None:
        raise BadCard("missing END:VCARD")
    if not cards:
        raise BadCard("no vCard found")
    return cards


def parse_card(text: str) -> Card:
    """Parse exactly one vCard."""
    cards = parse_cards(text)
    if len(cards) != 1:
        raise BadCard("expected one vCard, found %d" % len(cards))
    return cards[0]


_last = threading.local()


def read_card(text: str) -> Card:
    """:func:`parse_card`, remembering the last card per thread: a written card is read by
    the checks, the card-key index and the me-card bookkeeping of one request.

    The card returned must not be changed (merging makes a new one).
    """
    if getattr(_last, "text", None) == text:
        return _last.card
    card = parse_card(text)
    _last.text, _last.card = text, card
    return card


def unescape(value: str) -> str:
    """Undo vCard text escaping (``\\n``, ``\\,``, ``\\;``, ``\\\\``)."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def components(value: str) -> list[str]:
    """Split a structured value (N, ADR) at unescaped semicolons."""
    return [unescape(p) for p in re.split(r"(?<!\\);", value)]


def split_list(value: str) -> Iterable[str]:
    """Split a list value (CATEGORIES, NICKNAME) at unescaped commas."""
    return (unescape(p).strip() for p in re.split(r"(?<!\\),", value))
