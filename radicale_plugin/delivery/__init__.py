# SPDX-License-Identifier: GPL-3.0-or-later
"""Delivery: the owner's view written into recipients' copies.

A fan-out round's reads (:mod:`.gather`: batched index queries, one read per card), the
decision for each delivery from that data (:mod:`.decide`, pure: placement, consent,
merge), the write worked out and recorded (:mod:`.copies`), the files written straight
into book folders (:mod:`.copy_files`) or the rows of the storage on PostgreSQL, in the
transaction of their records (:mod:`.copy_rows`; both are a :class:`.writer.CopyWriter`),
the card-key index kept current from the books
(:mod:`.card_index`), what a change did (:mod:`.history`, pure), copies rolled back by
a phone (:mod:`.rollback`, pure), the owner's report (:mod:`.reports`) and the checks at
start (:mod:`.recovery`).

May import the base, the index, the vCard core, consent and owner.
"""
