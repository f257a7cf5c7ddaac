# SPDX-License-Identifier: GPL-3.0-or-later
"""The recipient's answers to offers: ``offers``, ``accept``, ``refuse``, ``postpone``,
``block``, and ``policy`` (how an owner's changes arrive).

``offers`` shows what each waiting change would do to which card; the others
answer one owner's offer, or set the policy for an owner.  Each prints what
happened in a line or a small table, or with ``--json`` the server's answer.
"""

from __future__ import annotations

import argparse
import datetime
import re
from typing import Any, TextIO
from urllib.parse import quote

from bridge.client import Server
from bridge.commands import AddCommand
from bridge.errors import UserError
from bridge.output import emit, readable, wants_json

POLICIES = {
    "auto": "their changes arrive without asking",
    "ask": "each change waits for your answer (mecard-bridge offers)",
    "block": "their changes never reach you",
}
_SPAN = re.compile(r"(\d+)\s*([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def register(command: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add ``offers``, ``accept``, ``refuse``, ``block``, ``postpone`` and ``policy``."""
    command("offers", "changes offered to you: which card, each value before → after",
            [common]).set_defaults(run=cmd_offers)
    p = command("accept", "apply an owner's offered change now", [common])
    p.add_argument("owner")
    p.add_argument("--card", metavar="PATH|new",
                   help="into this card of yours (/you/BOOK/CARD.vcf) or a new contact "
                        "(default: the card the offer names)")
    p.add_argument("--once", action="store_true",
                   help="this change only (default: the owner's changes then arrive without "
                        "asking)")
    p.set_defaults(run=cmd_accept)
    for name, text, run in (("refuse", "drop this change (the next one is offered again)",
                             cmd_refuse),
                            ("block", "never take changes from this owner", cmd_block)):
        p = command(name, text, [common])
        p.add_argument("owner")
        p.set_defaults(run=run)
    p = command("postpone", "ask again later", [common])
    p.add_argument("owner")
    p.add_argument("--until", required=True, metavar="TIME",
                   help="2h, 3d, 1w, or an ISO 8601 time (local time without an offset)")
    p.set_defaults(run=cmd_postpone)
    p = command("policy", "show your policies, or set one: auto, ask, block or default",
                [common])
    p.add_argument("owner", nargs="?", help="a user name, or * for your default")
    p.add_argument("policy", nargs="?", metavar="auto|ask|block|default")
    p.set_defaults(run=cmd_policy)


def _owner_call(owner: str, action: str) -> str:
    # the server un-escapes and normalises the path: "x/../alice" would name alice
    if not owner.strip() or "/" in owner or "\\" in owner or owner.startswith("."):
        raise UserError("%r is not a user name: give the owner as the offers table shows it"
                        % owner)
    return "/offers/%s/%s" % (quote(owner, safe=""), action)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def parse_until(text: str, now: datetime.datetime) -> str:
    """``2h``, ``3d``, ``1w`` after ``now``, or ISO 8601 (local without offset) → UTC ISO."""
    span = _SPAN.fullmatch(text.strip().lower())
    if span:
        when = now + datetime.timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
    else:
        try:
            when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError as e:
            raise UserError("--until takes a span such as 2h, 3d or 1w, or a time such as "
                            "2026-12-01T09:00, not %r" % text) from e
        if when.tzinfo is None:
            when = when.astimezone()  # a time without offset is this computer's local time
    if when <= now:
        raise UserError("--until must be in the future, not %s" % when.isoformat())
    return when.astimezone(datetime.timezone.utc).isoformat(timespec="seconds") \
        .replace("+00:00", "Z")



def cmd_offers(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``offers``: what each waiting change would do to which card."""
    answer = server.api_get("/offers")
    offers = answer["offers"]
    if not offers or wants_json(args):
        emit(args, out, answer, ["No offers wait for you."])
        return 0
    rows = []
    for o in offers:
        state = o["state"] + (" until %s" % o["until"] if o.get("until") else "")
        card = o["card"]
        where = "new contact" if card is None else "%s (%s)" % (card["name"] or "?", card["path"])
        rows.append((o, state, where))
    owners = max(len("owner"), *(len(o["owner"]) for o, _, _ in rows))
    states = max(len("state"), *(len(state) for _, state, _ in rows))
    fmt = "%%-%ds  %%-%ds  %%s" % (owners, states)
    print(fmt % ("owner", "state", "card it would change"), file=out)
    indent = " " * (owners + 2)
    for o, state, where in rows:
        print(fmt % (o["owner"], state, where), file=out)
        for c in o["changes"]:
            print("%s%s: %s → %s" % (indent, c["field"], readable(c["before"]),
                                     readable(c["after"])), file=out)
        if not o["changes"]:
            print("%s(no field would change)" % indent, file=out)
        keys = ", ".join("%s (%s)" % (k["value"], "verified" if k["verified"] else
                                      "NOT verified") for k in o["owner_keys"])
        print("%skeys of %s: %s" % (indent, o["owner"], keys or "none"), file=out)
    print("Answer with: mecard-bridge accept|refuse|postpone|block OWNER", file=out)
    return 0


def cmd_accept(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``accept OWNER``: apply the owner's offered change now."""
    data: dict[str, Any] = {"once": args.once}
    if args.card:
        data["card"] = args.card
    answer = server.api_post(_owner_call(args.owner, "accept"), data)
    then = ("%s's next change will be offered again" % answer["owner"] if args.once else
            "%s's changes now arrive without asking (policy %s)" % (answer["owner"],
                                                                    answer["policy"]))
    emit(args, out, answer, ["Accepted %s's change into %s; %s." % (answer["owner"],
                                                                      answer["card"], then)])
    return 0


def cmd_refuse(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``refuse OWNER``: drop this change; the next one is offered again."""
    answer = server.api_post(_owner_call(args.owner, "refuse"), {})
    emit(args, out, answer, ["Refused %s's change; their next change will be offered again."
                             % answer["owner"]])
    return 0


def cmd_postpone(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``postpone OWNER --until TIME``: ask again later."""
    until = parse_until(args.until, _now())
    answer = server.api_post(_owner_call(args.owner, "postpone"), {"until": until})
    emit(args, out, answer, ["Postponed %s's change until %s." % (answer["owner"],
                                                                   answer["until"])])
    return 0


def cmd_block(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``block OWNER``: never take the owner's changes."""
    answer = server.api_post(_owner_call(args.owner, "block"), {})
    emit(args, out, answer, ["Blocked %s: their changes no longer reach you (undo: "
                             "mecard-bridge policy %s default)." % (answer["owner"],
                                                                    answer["owner"])])
    return 0


def cmd_policy(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``policy [OWNER POLICY]``: show the policies, or set one."""
    if args.owner is None:
        answer = server.api_get("/policies")
    elif args.policy is None:
        raise UserError("give the policy too: mecard-bridge policy %s auto|ask|block|default"
                        % args.owner)
    else:
        choice = args.policy.lower()
        if choice not in POLICIES and choice != "default":
            raise UserError("policy takes auto, ask, block or default, not %r" % args.policy)
        answer = server.api_post("/policies", {
            "owner": args.owner, "policy": None if choice == "default" else choice})
    policies = answer["policies"]
    mine = policies.get("*")
    lines = ["your default: %s (%s)" % (mine or answer["default_policy"],
                                        "yours" if mine else "the server's")]
    for owner in sorted(o for o in policies if o != "*"):
        lines.append("%-20s %-6s %s" % (owner, policies[owner],
                                         POLICIES.get(policies[owner], "")))
    emit(args, out, answer, lines)
    return 0
