# SPDX-License-Identifier: GPL-3.0-or-later
"""Consent: who may reach whom, and by which card.

The pure decisions (:mod:`.decisions`, :mod:`.keeping`: policies, links, offers
allowed, recipients kept), discoverability and its budget (:mod:`.discovery`,
:mod:`.ratelimit`), the links between owners and recipients' cards (:mod:`.links`)
and the recipients' policies (:mod:`.policies`).  The pure modules import only the
vCard core and the index's records; the rest may import the base (settings, context,
store, errors) and the index.
"""
