# SPDX-License-Identifier: GPL-3.0-or-later
import subprocess
import sys
from pathlib import Path


def test_packages_typecheck_with_mypy():
    root = Path(__file__).parent.parent
    done = subprocess.run([sys.executable, "-m", "mypy", "radicale_plugin", "bridge"],
                          cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
