# SPDX-License-Identifier: GPL-3.0-or-later
"""What an owner is told about the numbers and e-mails on their me card.  Pure.

A new number or e-mail goes out as soon as it is on the me card: values are
the owner's to share, and they never match or link anything until they are
verified.  So the owner is told, in ``GET /me`` and the bridge's
``status``, which of them are not verified, and what that means: people
who know the owner only by such a value cannot be found (no offer reaches
them, no target rule selects them through it).  People who already hold the
owner's copy keep getting it (see :mod:`radicale_plugin.consent.keeping`).

The text is the same whether or not the value is verified for somebody
else: it tells nothing about other users.
"""

from __future__ import annotations

from typing import Any, Iterable

from radicale_plugin.index.records import Key


def unverified(keys: Iterable[Key]) -> list[dict[str, Any]]:
    """For each key on the me card not verified for its owner: the key, and a notice."""
    out = []
    for key in sorted(keys, key=lambda k: k.key):
        if not key.on_card or (key.verified and not key.lost):
            continue
        kind, value = (("number", key.key[4:]) if key.key.startswith("tel:")
                       else ("e-mail", key.key.split(":", 1)[-1]))
        out.append({"key": key.key, "notice": (
            "your %s %s is not verified: people who know you only by it cannot be found; "
            "verify it (mecard-bridge verify %s)" % (kind, value, value))})
    return out
