# SPDX-License-Identifier: GPL-3.0-or-later
"""``radicale_plugin.wsgi:application``: the WSGI application for WSGI servers.

The layer itself is :mod:`radicale_plugin.http.wsgi`; this name is the one WSGI
server configurations give, and stays.
"""

from radicale_plugin.http.wsgi import application

__all__ = ["application"]
