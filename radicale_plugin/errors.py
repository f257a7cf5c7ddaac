# SPDX-License-Identifier: GPL-3.0-or-later
"""Errors that carry what went wrong and end as one 4xx answer.

    SharingError            (ValueError; status 400)
     ├── BadCard            a vCard that cannot be read
     ├── BadRequest         an unknown field, rule, policy or malformed JSON
     ├── NotFound  (404)    a user, book or card that does not exist
     └── Forbidden (403)    somebody else's data
"""

from __future__ import annotations


class SharingError(ValueError):
    """Base class: ``str(error)`` is advice a person can act on."""

    status = 400


class BadCard(SharingError):
    """A vCard that cannot be parsed."""

    def __init__(self, problem: str) -> None:
        super().__init__("malformed vCard: %s" % problem)
        self.problem = problem


class BadRequest(SharingError):
    """A request whose content is wrong (unknown field, rule, policy, ...)."""


class NotFound(SharingError):
    """A user, address book or card that does not exist."""

    status = 404


class Forbidden(SharingError):
    """An attempt to act on another user's data."""

    status = 403
