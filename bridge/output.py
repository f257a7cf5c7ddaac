# SPDX-License-Identifier: GPL-3.0-or-later
"""What a command prints: lines for people, or one JSON document for scripts (``--json``).

Results go to stdout; notes (which region numbers are read in), warnings and
errors go to stderr, so ``--json`` output is always one clean JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Iterable, TextIO


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
