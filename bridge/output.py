# SPDX-License-Identifier: GPL-3.0-or-later
"""What a command prints: lines for people, or one JSON document for scripts (``--json``).

Results go to stdout; notes (which region numbers are read in), warnings and
errors go to stderr, so ``--json`` output is always one clean JSON document.
A value of a change reads as people write it (:func:`readable`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Iterable, TextIO

from radicale_plugin.errors import BadCard
from radicale_plugin.vcard.codec import components, parse_line, unescape

#: values shown as their components, and values shown only by their size
_STRUCTURED = ("N", "ADR", "ORG")
_BINARY = ("PHOTO", "LOGO", "SOUND", "KEY")


def wants_json(args: argparse.Namespace) -> bool:
    """Whether the user asked for ``--json``."""
    return bool(getattr(args, "json", False))


def emit(args: argparse.Namespace, out: TextIO, data: Any, lines: Iterable[str]) -> None:
    """Print ``data`` as JSON with ``--json``, else the ``lines`` meant for people."""
    if wants_json(args):
        json.dump(data, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        for line in lines:
            print(line, file=out)


def note(text: str) -> None:
    """One line for the user on stderr (a note or a warning), never mixed into results."""
    print(text, file=sys.stderr)


def readable(content_line: str | None) -> str:
    """One value of a change as a person reads it: unescaped, on one line, with its TYPE."""
    if content_line is None:
        return "(none)"
    try:
        line = parse_line(content_line)
    except BadCard:
        return content_line
    if line.name in _BINARY or line.value.startswith("data:") or line.param("ENCODING"):
        return "(%s data, %d characters)" % (line.name.lower(), len(line.value))
    if line.name in _STRUCTURED:
        value = ", ".join(p for p in components(line.value) if p.strip())
    else:
        value = unescape(line.value)
    value = " / ".join(part for part in value.splitlines() if part.strip())
    types = ",".join(sorted(t.lower() for t in line.types()))
    return "%s (%s)" % (value, types) if types else value
