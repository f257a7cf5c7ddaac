# SPDX-License-Identifier: GPL-3.0-or-later
"""The admin command (``python -m radicale_plugin``): its commands (:mod:`.commands`) on
the deployment the config names, files or PostgreSQL (:mod:`.backend`), backups
(:mod:`.backup`: its format, export and import) and accounts (:mod:`.accounts`).

A top part: may import every part below the HTTP face.
"""
