# SPDX-License-Identifier: GPL-3.0-or-later
"""Radicale plugins that keep people's contact cards up to date in their friends' books.

Terminology (used the same way in code, API, CLI, README and logs):

owner
    A user whose card others receive.
me card
    The one card in the owner's own address book that describes the owner.
shared fields
    The vCard properties of the me card the owner shares (default FN, N,
    TEL, EMAIL); the *view* is the me card reduced to them.
key
    A normalised phone number (``tel:+E164``) or e-mail (``mailto:...``).
    On a me card it is a *claim*; once proven with a code it is *verified*
    for that user, and only verified keys tie contacts to users.
target rule
    Who gets the card: ``all``, ``group:NAME`` or ``user:NAME``.
recipient / target
    A user selected by the owner's target rules.
copy
    The card inside a recipient's address book that holds the owner's
    values; the recipient may edit it, and their additions are kept.
link
    Which card of the recipient holds which owner's copy: one owner per
    card, and an owner writes only into a card linked to them.
policy
    What a recipient accepts from an owner: ``auto`` (apply), ``ask``
    (make an offer) or ``block`` (never).
offer
    An owner's change waiting for the recipient's answer: accept,
    postpone, refuse or block.
discoverability
    Who may learn that a user's keys are theirs: everyone, contacts, nobody.
delivery
    The state of one owner's card in one recipient's book (pending,
    delivered, offered, blocked, ...).
outbox
    The queue of owner changes still to plan, kept in the index.
history
    Every change the sharing code made to a recipient's card, value by value.

The house (folders by concept; ``tests/test_layers.py`` checks the rules): a part
imports only parts below it, and the pure ones nothing of Radicale.

``vcard/``      the pure vCard core: line codec, views, merge, matching, limits, groups
``index/``      the contract of the sharing state, its records, ``sqlite/`` under it
(pure)          decisions kept in their concept's folder: ``consent.decisions``,
                ``consent.keeping``, ``owner.rules``, ``owner.key_notices``,
                ``delivery.history``, ``delivery.rollback``, ``delivery.decide``, ``push.hosts``
(base)          ``errors``, ``settings`` and ``config_schema`` (options), ``context``, ``store``,
                ``command_line``: everyone may import them
``push/``       WebDAV-Push: subscriptions, the DAV forms, the sender
``consent/``    who may reach whom: discoverability, links, policies, rate limits
``owner/``      me cards, keys and their verification, target rules and selection
``delivery/``   copies placed, merged and written; the card-key index; reports; recovery
``recipient/``  offers and invites: the recipient's answers
``fanout/``     the durable background worker
``service``     wires the parts for one storage folder
``http/``, ``admin/``  the faces: WSGI layer, launcher, web plugin, API; the admin command
(entry points)  ``storage`` (Radicale's storage plugin), ``web``, ``serve``, ``wsgi``,
                ``__main__``: the names configurations and scripts use
"""

__version__ = "0.4.1"
