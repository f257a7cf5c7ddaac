# SPDX-License-Identifier: GPL-3.0-or-later
"""``privacy``: show or set who may learn that your numbers and e-mails are yours."""

from __future__ import annotations

import argparse
from typing import TextIO

from bridge.client import Server
from bridge.commands import AddCommand
from bridge.errors import UserError
from bridge.output import emit

PRIVACY = {
    "everyone": "any user of this server may learn that your numbers and e-mails are yours",
    "contacts": "only users whose verified numbers or e-mails are in your address books may "
                "learn that yours are yours",
    "nobody": "nobody may learn that your numbers and e-mails are yours (people reach you only "
              "by user name)",
}


def register(command: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add ``privacy``."""
    p = command("privacy", "who may learn your numbers and e-mails are yours", [common])
    p.add_argument("choice", nargs="?", metavar="everyone|contacts|nobody",
                   help="set it (without: show it)")
    p.set_defaults(run=cmd_privacy)


def cmd_privacy(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``privacy [CHOICE]``: show or set who may learn that my keys are mine."""
    if args.choice is None:
        answer = server.api_get("/privacy")
        verb = "is"
    else:
        choice = args.choice.lower()
        if choice not in PRIVACY:
            raise UserError("privacy takes everyone, contacts or nobody, not %r" % args.choice)
        answer = server.api_post("/privacy", {"discoverability": choice})
        verb = "is now"
    value = answer["discoverability"]
    emit(args, out, answer, ["Discoverability %s %s: %s." % (verb, value,
                                                             PRIVACY.get(value, ""))])
    return 0
