# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m bridge``."""
import sys

from bridge.cli import main

sys.exit(main())
