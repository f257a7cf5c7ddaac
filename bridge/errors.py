# SPDX-License-Identifier: GPL-3.0-or-later
"""The bridge's one error type and its exit codes.

The message of a :class:`BridgeError` is the one line of advice the user
sees; its ``exit_code`` tells scripts what kind of problem it was (the codes
are listed in the README, section "Exit codes", and in ``--help``).
"""

from __future__ import annotations

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


class BridgeError(Exception):
    """Something the user can fix; ``str(error)`` says what to do."""

    def __init__(self, message: str, exit_code: int = EXIT_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code
