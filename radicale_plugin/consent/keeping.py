# SPDX-License-Identifier: GPL-3.0-or-later
"""Keeping: a recipient who holds the owner's copy stays reachable by the owner.  Pure.

Discoverability governs *finding* people, not *keeping* them.  Under
``contacts`` an owner may find a user whose books carry one of the owner's
verified keys.  When the owner's number or e-mail changes, the fan-out
writes the new value (verified or not: values are the owner's to share)
into the recipient's copy, and the recipient's books may then carry no
verified key of the owner's any more.  The recipient still knows the owner
— the link says so — so a recipient holding the owner's copy stays one the
owner's target rules may select, whatever the owner's keys are now, as long
as the link stands for a relationship the recipient has:

* the recipient's own card proved to be the owner's (every matching key on
  it was verified for the owner: ``verified``; or the first schema's
  matching found it: ``migrated``), or the recipient accepted an offer
  naming it (``accepted``) or an invite (``invited``);
* any other link (a card the server created, ``created``) counts only where
  the recipient named the owner in a policy of theirs (accepting an offer
  "from now on" sets ``auto``, as an invite does): a copy the admin's
  pre-authorisation made is no sign that the recipient knows the owner;
* never once the recipient deleted the card, or blocks the owner;
* never for a recipient whose discoverability is ``nobody``: keeping works
  through the owner's contacts, so it would tell the owner which of their
  contacts' keys are that recipient's.  A ``user:NAME`` rule needs no
  discovery and keeps anybody.

What a kept recipient receives is their audience's field set, chosen by the rules that
select them (:mod:`radicale_plugin.owner.audiences`); one no rule selects any more, whose
copy is still written (an answer of theirs, a change sent to them by name), gets the
owner's shared fields.

So keeping adds nothing an owner could not already learn: under
``contacts`` a user who holds the owner's card by their own consent knows
the owner, and under ``everyone`` anybody may find anybody.
"""

from __future__ import annotations

from radicale_plugin.index.records import LINK_ACCEPTED, LINK_INVITED, LINK_MIGRATED, LINK_VERIFIED

#: Links made by the recipient's own card or answer: they need no further word.
CONSENTED = frozenset({LINK_ACCEPTED, LINK_INVITED, LINK_VERIFIED, LINK_MIGRATED})


def keeps(made_by: str, card_exists: bool, policy: str, named_owner: bool,
          discoverability: str) -> bool:
    """Whether a recipient linked to the owner stays selectable whatever the owner's keys.

    ``made_by``: how the link was made; ``card_exists``: the linked card is
    still in the recipient's books; ``policy``: the recipient's effective
    policy towards the owner; ``named_owner``: a policy of the recipient's
    names the owner; ``discoverability``: the recipient's.
    """
    if not card_exists or policy == "block" or discoverability == "nobody":
        return False
    return made_by in CONSENTED or named_owner
