# SPDX-License-Identifier: GPL-3.0-or-later
"""``notifications``: show or set how you hear of offers (e-mail, or the pages only)."""

from __future__ import annotations

import argparse
from typing import TextIO

from bridge.client import Server
from bridge.commands import AddCommand
from bridge.errors import UserError
from bridge.output import emit

CHOICES = {
    "offers": "an e-mail when a change waits for your answer",
    "offers-and-changes": "an e-mail when a change waits for your answer, and when one was "
                          "applied to your cards without asking",
    "none": "no e-mail: offers wait for you on the sharing pages (and in 'offers')",
}


def register(command: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add ``notifications``."""
    p = command("notifications", "how you hear of offers: e-mail or the pages only", [common])
    p.add_argument("--email", metavar="offers|offers-and-changes|none",
                   help="what to be e-mailed about (without: show the current choice)")
    p.add_argument("--address", metavar="mailto:ADDRESS",
                   help="which of your verified e-mail addresses (default: the first)")
    p.set_defaults(run=cmd_notifications)


def cmd_notifications(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``notifications [--email X] [--address A]``: show or set my notification e-mails."""
    if args.email is None and args.address is None:
        answer = server.api_get("/notifications")
        verb = "are"
    else:
        current = server.api_get("/notifications")
        choice = (args.email or current["email"]).lower()
        if choice not in CHOICES:
            raise UserError("--email takes offers, offers-and-changes or none, not %r"
                            % args.email)
        address = args.address
        if address is not None and not address.lower().startswith("mailto:"):
            address = "mailto:" + address
        answer = server.api_post("/notifications", {"email": choice, "address": address})
        verb = "are now"
    lines = ["Notification e-mails %s %s: %s." % (verb, answer["email"],
                                                  CHOICES.get(answer["email"], ""))]
    if answer["email"] != "none":
        lines.append("They go to %s." % (answer["address"] or
                                         "nobody yet: verify an e-mail address first "
                                         "(mecard-bridge verify you@example.org)"))
    if not answer.get("sent_by_server", True):
        lines.append("This server sends no e-mails (its admin has no mail server set).")
    if answer["addresses"]:
        lines.append("Your verified addresses: %s" % ", ".join(answer["addresses"]))
    emit(args, out, answer, lines)
    return 0
