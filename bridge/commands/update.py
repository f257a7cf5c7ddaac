# SPDX-License-Identifier: GPL-3.0-or-later
"""``update``: change the me card and send it now, to all targets or ``--only`` some.

A new number or e-mail address replaces what the me card has (``--replace``)
or is added to it (``--add``); ``--set FIELD=VALUE`` sets a single-valued
field.  Everything is checked before anything is read or sent.
"""

from __future__ import annotations

import argparse
import re
from typing import TextIO

from radicale_plugin.vcard.codec import Card, Line, unescape
from radicale_plugin.vcard.matching import email_key, phone_key

from bridge.client import Server
from bridge.commands import AddCommand
from bridge.commands.me import me_card, region_for
from bridge.commands.selection import selection, selection_options
from bridge.commands.status import status_lines, status_report
from bridge.errors import UserError
from bridge.output import emit

TEL_TYPES = ("cell", "home", "work", "voice", "fax", "pager", "text", "video", "textphone",
             "main", "iphone", "msg", "car", "isdn", "pcs", "bbs", "modem", "pref", "other")
EMAIL_TYPES = ("home", "work", "internet", "x400", "pref", "other")
_REPLACE_ALL = "*"


def register(command: AddCommand, common: argparse.ArgumentParser) -> None:
    """Add ``update`` to the command line."""
    p = command("update", "change your me card and send it now (to all targets, or --only "
                "some)", [common, selection_options()],
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
    p.set_defaults(run=cmd_update)


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
        raise UserError("--type %s does not fit %s: use %s" % (
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
                raise UserError("--replace %s: that %s is not on your me card (its %s: %s)"
                                % (old, one, many, listing))
            gone.extend(hits)
    elif _REPLACE_ALL in replace:
        wanted = {t.upper() for t in types or []}
        gone = [i for i in existing if wanted <= lines[i].types()]
        if existing and not gone:
            raise UserError("--replace: your me card has no %s of type %s (its %s: %s); "
                            "use --replace OLD or --add" % (one, ",".join(types or []), many,
                                                            listing))
    elif existing and not add:
        if any(key(lines[i].value) == key(value) for i in existing):
            return lines  # already there: nothing to add or replace
        if len(existing) == 1:
            raise UserError("your me card already has the %s %s: add --replace to replace "
                            "it, or --add to keep it" % (one, listing))
        raise UserError("your me card already has the %s %s: add --replace to replace "
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
            raise UserError("--set takes FIELD=VALUE, not %r" % assignment)
        field_name = field_name.strip().upper()
        if field_name in ("TEL", "EMAIL", "UID", "VERSION"):
            raise UserError("--set %s is not possible: %s" % (
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
        raise UserError("nothing to change: give --tel, --email or --set FIELD=VALUE")
    if args.tel is not None:
        if sum(c.isdigit() for c in args.tel) < 3 or "@" in args.tel:
            raise UserError("--tel %r is not a phone number: write it with its country code, "
                            "e.g. +49 30 23125000" % args.tel)
    if args.email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+",
                                                   args.email.strip()):
        raise UserError("--email %r is not an e-mail address" % args.email)
    if args.type is not None and not (args.tel or args.email):
        raise UserError("--type goes with --tel or --email")
    for name, value in (("TEL", args.tel), ("EMAIL", args.email)):
        if value:
            _checked_types(args.type, name)
    if (args.add or args.replace) and not (args.tel or args.email):
        raise UserError("--add and --replace go with --tel or --email")
    for old in args.replace:
        if old == _REPLACE_ALL:
            continue
        wanted = {"TEL": args.tel, "EMAIL": args.email}[_kind_of(old)]
        if not wanted:
            raise UserError("--replace %s names %s, but no %s is given" % (
                old, *(("an e-mail address", "--email") if _kind_of(old) == "EMAIL" else
                       ("a number", "--tel"))))


def cmd_update(args: argparse.Namespace, server: Server, out: TextIO) -> int:
    """``update``: change the me card and send it to all targets, or ``--only`` some."""
    _check_update(args)
    path, card = me_card(server)
    if path is None or card is None:
        raise UserError("you have no me card yet: designate one (see docs/api.md, POST /me-card)")
    region = region_for(args, server, args.settings.region)
    only = None
    selected = None
    if args.only:
        selected = selection(args, args.only, server, region)
        only = selected.users()
        if not only:
            raise UserError("--only selects no server user (%d contact(s), none a user "
                            "here); nothing was changed" % len(selected.rows))
    text = _edited_me_card(card, args, region.code).serialize()
    result = server.api_post("/me-card/content", {"card": text, "only": only})
    if selected is not None:
        selected.tell()
    lines = []
    if not result["changed"]:
        lines.append("Your shared fields did not change; sending them to whoever lacks them.")
    lines.append("Sent to %s." % (", ".join(only) if only is not None else "all your targets"))
    report = status_report(server)
    data = {"sent_to": only, "changed": result["changed"], "seq": result["seq"],
            "status": report}
    emit(args, out, data, lines + status_lines(report))
    return 0
