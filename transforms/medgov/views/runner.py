"""Run a ViewDefinition over FHIR resources in Spark, with no Python call per resource.

Two compilers build the same rows. The typed one (`typed`) reads each path's type from the
FHIR model, parses the resource once with `from_json` into a struct of only the elements the
view reads, and navigates with native field access: it is the fast path, and every view of
`schemas/views` and the benchmark takes it. The VARIANT one (`fhirpath`) covers the whole
conformance suite (choice elements without ofType, repeat, untyped columns, …) and runs a view
the typed compiler refuses; `plan()` says which one a view takes and why.

A select's rows are either exactly one per focus (its columns as expressions) or an array of
structs (forEach, forEachOrNull, repeat, unionAll), products of the two as nesting requires;
a view whose rows are one per resource is a plain projection, the rest is exploded once.

Pure DataFrame -> DataFrame: `run_view(view, resources)` takes a DataFrame with the resource
JSON (string) or VARIANT in column `resource`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as PF

from medgov.views import definition, prefilter, typed
from medgov.views import fhirpath as variant
from medgov.views import sql as F
from medgov.views.definition import ViewError, spark_type
from medgov.views.fhirpath import Env, as_string, empty, first, kind, let
from medgov.views.sql import E as Column
from medgov.views.sql import column as to_column

log = logging.getLogger(__name__)
_SEVERAL = "the path gave several values; a column that is not `collection: true` takes one"


class _Variant:
    """The VARIANT compiler: a focus is a VARIANT, a collection an array<variant>."""

    def path(self, expression: str, env: Env, focus: Any) -> Any:
        return variant.compile_path(expression, env, F.array(focus))

    def iterate(self, coll: Any) -> tuple[Column, Callable[[Column], Any]]:
        return coll, lambda v: v

    def boolean(self, coll: Any, path: str) -> Column:
        not_boolean = F.raise_error(F.lit(f"where {path!r}: the path is not boolean"))
        return let(coll, lambda x: F.when(F.size(x) == 0, F.lit(False)).when(
            (F.size(x) == 1) & (kind(first(x)) == "b"), F.try_variant_get(first(x), "$", "boolean")).otherwise(
            not_boolean.cast("boolean")))

    def value(self, c: Any, col: definition.Column) -> Column:
        """A column's value from its collection: the typed item, an error when several items
        come for a column that is not a collection."""
        sql = spark_type(col.type)

        def typed_item(x: Column) -> Column:
            if sql is None:
                return F.to_json(x)  # no type given: the JSON value, read back by the caller
            if sql == "string":
                return as_string(x)
            return F.try_variant_get(x, "$", sql)

        if col.collection:
            return F.transform(c, typed_item)
        too_many = F.raise_error(F.lit(f"column {col.name}: {_SEVERAL}"))
        return let(c, lambda x: F.when(F.size(x) > 1, too_many.cast(sql or "string")).otherwise(
            typed_item(first(x))))

    def none(self) -> Column:
        return F.array(first(empty()))

    def repeat(self, paths: list[str], env: Env, focus: Any) -> Any:
        """Every item reached by following `paths` again and again, depth first (each item
        followed by what it leads to), as one loop in the executors."""
        def children(x: Column) -> Column:
            return F.concat(*[variant.compile_path(p, env, F.array(x)) for p in paths])

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


class _Typed:
    """The typed compiler: a focus is a `typed.T` of one item."""

    def path(self, expression: str, env: Env, focus: Any) -> Any:
        return typed.compile_path(expression, env, focus)

    def iterate(self, coll: typed.T) -> tuple[Column, Callable[[Column], Any]]:
        return typed.items(coll), coll.item

    def boolean(self, t: typed.T, path: str) -> typed.T:
        if t.many or t.type != "boolean":
            raise typed.Untyped(f"where {path!r} is not a single boolean")
        return typed.T(F.coalesce(t.sql, F.lit(False)), "boolean", False,
                       fast=None if t.fast is None else F.coalesce(t.fast, F.lit(False)), sure=t.sure)

    def value(self, t: typed.T, col: definition.Column) -> typed.T:
        sql = spark_type(col.type)
        if sql is None or typed._kind(t) == "complex":
            raise typed.Untyped(f"column {col.name} keeps a JSON value")

        def cast(x: Column) -> Column:
            return x.cast(sql)
        if col.collection:
            return typed.T(F.transform(typed.items(t), cast), t.type, True)
        fast, sure = t.single()
        if not t.many:
            exact = cast(t.sql)
        else:
            too_many = F.raise_error(F.lit(f"column {col.name}: {_SEVERAL}"))
            exact = let(typed.items(t), lambda x: F.when(F.size(x) > 1, too_many.cast(sql)).otherwise(
                cast(F.get(x, 0))))
        return typed.T(exact, t.type, False, fast=None if fast is None else cast(fast), sure=sure)

    def none(self) -> Column:
        return F.expr("array(NULL)")

    def repeat(self, paths: list[str], env: Env, focus: Any) -> Any:
        raise typed.Untyped("repeat follows recursive elements, which a fixed struct cannot hold")


@dataclass
class _Rows:
    """A select's rows: `one` (the columns of exactly one row per focus) or `many` (an
    array<struct> of rows), and their column names."""

    names: list[str]
    one: list[Column] | None = None
    many: Column | None = None
    # with `one` from the typed compiler: each column's native reading and where it is exact
    native: list[tuple[Column | None, Column | None]] | None = None

    def array(self) -> Column:
        return self.many if self.many is not None else F.array(_struct(list(zip(self.names, self.one or []))))


def _struct(fields: list[tuple[str, Column]]) -> Column:
    if not fields:
        return F.struct(F.lit(None).cast("string").alias("__none"))
    return F.struct(*[c.alias(n) for n, c in fields])


def _product(a: _Rows, b: _Rows) -> _Rows:
    """Every row of `a` beside every row of `b`."""
    names = a.names + b.names
    if a.one is not None and b.one is not None:
        native = a.native + b.native if a.native is not None and b.native is not None else None
        return _Rows(names, one=a.one + b.one, native=native)
    if a.one is not None:
        return _Rows(names, many=F.transform(b.array(), lambda y: _struct(
            list(zip(a.names, a.one or [])) + [(n, y[n]) for n in b.names])))
    return _Rows(names, many=F.flatten(F.transform(a.array(), lambda x: F.transform(b.array(), lambda y: _struct(
        [(n, x[n]) for n in a.names] + [(n, y[n]) for n in b.names])))))


def _reorder(rows: _Rows, order: list[str]) -> Column:
    if rows.names == order:
        return rows.array()
    return F.transform(rows.array(), lambda r: _struct([(n, r[n]) for n in order]))


def _iterates(select: dict[str, Any]) -> bool:
    """The select makes a row per item (forEach, forEachOrNull, repeat): %rowIndex counts them."""
    return any(k in select for k in ("forEach", "forEachOrNull", "repeat"))


class _Builder:
    """Compiles the view's select tree with one of the two compilers."""

    def __init__(self, compiler: _Variant | _Typed, env: Env) -> None:
        self.c = compiler
        self.env = env

    def rows(self, select: dict[str, Any], focus: Any, index: Column | None) -> _Rows:
        if not _iterates(select):
            return self._rows_of(select, focus, index)
        env = self.env
        if "repeat" in select:
            coll, nulls = self.c.repeat(select["repeat"], env, focus), False
        else:
            key = "forEach" if "forEach" in select else "forEachOrNull"
            coll, nulls = self.c.path(select[key], env, focus), key == "forEachOrNull"
        foci, wrap = self.c.iterate(coll)
        if nulls:  # forEachOrNull over nothing: one row, its columns null
            foci = F.when(F.size(foci) == 0, self.c.none()).otherwise(foci)
        names = definition.columns_of(select)
        return _Rows(names, many=F.flatten(F.transform(foci, lambda f, i: self._rows_of(select, wrap(f), i).array())))

    def _rows_of(self, select: dict[str, Any], focus: Any, index: Column | None) -> _Rows:
        """The rows of `select` for one focus (its own columns, nested selects, unionAll)."""
        saved = self.env
        self.env = Env(saved.resource, saved.resource_type, saved.constants,
                       index if index is not None else saved.row_index)
        try:
            own = [(c.name, self.c.value(self.c.path(c.path, self.env, focus), c)) for c in definition.columns(select)]
            if isinstance(self.c, _Typed):
                acc = _Rows([n for n, _ in own], one=[v.sql for _, v in own],
                            native=[(v.fast, v.sure) for _, v in own])
            else:
                acc = _Rows([n for n, _ in own], one=[v for _, v in own])
            for nested in select.get("select", []) or []:
                acc = _product(acc, self.rows(nested, focus, self.env.row_index))
            branches = select.get("unionAll") or []
            if branches:
                parts = [self.rows(b, focus, self.env.row_index) for b in branches]
                order = parts[0].names
                acc = _product(acc, _Rows(order, many=F.concat(*[_reorder(p, order) for p in parts])))
            return acc
        finally:
            self.env = saved


@dataclass(frozen=True)
class Plan:
    """How a view runs: `typed` (native field access), or on VARIANT with the reason;
    `two_step` when typed with a native reading of every column (see `_two_steps`)."""

    typed: bool
    reason: str | None = None
    two_step: bool = False


def _has_native(where: list[Any], rows: _Rows) -> bool:
    return rows.native is not None and all(f is not None for f, _ in rows.native) and all(
        w.fast is not None for w in where)


def _compile(view: dict[str, Any], typed_path: bool) -> tuple[list[Any], _Rows, str | None]:
    """(where conditions, rows, the from_json schema when typed) of a checked view."""
    rtype = view["resource"]
    constants: dict[str, Any] = {}
    for c in view.get("constant", []) or []:
        fhir_type, value = definition.constant_value(c)
        constants[c["name"]] = (typed.constant(fhir_type, value) if typed_path
                                else F.lit(float(value)) if fhir_type == "decimal" else F.lit(value))
    if typed_path:
        if not typed.fhir_model.is_type(rtype):
            raise typed.Untyped(f"{rtype} is not a FHIR R4 resource type")
        shape = typed.Shape()
        shape.child(typed.fhir_model.Element("resourceType", "string", False))
        resource: Any = typed.T(F.col("_t"), rtype, False, shape, fast=F.col("_t"))
        compiler: _Variant | _Typed = _Typed()
    else:
        resource, compiler = F.col("_r"), _Variant()
    env = Env(resource, rtype, constants)
    where = [compiler.boolean(compiler.path(w["path"], env, resource), w["path"])
             for w in view.get("where", []) or []]
    rows = _Builder(compiler, env).rows({"select": view["select"]}, resource, None)
    return where, rows, shape.ddl() if typed_path else None


def view_schema(view: dict[str, Any]) -> str:
    """The struct (Spark DDL) the typed compiler parses a resource into for `view`: only the
    elements it reads. ViewError when the view does not compile typed."""
    definition.check(view)
    try:
        return _compile(view, True)[2] or ""
    except typed.Untyped as exc:
        raise ViewError(f"the view does not compile typed: {exc}") from None


def plan(view: dict[str, Any], resources_are_json: bool = True) -> Plan:
    """Which compiler runs `view`; ViewError when neither can."""
    definition.check(view)
    if not resources_are_json:
        return Plan(False, "the resources are VARIANT, not JSON text")
    try:
        where, rows, _ = _compile(view, True)
        return Plan(True, two_step=_has_native(where, rows))
    except (typed.Untyped, ViewError) as exc:
        return Plan(False, str(exc))


def run_view(view: dict[str, Any], resources: DataFrame, column: str = "resource",
             keep: tuple[str, ...] = (), compiler: str = "auto") -> DataFrame:
    """The rows of `view` over the resources in `resources[column]` (JSON text or VARIANT);
    columns named in `keep` (e.g. the silver row's `org_code`) are carried onto each row of
    their resource, after the view's own columns. `compiler`: "auto" (typed where the view
    compiles typed), or "typed" or "variant" to force one (ViewError where typed cannot)."""
    if compiler not in ("auto", "typed", "variant"):
        raise ViewError(f"compiler must be auto, typed or variant, not {compiler!r}")
    definition.check(view)
    src = resources.select(PF.col(column).alias("_r"), *keep)
    text = dict(src.dtypes)["_r"] == "string"
    skip = prefilter.text_test(view, PF.col("_r")) if text else None
    if skip is not None:  # on the text, before any parse: resources the view cannot keep cost no parse
        src = src.where(skip)
    how = plan(view, text) if compiler != "variant" else Plan(False, "asked for")
    if compiler == "typed" and not how.typed:
        raise ViewError(f"the view does not compile typed: {how.reason}")
    if how.typed:
        where, rows, schema = _compile(view, True)
        if _has_native(where, rows):
            return _two_steps(view["resource"], src, schema, where, rows, keep)
        src = src.select(PF.from_json("_r", schema).alias("_t"), *keep)  # type: ignore[arg-type]
        resource = F.col("_t")["resourceType"]
        where = [w.sql for w in where]
    else:
        log.info("view %s runs on VARIANT: %s", view.get("name", view["resource"]), how.reason)
        where, rows, _ = _compile(view, False)
        if dict(src.dtypes)["_r"] == "string":
            src = src.select(PF.parse_json("_r").alias("_r"), *keep)
        resource = F.try_variant_get(F.col("_r"), "$.resourceType", "string")
    _no_clash(rows, keep)
    # The resource type and the view's where clauses decide inside the generator, not in a
    # Filter: Spark pushes a Filter below the projection that parses the resource and would
    # parse every resource twice (the JSON parse is most of a view's cost).
    wanted = resource == F.lit(view["resource"])
    for w in where:
        wanted = wanted & w
    rows_of = F.when(wanted, rows.array())
    return src.select(PF.inline(to_column(rows_of)), *keep).select(*[PF.col(f"`{n}`") for n in [*rows.names, *keep]])


def _no_clash(rows: _Rows, keep: tuple[str, ...]) -> None:
    clash = set(keep) & set(rows.names)
    if clash:
        raise ViewError(f"the view's column {sorted(clash)[0]} clashes with a carried column")


def _two_steps(resource_type: str, src: DataFrame, schema: str, where: list[typed.T], rows: _Rows,
               keep: tuple[str, ...]) -> DataFrame:
    """A view of one row per resource in two steps. The first has no lambda, so Spark
    generates its code: it parses, keeps the resources of the view, and reads each column
    natively. The second computes the exact expressions only for the resources where a
    native reading is not known to be exact: it receives their JSON (the others pass null)
    and parses it again."""
    _no_clash(rows, keep)
    native = rows.native or []
    sure = typed._all(*[s for _, s in native], *[w.sure for w in where])
    unsure = F.lit(False) if sure is None else ~F.coalesce(sure, F.lit(False))
    parsed = src.select(PF.from_json("_r", schema).alias("_t"), "_r", *keep)  # type: ignore[arg-type]
    passes = F.col("_t")["resourceType"] == F.lit(resource_type)
    keep_native = typed._all(*[w.fast for w in where])
    if keep_native is not None:
        passes = passes & (keep_native | unsure)
    # Kept by a generator, not a Filter: Spark pushes a Filter below the projection that
    # parses, which would parse every resource twice. The columns are computed in the
    # projection after it, whose generated code stays small enough to be compiled by the JIT
    # (a generator of a struct of every column is not).
    kept = parsed.select("*", PF.explode(to_column(F.when(passes, F.expr("array(true)")))).alias("_kept"))
    first = kept.select(*[to_column(fast).alias(f"_n{i}") for i, (fast, _) in enumerate(native)],
                        to_column(F.when(unsure, F.col("_r"))).alias("_slow"), *keep)
    if sure is None:  # every native reading is exact
        return first.select(*[PF.col(f"_n{i}").alias(n) for i, n in enumerate(rows.names)], *keep)
    second = first.select("*", PF.from_json("_slow", schema).alias("_t"))  # type: ignore[arg-type]
    if where:
        # a generator again, not a Filter: Spark would push a Filter through both projections,
        # inlining the parses it reads into the condition (one parse per reference, per row)
        exact = F.col("_slow").isNull() | typed._all(*[w.sql for w in where])
        second = second.select("*", PF.explode(to_column(F.when(exact, F.expr("array(true)")))).alias("_kept"))
    out = [to_column(F.when(F.col("_slow").isNull(), F.col(f"_n{i}")).otherwise(exact)).alias(n)
           for i, (n, exact) in enumerate(zip(rows.names, rows.one or []))]
    return second.select(*out, *keep)


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


__all__ = ["Plan", "plan", "run_view", "view_schema", "column_types", "ViewError"]
