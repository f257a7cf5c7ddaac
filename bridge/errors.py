# SPDX-License-Identifier: GPL-3.0-or-later
"""The bridge's one error type: its message is the line of advice the user sees."""

from __future__ import annotations


class BridgeError(Exception):
    """Something the user can fix; ``str(error)`` says what to do."""
