# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``invite`` command: hand out your card by a link, and accept links others send you.

  mecard-bridge invite create [--expires 7d] [--uses N] [--label TEXT]
  mecard-bridge invite list                   state, uses and who used each invite
  mecard-bridge invite revoke ID
  mecard-bridge invite show URL [--card PATH] the card as it would arrive, changing nothing
  mecard-bridge invite accept URL [--card PATH|new]

An invite needs no verified number or e-mail, and no SMS gateway or SMTP on
the server: accepting it is the recipient's consent.  Each action prints a
line or a small table, or with ``--json`` the server's answer.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, Callable, TextIO
from urllib.parse import quote, urlsplit

from bridge.client import Server
from bridge.commands import AddCommand
from bridge.errors import BridgeError, UserError
from bridge.output import emit, readable

_SPAN = re.compile(r"(\d+)\s*([mhdw])")
_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
MAX_SPAN = 366 * 86400
DESCRIPTION = """\
Hand out your card by a link, and accept links others send you.

  invite create [--expires 7d] [--uses N] [--label TEXT]
  invite list                    state, uses and who used each invite
  invite revoke ID
  invite show URL [--card PATH]  the card as it would arrive, changing nothing
  invite accept URL [--card PATH|new]

Accepting an invite places the owner's card in your address book (a new
contact, or a card of yours you name), and their later changes arrive by
themselves.  It needs no verified number or e-mail, and no SMS gateway or
SMTP server."""


def register(command: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add ``invite`` and its actions to the bridge's command line."""
    p = command("invite", "hand out a link that gives your card to whoever accepts it",
                [common], DESCRIPTION)
    p.set_defaults(run=cmd_invite)
    actions = p.add_subparsers(dest="invite_action", required=True, metavar="ACTION")
    c = actions.add_parser("create", parents=[common], help="a new invite link (shown once)")
    c.add_argument("--expires", default="7d", metavar="SPAN",
                   help="how long it can be used: 30m, 12h, 7d, 2w (default %(default)s, "
                        "at most 366d)")
    c.add_argument("--uses", type=int, default=1, metavar="N",
                   help="how many people may accept it (default %(default)s)")
    c.add_argument("--label", metavar="TEXT", help="a note for you, e.g. \"for Bob\"")
    actions.add_parser("list", parents=[common],
                       help="your invites: state, uses, who used them")
    r = actions.add_parser("revoke", parents=[common], help="end an invite now")
    r.add_argument("id", help="the invite's id, as invite list shows it")
    for name, text in (("show", "the card an invite would give you (changes nothing)"),
                       ("accept", "take the card of the person who sent you the link")):
        a = actions.add_parser(name, parents=[common], help=text)
        a.add_argument("link", metavar="URL", help="the invite link you were sent")
        a.add_argument("--card", metavar="PATH|new",
                       help="into this card of yours (/you/BOOK/CARD.vcf), or a new contact "
                            "(default: the card holding their copy already, else a new contact)")


def parse_span(text: str) -> int:
    """``30m``, ``12h``, ``7d``, ``2w`` → seconds."""
    found = _SPAN.fullmatch(text.strip().lower())
    if not found:
        raise UserError("--expires takes a span such as 30m, 12h, 7d or 2w, not %r" % text)
    seconds = int(found.group(1)) * _SECONDS[found.group(2)]
    if not 60 <= seconds <= MAX_SPAN:
        raise UserError("--expires takes a span from 1m to 366d, not %r" % text)
    return seconds


def _token(url: str) -> str:
    """The token of an invite link (or of a bare token)."""
    path = url.strip().split("#", 1)[0].split("?", 1)[0].rstrip("/")
    token = path.rsplit("/", 1)[-1]
    if not _TOKEN.fullmatch(token):
        raise UserError("%r is not an invite link: give the link you were sent, such as "
                        "https://host/.web/mecard/invite/..." % url[:100])
    return token


def _elsewhere(url: str, server: Server) -> str:
    """A hint when the link names another host than the server the bridge talks to."""
    theirs = urlsplit(url.strip()).netloc.lower()
    mine = urlsplit(server.url).netloc.lower()
    if theirs and theirs != mine:
        # never "sign in there": a link can name any host, and the bridge would send it
        # your password; an invite works only on the server that made it
        return " (the link is for %s, and you are signed in at %s: an invite works only on " \
               "the server that made it; use --url there only if you have an account on " \
               "that server and know it to be your people's)" % (_shown(theirs[:100]), mine)
    return ""


def _call(server: Server, url: str, do: Callable[[str], Any]) -> Any:
    try:
        return do(_token(url))
    except BridgeError as e:
        hint = _elsewhere(url, server)
        if hint and "not valid" in str(e):
            raise BridgeError(str(e) + hint, e.exit_code) from e
        raise


def _create(args: argparse.Namespace, server: Server, out: TextIO) -> None:
    seconds = parse_span(args.expires)
    if not 1 <= args.uses <= 1000:
        raise UserError("--uses takes a number from 1 to 1000, not %d" % args.uses)
    data: dict[str, Any] = {"expires_in": seconds, "max_uses": args.uses}
    if args.label is not None:
        data["label"] = args.label
    answer = server.api_post("/invites", data)
    people = "1 person" if answer["max_uses"] == 1 else "%d people" % answer["max_uses"]
    emit(args, out, answer, [
        "Invite %s for %s, valid until %s:" % (answer["id"], people, answer["expires"]),
        "  %s" % answer["url"],
        "Whoever signs in to this server and accepts it gets your card, and your later "
        "changes; the link is shown this once only (lost it? revoke it and create another)."])


def _list(args: argparse.Namespace, server: Server, out: TextIO) -> None:
    answer = server.api_get("/invites")
    invites = answer["invites"]
    if not invites:
        emit(args, out, answer, ["You have no invites: mecard-bridge invite create"])
        return
    rows = [(i["id"], i["state"], "%d/%d" % (i["uses"], i["max_uses"] or 0),
             i["revoked"] or i["expires"] or "-", i["label"] or "",
             ", ".join(u["user"] for u in i["used_by"]) or "-") for i in invites]
    header = ("id", "state", "uses", "until", "label", "used by")
    widths = [max(len(r[n]) for r in rows + [header]) for n in range(5)]
    fmt = "  ".join("%%-%ds" % w for w in widths) + "  %s"
    emit(args, out, answer, [fmt % header] + [fmt % r for r in rows])


def _revoke(args: argparse.Namespace, server: Server, out: TextIO) -> None:
    if not re.fullmatch(r"[0-9a-f]{1,64}", args.id):
        raise UserError("%r is not an invite id: mecard-bridge invite list shows them"
                        % args.id)
    answer = server.api_post("/invites/%s/revoke" % args.id, {})
    emit(args, out, answer, ["Revoked invite %s: its link no longer works (cards already "
                             "given stay, as do the later changes they receive)." % answer["id"]])


#: Characters that would let the owner's text steer the terminal or reorder what it shows.
_UNSHOWN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                      "\u2066-\u2069]")


def _shown(text: str) -> str:
    """The owner's values as plain text: controls and direction overrides made visible."""
    return _UNSHOWN.sub(lambda m: "\\u%04x" % ord(m.group(0)), text)


def _show(args: argparse.Namespace, server: Server, out: TextIO) -> None:
    query = "?card=%s" % quote(args.card, safe="") if args.card else ""
    answer = _call(server, args.link,
                   lambda token: server.api_get("/invite/%s%s" % (token, query)))
    into = answer["into"]
    where = "as a new contact" if into is None else "into %s (%s)" % (into["name"] or "?",
                                                                     into["path"])
    lines = ["%s (%s) shares this card with you, %s:" % (answer["owner"], answer["name"],
                                                        where)]
    for c in answer["changes"]:
        if into is None:
            lines.append("  %s: %s" % (c["field"], readable(c["after"])))
        else:
            lines.append("  %s: %s → %s" % (c["field"], readable(c["before"]),
                                             readable(c["after"])))
    if not answer["changes"]:
        lines.append("  (no field would change)")
    keys = ", ".join("%s (%s)" % (k["value"], "verified" if k["verified"] else "NOT verified")
                     for k in answer["owner_keys"])
    lines.append("  keys of %s: %s" % (answer["owner"], keys or "none"))
    lines.append("You accepted it already." if answer["accepted"] else
                 "Accept with: mecard-bridge invite accept URL [--card /you/BOOK/CARD.vcf]")
    emit(args, out, answer, [_shown(line) for line in lines])


def _accept(args: argparse.Namespace, server: Server, out: TextIO) -> None:
    data = {"card": args.card} if args.card else {}
    answer = _call(server, args.link,
                   lambda token: server.api_post("/invite/%s/accept" % token, data))
    emit(args, out, answer, ["Accepted %s's card into %s; %s's changes now arrive without "
                             "asking (policy %s)." % (answer["owner"], answer["card"],
                                                      answer["owner"], answer["policy"])])


ACTIONS = {"create": _create, "list": _list, "revoke": _revoke, "show": _show,
           "accept": _accept}


def cmd_invite(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``invite ACTION``: create, list, revoke, show or accept an invite."""
    ACTIONS[args.invite_action](args, server, out)
    return 0
