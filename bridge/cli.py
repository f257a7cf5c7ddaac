# SPDX-License-Identifier: GPL-3.0-or-later
"""``mecard-bridge``: your card and the cards others share with you, from your own computer.

As an owner (who receives your card):
    mecard-bridge select frequent:5 --log calls.xml --log sms.xml --except group:Work
    mecard-bridge select group:Family --apply extend
    mecard-bridge update --tel "+1 202 555 0199" --only contact:Bob
    mecard-bridge status                  state per recipient, with the reason

As a recipient (changes others offer you):
    mecard-bridge offers                  what each waiting change would do to which card
    mecard-bridge accept alice [--card /you/contacts/x.vcf | --card new] [--once]
    mecard-bridge refuse alice | block alice | postpone alice --until 3d (2h, 1w, ISO time)
    mecard-bridge policy [OWNER auto|ask|block|default]   (OWNER "*": your default)

Your numbers and e-mails, and who may learn they are yours:
    mecard-bridge verify +12025550101     sends a code, then asks for it in a terminal
    mecard-bridge verify --code 123456 +12025550101
    mecard-bridge keys
    mecard-bridge privacy [everyone|contacts|nobody]

Bad input or a refusal is one line of advice and exit code 1 (--debug: a traceback).
"""

from __future__ import annotations

import argparse
import configparser
import datetime
import getpass
import netrc
import os
import sys
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from radicale_plugin.errors import BadCard
from radicale_plugin.rules import Book
from radicale_plugin.vcard import Card, Line, parse_card, parse_cards
from tqdm import tqdm

from bridge.calllog import KINDS, read_logs
from bridge import consent
from bridge.client import Server
from bridge.errors import BridgeError
from bridge.select import (Frequency, Selector, count_contacts, evaluate, is_server_rule,
                           parse_selector)

CONFIG_FILE = Path("~/.config/mecard/bridge.ini")


class _Step(argparse.Action):
    """Collects --or/--and/--except selectors in command-line order."""

    def __call__(self, parser, namespace, value, option_string=None):  # type: ignore[override]
        steps = getattr(namespace, "steps", None) or []
        steps.append((option_string.lstrip("-"), value))  # type: ignore[union-attr]
        namespace.steps = steps


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="server URL (env MECARD_URL, or url= in %s)" % CONFIG_FILE)
    common.add_argument("--user", help="your user name (env MECARD_USER, or user= in the config)")
    common.add_argument("--config", type=Path, default=CONFIG_FILE,
                        help="config file with [server] url= and user= (default %(default)s)")
    common.add_argument("--region", default=None,
                        help="region for numbers without country code (default: config, US)")
    common.add_argument("--debug", action="store_true", help="show tracebacks")

    sel = argparse.ArgumentParser(add_help=False)
    sel.add_argument("--or", dest="steps", action=_Step, metavar="SELECTOR",
                     help="also select these contacts")
    sel.add_argument("--and", dest="steps", action=_Step, metavar="SELECTOR",
                     help="keep only contacts also selected by this")
    sel.add_argument("--except", dest="steps", action=_Step, metavar="SELECTOR",
                     help="leave out contacts selected by this")
    sel.add_argument("--log", action="append", type=Path, default=[], metavar="FILE",
                     help="call or message log (SMS Backup & Restore XML, or CSV "
                          "number,time,kind,direction); repeatable")
    sel.add_argument("--months", type=int, default=6,
                     help="frequent:N counts the last M months (default %(default)s)")
    sel.add_argument("--kinds", default="call,sms",
                     help="what frequent:N counts: call, sms or call,sms (default %(default)s)")
    sel.add_argument("--vcf", type=Path, action="append", default=[],
                     help="read contacts from this .vcf export instead of the server")
    sel.add_argument("--now", type=datetime.datetime.fromisoformat, default=None,
                     help=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="mecard-bridge", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("select", parents=[common, sel],
                       help="show whom a selection picks; --apply makes them your targets",
                       description="Selectors: all, group:NAME, frequent:N, contact:TEXT, pick "
                                   "(choose from a list in a terminal).")
    p.add_argument("selector", help="the first selector")
    p.add_argument("--apply", choices=("replace", "extend"),
                   help="replace your target list with the selection, or add it")
    p.add_argument("--dry-run", action="store_true", help="show the table and change nothing")
    p = sub.add_parser("update", parents=[common, sel],
                       help="change your me card and send it now (to all targets, or --only some)")
    p.add_argument("--tel", help="new phone number (replaces numbers of --type)")
    p.add_argument("--email", help="new e-mail address (replaces addresses of --type)")
    p.add_argument("--type", default="cell", help="TYPE of the number or address (default cell)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="set a single-valued field, e.g. ORG=Acme; repeatable")
    p.add_argument("--only", metavar="SELECTOR",
                   help="send to these contacts only (combine with --or/--and/--except)")
    sub.add_parser("status", parents=[common], help="delivery state of your card per recipient")

    sub.add_parser("offers", parents=[common],
                   help="changes offered to you: which card, each value before → after")
    p = sub.add_parser("accept", parents=[common], help="apply an owner's offered change now")
    p.add_argument("owner")
    p.add_argument("--card", metavar="PATH|new",
                   help="into this card of yours (/you/BOOK/CARD.vcf) or a new contact "
                        "(default: the card the offer names)")
    p.add_argument("--once", action="store_true",
                   help="this change only (default: the owner's changes then arrive without "
                        "asking)")
    for name, text in (("refuse", "drop this change (the next one is offered again)"),
                       ("block", "never take changes from this owner")):
        sub.add_parser(name, parents=[common], help=text).add_argument("owner")
    p = sub.add_parser("postpone", parents=[common], help="ask again later")
    p.add_argument("owner")
    p.add_argument("--until", required=True, metavar="TIME",
                   help="2h, 3d, 1w, or an ISO 8601 time (local time without an offset)")
    p = sub.add_parser("policy", parents=[common],
                       help="show your policies, or set one: auto, ask, block or default")
    p.add_argument("owner", nargs="?", help="a user name, or * for your default")
    p.add_argument("policy", nargs="?", metavar="auto|ask|block|default")
    p = sub.add_parser("verify", parents=[common],
                       help="prove a number or e-mail of your me card is yours (a code)")
    p.add_argument("key", help="the number or e-mail")
    p.add_argument("--code", help="the code you received: confirm without sending a new one")
    sub.add_parser("keys", parents=[common], help="your numbers and e-mails and their state")
    p = sub.add_parser("privacy", parents=[common],
                       help="who may learn your numbers and e-mails are yours")
    p.add_argument("choice", nargs="?", metavar="everyone|contacts|nobody",
                   help="set it (without: show it)")
    return parser


def _settings(args: argparse.Namespace) -> tuple[str, str, str]:
    config = configparser.ConfigParser()
    config.read(os.path.expanduser(str(args.config)))
    section = config["server"] if config.has_section("server") else {}
    url = args.url or os.environ.get("MECARD_URL") or section.get("url")
    user = args.user or os.environ.get("MECARD_USER") or section.get("user")
    region = (args.region or section.get("region") or "US").upper()
    if not url:
        raise BridgeError("no server: give --url, set MECARD_URL or url= in %s" % args.config)
    if not user:
        raise BridgeError("no user: give --user, set MECARD_USER or user= in %s" % args.config)
    return url, user, region


def _password(url: str, user: str) -> str:
    if os.environ.get("MECARD_PASSWORD"):
        return os.environ["MECARD_PASSWORD"]
    try:
        auth = netrc.netrc().authenticators(urlsplit(url).hostname or "")
        if auth and (auth[0] in (user, None, "")) and auth[2]:
            return auth[2]
    except (FileNotFoundError, netrc.NetrcParseError):
        pass
    if sys.stdin.isatty():
        return getpass.getpass("Password for %s at %s: " % (user, url))
    raise BridgeError("no password: set MECARD_PASSWORD, add the server to ~/.netrc, "
                      "or run in a terminal to be asked")


def _read_contacts(args: argparse.Namespace, server: Server | None) -> list[Card]:
    texts: list[str] = []
    for path in args.vcf:
        try:
            texts.append(path.read_text(encoding="utf-8-sig"))
        except OSError as e:
            raise BridgeError("cannot read %s: %s" % (path, e.strerror)) from e
    if not args.vcf and server is not None:
        for book in server.address_books():
            texts.extend(server.cards(book).values())
    cards: list[Card] = []
    for text in tqdm(texts, desc="contacts", unit="card", disable=None, leave=False):
        try:
            cards.extend(parse_cards(text))
        except BadCard as e:
            print("warning: a contact was skipped: %s" % e, file=sys.stderr)
    return cards


def _pick(book: Book) -> list[int]:
    """Interactive pick list (a terminal is needed)."""
    if not sys.stdin.isatty():
        raise BridgeError("'pick' needs a terminal; use contact:TEXT to choose by name")
    for i, contact in enumerate(book.contacts, 1):
        print("%4d  %s" % (i, contact.name))
    answer = input("Numbers to select (e.g. 1,3,5-7): ")
    chosen: list[int] = []
    for part in answer.replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise BridgeError("%r is not a number or range" % part)
        chosen.extend(range(int(lo) - 1, int(hi or lo)))
    return [i for i in chosen if 0 <= i < len(book.contacts)]


def _selection(args: argparse.Namespace, first_text: str, server: Server | None,
               region: str, owner: str) -> tuple[list[dict[str, Any]], Selector,
                                                 list[tuple[str, Selector]]]:
    """Rows of (contact, why, user or why not) for the selector expression."""
    book = Book(_read_contacts(args, server), region)
    first = parse_selector(first_text)
    steps = [(op, parse_selector(text)) for op, text in getattr(args, "steps", None) or []]
    selectors = [first] + [s for _, s in steps]
    frequency = _frequency(args, region) if any(
        s.kind == "frequent" for s in selectors) else None
    picked = _pick(book) if any(s.kind == "pick" for s in selectors) else []
    chosen = evaluate(first, steps, book, frequency, region, picked)
    if not chosen:
        raise BridgeError("the selection matches no contact: check the selector and its "
                          "spelling (groups and categories are matched without case)")
    keys = sorted({k for i in chosen for k in book.contacts[i].keys})
    users_of = server.resolve(keys) if server else {}
    rows = []
    for i in sorted(chosen, key=lambda i: book.contacts[i].name.casefold()):
        contact = book.contacts[i]
        found = {u for k in contact.keys for u in users_of.get(k, [])}
        users = sorted(found - {owner})
        if not contact.keys:
            note = "no number or e-mail"
        elif found == {owner}:
            note = "that is you"
        elif not users:
            note = "not a user of this server"
        elif len(users) > 1:
            note = "matches several users (%s): skipped" % ", ".join(users)
        else:
            note = ""
        rows.append({"contact": contact.name, "why": "; ".join(chosen[i]),
                     "user": users[0] if len(users) == 1 else None, "note": note})
    return rows, first, steps


def _frequency(args: argparse.Namespace, region: str) -> Frequency:
    if not args.log:
        raise BridgeError("frequent:N needs a call log: add --log FILE (see --help)")
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if not kinds or any(k not in KINDS for k in kinds):
        raise BridgeError("--kinds takes call, sms or call,sms, not %r" % args.kinds)
    log = read_logs(args.log)
    for problem in log.malformed[:5]:
        print("warning: skipped %s" % problem, file=sys.stderr)
    if len(log.malformed) > 5:
        print("warning: %d more malformed entries skipped" % (len(log.malformed) - 5),
              file=sys.stderr)
    now = args.now or datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=datetime.timezone.utc)
    return count_contacts(log, region, args.months, kinds, now)


def _table(rows: list[dict[str, Any]], out) -> None:
    widths = [max([len(h)] + [len(str(r[k] or "")) for r in rows])
              for h, k in (("contact", "contact"), ("why", "why"), ("user", "user"))]
    fmt = "%%-%ds  %%-%ds  %%-%ds  %%s" % tuple(widths)
    print(fmt % ("contact", "why", "user", ""), file=out)
    for r in rows:
        print(fmt % (r["contact"], r["why"], r["user"] or "-", r["note"]), file=out)


def cmd_select(args: argparse.Namespace, server: Server, region: str, out) -> int:
    rows, first, steps = _selection(args, args.selector, server, region, server.user)
    _table(rows, out)
    users = sorted({r["user"] for r in rows if r["user"]})
    print("%d contact(s), %d server user(s)." % (len(rows), len(users)), file=out)
    if args.dry_run or not args.apply:
        if not args.dry_run:
            print("Nothing changed; add --apply replace or --apply extend to make them "
                  "your targets.", file=out)
        return 0
    if is_server_rule(first, steps):
        wanted = [str(first)]  # the server re-evaluates it at every change
    else:
        wanted = ["user:" + u for u in users]
    before = server.api_get("/me")["targets"]
    if args.apply == "replace":
        after = server.api_post("/targets", {"targets": wanted})["targets"]
    else:
        after = server.api_post("/targets", {"add": wanted})["targets"]
    added = [t for t in after if t not in before]
    removed = [t for t in before if t not in after]
    if not added and not removed:
        print("Targets unchanged.", file=out)
    for t in added:
        print("+ %s" % t, file=out)
    for t in removed:
        print("- %s" % t, file=out)
    return 0


def _edited_me_card(card: Card, args: argparse.Namespace) -> Card:
    lines = list(card.lines)
    for name, value in (("TEL", args.tel), ("EMAIL", args.email)):
        if not value:
            continue
        kind = args.type.upper()
        at = next((i for i, ln in enumerate(lines) if ln.name == name and kind in ln.types()),
                  None)
        lines = [ln for ln in lines if not (ln.name == name and kind in ln.types())]
        new = Line(name, value, [("TYPE", args.type)])
        lines.insert(at if at is not None else len(lines), new)
    for assignment in args.set:
        field, sep, value = assignment.partition("=")
        if not sep or not field.strip():
            raise BridgeError("--set takes FIELD=VALUE, not %r" % assignment)
        field = field.strip().upper()
        at = next((i for i, ln in enumerate(lines) if ln.name == field), None)
        lines = [ln for ln in lines if ln.name != field]
        lines.insert(at if at is not None else len(lines), Line(field, value))
    return Card(lines, card.newline)


def cmd_update(args: argparse.Namespace, server: Server, region: str, out) -> int:
    if not (args.tel or args.email or args.set):
        raise BridgeError("nothing to change: give --tel, --email or --set FIELD=VALUE")
    me = server.api_get("/me")
    if not me["me_card"]:
        raise BridgeError("you have no me card yet: designate one (see README, POST /me-card)")
    only = None
    if args.only:
        rows, _, _ = _selection(args, args.only, server, region, server.user)
        only = sorted({r["user"] for r in rows if r["user"]})
        if not only:
            raise BridgeError("--only selects no server user; nothing was changed")
    card = parse_card(server.get(me["me_card"]))
    text = _edited_me_card(card, args).serialize()
    result = server.api_post("/me-card/content", {"card": text, "only": only})
    if not result["changed"]:
        print("Your shared fields did not change; sending them to whoever lacks them.",
              file=out)
    print("Sent to %s." % (", ".join(only) if only is not None else "all your targets"),
          file=out)
    return cmd_status(args, server, region, out)


_STATES = {
    "behind": "has an earlier change of yours; the latest follows",
    "pending": "on its way",
    "offered": "was asked to accept your change",
    "postponed": "will decide about your change later",
    "refused": "refused this change; your next change is offered again",
    "blocked": "does not take your card",
    "stopped": "no longer a target; their copy is left as it was",
    "withdrawn": "no longer a target; your values were taken out of their copy",
}


def cmd_status(args: argparse.Namespace, server: Server, region: str, out) -> int:
    report = server.api_get("/targets")
    print("targets: %s" % (", ".join(report["targets"]) or "(none)"), file=out)
    for r in report["recipients"]:
        reason = r["reason"] or _STATES.get(r["state"], "")
        print("%-20s %-16s %s" % (r["user"], r["state"], reason), file=out)
    for s in report["skipped"]:
        print("%-20s %-16s %s" % (s["contact"], "skipped", s["reason"]), file=out)
    if report["queued"]:
        print("(%d change(s) still queued on the server)" % report["queued"], file=out)
    return 0


def main(argv: Sequence[str] | None = None, out=None) -> int:
    """Run the bridge; returns the exit code (0 fine, 1 an error with advice, 2 usage)."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        url, user, region = _settings(args)
        server = Server(url, user, _password(url, user))
        command = {"select": cmd_select, "update": cmd_update, "status": cmd_status,
                   "offers": consent.cmd_offers, "accept": consent.cmd_accept,
                   "refuse": consent.cmd_refuse, "postpone": consent.cmd_postpone,
                   "block": consent.cmd_block, "policy": consent.cmd_policy,
                   "verify": consent.cmd_verify, "keys": consent.cmd_keys,
                   "privacy": consent.cmd_privacy}
        return command[args.command](args, server, region, out)
    except (BridgeError, BadCard) as e:
        if args.debug:
            raise
        print("mecard-bridge: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
