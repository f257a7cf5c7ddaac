# SPDX-License-Identifier: GPL-3.0-or-later
"""``send``: send your current card now, to all your targets or to the people named.

  mecard-bridge send              every target gets the card they lack
  mecard-bridge send bob carol    these people only (user names on the server)

Nothing on the card changes ("update all" / "update some"): whoever already has
the current card is not written again; a copy that is behind, failed or was
stopped is sent again.  A name that is no user and a user who does not let you
find them are left out alike (``POST /send``, docs/api.md).
"""

from __future__ import annotations

import argparse
from typing import TextIO

from bridge.client import Server
from bridge.commands import AddCommand
from bridge.commands.status import status_lines, status_report
from bridge.errors import UserError
from bridge.output import emit


def register(command: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add ``send`` to the command line."""
    p = command("send", "send your current card now, to all targets or to the people named",
                [common],
                "Send your current card now, without changing it: to all your targets, or\n"
                "to the people named (their user names on the server).  Whoever already\n"
                "has it is not written again.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="a user to send to (default: all your targets)")
    p.set_defaults(run=cmd_send)


def cmd_send(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``send``: POST /send, then the state of each recipient."""
    names = [n.strip() for n in args.names if n.strip()]
    if args.names and not names:
        raise UserError("give user names, or no name to send to all your targets")
    answer = server.api_post("/send", {"recipients": names or "all"})
    if names:
        line = ("Sent to %s (a name that is no user here, or who does not let you find "
                "them, is left out)." % ", ".join(names))
    else:
        line = "Sent to all your targets."
    report = status_report(server)
    emit(args, out, {"sent_to": answer["recipients"], "seq": answer["seq"], "status": report},
         [line] + status_lines(report))
    return 0
