# SPDX-License-Identifier: GPL-3.0-or-later
"""Errors that carry what went wrong and end as one 4xx answer.

    SharingError            (ValueError; status 400)
     ├── BadCard            a vCard that cannot be read
     ├── BadRequest         an unknown field, rule, policy or malformed JSON
     ├── NotFound  (404)    a user, book or card that does not exist
     ├── Forbidden (403)    somebody else's data, or a request from another web site
     ├── Conflict  (409)    a request the current state does not allow
     ├── TooLarge  (413)    a body, card or photo above the configured limit
     ├── BadMediaType (415) a change not sent as application/json
     └── TooMany   (429)    slow down; ``retry_after`` seconds
"""

from __future__ import annotations

import math


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


class Conflict(SharingError):
    """A request the current state does not allow (e.g. designating a copy)."""

    status = 409


class TooLarge(SharingError):
    """A body, card, property count or photo above the configured limit."""

    status = 413


class BadMediaType(SharingError):
    """A state-changing request that is not ``application/json``."""

    status = 415


class TooMany(SharingError):
    """Too many requests of one kind; try again after ``retry_after`` seconds."""

    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))
