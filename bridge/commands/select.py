# SPDX-License-Identifier: GPL-3.0-or-later
"""``select``: show whom a selection picks; ``--apply`` makes them the targets."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from bridge.client import Server
from bridge.commands import AddCommand
from bridge.commands.me import region_for
from bridge.commands.selection import selection, selection_options
from bridge.output import emit
from bridge.region import Region
from bridge.select import is_server_rule


def register(command: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add ``select`` to the command line."""
    p = command("select", "show whom a selection picks; --apply makes them your targets",
                [common, selection_options()],
                "Show whom a selection picks; --apply makes them your targets.\n\n"
                "Selectors: all, group:NAME, frequent:N (at least N calls/messages in the "
                "log),\ncontact:TEXT (name, e-mail or number), pick (choose from a list, in a "
                "terminal).\nCombine them left to right with --or, --and and --except.")
    p.add_argument("selector", help="the first selector")
    p.add_argument("--apply", choices=("replace", "extend"),
                   help="replace your target list with the selection, or add it")
    p.add_argument("--dry-run", action="store_true", help="show the table and change nothing")
    p.set_defaults(run=cmd_select)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    """The selection as a table: contact, why, user, and why not a user."""
    widths = [max([len(h)] + [len(str(r[k] or "")) for r in rows])
              for h, k in (("contact", "contact"), ("why", "why"), ("user", "user"))]
    fmt = "%%-%ds  %%-%ds  %%-%ds  %%s" % tuple(widths)
    lines = [(fmt % ("contact", "why", "user", "")).rstrip()]
    for r in rows:
        lines.append((fmt % (r["contact"], r["why"], r["user"] or "-", r["note"])).rstrip())
    return lines


def _region_json(region: Region) -> dict[str, str]:
    """The region used, for ``--json``."""
    return {"code": region.code, "source": region.source}


def cmd_select(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``select``: show whom a selection picks; ``--apply`` makes them the targets."""
    region = region_for(args, server, args.settings.region)
    selected = selection(args, args.selector, server, region)
    selected.tell()
    rows, users = selected.rows, selected.users()
    lines = _table(rows) + ["%d contact(s), %d server user(s)." % (len(rows), len(users))]
    data: dict[str, Any] = {"region": _region_json(region), "selection": rows,
                            "users": users, "warnings": selected.warnings, "applied": None}
    if args.dry_run or not args.apply:
        if not args.dry_run:
            lines.append("Nothing changed; add --apply replace or --apply extend to make them "
                         "your targets.")
        emit(args, out, data, lines)
        return 0
    if is_server_rule(selected.first, selected.steps):
        wanted = [str(selected.first)]  # the server re-evaluates it at every change
    else:
        wanted = ["user:" + u for u in users]
    before = server.me()["targets"]
    if args.apply == "replace":
        after = server.api_post("/targets", {"targets": wanted})["targets"]
    else:
        after = server.api_post("/targets", {"add": wanted})["targets"]
    added = [t for t in after if t not in before]
    removed = [t for t in before if t not in after]
    if not added and not removed:
        lines.append("Targets unchanged.")
    lines.extend(["+ %s" % t for t in added] + ["- %s" % t for t in removed])
    data["applied"] = {"mode": args.apply, "added": added, "removed": removed,
                       "targets": after}
    emit(args, out, data, lines)
    return 0
