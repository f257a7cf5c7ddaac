# SPDX-License-Identifier: GPL-3.0-or-later
"""The bridge's errors, its exit codes, and the one place that turns an error into both.

A command raises an error that carries data (its problems, its kind); it
prints nothing about it.  :func:`handled` runs a command and is the only code
that writes the ``mecard-bridge: ...`` line and picks the exit code — with
``--debug`` it lets the error through, so Python shows the traceback.

The kinds of error, by exit code (listed in docs/bridge.md, section "Exit codes",
and in ``--help``):

* :class:`UserError` (1): something in what was asked must be fixed;
* :class:`ServerUnusable` (3): the server cannot be used (URL, connection, password);
* :class:`TryLater` (4): a rate limit, a timeout, a busy server.

A card the vCard codec cannot read (:class:`radicale_plugin.errors.BadCard`)
counts as a :class:`UserError`.
"""

from __future__ import annotations

import sys
from typing import Callable, Iterable, TextIO

from radicale_plugin.errors import BadCard

#: the command did what was asked
EXIT_OK = 0
#: something in what was asked must be fixed: a selector, an option's value, a file, a
#: selection that matches nobody, or a request the server refused (its reason is shown)
EXIT_INPUT = 1
#: the command line itself is wrong (argparse's own code)
EXIT_USAGE = 2
#: the server cannot be used: no or a malformed URL, unreachable, not this kind of server
#: at that path, no or a wrong password
EXIT_CONNECTION = 3
#: try again later: a rate limit (the line says how long), a timeout, the server busy
EXIT_LATER = 4
#: interrupted with Ctrl-C
EXIT_INTERRUPTED = 130

#: what every line of advice starts with
PREFIX = "mecard-bridge: "


class BridgeError(Exception):
    """Something the user can fix; ``str(error)`` says what to do.

    ``problems`` are the things to fix (usually one), shown on one line;
    ``exit_code`` tells scripts what kind of problem it was.  The subclasses
    fix the code; ``BridgeError(message, code)`` names it directly.
    """

    exit_code = EXIT_INPUT

    def __init__(self, message: str = "", exit_code: int | None = None, *,
                 problems: Iterable[str] = ()) -> None:
        self.problems = [p for p in ([message] if message else []) + list(problems) if p]
        super().__init__("; ".join(self.problems))
        if exit_code is not None:
            self.exit_code = exit_code


class UserError(BridgeError):
    """Something in what was asked must be fixed (a selector, a value, a file, a refusal)."""

    exit_code = EXIT_INPUT


class ServerUnusable(BridgeError):
    """The server cannot be used: no or a malformed URL, unreachable, no or a wrong
    password, not a radicale-mecard server at that path."""

    exit_code = EXIT_CONNECTION


class TryLater(BridgeError):
    """Nothing to fix, but not now: a rate limit, a timeout, the server busy."""

    exit_code = EXIT_LATER


def exit_code_of(error: BaseException) -> int:
    """The exit code an error stands for (:data:`EXIT_INPUT` for a card that cannot be read)."""
    if isinstance(error, BridgeError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_INPUT


def handled(command: Callable[[], int], debug: bool = False,
            stderr: TextIO | None = None) -> int:
    """Run ``command``; an error becomes its one line of advice on stderr and its exit code.

    With ``debug`` a :class:`BridgeError` or unreadable card is raised on (Python
    prints the traceback); Ctrl-C always ends quietly with :data:`EXIT_INTERRUPTED`.
    """
    try:
        return command()
    except (BridgeError, BadCard) as e:
        if debug:
            raise
        print(PREFIX + str(e), file=stderr or sys.stderr)
        return exit_code_of(e)
    except KeyboardInterrupt as e:
        return exit_code_of(e)
