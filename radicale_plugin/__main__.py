# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m radicale_plugin``: the admin command (see :mod:`radicale_plugin.admin.commands`)."""
import sys

from radicale_plugin.admin.commands import main

sys.exit(main())
