# SPDX-License-Identifier: GPL-3.0-or-later
"""Making e-mails (batches) of the events waiting, as the digest decision says.

For each recipient with waiting events, :func:`radicale_plugin.notify.digest.decide`
says which go into an e-mail now; the e-mail is then written once, whole (headers and
text, see :mod:`.message`), and stored with its events in one transaction: every
attempt sends the same bytes with the same Message-ID.  Events of a recipient who no
longer wants e-mail (or has no verified address left) are dropped: the pages still
show what waits.
"""

from __future__ import annotations

import email.message
import email.utils
import email.policy
import secrets
from collections import defaultdict

from radicale.log import logger

from radicale_plugin.context import Context
from radicale_plugin.index.records import BATCH_READY, NotifyBatch, NotifyEvent
from radicale_plugin.notify import digest, message
from radicale_plugin.notify.choices import Choices
from radicale_plugin.vcard.codec import unescape


def timing(ctx: Context) -> digest.Timing:
    settings = ctx.settings
    return digest.Timing(settings.notify_settle, settings.notify_digest_minutes * 60)


class Batcher:
    """Turns waiting events into batches."""

    def __init__(self, ctx: Context, choices: Choices) -> None:
        self._ctx = ctx
        self._choices = choices

    def run(self, now: float) -> float | None:
        """Make the batches due by ``now``; returns when to look again (None: no event
        waits)."""
        index = self._ctx.index
        waiting: dict[str, list[NotifyEvent]] = defaultdict(list)
        for event in index.notify.waiting():
            waiting[event.recipient].append(event)
        wakes = []
        for recipient, events in waiting.items():
            offers = {o.owner: o for o in index.consent.offers_for(recipient)}
            decision = digest.decide(events, offers, index.notify.last_batch(recipient), now,
                                     timing(self._ctx))
            if decision.batch:
                self._make(recipient, decision.batch, decision.drop, now)
            elif decision.drop:
                index.notify.drop_events([e.id for e in decision.drop])
            if decision.wake is not None:
                wakes.append(decision.wake)
        return min(wakes) if wakes else None

    def _make(self, recipient: str, events: list[NotifyEvent], drop: list[NotifyEvent],
              now: float) -> None:
        index = self._ctx.index
        told = [e for e in events if self._choices.wants(recipient, e.kind)]
        gone = [e.id for e in drop] + [e.id for e in events if e not in told]
        _, address, _ = self._choices.effective(recipient)
        if not told or address is None:
            index.notify.drop_events(gone + [e.id for e in told])
            return
        text, message_id = self.write(recipient, address, told, now)
        batch = NotifyBatch(0, recipient, address, BATCH_READY, now, now, text, message_id)
        batch_id = index.notify.make_batch(batch, [e.id for e in told], gone)
        if batch_id:
            logger.info("Notification %d for %r made of %d event(s)", batch_id, recipient,
                        len(told))

    def base(self, events: list[NotifyEvent]) -> str:
        """The server's URL for the links: the admin's, the recipient's own requests', or
        the address the server listens on."""
        settings = self._ctx.settings
        known = [e.base for e in sorted(events, key=lambda e: e.time) if e.base]
        return settings.public_url or (known[-1] if known else "") or settings.server_url

    def write(self, recipient: str, address: str, events: list[NotifyEvent], now: float
              ) -> tuple[str, str]:
        """The whole e-mail (its text as sent) and its Message-ID."""
        settings = self._ctx.settings
        items = [message.Item(e.owner, self._display_name(e.owner), e.kind)
                 for e in sorted(events, key=lambda e: (digest.moment(e), e.id))]
        mail = message.compose(recipient, items, self.base(events),
                               self._choices.unsubscribe_token(recipient, now),
                               settings.server_name)
        domain = settings.smtp_from.rpartition("@")[2] or "localhost"
        message_id = "<mecard-notify.%s@%s>" % (secrets.token_hex(12), domain)
        out = email.message.EmailMessage()
        out["From"] = settings.smtp_from
        out["To"] = address[len("mailto:"):]
        out["Subject"] = mail.subject
        out["Date"] = email.utils.formatdate(now, localtime=False)
        out["Message-ID"] = message_id
        for name, value in mail.headers.items():
            out[name] = value
        out.set_content(mail.body, cte="quoted-printable")
        # headers are not folded below SMTP's line limit: a folded List-Unsubscribe would be
        # encoded (RFC 2047), and mail programs would not find its URL
        return out.as_string(policy=email.policy.SMTP.clone(max_line_length=998)), message_id

    def _display_name(self, owner: str) -> str:
        view = self._ctx.index.owners.get(owner).view
        entries = view.of("FN") if view is not None else []
        return unescape(entries[0].value) if entries else ""
