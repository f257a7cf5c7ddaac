# SPDX-License-Identifier: GPL-3.0-or-later
"""Radicale's ``[web] type = radicale_plugin.web``: the entry point of the sharing API.

The plugin itself is :class:`radicale_plugin.http.web.Web`; this name is the one
configurations give Radicale, and stays.
"""

from radicale_plugin.http.web import Web

__all__ = ["Web"]
