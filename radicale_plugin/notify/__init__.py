# SPDX-License-Identifier: GPL-3.0-or-later
"""Notifications: telling recipients by e-mail that an offer waits for them.

A recipient chooses what they hear of (:mod:`.choices`: offers, offers and applied
changes, or nothing; mail only ever goes to one of their verified e-mail keys).  Where
an offer is made or postponed, or a change applied, an event is recorded
(:mod:`.events`); the sender thread (:mod:`.sender`) makes e-mails of them as the pure
digest decision says (:mod:`.digest`: a settle window, then at most one e-mail per
``mecard_notify_digest_minutes``), writes each once (:mod:`.batches`, the text from
:mod:`.message`, pure: plain text, no card data but the owner's display name), and
sends it through the plugin's SMTP settings (:mod:`.smtp`), outside any storage lock,
retried, and at most once per batch across ``kill -9``.  Each e-mail carries a one-click
unsubscribe link whose signed, expiring token can do nothing else (:mod:`.tokens`,
pure).  Owners are never messaged about what recipients answer.

May import the base, the index, the vCard core and the pure decisions
(:mod:`radicale_plugin.consent.decisions`); it sits beside ``push/``, above
``consent/``, and ``recipient/``, ``fanout/`` and ``http/`` call it.
"""
