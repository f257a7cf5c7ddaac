# SPDX-License-Identifier: GPL-3.0-or-later
"""How each user hears of offers: their choice, the address it goes to, and unsubscribing.

A user chooses ``offers`` (an e-mail when an offer waits, or a postponed one comes
back), ``offers-and-changes`` (also when a change was applied to their cards without
asking) or ``none`` (the pages only).  Mail goes only to one of the user's **verified**
e-mail keys — never to an address merely written on a card: that would let anybody
make this server mail strangers.  The user may pick which; by default it is the first
of them (in sorted order), and one that stops being theirs falls back to that.

**The default**, for a user who never chose: ``offers`` to their first verified e-mail
if they have one, else the pages only.  Verifying an e-mail is a deliberate step (a
code sent to it), and a recipient who is never told of an offer never answers it; the
unsubscribe link in every message turns it off in one click.

Unsubscribing needs no login: the signed token (:mod:`.tokens`) is the only authority,
bound to the user and the purpose ``unsubscribe-email``, and expires.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from radicale.log import logger

from radicale_plugin.context import Context
from radicale_plugin.errors import BadRequest
from radicale_plugin.index.records import (EVENT_CHANGED, NOTIFY_CHOICES, NOTIFY_NONE,
                                           NOTIFY_OFFERS, NOTIFY_OFFERS_AND_CHANGES)
from radicale_plugin.notify import tokens
from radicale_plugin.vcard.matching import email_key


class Choices:
    """Reading and changing users' notification choices."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._bases: dict[str, str] = {}  # the base last stored per user (fewer writes)
        self._lock = threading.Lock()

    def enabled(self) -> bool:
        """Whether this server sends notification e-mails at all."""
        settings = self._ctx.settings
        return bool(settings.notify_email and settings.smtp_host)

    def addresses(self, user: str) -> list[str]:
        """The user's verified e-mail keys, sorted (the only ones mail goes to)."""
        return sorted(k for k in self._ctx.index.keys.verified(user)
                      if k.startswith("mailto:"))

    def effective(self, user: str) -> tuple[str, str | None, bool]:
        """(what the user hears of, the address it goes to or None, whether they chose)."""
        setting = self._ctx.index.notify.setting(user)
        verified = self.addresses(user)
        address = setting.address if setting.address in verified else (
            verified[0] if verified else None)
        if setting.email is None:
            return (NOTIFY_OFFERS if address else NOTIFY_NONE), address, False
        return setting.email, address, True

    def wants(self, user: str, kind: str) -> bool:
        """Whether an event of ``kind`` is to be mailed to ``user`` (checked when it
        happens, and again when its e-mail is made and sent)."""
        if not self.enabled():
            return False
        email, address, _ = self.effective(user)
        if address is None or email == NOTIFY_NONE:
            return False
        return kind != EVENT_CHANGED or email == NOTIFY_OFFERS_AND_CHANGES

    def report(self, user: str) -> dict[str, Any]:
        """The user's choice as the API shows it."""
        email, address, chosen = self.effective(user)
        settings = self._ctx.settings
        return {"email": email, "address": address, "addresses": self.addresses(user),
                "chosen": chosen, "digest_minutes": settings.notify_digest_minutes,
                "sent_by_server": self.enabled()}

    def choose(self, user: str, email: Any, address: Any) -> dict[str, Any]:
        """Store the user's choice: ``email`` one of :data:`NOTIFY_CHOICES`, ``address``
        one of their verified e-mails (None: the first)."""
        if email not in NOTIFY_CHOICES:
            raise BadRequest("'email' must be one of %s" % ", ".join(NOTIFY_CHOICES))
        key = None
        if address is not None:
            key = email_key(address) if isinstance(address, str) and len(address) < 330 \
                else None
            verified = self.addresses(user)
            if key not in verified:
                raise BadRequest(
                    "'address' must be one of your verified e-mail addresses (%s); verify "
                    "it first (POST /keys/verify)" % (", ".join(verified) or "you have none"))
        self._ctx.index.notify.set_choice(user, email, key)
        logger.info("Notifications of %r set to %s", user, email)
        return self.report(user)

    def saw(self, user: str, base: str) -> None:
        """The user's own request reached the server at ``base``: links in their e-mails
        may use it (when ``mecard_public_url`` is not set).  Stored when it changes."""
        with self._lock:
            if self._bases.get(user) == base:
                return
            self._bases[user] = base
        self._ctx.index.notify.set_base(user, base)

    def base_of(self, user: str) -> str | None:
        """The URL the user's own requests last reached the server at."""
        return self._ctx.index.notify.setting(user).base

    def unsubscribe_token(self, user: str, now: float) -> str:
        """A link token that turns off ``user``'s e-mails, valid for
        ``mecard_notify_unsubscribe_days``."""
        return tokens.make(self._ctx.index.notify.secret(), user, tokens.UNSUBSCRIBE,
                           now + self._ctx.settings.notify_unsubscribe_days * 86400)

    def check_token(self, token: str) -> str:
        """The user an unsubscribe token is for; raises if it is not valid (4xx)."""
        return tokens.check(self._ctx.index.notify.secret(), token, tokens.UNSUBSCRIBE,
                            time.time())

    def unsubscribe(self, token: str) -> str:
        """Turn off the e-mails of the token's user (it may do nothing else); returns them."""
        user = self.check_token(token)
        setting = self._ctx.index.notify.setting(user)
        self._ctx.index.notify.set_choice(user, NOTIFY_NONE, setting.address)
        logger.info("Notifications of %r turned off by the unsubscribe link", user)
        return user

