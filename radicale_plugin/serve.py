# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m radicale_plugin.serve``: Radicale's server with the WSGI layer.

The launcher itself is :mod:`radicale_plugin.http.serve`; this name is the one
``make run``, service units and scripts call, and stays.
"""

import sys

from radicale_plugin.http.serve import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
