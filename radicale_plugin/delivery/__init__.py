# SPDX-License-Identifier: GPL-3.0-or-later
"""Delivery: the owner's view written into recipients' copies.

Where the copy is and what it becomes (:mod:`.copies`), the files written straight
into book folders (:mod:`.copy_files`), the card-key index kept current from the books
(:mod:`.card_index`), what a change did (:mod:`.history`, pure), copies rolled back by
a phone (:mod:`.rollback`, pure), the owner's report (:mod:`.reports`) and the checks at
start (:mod:`.recovery`).

May import the base, the index, the vCard core, consent and owner.
"""
