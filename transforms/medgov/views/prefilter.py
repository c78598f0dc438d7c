"""A cheap test on a resource's JSON text that every resource a view keeps passes: the
strings its `where` clauses compare with must appear in the text. Running it before the
JSON parse skips the resources a view cannot keep (the blood-pressure view keeps one
Observation in sixteen), and parsing is most of a view's cost.

The test is a necessary condition, never a sufficient one: the view's own `where` still
decides. It is derived only from shapes whose truth needs the literal in the resource:
`path = 'text'` (or `'text' = path`) where `path` navigates the resource (members,
`where`, `first`, `ofType`, indexes), `path in ('a' | 'b')`, and `and`, `or`,
`where(...)` and `exists(...)` around them. Anything else (`not()`, `!=`, functions that
compute a string, constants) requires nothing. JSON may spell a string with escapes
(`\\/`, `\\u0041`), so a text holding a backslash always passes.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from medgov.views.fhirpath import _arguments, _function_name, _string_literal, parse

Requirement = frozenset[str]  # at least one of these strings appears in the text

# functions whose result is some of their input's items: a path through them still navigates
# the resource
_PATH_FUNCTIONS = {"where", "first", "last", "single", "ofType", "tail", "skip", "take", "distinct"}
# functions whose result, when the view's condition holds, is non-empty only if their input is:
# the conditions inside `where` and `exists` held for some item of the resource
_NARROWING = _PATH_FUNCTIONS | {"exists"}


def _unwrap(node: dict[str, Any]) -> dict[str, Any]:
    while node.get("type") in (None, "TermExpression", "InvocationTerm", "ParenthesizedTerm") and \
            len(node.get("children") or []) == 1:
        node = node["children"][0]
    return node


def _usable(literal: str) -> bool:
    """A literal that appears verbatim in any JSON text holding it: no character JSON must
    escape, and not a number or boolean (a compiler may compare those by value, and JSON may
    spell them otherwise)."""
    if not literal or any(c in literal for c in '"\\') or any(ord(c) < 0x20 for c in literal):
        return False
    if literal in ("true", "false", "null"):
        return False
    try:
        float(literal)
    except ValueError:
        return True
    return False


def _is_path(node: dict[str, Any]) -> bool:
    """True when `node` only navigates the resource (its values are the resource's own)."""
    node = _unwrap(node)
    t = node.get("type")
    if t in ("MemberInvocation", "ThisInvocation"):
        return True
    if t == "IndexerExpression":
        return _is_path(node["children"][0])
    if t == "InvocationExpression":
        left, right = node["children"]
        right = _unwrap(right)
        if right.get("type") == "MemberInvocation":
            return _is_path(left)
        if right.get("type") == "FunctionInvocation":
            return _function_name(right) in _PATH_FUNCTIONS and _is_path(left)
    return False


def _literals(node: dict[str, Any]) -> set[str] | None:
    """The strings of `'a'` or `('a' | 'b' | …)`; None for anything else."""
    node = _unwrap(node)
    if node.get("type") == "UnionExpression":
        out: set[str] = set()
        for kid in node["children"]:
            more = _literals(kid)
            if more is None:
                return None
            out |= more
        return out
    text = _string_literal(node)
    return None if text is None else {text}


def requirements(node: dict[str, Any]) -> list[Requirement]:
    """What the text of a resource must hold for `node` to be true on it: a conjunction of
    requirements (each: one of its strings appears)."""
    node = _unwrap(node)
    t = node.get("type")
    kids = node.get("children") or []
    op = (node.get("terminalNodeText") or [None])[0]
    if t == "AndExpression" and op == "and":
        return requirements(kids[0]) + requirements(kids[1])
    if t == "OrExpression" and op == "or":
        left, right = requirements(kids[0]), requirements(kids[1])
        # (a1 and a2) or b needs (a1 or b): one requirement of each side suffices
        return [left[0] | right[0]] if left and right else []
    if (t == "EqualityExpression" and op == "=") or (t == "MembershipExpression" and op == "in"):
        pairs = [(kids[0], kids[1])] if op == "in" else [(kids[0], kids[1]), (kids[1], kids[0])]
        for path, other in pairs:
            texts = _literals(other)
            if texts is not None and _is_path(path):
                found = requirements(path)
                if all(_usable(s) for s in texts):
                    found.append(frozenset(texts))
                return found
        return []
    if t == "InvocationExpression":
        left, right = kids[0], _unwrap(kids[1])
        if right.get("type") == "MemberInvocation":
            return requirements(left)
        if right.get("type") == "FunctionInvocation" and _function_name(right) in _NARROWING:
            inner = [r for a in _arguments(right) for r in requirements(a)] if _function_name(right) in (
                "where", "exists") else []
            return requirements(left) + inner
    return []


def view_requirements(view: dict[str, Any]) -> list[Requirement]:
    """The requirements of every `where` clause of `view` (deduplicated, in order)."""
    out: list[Requirement] = []
    for w in view.get("where", []) or []:
        for r in requirements(parse(w["path"])):
            if r not in out:
                out.append(r)
    return out


def text_test(view: dict[str, Any], text: Column) -> Column | None:
    """A Column true for every JSON text whose resource the view may keep; None when the
    view's `where` requires nothing."""
    reqs = view_requirements(view)
    if not reqs:
        return None
    test: Column | None = None
    for req in reqs:
        one = None
        for s in sorted(req):
            hit = F.instr(text, s) > 0
            one = hit if one is None else one | hit
        test = one if test is None else test & one
    assert test is not None
    return test | (F.instr(text, "\\") > 0)
