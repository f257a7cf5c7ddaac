# SPDX-License-Identifier: GPL-3.0-or-later
"""The recipient's and the key holder's commands: offers and their answers, keys, privacy.

``offers`` shows what each waiting change would do to which card; ``accept``,
``refuse``, ``postpone`` and ``block`` answer one owner's offer; ``policy``
sets how an owner's changes arrive; ``verify`` and ``keys`` prove and list
your numbers and e-mails; ``privacy`` is who may learn that they are yours.
Each command prints what happened in a line or a small table, or with
``--json`` the server's answer as one JSON document.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from typing import Any, TextIO
from urllib.parse import quote

from radicale_plugin.errors import BadCard
from radicale_plugin.vcard.codec import components, parse_line, unescape

from bridge.client import Server
from bridge.errors import BridgeError
from bridge.output import emit, wants_json

PRIVACY = {
    "everyone": "any user of this server may learn that your numbers and e-mails are yours",
    "contacts": "only users whose verified numbers or e-mails are in your address books may "
                "learn that yours are yours",
    "nobody": "nobody may learn that your numbers and e-mails are yours (people reach you only "
              "by user name)",
}
POLICIES = {
    "auto": "their changes arrive without asking",
    "ask": "each change waits for your answer (mecard-bridge offers)",
    "block": "their changes never reach you",
}
_SPAN = re.compile(r"(\d+)\s*([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
_STRUCTURED = ("N", "ADR", "ORG")
_BINARY = ("PHOTO", "LOGO", "SOUND", "KEY")


def _owner_call(owner: str, action: str) -> str:
    # the server un-escapes and normalises the path: "x/../alice" would name alice
    if not owner.strip() or "/" in owner or "\\" in owner or owner.startswith("."):
        raise BridgeError("%r is not a user name: give the owner as the offers table shows it"
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
            raise BridgeError("--until takes a span such as 2h, 3d or 1w, or a time such as "
                              "2026-12-01T09:00, not %r" % text) from e
        if when.tzinfo is None:
            when = when.astimezone()  # a time without offset is this computer's local time
    if when <= now:
        raise BridgeError("--until must be in the future, not %s" % when.isoformat())
    return when.astimezone(datetime.timezone.utc).isoformat(timespec="seconds") \
        .replace("+00:00", "Z")


def readable(content_line: str | None) -> str:
    """One value of a change as a person reads it: unescaped, on one line, with its TYPE."""
    if content_line is None:
        return "(none)"
    try:
        line = parse_line(content_line)
    except BadCard:
        return content_line
    if line.name in _BINARY or line.value.startswith("data:") or line.param("ENCODING"):
        return "(%s data, %d characters)" % (line.name.lower(), len(line.value))
    if line.name in _STRUCTURED:
        value = ", ".join(p for p in components(line.value) if p.strip())
    else:
        value = unescape(line.value)
    value = " / ".join(part for part in value.splitlines() if part.strip())
    types = ",".join(sorted(t.lower() for t in line.types()))
    return "%s (%s)" % (value, types) if types else value


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
        raise BridgeError("give the policy too: mecard-bridge policy %s auto|ask|block|default"
                          % args.owner)
    else:
        choice = args.policy.lower()
        if choice not in POLICIES and choice != "default":
            raise BridgeError("policy takes auto, ask, block or default, not %r" % args.policy)
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


def cmd_privacy(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``privacy [CHOICE]``: show or set who may learn that my keys are mine."""
    if args.choice is None:
        answer = server.api_get("/privacy")
        verb = "is"
    else:
        choice = args.choice.lower()
        if choice not in PRIVACY:
            raise BridgeError("privacy takes everyone, contacts or nobody, not %r" % args.choice)
        answer = server.api_post("/privacy", {"discoverability": choice})
        verb = "is now"
    value = answer["discoverability"]
    emit(args, out, answer, ["Discoverability %s %s: %s." % (verb, value,
                                                             PRIVACY.get(value, ""))])
    return 0


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
            raise BridgeError("no code typed; when it arrives: mecard-bridge verify --code "
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
