"""Run a ViewDefinition over FHIR resources in Spark: each resource's rows are computed as an
array of structs by native expressions (forEach, forEachOrNull, repeat, nested selects and
unionAll as products and concatenations of arrays), then exploded once.

Pure DataFrame -> DataFrame: `run_view(view, resources)` takes a DataFrame with the resource
JSON (string) or VARIANT in column `resource`.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as PF

from medgov.views import definition
from medgov.views import sql as F
from medgov.views.definition import ViewError, spark_type
from medgov.views.fhirpath import Env, as_string, compile_path, empty, first, kind, let
from medgov.views.sql import E as Column
from medgov.views.sql import column as to_column


def _value(c: Any, fhir_type: str | None, name: str, collection: bool) -> Column:
    """A column's value from its collection: the typed item, an error when several items come
    for a column that is not a collection."""
    sql = spark_type(fhir_type)

    def typed(x: Column) -> Column:
        if sql is None:
            return F.to_json(x)  # no type given: the JSON value, read back by the caller
        if sql == "string":
            return as_string(x)
        return F.try_variant_get(x, "$", sql)

    if collection:
        return F.transform(c, typed)
    too_many = F.raise_error(F.lit(f"column {name}: the path gave several values; a column that is not "
                                   "`collection: true` takes one"))
    return let(c, lambda x: F.when(F.size(x) > 1, too_many.cast(sql or "string")).otherwise(typed(first(x))))


def _struct(fields: list[tuple[str, Column]]) -> Column:
    if not fields:
        return F.struct(F.lit(None).cast("string").alias("__none"))
    return F.struct(*[c.alias(n) for n, c in fields])


def _names(s: Column, names: list[str]) -> list[tuple[str, Column]]:
    return [(n, s[n]) for n in names]


class _Rows:
    """Compiles the view's select tree into one array<struct> expression per resource."""

    def __init__(self, env: Env) -> None:
        self.env = env

    def rows(self, select: dict[str, Any], focus: Column, index: Column | None) -> tuple[Column, list[str]]:
        """(array<struct> of the rows `select` gives on the variant `focus`, their column names)."""
        foci, nulls = self._foci(select, focus)
        names = definition.columns_of(select)

        def per_focus(f: Column, i: Column) -> Column:
            env = Env(self.env.resource, self.env.resource_type, self.env.constants,
                      i if _iterates(select) else (index if index is not None else F.lit(0)))
            own = [(c.name, _value(compile_path(c.path, env, F.array(f)), c.type, c.name, c.collection))
                   for c in definition.columns(select)]
            acc, acc_names = F.array(_struct(own)), [n for n, _ in own]
            saved, self.env = self.env, env
            try:
                for nested in select.get("select", []) or []:
                    part, part_names = self.rows(nested, f, env.row_index)
                    acc, acc_names = _product(acc, acc_names, part, part_names), acc_names + part_names
                branches = select.get("unionAll") or []
                if branches:
                    parts = [self.rows(b, f, env.row_index) for b in branches]
                    union = F.concat(*[_reorder(p, n, parts[0][1]) for p, n in parts])
                    acc, acc_names = _product(acc, acc_names, union, parts[0][1]), acc_names + parts[0][1]
            finally:
                self.env = saved
            return acc

        if nulls:  # forEachOrNull over nothing: one row, its columns null
            foci = F.when(F.size(foci) == 0, F.array(first(empty()))).otherwise(foci)
        return F.flatten(F.transform(foci, lambda f, i: per_focus(f, i))), names

    def _foci(self, select: dict[str, Any], focus: Column) -> tuple[Column, bool]:
        if "forEach" in select:
            return compile_path(select["forEach"], self.env, F.array(focus)), False
        if "forEachOrNull" in select:
            return compile_path(select["forEachOrNull"], self.env, F.array(focus)), True
        if "repeat" in select:
            return self._repeat(select["repeat"], focus), False
        return F.array(focus), False

    def _repeat(self, paths: list[str], focus: Column) -> Column:
        """Every item reached by following `paths` again and again, depth first (each item
        followed by what it leads to), as one loop in the executors."""
        def children(x: Column) -> Column:
            return F.concat(*[compile_path(p, self.env, F.array(x)) for p in paths])

        # a stack of items still to visit, and the items visited in order
        start = F.struct(children(focus).alias("todo"), empty().alias("done"))

        def visit(state: Column, _: Column) -> Column:
            head = first(state["todo"])
            rest = F.slice(state["todo"], 2, F.greatest(F.size(state["todo"]), F.lit(1)))
            return F.when(F.size(state["todo"]) == 0, state).otherwise(F.struct(
                F.concat(children(head), rest).alias("todo"),
                F.concat(state["done"], F.array(head)).alias("done")))

        # each item visited is a JSON object of the focus: its count of `{` bounds the loop
        objects = F.size(F.split(F.to_json(focus), r"\{"))
        final = F.aggregate(F.sequence(F.lit(1), objects), start, visit)
        unfinished = F.raise_error(F.lit("repeat: items left unvisited"))
        return let(final, lambda s: F.when(F.size(s["todo"]) > 0, unfinished.cast("array<variant>")).otherwise(
            s["done"]))


def _iterates(select: dict[str, Any]) -> bool:
    """The select makes a row per item (forEach, forEachOrNull, repeat): %rowIndex counts them."""
    return any(k in select for k in ("forEach", "forEachOrNull", "repeat"))


def _product(a: Column, a_names: list[str], b: Column, b_names: list[str]) -> Column:
    """Every row of `a` beside every row of `b`."""
    def merge(x: Column, y: Column) -> Column:
        return _struct(_names(x, a_names) + _names(y, b_names))
    return F.flatten(F.transform(a, lambda x: F.transform(b, lambda y: merge(x, y))))


def _reorder(rows: Column, names: list[str], order: list[str]) -> Column:
    return F.transform(rows, lambda r: _struct([(n, r[n]) for n in order])) if names != order else rows


def run_view(view: dict[str, Any], resources: DataFrame, column: str = "resource",
             keep: tuple[str, ...] = ()) -> DataFrame:
    """The rows of `view` over the resources in `resources[column]` (JSON text or VARIANT);
    columns named in `keep` (e.g. the silver row's `org_code`) are carried onto each row of
    their resource, after the view's own columns."""
    definition.check(view)
    src = resources.select(PF.col(column).alias("_r"), *keep)
    if dict(src.dtypes)["_r"] == "string":
        src = src.select(PF.parse_json("_r").alias("_r"), *keep)
    resource = F.col("_r")
    rtype = view["resource"]
    constants = {}
    for c in view.get("constant", []) or []:
        fhir_type, value = definition.constant_value(c)
        lit = F.lit(value)
        constants[c["name"]] = lit if fhir_type not in ("decimal",) else F.lit(float(value))
    env = Env(resource, rtype, constants)
    src = src.where(to_column(F.try_variant_get(resource, "$.resourceType", "string") == F.lit(rtype)))
    for w in view.get("where", []) or []:
        c = compile_path(w["path"], env, F.array(resource))
        not_boolean = F.raise_error(F.lit(f"where {w['path']!r}: the path is not boolean"))
        ok = let(c, lambda x: F.when(F.size(x) == 0, F.lit(False)).when(
            (F.size(x) == 1) & (kind(first(x)) == "b"), F.try_variant_get(first(x), "$", "boolean")).otherwise(
            not_boolean.cast("boolean")))
        src = src.where(to_column(ok))
    rows, names = _Rows(env).rows({"select": view["select"]}, resource, None)
    clash = set(keep) & set(names)
    if clash:
        raise ViewError(f"the view's column {sorted(clash)[0]} clashes with a carried column")
    return src.select(PF.inline(to_column(rows)), *keep).select(*[PF.col(f"`{n}`") for n in [*names, *keep]])


def column_types(view: dict[str, Any]) -> dict[str, str | None]:
    """Each column's FHIR type as the view declares it (None where it declares none)."""
    out: dict[str, str | None] = {}

    def walk(select: dict[str, Any]) -> None:
        for c in definition.columns(select):
            out[c.name] = c.type
        for nested in select.get("select", []) or []:
            walk(nested)
        for b in select.get("unionAll", []) or []:
            walk(b)

    walk({"select": view.get("select", [])})
    return out


__all__ = ["run_view", "column_types", "ViewError"]
