# SPDX-License-Identifier: GPL-3.0-or-later
"""Audiences in the API: a field set per target rule, and what each audience receives.

``POST /audiences`` ``{"rule": "group:Family", "fields": [...] | null, "withdraw":
false}`` gives one of the owner's target rules its own field set (null: the shared
fields again); ``GET /preview?rule=group:Family`` shows the card that audience
receives, ``GET /preview?recipient=bob`` which field set bob gets and why (only
for a recipient the owner's rules select: a name that is no user, a user hidden
from the owner and a user no rule selects get the same answer).  Every call acts
on the signed-in owner's own rules and card (docs/api.md, "Audiences").
"""

from __future__ import annotations

from typing import Any, Callable

from radicale_plugin.errors import BadRequest
from radicale_plugin.owner.field_sets import FieldSets
from radicale_plugin.service import SharingService

_ADVICE = ("give {\"rule\": \"group:Family\", \"fields\": [\"FN\", \"N\", \"TEL\", \"ADR\"]}, "
           "or \"fields\": null for your shared fields (and \"withdraw\": true to remove "
           "fields it no longer gets from its recipients' copies)")


class AudiencesApi:
    """``POST /audiences`` and ``GET /preview``."""

    def __init__(self, service: SharingService) -> None:
        self._sets = FieldSets(service.ctx, service.owners, service.targets)

    def post(self, user: str, data: dict, me: Callable[[str], Any]) -> Any:
        """Set one rule's field set; the answer is ``me`` (``GET /me``'s)."""
        rule = data.get("rule")
        if not isinstance(rule, str) or "fields" not in data:
            raise BadRequest(_ADVICE)
        withdraw = data.get("withdraw", False)
        if not isinstance(withdraw, bool):
            raise BadRequest("'withdraw' must be true or false")
        self._sets.set(user, rule, data["fields"], withdraw)
        return me(user)

    def preview(self, user: str, query: dict[str, str]) -> dict[str, Any]:
        """``?rule=RULE`` or ``?recipient=NAME``."""
        if "rule" in query and "recipient" not in query:
            return self._sets.preview_rule(user, query["rule"])
        if "recipient" in query and "rule" not in query:
            return self._sets.preview_recipient(user, query["recipient"])
        raise BadRequest("give ?rule=group:Family (the card that audience receives) or "
                         "?recipient=bob (which field set bob gets, and why)")
