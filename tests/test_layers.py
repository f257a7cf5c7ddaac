# SPDX-License-Identifier: GPL-3.0-or-later
"""The house's rules, checked from the code: imports run one way, pure parts stay pure.

The parts, from the bottom up (``radicale_plugin/__init__.py`` draws them): a module
may import modules of its own part and of parts below it, never above.  The pure
modules (the vCard core and the decisions) import nothing of Radicale and no other
part but the vCard core, the index's records and contract, errors and each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent / "radicale_plugin"

#: The parts, lowest first.
ORDER = ("errors", "vcard", "index", "pure", "base", "push", "consent", "notify", "owner",
         "delivery", "recipient", "fanout", "service", "http", "admin", "entry")

#: Pure decisions kept in the folder of their concept, below the base.
PURE = {"consent.decisions", "consent.keeping", "push.hosts", "owner.rules", "owner.audiences",
        "owner.key_notices", "delivery.history", "delivery.rollback", "delivery.decide",
        "delivery.undone", "delivery.revert", "notify.digest", "notify.message",
        "notify.tokens"}

BASE = {"settings", "config_schema", "context", "store", "command_line"}
ENTRY = {"storage", "web", "serve", "wsgi", "__main__", ""}


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__").removesuffix("__init__")] = path
    return found


def part(module: str) -> str:
    if module in PURE:
        return "pure"
    if module in BASE:
        return "base"
    if module in ENTRY or module.startswith("storage."):  # Radicale's storage plugins
        return "entry"
    if module == "errors":
        return "errors"
    if module == "service":
        return "service"
    return module.split(".")[0]


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "radicale_plugin" or node.module.startswith("radicale_plugin."):
                base = node.module[len("radicale_plugin."):] if "." in node.module else ""
                for alias in node.names:
                    sub = (base + "." if base else "") + alias.name
                    out.add(sub if sub in known else base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("radicale_plugin."):
                    out.add(alias.name[len("radicale_plugin."):])
    return out - {""}


def test_every_module_belongs_to_a_known_part():
    assert {part(m) for m in modules()} <= set(ORDER)


def test_no_import_runs_upwards():
    known = modules()
    upward = []
    for module, path in sorted(known.items()):
        for target in sorted(imports(path, known)):
            if target == "__version__" or target not in known:
                continue
            if ORDER.index(part(target)) > ORDER.index(part(module)):
                upward.append("%s (%s) imports %s (%s)" % (module, part(module), target,
                                                          part(target)))
    assert not upward, "\n".join(upward)


def test_the_pure_parts_import_nothing_of_radicale_and_do_no_io():
    known = modules()
    for module, path in sorted(known.items()):
        if part(module) not in ("vcard", "pure"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not (name == "radicale" or name.startswith("radicale.")), \
                    "%s imports %s" % (module, name)
                assert name not in ("urllib.request", "http.client") and \
                    name.split(".")[0] not in ("os", "sqlite3", "socket", "requests",
                                               "subprocess"), \
                    "%s imports %s" % (module, name)
        for target in imports(path, known):
            assert target in known and part(target) in ("errors", "vcard", "pure") or \
                target in ("index", "index.records"), "%s imports %s" % (module, target)


def test_every_folder_says_what_it_does_and_what_it_may_import():
    for init in ROOT.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc.split()) >= 20 and "import" in doc.lower(), init
