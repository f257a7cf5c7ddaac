# SPDX-License-Identifier: GPL-3.0-or-later
"""The key holder's commands: ``verify`` proves a number or e-mail of the me card is
yours (by a code), ``keys`` lists them with their state and the notices."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from bridge.client import Server
from bridge.commands import AddCommand
from bridge.errors import UserError
from bridge.output import emit, wants_json


def register(command: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add ``verify`` and ``keys``."""
    p = command("verify", "prove a number or e-mail of your me card is yours (a code)",
                [common])
    p.add_argument("key", help="the number or e-mail")
    p.add_argument("--code", help="the code you received: confirm without sending a new one")
    p.set_defaults(run=cmd_verify)
    command("keys", "your numbers and e-mails and their state", [common]).set_defaults(
        run=cmd_keys)


def cmd_verify(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``verify KEY``: send a code to a number or e-mail of my me card, then confirm it."""
    key, code = args.key, args.code
    if code is None:
        answer = server.api_post("/keys/verify", {"key": key})
        key = answer["key"]
        if not sys.stdin.isatty() or wants_json(args):
            emit(args, out, answer, ["%s: %s" % (key, answer["status"]),
                                     "When the code arrives: mecard-bridge verify --code CODE "
                                     "%s" % key])
            return 0
        print("%s: %s" % (key, answer["status"]), file=out)
        code = input("Code for %s: " % key).strip()
        if not code:
            raise UserError("no code typed; when it arrives: mecard-bridge verify --code "
                            "CODE %s" % key)
    answer = server.api_post("/keys/confirm", {"key": key, "code": code.strip()})
    emit(args, out, answer, ["%s is verified: it is yours now." % answer["key"]])
    return 0


def cmd_keys(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``keys``: my numbers and e-mails, their state, and notices."""
    keys = server.api_get("/keys")["keys"]
    notices = server.me().get("notices") or []
    lines = []
    if not keys:
        lines.append("You have no numbers or e-mails yet: add them to your me card.")
    else:
        width = max(len("key"), *(len(k["key"]) for k in keys))
        fmt = "%%-%ds  %%-10s  %%-10s  %%s" % width
        lines.append(fmt % ("key", "state", "me card", "verified"))
        for k in keys:
            lines.append(fmt % (k["key"], k["state"], "yes" if k["on_me_card"] else "no",
                                k["verified"] or "-")
                         + (" (moved %s)" % k["moved"] if k["moved"] else ""))
    lines.extend("notice: %s" % notice for notice in notices)
    emit(args, out, {"keys": keys, "notices": notices}, lines)
    return 0
