# SPDX-License-Identifier: GPL-3.0-or-later
"""The bridge: choose recipients of your card in bulk, from your own computer."""
