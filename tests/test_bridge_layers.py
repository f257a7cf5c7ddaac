# SPDX-License-Identifier: GPL-3.0-or-later
"""The bridge's house rules, checked from the code: its parts import one way (the order
``bridge/__init__.py`` gives), one module per command, no module over 400 lines, and
only ``bridge.errors`` turns an error into a line and an exit code."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent / "bridge"

#: the parts, lowest first (``bridge/__init__.py``)
ORDER = ("errors", "output", "readers", "region", "select", "client", "settings", "commands",
         "cli", "__main__")
#: the commands ``--help`` lists, by the module that holds them
COMMANDS = {"select": ["select"], "update": ["update"], "send": ["send"],
            "status": ["status"], "audience": ["audience", "preview"],
            "offers": ["offers", "accept", "refuse", "block", "postpone", "policy"],
            "history": ["history", "undo"], "notifications": ["notifications"],
            "keys": ["verify", "keys"], "privacy": ["privacy"], "invite": ["invite"],
            "region": ["region"]}


def part(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def bridge_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "bridge":
            found.extend(node.module.split(".")[1:2] or [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.extend(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("bridge."))
    return found


def modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT)


def test_every_bridge_module_belongs_to_a_known_part():
    assert {part(p) for p in modules()} <= set(ORDER)


def test_no_bridge_import_runs_upwards():
    upward = ["%s imports bridge.%s" % (p.relative_to(ROOT), target)
              for p in modules() for target in bridge_imports(p)
              if ORDER.index(target) > ORDER.index(part(p))]
    assert upward == []


def test_no_bridge_module_is_over_400_lines():
    assert [p.name for p in modules() if len(p.read_text().splitlines()) > 400] == []


def test_each_command_has_its_module_and_cli_only_parses_and_dispatches():
    from bridge import cli
    by_module = {module.__name__.rsplit(".", 1)[1]: module for module in cli.COMMANDS}
    assert sorted(by_module) == sorted(COMMANDS)
    sub = next(a for a in cli.parser()._actions if a.dest == "command")
    assert list(sub.choices) == [c for m in COMMANDS for c in COMMANDS[m]]  # --help's order
    for module, names in COMMANDS.items():
        for name in names:
            run = sub.choices[name].get_default("run")
            assert run.__module__ == "bridge.commands." + module, name
    tree = ast.parse((ROOT / "cli.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler)
                and "BridgeError" in ast.unparse(n)]  # errors.handled does that, once


def test_only_errors_handled_prints_an_error_and_picks_its_exit_code():
    catching = []
    for p in modules():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                caught = ast.unparse(node.type)
                body = ast.unparse(node)
                if "BridgeError" in caught and ("print(" in body or "return" in body):
                    catching.append("%s:%d" % (p.relative_to(ROOT), node.lineno))
    assert catching == ["errors.py:%d" % next(
        n.lineno for n in ast.walk(ast.parse((ROOT / "errors.py").read_text()))
        if isinstance(n, ast.ExceptHandler) and "BridgeError" in ast.unparse(n.type or n))]
