# SPDX-License-Identifier: GPL-3.0-or-later
"""``audience`` and ``preview``: a field set per target rule, and the card each audience gets.

  mecard-bridge audience                                  list the rules' own field sets
  mecard-bridge audience group:Family FN N TEL ADR BDAY   family: home address, birthday
  mecard-bridge audience group:Family FN N TEL --withdraw and take the rest back from them
  mecard-bridge audience group:Family --shared            the shared fields again
  mecard-bridge preview group:Family                      the card that audience receives
  mecard-bridge preview --recipient bob                   which field set bob gets, and why

A recipient several rules select gets the set of the most specific one: a named
person (user:NAME) before a group, a group before all; equal ones give the union.
"""

from __future__ import annotations

import argparse
import urllib.parse
from typing import Any, TextIO

from bridge.client import Server
from bridge.commands import AddCommand
from bridge.errors import UserError
from bridge.output import emit


def register(command: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add ``audience`` and ``preview``."""
    p = command("audience", "give a target rule its own field set (or list them)", [common],
                description=__doc__)
    p.add_argument("rule", nargs="?", help="one of your target rules: all, group:NAME, "
                                           "user:NAME (without: list the sets)")
    p.add_argument("fields", nargs="*", metavar="FIELD",
                   help="the fields that audience gets, e.g. FN N TEL ADR BDAY")
    p.add_argument("--shared", action="store_true",
                   help="the rule gets your shared fields again")
    p.add_argument("--withdraw", action="store_true",
                   help="remove the fields it no longer gets from its recipients' copies "
                        "(only your values; what they added stays)")
    p.set_defaults(run=cmd_audience)
    p = command("preview", "the card an audience receives, or which set a recipient gets",
                [common], description=__doc__)
    p.add_argument("rule", nargs="?", help="one of your target rules")
    p.add_argument("--recipient", metavar="NAME", help="a recipient of yours, by user name")
    p.set_defaults(run=cmd_preview)


def _sets(me: dict[str, Any]) -> list[str]:
    lines = ["Shared fields (every rule without a set of its own): %s"
             % " ".join(me.get("shared_fields", []))]
    for item in me.get("audiences", []):
        fields = " ".join(item["fields"]) if item["fields"] is not None else "the shared fields"
        extra = "" if item.get("active", True) else " (not one of your rules now)"
        if item.get("withdrawn"):
            extra += "; withdrawn from its copies: %s" % " ".join(item["withdrawn"])
        lines.append("%s: %s%s" % (item["rule"], fields, extra))
    return lines


def cmd_audience(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``audience [RULE FIELD... | RULE --shared] [--withdraw]``."""
    if args.rule is None:
        if args.fields or args.shared or args.withdraw:
            raise UserError("name the rule first: audience group:Family FN N TEL ADR BDAY")
        me = server.api_get("/me")
        emit(args, out, {"shared_fields": me.get("shared_fields"),
                         "audiences": me.get("audiences", [])}, _sets(me))
        return 0
    if args.shared == bool(args.fields):
        raise UserError("give the fields that audience gets (audience %s FN N TEL ...) or "
                        "--shared for your shared fields" % args.rule)
    me = server.api_post("/audiences", {"rule": args.rule,
                                        "fields": None if args.shared else args.fields,
                                        "withdraw": args.withdraw})
    emit(args, out, {"shared_fields": me.get("shared_fields"),
                     "audiences": me.get("audiences", [])},
         _sets(me) + ["Its recipients get it with your next update, which is on its way."])
    return 0


def cmd_preview(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``preview RULE`` or ``preview --recipient NAME``."""
    if (args.rule is None) == (args.recipient is None):
        raise UserError("give a rule (preview group:Family) or a recipient "
                        "(preview --recipient bob)")
    query = {"rule": args.rule} if args.rule is not None else {"recipient": args.recipient}
    answer = server.api_get("/preview?" + urllib.parse.urlencode(query))
    who = answer.get("rule") or answer.get("recipient")
    lines = ["%s gets: %s" % (who, " ".join(answer["fields"])), "Why: %s" % answer["reason"]]
    if answer.get("selected_by"):
        lines.append("Selected by: %s" % "; ".join(answer["selected_by"]))
    lines += ["", answer["card"].rstrip("\r\n").replace("\r\n", "\n")]
    emit(args, out, answer, lines)
    return 0
