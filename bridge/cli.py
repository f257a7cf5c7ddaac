# SPDX-License-Identifier: GPL-3.0-or-later
"""mecard-bridge: your card and the cards others share with you, from your own computer.

As an owner (choosing who receives your card):
  mecard-bridge select frequent:5 --log calls.xml --log sms.xml --except group:Work
  mecard-bridge select group:Family --apply extend
  mecard-bridge update --tel "+49 30 23125000" --replace --only contact:Bob
  mecard-bridge send [NAME...]          your current card again, now: to all or to these
  mecard-bridge status                  state per recipient: delivered, behind, offered...
  mecard-bridge audience group:Family FN N TEL ADR BDAY   a field set for one rule
  mecard-bridge preview group:Family    the card that audience receives (--recipient bob)

As a recipient (changes others offer you):
  mecard-bridge offers                  what each waiting change would do to which card
  mecard-bridge accept alice [--card /you/contacts/x.vcf | --card new] [--once]
  mecard-bridge refuse alice | block alice | postpone alice --until 3d (2h, 1w, ISO time)
  mecard-bridge policy [OWNER auto|ask|block|default]   (OWNER "*": your default)
  mecard-bridge history [--owner alice]   what sharing changed in your cards, value by value
  mecard-bridge undo ID                   your earlier values back (your later edits stay)
  mecard-bridge notifications [--email offers|offers-and-changes|none]   e-mail or pages only

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
import sys
from pathlib import Path
from typing import Any, Sequence, TextIO

from radicale_plugin import __version__

from bridge.client import Server
from bridge.commands import history, invite, keys, offers, privacy, region, select, status
from bridge.commands import audience, notifications, update
from bridge.commands import send
from bridge.errors import EXIT_USAGE, handled
from bridge.settings import password, settings_of

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
#: the commands, in the order ``--help`` lists them; each module adds its sub-parser(s)
COMMANDS = (select, update, send, status, audience, offers, history, notifications, keys,
            privacy, invite, region)


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


def parser() -> argparse.ArgumentParser:
    """The command line: global options, then the sub-parsers the command modules add."""
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, top=False)
    top = argparse.ArgumentParser(
        prog="mecard-bridge", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version",
                     version="mecard-bridge %s (radicale-mecard)" % __version__)
    _global_options(top, top=True)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, parents: list[argparse.ArgumentParser],
                description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=parents, help=text, epilog=EPILOG,
                              description=description or text,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    for module in COMMANDS:
        module.register(command, common)
    return top


def _run(args: argparse.Namespace, out: TextIO) -> int:
    """Connect to the server the settings name, and run the command."""
    args.settings = settings_of(args)
    server = Server(args.settings.url, args.settings.user,
                    password(args.settings.url, args.settings.user),
                    ca_bundle=args.settings.ca_bundle)
    return int(args.run(args, server, out))


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the bridge; returns the exit code (see EPILOG: 0 done, 1 input, 2 usage,
    3 connection, 4 later, 130 interrupted)."""
    out = out or sys.stdout
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error argparse printed
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    # the one place an error becomes its line of advice and exit code (--debug: traceback)
    return handled(lambda: _run(args, out), debug=args.debug)
