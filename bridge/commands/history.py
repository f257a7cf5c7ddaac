# SPDX-License-Identifier: GPL-3.0-or-later
"""The recipient's history: ``history`` (what the sharing code changed in your cards) and
``undo ID`` (put one change back: your values return, your later edits stay).

Each prints a small table or a few lines, or with ``--json`` the server's answer.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, TextIO
from urllib.parse import quote

from bridge.client import Server
from bridge.commands import AddCommand
from bridge.errors import UserError
from bridge.output import emit, readable, wants_json


def register(command: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add ``history`` and ``undo``."""
    p = command("history", "changes the sharing code made to your cards, newest first",
                [common])
    p.add_argument("--owner", metavar="NAME", help="only the changes of this owner's card")
    p.set_defaults(run=cmd_history)
    p = command("undo", "undo one change of your history (its ID): your earlier values "
                        "come back, your later edits stay", [common])
    p.add_argument("id", metavar="ID", help="the change's ID, as `history` shows it")
    p.set_defaults(run=cmd_undo)


def _state(entry: dict[str, Any]) -> str:
    if entry["undone"]:
        return "undone %s" % entry["undone"]
    if entry.get("undoes"):
        return "your undo of %s" % entry["undoes"]
    return "can be undone" if entry["undoable"] else ""


def cmd_history(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``history [--owner NAME]``: each change, value by value, and whether it can be undone."""
    call = "/history"
    if args.owner is not None:
        if not args.owner.strip() or "/" in args.owner or args.owner.startswith("."):
            raise UserError("%r is not a user name: give the owner as `history` shows it"
                            % args.owner)
        call += "?owner=" + quote(args.owner, safe="")
    answer = server.api_get(call)
    entries = answer["history"]
    if not entries or wants_json(args):
        emit(args, out, answer, ["No change was made to your cards%s." % (
            " by %s's card" % args.owner if args.owner else "")])
        return 0
    for e in entries:
        print("%-6s %s  %s  %s %s  %s" % (e["id"], e["time"], e["owner"], e["action"],
                                          e["card"], _state(e)), file=out)
        for c in e["changes"]:
            print("       %s: %s → %s" % (c["field"], readable(c["before"]),
                                          readable(c["after"])), file=out)
    if any(e["undoable"] for e in entries):
        print("Undo one with: mecard-bridge undo ID", file=out)
    return 0


def cmd_undo(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``undo ID``: put the values before that change back into the card."""
    if not re.fullmatch(r"[0-9]{1,18}", args.id.strip()):
        raise UserError("%r is not a change's ID: give the number `mecard-bridge history` "
                        "shows first on each line" % args.id)
    answer = server.api_post("/history/%s/undo" % args.id.strip(), {})
    lines = ["Undid change %s in %s%s." % (answer["undone"], answer["card"],
                                           "" if answer["written"] else " (nothing to write)")]
    for c in answer["put_back"]:
        lines.append("  put back %s: %s (instead of %s)" % (c["field"], readable(c["before"]),
                                                           readable(c["after"])))
    for c in answer["not_put_back"]:
        lines.append("  not put back %s: %s; %s" % (c["field"], readable(c["before"]),
                                                    c["why"]))
    emit(args, out, answer, lines)
    return 0
