# SPDX-License-Identifier: GPL-3.0-or-later
"""Readers of a phone's exported history: call and message logs, iPhone backups.

Files in, :class:`bridge.readers.calllog.Log` out; what is unreadable is a
:class:`bridge.errors.UserError` that says how to export it again.  They may
import :mod:`bridge.errors` and each other, nothing else of the bridge.
"""
