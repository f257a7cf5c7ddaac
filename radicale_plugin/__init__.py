# SPDX-License-Identifier: GPL-3.0-or-later
"""Radicale plugins that keep people's contact cards up to date in their friends' books.

Terminology (used the same way in code, API, CLI, README and logs):

owner
    A user whose card others receive.
me card
    The one card in the owner's own address book that describes the owner.
shared fields
    The vCard properties of the me card the owner shares (default FN, N,
    TEL, EMAIL); the *shared view* is the me card reduced to them.
target rule
    Who gets the card: ``all``, ``group:NAME`` or ``user:NAME``.
recipient / target
    A user selected by the owner's target rules.
copy
    The card inside a recipient's address book that the server keeps up to
    date; the recipient may edit it, and their additions are kept.
link
    Where an owner's copy is in a recipient's book (kept with the delivery).
policy
    What a recipient accepts from an owner: ``auto`` or ``block``.
delivery
    The state of one owner's card in one recipient's book (pending,
    delivered, blocked, ...).
outbox
    The queue of owner changes still to plan, kept in the index.
"""

__version__ = "0.1.0"
