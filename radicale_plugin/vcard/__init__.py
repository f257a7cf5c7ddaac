# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure vCard core: the line codec, shared views, the merge, matching keys, limits,
vobject behaviours, groups and regions.

No I/O and nothing of Radicale (vobject's behaviour registry aside): cards and
settings in, cards and data out.  Imports nothing of the other parts but
:mod:`radicale_plugin.errors`.
"""
