# SPDX-License-Identifier: GPL-3.0-or-later
"""mecard-bridge: your card and the cards others share with you, from your own computer.

As an owner (choosing who receives your card):
  mecard-bridge select frequent:5 --log calls.xml --log sms.xml --except group:Work
  mecard-bridge select group:Family --apply extend
  mecard-bridge update --tel "+49 30 23125000" --replace --only contact:Bob
  mecard-bridge status                  state per recipient: delivered, behind, offered...

As a recipient (changes others offer you):
  mecard-bridge offers                  what each waiting change would do to which card
  mecard-bridge accept alice [--card /you/contacts/x.vcf | --card new] [--once]
  mecard-bridge refuse alice | block alice | postpone alice --until 3d (2h, 1w, ISO time)
  mecard-bridge policy [OWNER auto|ask|block|default]   (OWNER "*": your default)

Your numbers and e-mails, and who may learn they are yours:
  mecard-bridge verify +493023125000    sends a code, then asks for it in a terminal
  mecard-bridge verify --code 123456 +493023125000
  mecard-bridge keys
  mecard-bridge privacy [everyone|contacts|nobody]
  mecard-bridge region [DE | --clear]   the region your national numbers are read in

Invites (no verified number, SMS gateway or SMTP needed):
  mecard-bridge invite create [--expires 7d] [--uses N]   a link that gives your card
  mecard-bridge invite list | invite revoke ID
  mecard-bridge invite accept URL [--card PATH]           take the card a link gives

Options before the command (--url, --user, --json, ...) apply to it, as after it.
"""

from __future__ import annotations

import argparse
import configparser
import datetime
import getpass
import netrc
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TextIO
from urllib.parse import urlsplit

import phonenumbers
from radicale_plugin import __version__
from radicale_plugin.errors import BadCard
from radicale_plugin.vcard.matching import email_key, phone_key
from radicale_plugin.owner.rules import Book
from radicale_plugin.vcard.codec import Card, Line, parse_card, parse_cards, unescape
from tqdm import tqdm

from bridge import consent, invite
from bridge.calllog import FORMATS, KINDS, Log, read_logs
from bridge.client import Server, check_url
from bridge.errors import (EXIT_CONNECTION, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_USAGE,
                           BridgeError)
from bridge.output import emit, note
from bridge.region import Region, choose_region, cmd_region
from bridge.select import (Frequency, Selector, check_groups, count_contacts, evaluate,
                           explain_empty, group_names, is_server_rule, parse_selector,
                           unmatched)

EPILOG = """\
configuration:
  The server URL and user come from --url/--user, MECARD_URL/MECARD_USER, or
  url= and user= (and region=, ca_bundle=) in section [server] of the config file:
  $XDG_CONFIG_HOME/mecard/bridge.ini, else ~/.config/mecard/bridge.ini.
  The password comes from MECARD_PASSWORD, ~/.netrc, or a prompt.

exit codes:
  0    done
  1    something to fix in what you asked (a selector, a file, a value, a
       selection that matches nobody, a request the server refused)
  2    the command line is wrong (unknown option, missing argument)
  3    the server cannot be used: no or a malformed URL, unreachable, not a
       radicale-mecard server at that path, no or a wrong password
  4    try again later: rate limit (the message says how long), timeout
  130  interrupted (Ctrl-C)
"""
#: the share of a log's calls and messages with numbers of no contact above which the
#: region is probably wrong (people's logs also hold shops, doctors and spam: not 0)
UNMATCHED_WARNING = 0.5
#: fewer counted entries than this prove nothing about the region
UNMATCHED_MINIMUM = 4
TEL_TYPES = ("cell", "home", "work", "voice", "fax", "pager", "text", "video", "textphone",
             "main", "iphone", "msg", "car", "isdn", "pcs", "bbs", "modem", "pref", "other")
EMAIL_TYPES = ("home", "work", "internet", "x400", "pref", "other")
_REPLACE_ALL = "*"


def default_config() -> Path:
    """``$XDG_CONFIG_HOME/mecard/bridge.ini``, else ``~/.config/mecard/bridge.ini``."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    # the XDG spec ignores a relative path: it would depend on the current folder
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "mecard" / "bridge.ini"


class _Step(argparse.Action):
    """Collects --or/--and/--except selectors in command-line order."""

    def __call__(self, parser, namespace, value, option_string=None):  # type: ignore[override]
        steps = getattr(namespace, "steps", None) or []
        steps.append((option_string.lstrip("-"), value))  # type: ignore[union-attr]
        namespace.steps = steps


def _global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """The options every command takes, before or after its name.

    After the name they are defined again with ``SUPPRESS`` as default, so a
    subcommand that was not given one keeps what the top level parsed.
    """
    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument("--url", default=default(None),
                        help="the server's root URL, with the path prefix behind a reverse "
                             "proxy (env MECARD_URL, or url= in the config)")
    parser.add_argument("--user", default=default(None),
                        help="your user name (env MECARD_USER, or user= in the config)")
    parser.add_argument("--config", type=Path, default=default(None),
                        help="config file with [server] url=, user=, region= (default "
                             "$XDG_CONFIG_HOME/mecard/bridge.ini or "
                             "~/.config/mecard/bridge.ini)")
    parser.add_argument("--region", default=default(None), metavar="CODE",
                        help="region for numbers without a country code, e.g. DE (default: "
                             "region= in the config, else the country code of your me card's "
                             "numbers, the server's default, your locale)")
    parser.add_argument("--ca-bundle", default=default(None), metavar="FILE",
                        help="trust the server's certificate if this CA (a PEM file) signed "
                             "it: a server with a private CA (or ca_bundle= in the config)")
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="print the result as one JSON document (for scripts)")
    parser.add_argument("--debug", action="store_true", default=default(False),
                        help="show tracebacks")


def _parser() -> argparse.ArgumentParser:
    """The command line: global options, then one sub-parser per command."""
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, top=False)

    sel = argparse.ArgumentParser(add_help=False)
    sel.add_argument("--or", dest="steps", action=_Step, metavar="SELECTOR",
                     help="also select these contacts")
    sel.add_argument("--and", dest="steps", action=_Step, metavar="SELECTOR",
                     help="keep only contacts also selected by this")
    sel.add_argument("--except", dest="steps", action=_Step, metavar="SELECTOR",
                     help="leave out contacts selected by this (an unknown group is an error)")
    sel.add_argument("--log", action="append", type=Path, default=[], metavar="FILE",
                     help="call or message log: SMS Backup & Restore XML, adb content query "
                          "output, an iPhone backup folder (or its sms.db, "
                          "CallHistory.storedata), or CSV number,time,kind,direction; "
                          "repeatable")
    sel.add_argument("--months", type=int, default=6,
                     help="frequent:N counts the last M months (default %(default)s)")
    sel.add_argument("--kinds", default="call,sms",
                     help="what frequent:N counts: call, sms (any message) or call,sms "
                          "(default %(default)s)")
    sel.add_argument("--vcf", type=Path, action="append", default=[],
                     help="read contacts from this .vcf export instead of the server")
    sel.add_argument("--now", type=datetime.datetime.fromisoformat, default=None,
                     help=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="mecard-bridge", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version="mecard-bridge %s (radicale-mecard)" % __version__)
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, parents: list[argparse.ArgumentParser],
                description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=parents, help=text, epilog=EPILOG,
                              description=description or text,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = command("select", "show whom a selection picks; --apply makes them your targets",
                [common, sel],
                "Show whom a selection picks; --apply makes them your targets.\n\n"
                "Selectors: all, group:NAME, frequent:N (at least N calls/messages in the "
                "log),\ncontact:TEXT (name, e-mail or number), pick (choose from a list, in a "
                "terminal).\nCombine them left to right with --or, --and and --except.")
    p.add_argument("selector", help="the first selector")
    p.add_argument("--apply", choices=("replace", "extend"),
                   help="replace your target list with the selection, or add it")
    p.add_argument("--dry-run", action="store_true", help="show the table and change nothing")

    p = command("update", "change your me card and send it now (to all targets, or --only "
                "some)", [common, sel],
                "Change your me card and send it now, to all your targets or --only some.\n\n"
                "A new number or e-mail address either replaces what your me card has "
                "(--replace)\nor is added to it (--add); when your card already has one, "
                "say which.")
    p.add_argument("--tel", metavar="NUMBER", help="a phone number for your me card")
    p.add_argument("--email", metavar="ADDRESS", help="an e-mail address for your me card")
    p.add_argument("--type", metavar="TYPE",
                   help="its TYPE: for a number %s (default cell); for an address %s "
                        "(default: the replaced one's, else internet); comma-separated for "
                        "several" % (", ".join(TEL_TYPES[:6]) + ", ...",
                                     ", ".join(EMAIL_TYPES[:3])))
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--add", action="store_true",
                      help="add it, keeping the numbers/addresses your me card has")
    mode.add_argument("--replace", action="append", nargs="?", const=_REPLACE_ALL,
                      metavar="OLD", default=[],
                      help="replace OLD (a number or address on your me card) with it; "
                           "without OLD: all of that kind (of --type, when given); repeatable")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="set a single-valued field, e.g. ORG=Acme; repeatable")
    p.add_argument("--only", metavar="SELECTOR",
                   help="send to these contacts only (combine with --or/--and/--except)")
    command("status", "delivery state of your card per recipient", [common],
            "Each recipient's state: delivered, behind (holds an earlier change), pending,\n"
            "offered, postponed, refused, blocked, failed (with the reason), stopped, "
            "withdrawn.")

    command("offers", "changes offered to you: which card, each value before → after",
            [common])
    p = command("accept", "apply an owner's offered change now", [common])
    p.add_argument("owner")
    p.add_argument("--card", metavar="PATH|new",
                   help="into this card of yours (/you/BOOK/CARD.vcf) or a new contact "
                        "(default: the card the offer names)")
    p.add_argument("--once", action="store_true",
                   help="this change only (default: the owner's changes then arrive without "
                        "asking)")
    for name, text in (("refuse", "drop this change (the next one is offered again)"),
                       ("block", "never take changes from this owner")):
        command(name, text, [common]).add_argument("owner")
    p = command("postpone", "ask again later", [common])
    p.add_argument("owner")
    p.add_argument("--until", required=True, metavar="TIME",
                   help="2h, 3d, 1w, or an ISO 8601 time (local time without an offset)")
    p = command("policy", "show your policies, or set one: auto, ask, block or default",
                [common])
    p.add_argument("owner", nargs="?", help="a user name, or * for your default")
    p.add_argument("policy", nargs="?", metavar="auto|ask|block|default")
    p = command("verify", "prove a number or e-mail of your me card is yours (a code)",
                [common])
    p.add_argument("key", help="the number or e-mail")
    p.add_argument("--code", help="the code you received: confirm without sending a new one")
    command("keys", "your numbers and e-mails and their state", [common])
    p = command("privacy", "who may learn your numbers and e-mails are yours", [common])
    p.add_argument("choice", nargs="?", metavar="everyone|contacts|nobody",
                   help="set it (without: show it)")
    invite.register(command, common)
    p = command("region", "the region your national numbers are read in; set or --clear it",
                [common])
    p.add_argument("code", nargs="?", metavar="CODE",
                   help="a two-letter country code such as DE (without: show it)")
    p.add_argument("--clear", action="store_true",
                   help="use your me card's country code, else the server's default")
    return parser


# -- settings ---------------------------------------------------------------
@dataclass
class Settings:
    """Where the server is, who the user is, and a region the user named (if any)."""

    url: str
    user: str
    region: tuple[str, str] | None  # (code, where it was given)
    ca_bundle: str | None = None  # the PEM file of a private CA


def _settings(args: argparse.Namespace) -> Settings:
    """URL, user and region from the command line, the environment and the config file."""
    path = args.config or default_config()
    config = configparser.ConfigParser()
    if args.config is not None and not path.expanduser().is_file():
        raise BridgeError("--config %s: no such file" % path)
    try:
        config.read(path.expanduser(), encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as e:
        raise BridgeError("%s is not a config file the bridge can read (%s): it needs a "
                          "section [server] with url=, user= and region=" %
                          (path, str(e).splitlines()[0])) from e
    section: Any = config["server"] if config.has_section("server") else {}
    url = args.url or os.environ.get("MECARD_URL") or section.get("url")
    user = args.user or os.environ.get("MECARD_USER") or section.get("user")
    if not url:
        raise BridgeError("no server: give --url, set MECARD_URL or url= in %s" % path,
                          EXIT_CONNECTION)
    if not user:
        raise BridgeError("no user: give --user, set MECARD_USER or user= in %s" % path,
                          EXIT_CONNECTION)
    region = None
    if args.region:
        region = (args.region, "--region")
    elif section.get("region"):
        region = (section.get("region"), "region= in %s" % path)
    ca_bundle = args.ca_bundle or section.get("ca_bundle")
    return Settings(check_url(url), user, region,
                    os.path.expanduser(ca_bundle) if ca_bundle else None)


def _password(url: str, user: str) -> str:
    """The password: MECARD_PASSWORD, ~/.netrc, or a prompt in a terminal."""
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
                      "or run in a terminal to be asked", EXIT_CONNECTION)


def _me_card(server: Server) -> tuple[str | None, Card | None]:
    """(path, card) of the owner's me card, or (None, None)."""
    path, text = server.me_card()
    if path is None or text is None:
        return None, None
    try:
        return path, parse_card(text)
    except BadCard as e:
        raise BridgeError("your me card %s cannot be read (%s): fix it in your contacts app"
                          % (path, e)) from e


def _region(args: argparse.Namespace, server: Server, explicit: tuple[str, str] | None
            ) -> Region:
    """The region national numbers are read in (see :mod:`bridge.region`)."""
    if explicit:
        return choose_region(explicit, [], None)
    _, card = _me_card(server)
    numbers = [unescape(line.value) for line in card.get("TEL")] if card else []
    mine = server.me().get("region") or {}
    return choose_region(None, numbers, server.me().get("default_region"),
                         setting=mine.get("code") if mine.get("source") == "setting" else None)


# -- selection --------------------------------------------------------------
@dataclass
class Selected:
    """The result of a selector expression: table rows, and what to tell the user."""

    rows: list[dict[str, Any]]
    first: Selector
    steps: list[tuple[str, Selector]]
    region: Region
    warnings: list[str] = field(default_factory=list)

    def users(self) -> list[str]:
        """The server users the selection resolved to."""
        return sorted({r["user"] for r in self.rows if r["user"]})

    def tell(self) -> None:
        """The region used and the warnings, on stderr."""
        note(self.region.note())
        for warning in self.warnings:
            note(warning)


def _read_contacts(args: argparse.Namespace, server: Server
                   ) -> tuple[list[Card], list[tuple[str, str] | None], list[str]]:
    """The cards (groups too), each one's (book, path) when read from the server, and
    warnings about cards that were skipped."""
    texts: list[tuple[str, str] | None] = []
    sources: list[str] = []
    for path in args.vcf:
        try:
            sources.append(path.read_text(encoding="utf-8-sig"))
        except OSError as e:
            raise BridgeError("cannot read %s: %s" % (path, e.strerror)) from e
        except UnicodeDecodeError as e:
            raise BridgeError("%s is not a .vcf export (not UTF-8 text)" % path) from e
        texts.append(None)
    if not args.vcf:
        for book in server.address_books():
            for href, text in server.cards(book).items():
                sources.append(text)
                texts.append((book, href))
    cards: list[Card] = []
    refs: list[tuple[str, str] | None] = []
    warnings: list[str] = []
    for text, ref in tqdm(list(zip(sources, texts)), desc="contacts", unit="card",
                          disable=None, leave=False):
        try:
            found = parse_cards(text)
        except BadCard as e:
            warnings.append("mecard-bridge: warning: a contact was skipped (%s): %s"
                            % (ref[1] if ref else "in the .vcf file", e))
            continue
        cards.extend(found)
        refs.extend([ref] * len(found))
    return cards, refs, warnings


def _mine(book: Book, server: Server) -> set[int]:
    """Indices of contacts that are the owner's own me card (by path, or UID in a .vcf)."""
    path, card = _me_card(server)
    if path is None or card is None:
        return set()
    uid = card.first_value("UID")
    return {i for i, c in enumerate(book.contacts)
            if (c.ref is not None and c.ref[1] == path) or (uid and c.uid == uid)}


def _shown_key(key: str) -> str:
    """A contact key as people write it: ``+49 30 23125000``, ``bob@example.org``."""
    if key.startswith("mailto:"):
        return key[7:]
    try:
        return phonenumbers.format_number(phonenumbers.parse(key[4:], None),
                                          phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return key[4:]


def _pick(book: Book, mine: set[int]) -> list[int]:
    """Interactive pick list, sorted by name with numbers (a terminal is needed).

    The list and the question go to stderr, so ``--json`` keeps stdout clean.
    """
    if not sys.stdin.isatty():
        raise BridgeError("'pick' needs a terminal; use contact:TEXT to choose by name")
    order = sorted((i for i in range(len(book.contacts)) if i not in mine),
                   key=lambda i: (book.contacts[i].name.casefold(), i))
    if not order:
        raise BridgeError("you have no contacts to pick from")
    width = max(len(book.contacts[i].name) for i in order)
    for n, i in enumerate(order, 1):
        contact = book.contacts[i]
        keys = sorted(contact.keys, key=lambda k: (not k.startswith("tel:"), k))
        shown = ", ".join(_shown_key(k) for k in keys[:3]) + (", ..." if len(keys) > 3 else "")
        note("%4d  %-*s  %s" % (n, width, contact.name, shown or "(no number or e-mail)"))
    print("Numbers to select (e.g. 1,3,5-7): ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not answer.strip():
        raise BridgeError("no number typed: nothing was picked")
    chosen: list[int] = []
    for part in answer.replace(" ", "").strip().split(","):
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise BridgeError("%r is not a number or a range such as 5-7" % part)
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        if lo > hi:
            raise BridgeError("the range %r runs backwards: write %d-%d" % (part, hi, lo))
        for n in (lo, hi):
            if not 1 <= n <= len(order):
                raise BridgeError("there is no %d in the list: pick numbers from 1 to %d"
                                  % (n, len(order)))
        chosen.extend(order[n - 1] for n in range(lo, hi + 1))
    return list(dict.fromkeys(chosen))


_KIND_WORDS = {"call": ("calls", "call"), "sms": ("messages", "write to")}


def _lacking(log: Log, kinds: tuple[str, ...]) -> list[str]:
    """A warning per kind counted that the logs hold none of: the counts are the other
    kind's only (an iPhone backup with "Messages in iCloud" holds no messages)."""
    warnings = []
    for kind in log.lacking(kinds):
        other = next((k for k in kinds if k != kind), None)
        if other is None:
            continue  # nothing at all of the only kind counted: the caller's error says so
        plural, verb = _KIND_WORDS[kind]
        why = log.missing.get(kind) or "the log (%s) holds no %s" % (log.names(), plural)
        warnings.append(
            "mecard-bridge: warning: %s; frequent:N counted %s only, so people you only %s "
            "are not counted (add a --log with the %s, or --kinds %s to count %s on purpose)"
            % (why, _KIND_WORDS[other][0], verb, plural, other, _KIND_WORDS[other][0]))
    return warnings


def _frequency(args: argparse.Namespace, region: str) -> tuple[Frequency, list[str]]:
    """How often each number appears in the logs, and warnings about skipped entries."""
    if not args.log:
        raise BridgeError("frequent:N needs a call log: add --log FILE (%s)" % FORMATS)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if not kinds or any(k not in KINDS for k in kinds):
        raise BridgeError("--kinds takes call, sms or call,sms, not %r" % args.kinds)
    if args.months < 1:
        raise BridgeError("--months takes a number of months of at least 1, not %d"
                          % args.months)
    log = read_logs(args.log)
    if not log.events:
        withheld = " (%d with a withheld number)" % log.withheld if log.withheld else ""
        raise BridgeError("the call log (%s) holds no calls or messages%s%s: export it again, "
                          "or give another --log" % (log.names(), withheld, "".join(
                              " (%s)" % why for why in log.missing.values())))
    if not log.lacking(kinds) or len(kinds) > 1:
        warnings = _lacking(log, kinds)
    else:  # the one kind counted is not in the logs: nothing could be counted
        plural = _KIND_WORDS[kinds[0]][0]
        raise BridgeError("%s: --kinds %s counts nothing; add a --log with the %s, or count "
                          "the others with --kinds %s" % (
                              log.missing.get(kinds[0]) or "the log (%s) holds no %s" % (
                                  log.names(), plural), kinds[0], plural,
                              ",".join(k for k in KINDS if k != kinds[0])))
    warnings += ["mecard-bridge: warning: skipped %s" % problem
                 for problem in log.malformed[:5]]
    if len(log.malformed) > 5:
        warnings.append("mecard-bridge: warning: %d more malformed entries skipped"
                        % (len(log.malformed) - 5))
    now = args.now or datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=datetime.timezone.utc)
    return count_contacts(log, region, args.months, kinds, now), warnings


def _selection(args: argparse.Namespace, first_text: str, server: Server,
               region: Region) -> Selected:
    """Rows of (contact, why, user or why not) for the selector expression."""
    # parse every selector before any network or file work: a typo fails at once
    first = parse_selector(first_text)
    steps = [(op, parse_selector(text)) for op, text in getattr(args, "steps", None) or []]
    selectors = [first] + [s for _, s in steps]
    cards, refs, warnings = _read_contacts(args, server)
    check_groups(selectors, group_names(cards))
    book = Book(cards, region.code, refs)
    frequency = None
    if any(s.kind == "frequent" for s in selectors):
        frequency, log_warnings = _frequency(args, region.code)
        warnings.extend(log_warnings)
        lost, total = unmatched(frequency, book)
        if total >= UNMATCHED_MINIMUM and lost / total >= UNMATCHED_WARNING:
            warnings.append(
                "mecard-bridge: warning: %d of %d %s in the log (%d%%) are with numbers none "
                "of your contacts has; if the phone's national numbers are not %s's, give "
                "--region" % (lost, total, frequency.what(), round(100 * lost / total),
                              region.code))
    picked = _pick(book, _mine(book, server)) if any(s.kind == "pick" for s in selectors) \
        else []
    chosen = evaluate(first, steps, book, frequency, region.code, picked)
    if not chosen:
        raise BridgeError("the selection matches no contact: %s" % explain_empty(
            first, steps, book, frequency, region.code, picked))
    keys = sorted({k for i in chosen for k in book.contacts[i].keys})
    users_of = server.resolve(keys)
    rows = []
    for i in sorted(chosen, key=lambda i: book.contacts[i].name.casefold()):
        contact = book.contacts[i]
        found = {u for k in contact.keys for u in users_of.get(k, [])}
        users = sorted(found - {server.user})
        if not contact.keys:
            why_not = "no number or e-mail"
        elif found == {server.user}:
            why_not = "that is you"
        elif not users:
            # the server names only users who let the owner see them: never claim that
            # somebody does not exist
            why_not = "no user you may see here (they may not have you in their contacts)"
        elif len(users) > 1:
            why_not = "matches several users (%s): skipped" % ", ".join(users)
        else:
            why_not = ""
        rows.append({"contact": contact.name, "why": "; ".join(chosen[i]),
                     "user": users[0] if len(users) == 1 else None, "note": why_not,
                     "keys": sorted(contact.keys)})
    return Selected(rows, first, steps, region, warnings)


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
    region = _region(args, server, args.settings.region)
    selected = _selection(args, args.selector, server, region)
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


# -- update -----------------------------------------------------------------
def _escape(value: str) -> str:
    """A text value as a vCard content line carries it."""
    return (value.replace("\\", "\\\\").replace("\n", "\\n").replace(";", "\\;")
            .replace(",", "\\,"))


def _checked_types(text: str | None, name: str) -> list[str] | None:
    """The TYPE values of ``--type`` if they fit the property ``name``; None if not given."""
    if text is None:
        return None
    allowed = TEL_TYPES if name == "TEL" else EMAIL_TYPES
    types = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in types if t.lower() not in allowed and not t.lower().startswith("x-")]
    if not types or bad:
        raise BridgeError("--type %s does not fit %s: use %s" % (
            text, "a phone number" if name == "TEL" else "an e-mail address",
            ", ".join(allowed)))
    return types


def _kind_of(value: str) -> str:
    """TEL or EMAIL: the property a value given to ``--replace`` belongs to."""
    return "EMAIL" if "@" in value else "TEL"


def _describe(name: str) -> tuple[str, str]:
    """How people call one and several values of TEL or EMAIL."""
    return ("number", "numbers") if name == "TEL" else ("e-mail address", "e-mail addresses")


def _edit_values(lines: list[Line], name: str, value: str, types: list[str] | None,
                 add: bool, replace: list[str], version: str, region: str) -> list[Line]:
    """``lines`` with ``value`` added as a TEL or EMAIL, or replacing the values named."""
    one, many = _describe(name)

    def key(text: str) -> str | None:
        return phone_key(unescape(text), region) if name == "TEL" else email_key(text)

    existing = [i for i, ln in enumerate(lines) if ln.name == name]
    listing = ", ".join(unescape(lines[i].value) for i in existing) or "none"
    olds = [r for r in replace if r != _REPLACE_ALL and _kind_of(r) == name]
    if olds:
        gone: list[int] = []
        for old in olds:
            hits = [i for i in existing if key(lines[i].value) == key(old)]
            if not hits:
                raise BridgeError("--replace %s: that %s is not on your me card (its %s: %s)"
                                  % (old, one, many, listing))
            gone.extend(hits)
    elif _REPLACE_ALL in replace:
        wanted = {t.upper() for t in types or []}
        gone = [i for i in existing if wanted <= lines[i].types()]
        if existing and not gone:
            raise BridgeError("--replace: your me card has no %s of type %s (its %s: %s); "
                              "use --replace OLD or --add" % (one, ",".join(types or []), many,
                                                              listing))
    elif existing and not add:
        if any(key(lines[i].value) == key(value) for i in existing):
            return lines  # already there: nothing to add or replace
        if len(existing) == 1:
            raise BridgeError("your me card already has the %s %s: add --replace to replace "
                              "it, or --add to keep it" % (one, listing))
        raise BridgeError("your me card already has the %s %s: add --replace to replace "
                          "them, --replace OLD to replace one of them, or --add to keep them"
                          % (many, listing))
    else:
        gone = []
        if any(key(lines[i].value) == key(value) for i in existing):
            return lines  # --add of a value the card has: no duplicate
    gone = sorted(set(gone))
    model = lines[gone[0]] if gone else None
    params = list(model.params) if model else []
    if types is not None or model is None:
        chosen = types or (["cell"] if name == "TEL" else
                           ["internet"] if version.startswith("3") else [])
        # the new TYPE replaces the old one; vCard 2.1's bare "TEL;CELL:" types go too
        params = [(k, v) for k, v in params
                  if k.upper() != "TYPE" and not (v == "" and k.lower() in TEL_TYPES
                                                  + EMAIL_TYPES)]
        if chosen:
            params.append(("TYPE", ",".join(chosen)))
    text = _escape(value)
    if any(k.upper() == "VALUE" and v.lower() == "uri" for k, v in params):
        text = key(value) or text  # vCard 4.0 "TEL;VALUE=uri:tel:+1-202-..."
    new = Line(name, text, params, group=model.group if model else "")
    at = gone[0] if gone else (existing[-1] + 1 if existing else len(lines))
    kept = [ln for i, ln in enumerate(lines) if i not in gone]
    at -= sum(1 for i in gone if i < at)
    kept.insert(at, new)
    return kept


def _edited_me_card(card: Card, args: argparse.Namespace, region: str) -> Card:
    """The me card with the requested changes (see ``update --help``)."""
    lines = list(card.lines)
    for name, value in (("TEL", args.tel), ("EMAIL", args.email)):
        if value:
            lines = _edit_values(lines, name, value.strip(), _checked_types(args.type, name),
                                 args.add, args.replace, card.version, region)
    for assignment in args.set:
        field_name, sep, value = assignment.partition("=")
        if not sep or not field_name.strip():
            raise BridgeError("--set takes FIELD=VALUE, not %r" % assignment)
        field_name = field_name.strip().upper()
        if field_name in ("TEL", "EMAIL", "UID", "VERSION"):
            raise BridgeError("--set %s is not possible: %s" % (
                field_name, "use --tel or --email" if field_name in ("TEL", "EMAIL")
                else "it identifies the card"))
        at = next((i for i, ln in enumerate(lines) if ln.name == field_name), None)
        lines = [ln for ln in lines if ln.name != field_name]
        # the value is written as typed (ORG=Acme;Sales is two components); only a line
        # break is escaped, as it would end the content line
        lines.insert(at if at is not None else len(lines),
                     Line(field_name, value.replace("\n", "\\n")))
    return Card(lines, card.newline)


def _check_update(args: argparse.Namespace) -> None:
    """Refuse an update that cannot work before anything is read or sent."""
    if not (args.tel or args.email or args.set):
        raise BridgeError("nothing to change: give --tel, --email or --set FIELD=VALUE")
    if args.tel is not None:
        if sum(c.isdigit() for c in args.tel) < 3 or "@" in args.tel:
            raise BridgeError("--tel %r is not a phone number: write it with its country code, "
                              "e.g. +49 30 23125000" % args.tel)
    if args.email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+",
                                                   args.email.strip()):
        raise BridgeError("--email %r is not an e-mail address" % args.email)
    if args.type is not None and not (args.tel or args.email):
        raise BridgeError("--type goes with --tel or --email")
    for name, value in (("TEL", args.tel), ("EMAIL", args.email)):
        if value:
            _checked_types(args.type, name)
    if (args.add or args.replace) and not (args.tel or args.email):
        raise BridgeError("--add and --replace go with --tel or --email")
    for old in args.replace:
        if old == _REPLACE_ALL:
            continue
        wanted = {"TEL": args.tel, "EMAIL": args.email}[_kind_of(old)]
        if not wanted:
            raise BridgeError("--replace %s names %s, but no %s is given" % (
                old, *(("an e-mail address", "--email") if _kind_of(old) == "EMAIL" else
                       ("a number", "--tel"))))


def cmd_update(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``update``: change the me card and send it to all targets, or ``--only`` some."""
    _check_update(args)
    path, card = _me_card(server)
    if path is None or card is None:
        raise BridgeError("you have no me card yet: designate one (see README, POST /me-card)")
    region = _region(args, server, args.settings.region)
    only = None
    selected = None
    if args.only:
        selected = _selection(args, args.only, server, region)
        only = selected.users()
        if not only:
            raise BridgeError("--only selects no server user (%d contact(s), none a user "
                              "here); nothing was changed" % len(selected.rows))
    text = _edited_me_card(card, args, region.code).serialize()
    result = server.api_post("/me-card/content", {"card": text, "only": only})
    if selected is not None:
        selected.tell()
    lines = []
    if not result["changed"]:
        lines.append("Your shared fields did not change; sending them to whoever lacks them.")
    lines.append("Sent to %s." % (", ".join(only) if only is not None else "all your targets"))
    report = _status_report(server)
    data = {"sent_to": only, "changed": result["changed"], "seq": result["seq"],
            "status": report}
    emit(args, out, data, lines + _status_lines(report))
    return 0


# -- status -----------------------------------------------------------------
STATES = {
    "delivered": "holds your latest change",
    "behind": "holds an earlier change of yours; the latest reaches them with your next "
              "update to everyone",
    "pending": "on its way",
    "offered": "was asked to accept your change",
    "postponed": "will decide about your change later",
    "refused": "refused this change; your next change is offered again",
    "blocked": "does not take your card",
    "retrying": "could not be written for now (a passing error on the server); tried "
                "again by itself",
    "failed": "your change could not be delivered; it is tried again at your next change",
    "stopped": "no longer a target; their copy is left as it was",
    "withdrawn": "no longer a target; your values were taken out of their copy",
}


def _status_report(server: Server) -> dict[str, Any]:
    """GET /targets, with ``behind`` worked out from the seqs where the server says
    ``delivered`` for a copy that holds an earlier change (servers before "behind")."""
    report = server.api_get("/targets")
    seq = report.get("seq")
    recipients = []
    for r in report["recipients"]:
        state, delivered = r["state"], r.get("delivered_seq")
        behind = None
        if (state in ("delivered", "behind") and isinstance(seq, int)
                and isinstance(delivered, int) and delivered < seq):
            state, behind = "behind", seq - delivered
        recipients.append({**r, "state": state, "server_state": r["state"],
                           "behind": behind,
                           "description": STATES.get(state, "")})
    # e.g. "your number ... is not verified": what the owner should fix first
    return {**report, "recipients": recipients, "notices": server.me().get("notices") or []}


def _status_lines(report: dict[str, Any]) -> list[str]:
    """The status report for people: one line per recipient, then a count per state."""
    lines = ["targets: %s" % (", ".join(report["targets"]) or "(none)")]
    lines.extend("notice: %s" % notice for notice in report.get("notices") or [])
    recipients = report["recipients"]
    # a recipient no longer a target is skipped with the reason, shown on their own line
    users = {r["user"] for r in recipients}
    skipped = [s for s in report["skipped"] if s.get("user") not in users]
    width = max([len("recipient")] + [len(r["user"]) for r in recipients]
                + [len(s["contact"]) for s in skipped])
    fmt = "%%-%ds  %%-10s %%s" % width
    if recipients or skipped:
        lines.append((fmt % ("recipient", "state", "")).rstrip())
    for r in recipients:
        what = r["description"]
        if r["state"] == "behind" and r["behind"]:
            what = "%d change(s) behind (holds change %d of %d); the latest reaches them with " \
                   "your next update to everyone" % (r["behind"], r["delivered_seq"],
                                                     report["seq"])
        if r["state"] == "retrying":
            what = "%s; tried again by itself%s (attempt %s failed)" % (
                r.get("reason") or "a passing error",
                " at %s" % r["next_attempt"] if r.get("next_attempt") else "",
                r.get("attempts") or "?")
        elif r["state"] == "behind" and r["reason"] and not r["behind"]:
            # their phone wrote an older copy back: the server's reason says what happens
            what = "%s%s" % (r["reason"], " (at %s)" % r["next_attempt"]
                             if r.get("next_attempt") else "")
        elif r["reason"]:
            what = "%s: %s" % (what, r["reason"]) if r["state"] != "failed" else \
                "%s; tried again at your next change" % r["reason"]
        if not r.get("target", True) and r["state"] not in ("stopped", "withdrawn"):
            what += " (no longer a target)"
        lines.append(fmt % (r["user"], r["state"], what))
    for s in skipped:
        lines.append(fmt % (s["contact"], "skipped", s["reason"]))
    counts: dict[str, int] = {}
    for r in recipients:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    if recipients:
        lines.append("%d recipient(s): %s." % (len(recipients), ", ".join(
            "%d %s" % (n, state) for state, n in sorted(counts.items()))))
    held = report.get("held_back")
    if held:
        lines.append("%d offer(s) held back by your limit of %d new offers a day; the next go "
                     "out at %s." % (held["count"], held["per_day"], held["next"]))
    if report["queued"]:
        lines.append("(%d change(s) still queued on the server)" % report["queued"])
    return lines


def cmd_status(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``status``: each recipient's state, as the owner may see it."""
    report = _status_report(server)
    emit(args, out, report, _status_lines(report))
    return 0


COMMANDS = {"select": cmd_select, "update": cmd_update, "status": cmd_status,
            "offers": consent.cmd_offers, "accept": consent.cmd_accept,
            "refuse": consent.cmd_refuse, "postpone": consent.cmd_postpone,
            "block": consent.cmd_block, "policy": consent.cmd_policy,
            "verify": consent.cmd_verify, "keys": consent.cmd_keys,
            "privacy": consent.cmd_privacy, "invite": invite.cmd_invite,
            "region": cmd_region}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the bridge; returns the exit code (see EPILOG: 0 done, 1 input, 2 usage,
    3 connection, 4 later, 130 interrupted)."""
    out = out or sys.stdout
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error argparse printed
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    try:
        args.settings = _settings(args)
        server = Server(args.settings.url, args.settings.user,
                        _password(args.settings.url, args.settings.user),
                        ca_bundle=args.settings.ca_bundle)
        return COMMANDS[args.command](args, server, out)
    except (BridgeError, BadCard) as e:
        if args.debug:
            raise
        print("mecard-bridge: %s" % e, file=sys.stderr)
        return e.exit_code if isinstance(e, BridgeError) else EXIT_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED

