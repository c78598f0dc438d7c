"""A ViewDefinition's shape, checked before anything runs: what SQL on FHIR v2 requires of it
(a resource, selects, named and typed columns, constants with a value, unionAll branches
with the same columns), and the Spark type of each FHIR column type. No Spark here."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medgov.errors import MedgovError


class ViewError(MedgovError):
    """The view cannot be run: the one-line reason."""


# FHIR primitive type -> Spark SQL type of the column (dates and times stay FHIR strings)
SPARK_TYPES = {"boolean": "boolean", "integer": "int", "positiveInt": "int", "unsignedInt": "int",
               "integer64": "bigint", "decimal": "double"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SELECT_KEYS = {"column", "select", "forEach", "forEachOrNull", "repeat", "unionAll"}


def spark_type(fhir_type: str | None) -> str | None:
    """The Spark type of a column of `fhir_type` (None: no type given, the JSON value is kept)."""
    if fhir_type is None:
        return None
    return SPARK_TYPES.get(fhir_type, "string")


@dataclass(frozen=True)
class Column:
    name: str
    path: str
    type: str | None
    collection: bool


def load(path: str | Path) -> dict[str, Any]:
    """A ViewDefinition from a JSON file."""
    try:
        view = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ViewError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ViewError(f"{path}: not JSON ({exc})") from None
    return view


def check(view: Any) -> None:
    """Raise ViewError with the first thing that makes `view` invalid."""
    if not isinstance(view, dict) or not view:
        raise ViewError("a ViewDefinition is a JSON object with resource and select")
    if not isinstance(view.get("resource"), str) or not view["resource"]:
        raise ViewError("the view names no resource type (resource)")
    if not isinstance(view.get("select"), list) or not view["select"]:
        raise ViewError("the view has no select")
    for c in view.get("constant", []) or []:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise ViewError("a constant needs a name")
        if not any(k.startswith("value") for k in c):
            raise ViewError(f"constant {c['name']!r} has no value[x]")
    for w in view.get("where", []) or []:
        if not isinstance(w, dict) or not isinstance(w.get("path"), str):
            raise ViewError("a where clause needs a path")
    names = columns_of({"select": view["select"]})
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ViewError(f"column {name!r} is defined twice")
        seen.add(name)


def columns_of(select: dict[str, Any]) -> list[str]:
    """The column names `select` produces, in the order of the view's rows: its own columns,
    then its nested selects', then its unionAll's (whose branches must agree)."""
    unknown = set(select) - _SELECT_KEYS - {"description"}
    if unknown:
        raise ViewError(f"unknown select element(s): {', '.join(sorted(unknown))}")
    for key in ("forEach", "forEachOrNull"):
        if key in select and not isinstance(select[key], str):
            raise ViewError(f"{key} must be a FHIRPath string, not {type(select[key]).__name__}")
    if "forEach" in select and "forEachOrNull" in select:
        raise ViewError("a select has either forEach or forEachOrNull")
    if "repeat" in select and (not isinstance(select["repeat"], list)
                               or not all(isinstance(p, str) for p in select["repeat"])):
        raise ViewError("repeat must be a list of FHIRPath strings")
    out = [c.name for c in columns(select)]
    for nested in select.get("select", []) or []:
        out += columns_of(nested)
    branches = select.get("unionAll") or []
    if branches:
        first = columns_of(branches[0])
        for b in branches[1:]:
            if columns_of(b) != first:
                raise ViewError("unionAll branches must have the same columns in the same order")
        out += first
    return out


def columns(select: dict[str, Any]) -> list[Column]:
    """The `column` entries of one select, checked."""
    out = []
    for c in select.get("column", []) or []:
        if not isinstance(c, dict) or not isinstance(c.get("path"), str) or not isinstance(c.get("name"), str):
            raise ViewError("a column needs a name and a path")
        if not _NAME.match(c["name"]):
            raise ViewError(f"column name {c['name']!r}: letters, digits and _ only, starting with a letter")
        out.append(Column(c["name"], c["path"], c.get("type"), bool(c.get("collection", False))))
    return out


def constant_value(c: dict[str, Any]) -> tuple[str, Any]:
    """(FHIR type, value) of a constant (`valueString`, `valueInteger`, …)."""
    for k, v in c.items():
        if k.startswith("value"):
            t = k[5:]
            return t[:1].lower() + t[1:], v
    raise ViewError(f"constant {c.get('name')!r} has no value[x]")
