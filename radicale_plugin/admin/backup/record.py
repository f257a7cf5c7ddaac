# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading the backup document (:mod:`.format`): one JSON object at a time, field by field,
with errors (:class:`~.format.BackupError`) that say where in the document and why, in
one line.
"""

from __future__ import annotations

from typing import Any, Callable

from radicale_plugin.index import Change
from radicale_plugin.vcard.view import Entry, View
from radicale_plugin.admin.backup.format import BackupError


class Record:
    """One JSON object of the document, read field by field with errors that say where."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise BackupError("%s: expected an object, found %s" % (where, kind(data)))
        self.data = data
        self.where = where

    def _get(self, name: str, kinds: tuple[type, ...], what: str, optional: bool) -> Any:
        if name not in self.data:
            if optional:
                return None
            raise BackupError("%s: %r is missing" % (self.where, name))
        value = self.data[name]
        if value is None and optional:
            return None
        # a bool is an int to Python, never to this format
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise BackupError("%s.%s: expected %s, found %s" % (self.where, name, what,
                                                                kind(value)))
        return value

    def text(self, name: str) -> str:
        return str(self._get(name, (str,), "a string", False))

    def maybe_text(self, name: str) -> str | None:
        value = self._get(name, (str,), "a string or null", True)
        return None if value is None else str(value)

    def choice(self, name: str, choices: tuple[str, ...], optional: bool = False) -> str | None:
        value = self.maybe_text(name) if optional else self.text(name)
        if value is not None and value not in choices:
            raise BackupError("%s.%s: %r is not one of %s" % (self.where, name, value,
                                                             ", ".join(choices)))
        return value

    def whole(self, name: str) -> int:
        return int(self._get(name, (int,), "a whole number", False))

    def real(self, name: str) -> float:
        return float(self._get(name, (int, float), "a number", False))

    def maybe_real(self, name: str) -> float | None:
        value = self._get(name, (int, float), "a number or null", True)
        return None if value is None else float(value)

    def maybe_whole(self, name: str) -> int | None:
        value = self._get(name, (int,), "a whole number or null", True)
        return None if value is None else int(value)

    def flag(self, name: str) -> bool:
        return bool(self._get(name, (bool,), "true or false", False))

    def texts(self, name: str, optional: bool = False) -> list[str] | None:
        value = self._get(name, (list,), "a list of strings", optional)
        if value is None:
            return None
        if not all(isinstance(v, str) for v in value):
            raise BackupError("%s.%s: expected a list of strings" % (self.where, name))
        return list(value)

    def pairs(self, name: str) -> set[tuple[str, str]]:
        value = self._get(name, (list,), "a list of [field, key] pairs", False)
        if not all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
                   for p in value):
            raise BackupError("%s.%s: expected a list of [field, key] pairs"
                              % (self.where, name))
        return {(p[0], p[1]) for p in value}

    def view(self, name: str, optional: bool = True) -> View | None:
        value = self._get(name, (dict,), "a view", optional)
        if value is None:
            return None
        where = "%s.%s" % (self.where, name)
        record = Record(value, where)
        entries = record._get("entries", (list,), "a list of entries", False)
        try:
            parsed = tuple(Entry.from_json(e) for e in entries)
            if not all(isinstance(x, str) for e in parsed
                       for x in (e.name, e.value, *e.types, *(v for p in e.params for v in p))):
                raise TypeError("not text")
        except (TypeError, IndexError, ValueError) as e:
            raise BackupError("%s.entries: expected [name, value, [types], [[param, value]]] "
                              "entries (%s)" % (where, e)) from e
        return View(parsed, tuple(record.texts("fields", True) or ()),
                    tuple(record.texts("withdrawn", True) or ()))

    def changes(self, name: str) -> tuple[Change, ...]:
        items = self._get(name, (list,), "a list of changes", False)
        out = []
        for i, item in enumerate(items):
            change = Record(item, "%s.%s[%d]" % (self.where, name, i))
            out.append(Change(change.text("field"), change.maybe_text("before"),
                              change.maybe_text("after")))
        return tuple(out)

    def record(self, name: str) -> "Record | None":
        value = self._get(name, (dict,), "an object or null", True)
        return None if value is None else Record(value, "%s.%s" % (self.where, name))


def kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true or false",
            int: "a number", float: "a number", type(None): "null"}.get(type(value),
                                                                      type(value).__name__)


def records(document: Record, name: str, read: Callable[[Record], Any],
             into: list) -> None:
    items = document._get(name, (list,), "a list", False)
    for i, item in enumerate(items):
        where = "%s[%d]" % (name, i)
        into.append((where, read(Record(item, where))))
