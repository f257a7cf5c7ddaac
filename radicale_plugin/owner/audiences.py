# SPDX-License-Identifier: GPL-3.0-or-later
"""Audiences: a field set per target rule, and which one a recipient gets.  Pure.

An owner may give a target rule its own field set (family: the home address
and the birthday; work contacts: the work number and the title).  A rule
without one uses the owner's shared fields.  A recipient selected by several
rules gets the field set of the most specific of them: a named person
(``user:NAME``) before a group (``group:NAME``), a group before ``all``;
rules equally specific give the union of their field sets.  A recipient no
rule selects (a copy kept by its link while the rules changed, a delivery
made by an answer of the recipient's before a plan named a rule) gets the
shared fields.

What travels is the *audience view*: the owner's view (the me card reduced
to every field some audience gets, :func:`fields_in_use`) reduced again to
the recipient's field set (:func:`audience_view`).  Nothing outside that set
is ever written into their copy.  Withdrawing works per audience as it does
for the shared fields: a field dropped from an audience's set "with
withdraw" is removed from those recipients' copies (only the owner's values
in it: what the recipient added stays); dropped without, the values already
handed out stay, like a business card.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Iterable, Mapping, Sequence

from radicale_plugin.errors import BadRequest
from radicale_plugin.index.records import Owner
from radicale_plugin.owner.rules import parse_rule
from radicale_plugin.vcard.view import View, check_fields

#: Rank of each rule kind: lower is more specific.
SPECIFICITY = {"user": 0, "group": 1, "all": 2}
#: Most fields one audience's set may name (the shareable ones and some X- fields).
MAX_FIELDS = 64
_CONTACT = " (contact "  # how owner.rules.evaluate names the contact behind a rule


@dataclass(frozen=True)
class Audience:
    """One rule's field set: ``fields`` None uses the shared fields; ``withdrawn`` are
    fields whose values are being removed from this audience's copies."""

    rule: str
    fields: tuple[str, ...] | None
    withdrawn: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"fields": list(self.fields) if self.fields is not None else None,
                "withdrawn": list(self.withdrawn)}


@dataclass(frozen=True)
class Choice:
    """The field set one recipient gets, and why.

    ``rules``: the rules whose field sets it is (empty: no rule selects the
    recipient, the shared fields); ``others``: less specific rules that select
    them too and are overridden.
    """

    fields: tuple[str, ...]
    withdrawn: tuple[str, ...]
    rules: tuple[str, ...]
    reason: str
    others: tuple[str, ...] = ()


def from_json(data: object) -> dict[str, Audience]:
    """The audiences as stored (a JSON object: rule → {"fields", "withdrawn"})."""
    out: dict[str, Audience] = {}
    if not isinstance(data, dict):
        return out
    for rule, item in data.items():
        if not isinstance(item, dict):
            continue
        fields = item.get("fields")
        out[rule] = Audience(rule, tuple(fields) if isinstance(fields, list) else None,
                             tuple(item.get("withdrawn") or ()))
    return out


def to_json(audiences: Mapping[str, Audience]) -> dict[str, Any]:
    return {rule: a.to_json() for rule, a in sorted(audiences.items())}


def check_audience_fields(fields: Any) -> tuple[str, ...] | None:
    """A field set as given (None: back to the shared fields), checked like the shared
    fields; :class:`BadRequest` says what to fix."""
    if fields is None:
        return None
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise BadRequest("'fields' must be a list of field names such as [\"FN\", \"N\", "
                         "\"TEL\", \"ADR\"], or null for your shared fields")
    if len(fields) > MAX_FIELDS:
        raise BadRequest("at most %d fields in one audience's set" % MAX_FIELDS)
    return tuple(check_fields(fields))


def find_rule(text: Any, rules: Sequence[str]) -> str:
    """The owner's target rule ``text`` names (a group's name without case), as the
    owner's rules spell it; :class:`BadRequest` if it is none of them."""
    wanted = parse_rule(text)
    for rule in rules:
        try:
            mine = parse_rule(rule)
        except BadRequest:
            continue
        if mine.kind == wanted.kind and (mine.arg == wanted.arg or (
                mine.kind == "group" and mine.arg.casefold() == wanted.arg.casefold())):
            return str(mine)
    raise BadRequest("%r is not one of your target rules (%s): add it first (POST /targets "
                     "{\"add\": [%r]})" % (str(wanted), ", ".join(rules) or "none yet",
                                           str(wanted)))


def set_audience(audiences: Mapping[str, Audience], rule: str, fields: tuple[str, ...] | None,
                 shared: Sequence[str], withdraw: bool) -> dict[str, Audience]:
    """The audiences after ``rule`` gets ``fields`` (None: the shared fields).

    With ``withdraw`` the fields its recipients got and will not get any more are
    withdrawn from their copies; a field given again stops being withdrawn.
    """
    out = dict(audiences)
    old = out.pop(rule, None)
    before = old.fields if old is not None and old.fields is not None else tuple(shared)
    after = fields if fields is not None else tuple(shared)
    withdrawn = [f for f in (old.withdrawn if old else ()) if f not in after]
    if withdraw:
        withdrawn += [f for f in before if f not in after and f not in withdrawn]
    if fields is not None or withdrawn:
        out[rule] = Audience(rule, fields, tuple(withdrawn))
    return out


def fields_in_use(owner: Owner) -> tuple[str, ...]:
    """Every field some audience gets: the shared fields and each rule's own set."""
    out = dict.fromkeys(owner.shared_fields)
    for audience in owner_audiences(owner).values():
        out.update(dict.fromkeys(audience.fields or ()))
    return tuple(out)


def withdrawn_in_use(owner: Owner) -> tuple[str, ...]:
    """Every field withdrawn from some audience that no audience gets."""
    used = set(fields_in_use(owner))
    out = dict.fromkeys(owner.withdrawn_fields)
    for audience in owner_audiences(owner).values():
        out.update(dict.fromkeys(audience.withdrawn))
    return tuple(f for f in out if f not in used)


def owner_audiences(owner: Owner) -> dict[str, Audience]:
    return from_json(owner.audiences)


def rule_of_reason(reason: str, rules: Collection[str]) -> str | None:
    """The rule a selection's reason names (``group:Family (contact Bob)``, ``user:bob``,
    ``all (contact Carol)``), among ``rules``; None for another reason.  A group's or a
    contact's name holding " (contact " is read as the longest rule it may name."""
    if reason in rules:
        return reason
    best: str | None = None
    at = reason.find(_CONTACT)
    while at >= 0:  # each later cut is a longer rule
        if reason[:at] in rules:
            best = reason[:at]
        at = reason.find(_CONTACT, at + 1)
    return best


def selected_by(reasons: Iterable[str], rules: Collection[str]) -> list[str]:
    """The rules among ``rules`` (a set, for an owner with many) that ``reasons`` (a
    delivery's) say selected a recipient."""
    known = rules if isinstance(rules, (set, frozenset)) else frozenset(rules)
    found = (rule_of_reason(r, known) for r in reasons)
    return list(dict.fromkeys(r for r in found if r is not None))


def _rank(rule: str) -> int:
    return SPECIFICITY.get(rule.partition(":")[0], len(SPECIFICITY))


def choose(selected: Iterable[str], owner: Owner) -> Choice:
    """The field set of a recipient the rules ``selected`` select (see the module)."""
    audiences = owner_audiences(owner)
    shared = tuple(owner.shared_fields)
    rules = list(dict.fromkeys(selected))
    if not rules:
        return Choice(shared, tuple(f for f in owner.withdrawn_fields if f not in shared), (),
                      "no target rule selects them now (a copy kept by its link, or an answer "
                      "of theirs): the shared fields")
    best = min(_rank(r) for r in rules)
    top = tuple(sorted(r for r in rules if _rank(r) == best))
    others = tuple(r for r in rules if _rank(r) != best)
    fields: dict[str, None] = {}
    withdrawn = dict.fromkeys(owner.withdrawn_fields)
    own = []
    for rule in top:
        audience = audiences.get(rule)
        if audience is not None and audience.fields is not None:
            fields.update(dict.fromkeys(audience.fields))
            own.append(rule)
        else:
            fields.update(dict.fromkeys(shared))
        if audience is not None:
            withdrawn.update(dict.fromkeys(audience.withdrawn))
    kind = {0: "a named person", 1: "a group", 2: "all"}[min(best, 2)]
    if len(top) > 1:
        why = "%s select them, equally specific (%s): the union of their field sets" % (
            " and ".join(top), kind)
    elif own:
        why = "%s selects them: its field set" % top[0]
    else:
        why = "%s selects them: it has no field set of its own, so the shared fields" % top[0]
    if others:
        why += "; %s before %s" % (kind, ", ".join(others))
    return Choice(tuple(fields), tuple(f for f in withdrawn if f not in fields), top, why,
                  others)


def audience_view(view: View, choice: Choice) -> View:
    """``view`` (the owner's, every field in use) reduced to one audience's field set.

    A field the view does not carry (a view of an earlier change, made before the
    field was added to the set) is left alone in the copy, not emptied.
    """
    fields = tuple(f for f in choice.fields if f in view.fields)
    return View(tuple(e for e in view.entries if e.name in fields), fields,
                tuple(f for f in choice.withdrawn if f not in fields))


def recipient_view(view: View, owner: Owner, reasons: Iterable[str],
                   cache: dict[Any, Any] | None = None,
                   rules: Sequence[str] | None = None) -> View:
    """The view one recipient gets: ``reasons`` are why they are a target (their
    delivery's), read against ``rules`` (default: the owner's target rules); ``cache``
    keeps each distinct audience view of a round once."""
    if not owner.audiences and rules is None:
        return view  # one audience: every recipient gets the shared view, as it is
    if cache is None:
        return audience_view(view, choose(selected_by(
            reasons, owner.rules if rules is None else rules), owner))
    known = cache.get(("rules", owner.user))  # an owner may have thousands of user: rules
    if known is None:
        known = cache[("rules", owner.user)] = frozenset(owner.rules)
    choice = choose(selected_by(reasons, known if rules is None else rules), owner)
    key = (owner.user, id(view), choice.fields, choice.withdrawn)
    found = cache.get(key)
    if found is None:
        found = cache[key] = audience_view(view, choice)
    return found
