# SPDX-License-Identifier: GPL-3.0-or-later
"""The sharing state compared record by record: two backup documents (the export of the
file deployment's SQLite database and that of PostgreSQL), one line per difference.

The copy itself is the backup's export and import (:mod:`radicale_plugin.admin.backup`);
what the import changes on purpose is expected here too: an e-mail waiting to be sent
or being sent is stored ``unknown`` and never sent (:data:`~..backup.format.IN_FLIGHT`).
Pure: no I/O, no Radicale.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator

from radicale_plugin.admin.backup.format import IN_FLIGHT, IN_FLIGHT_ERROR
from radicale_plugin.index import records as rec

Key = Callable[[dict[str, Any]], Any]

#: Each list of the document and what names one record in it.
SECTIONS: tuple[tuple[str, Key], ...] = (
    ("owners", lambda r: r["user"]),
    ("keys", lambda r: (r["user"], r["key"])),
    ("links", lambda r: (r["owner"], r["recipient"])),
    ("policies", lambda r: (r["recipient"], r["owner"])),
    ("offers", lambda r: (r["owner"], r["recipient"])),
    ("jobs", lambda r: r["id"]),
    ("deliveries", lambda r: (r["owner"], r["recipient"])),
    ("history", lambda r: r["id"]),
    ("push.topics", lambda r: r["book"]),
    ("push.subscriptions", lambda r: r["id"]),
    ("invites", lambda r: r["id"]),
    ("undone_values", lambda r: (r["owner"], r["recipient"], r["field"], r["value_key"],
                                 r["entry"])),
    ("notify.settings", lambda r: r["user"]),
    ("notify.batches", lambda r: r["id"]),
    ("notify.events", lambda r: r["id"]),
)

#: Fields a check never prints (a push subscription's secret).
SECRET = frozenset({"auth_secret"})

#: What tells the documents' moments apart, not their states.
IGNORED = ("exported",)


def expected(document: dict[str, Any]) -> dict[str, Any]:
    """The source's export as an import stores it: e-mails in flight become unknown."""
    out = json.loads(json.dumps(document))
    for batch in out.get("notify", {}).get("batches", []):
        if batch.get("state") in IN_FLIGHT:
            batch.update(state=rec.BATCH_UNKNOWN, error=IN_FLIGHT_ERROR)
    return out


def differences(source: dict[str, Any], target: dict[str, Any],
                names: tuple[str, str] = ("files", "PostgreSQL")) -> Iterator[str]:
    """One line per record that differs, is missing or is extra in ``target``."""
    ours, theirs = names
    source = expected(source)
    for name in ("format", "version", "schema", "region"):
        if source.get(name) != target.get(name):
            yield "sharing state: %s is %s in %s, %s in %s" % (
                name, _said(source.get(name)), ours, _said(target.get(name)), theirs)
    for section, key in SECTIONS:
        mine, other = _records(source, section, key), _records(target, section, key)
        for name in sorted(set(mine) | set(other), key=repr):
            a, b = mine.get(name), other.get(name)
            where = "sharing state %s %s" % (section, _name(name))
            if a is None or b is None:
                yield "%s: only in %s" % (where, ours if b is None else theirs)
                continue
            for field in sorted(set(a) | set(b)):
                if a.get(field) == b.get(field):
                    continue
                if field in SECRET:
                    yield "%s: %s differs (never printed)" % (where, field)
                else:
                    yield "%s: %s is %s in %s, %s in %s" % (
                        where, field, _said(a.get(field)), ours, _said(b.get(field)), theirs)
    key_a = source.get("notify", {}).get("unsubscribe_key")
    key_b = target.get("notify", {}).get("unsubscribe_key")
    if key_a != key_b:  # a secret: never printed
        yield "sharing state notify.unsubscribe_key: differs (%s in %s, %s in %s)" % (
            "set" if key_a else "none", ours, "set" if key_b else "none", theirs)


def _records(document: dict[str, Any], section: str, key: Key) -> dict[Any, dict[str, Any]]:
    part: Any = document
    for step in section.split("."):
        part = part.get(step, {}) if isinstance(part, dict) else {}
    out: dict[Any, dict[str, Any]] = {}
    for record in part or []:
        name = key(record)
        if name in out:  # two records under one name: both shown as they differ
            name = (name, len(out))
        out[name] = record
    return out


def _name(key: Any) -> str:
    return "/".join(str(k) for k in key) if isinstance(key, tuple) else str(key)


def _said(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."
