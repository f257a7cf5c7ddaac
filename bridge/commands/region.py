# SPDX-License-Identifier: GPL-3.0-or-later
"""``region [CODE|--clear]``: the region the server reads your national numbers in.

Your setting comes first, then your me card's country code, then the
server's default (:mod:`bridge.region` has the bridge's own choice).
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from bridge.client import Server
from bridge.commands import AddCommand
from bridge.errors import UserError
from bridge.output import emit
from bridge.region import check_region


def register(command: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add ``region``."""
    p = command("region", "the region your national numbers are read in; set or --clear it",
                [common])
    p.add_argument("code", nargs="?", metavar="CODE",
                   help="a two-letter country code such as DE (without: show it)")
    p.add_argument("--clear", action="store_true",
                   help="use your me card's country code, else the server's default")
    p.set_defaults(run=cmd_region)


_SOURCES = {"setting": "your setting",
            "me card": "the country code %s of your me card's numbers",
            "server default": "the server's default"}


def region_lines(me: dict[str, Any]) -> list[str]:
    """``GET /me``'s region for people: which, and why."""
    region = me.get("region") or {"code": me.get("default_region"), "source": "server default"}
    why = _SOURCES.get(region.get("source", ""), region.get("source", ""))
    if "%s" in why:
        why %= region.get("detail") or "?"
    lines = ["Your numbers without a country code are read as %s (%s)."
             % (region.get("code"), why)]
    if region.get("source") != "setting":
        lines.append("Set yours: mecard-bridge region CODE (e.g. DE); it comes before your "
                     "me card's country code and the server's default.")
    return lines


def cmd_region(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``region [CODE|--clear]``: show, set or clear the region the server reads your
    books and me card in (your setting comes first, then your me card, then the server)."""
    if args.clear and args.code:
        raise UserError("give a region code or --clear, not both")
    if args.clear:
        me = server.api_post("/region", {"region": None})
    elif args.code:
        me = server.api_post("/region", {"region": check_region(args.code, "region")})
    else:
        me = server.me()
    emit(args, out, {"region": me.get("region"), "default_region": me.get("default_region")},
         region_lines(me))
    return 0
