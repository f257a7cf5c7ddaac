# SPDX-License-Identifier: GPL-3.0-or-later
"""The owner's side: the me card and its shared view (:mod:`.me_cards`), the caps on
its keys (:mod:`.key_caps`), keys and their verification (:mod:`.verification`,
:mod:`.key_notices`), target rules and who they select (:mod:`.rules`, pure; :mod:`.targets`).

May import the base, the index, the vCard core and :mod:`radicale_plugin.consent.decisions`.
"""
