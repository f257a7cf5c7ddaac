# SPDX-License-Identifier: GPL-3.0-or-later
"""The recipient's side: offers waiting for an answer (:mod:`.offers`) and invites
accepted (:mod:`.invites`) — the ways a recipient says yes, later, no or never.

May import everything below the fan-out: base, index, vCard core, consent, owner,
delivery.
"""
