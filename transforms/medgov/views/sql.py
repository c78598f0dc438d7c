"""Spark SQL expression text, built with the shape of `pyspark.sql.functions`: the FHIRPath
compiler writes `F.transform(c, lambda x: ...)` and gets SQL text, which becomes one Spark
Column per view (`column()`). Building a view's expressions is then plain string work in
Python: no JVM round trip per function call, and the same on a local session and on Spark
Connect.

Every compound expression is parenthesised, so operator precedence never depends on the
caller; lambda variables get names of their own (`lv<n>`), so nested lambdas never capture.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

from pyspark.sql import Column
from pyspark.sql import functions as _F

_names = itertools.count()


class E:
    """A Spark SQL expression (its text)."""

    __slots__ = ("sql", "name")

    def __init__(self, sql: str, name: str | None = None) -> None:
        self.sql = sql
        self.name = name  # set by alias(): the field name inside a struct

    def _bin(self, op: str, other: Any) -> E:
        return E(f"({self.sql} {op} {lit(other).sql})")

    def __eq__(self, other: Any) -> E:  # type: ignore[override]
        return self._bin("=", other)

    def __ne__(self, other: Any) -> E:  # type: ignore[override]
        return self._bin("!=", other)

    def __lt__(self, other: Any) -> E:
        return self._bin("<", other)

    def __le__(self, other: Any) -> E:
        return self._bin("<=", other)

    def __gt__(self, other: Any) -> E:
        return self._bin(">", other)

    def __ge__(self, other: Any) -> E:
        return self._bin(">=", other)

    def __and__(self, other: Any) -> E:
        return self._bin("AND", other)

    def __or__(self, other: Any) -> E:
        return self._bin("OR", other)

    def __invert__(self) -> E:
        return E(f"(NOT {self.sql})")

    def __add__(self, other: Any) -> E:
        return self._bin("+", other)

    def __sub__(self, other: Any) -> E:
        return self._bin("-", other)

    def __mul__(self, other: Any) -> E:
        return self._bin("*", other)

    def __truediv__(self, other: Any) -> E:
        return self._bin("/", other)

    def __mod__(self, other: Any) -> E:
        return self._bin("%", other)

    def __neg__(self) -> E:
        return E(f"(- {self.sql})")

    __hash__ = None  # type: ignore[assignment]  # == builds an expression, it does not compare

    def __getitem__(self, field: str) -> E:
        return E(f"({self.sql}).`{field}`")

    def isNull(self) -> E:  # noqa: N802 - the pyspark name
        return E(f"({self.sql} IS NULL)")

    def cast(self, to: str) -> E:
        return E(f"CAST({self.sql} AS {to})")

    def alias(self, name: str) -> E:
        return E(self.sql, name)

    def rlike(self, pattern: str) -> E:
        return E(f"({self.sql} RLIKE {lit(pattern).sql})")


class When(E):
    """CASE WHEN …: `when(c, v).when(c2, v2).otherwise(x)`, usable without `otherwise`."""

    __slots__ = ("branches",)

    def __init__(self, branches: list[tuple[E, E]], default: E | None = None) -> None:
        self.branches = branches
        body = " ".join(f"WHEN {c.sql} THEN {v.sql}" for c, v in branches)
        super().__init__(f"(CASE {body}{f' ELSE {default.sql}' if default is not None else ''} END)")

    def when(self, condition: Any, value: Any) -> When:
        return When([*self.branches, (lit(condition), lit(value))])

    def otherwise(self, value: Any) -> E:
        return When(self.branches, lit(value))


def lit(value: Any) -> E:
    """A literal (an expression stays as it is)."""
    if isinstance(value, E):
        return value
    if value is None:
        return E("NULL")
    if isinstance(value, bool):
        return E("TRUE" if value else "FALSE")
    if isinstance(value, int):
        return E(str(value) if -2**31 < value < 2**31 else f"{value}L")
    if isinstance(value, float):
        return E(f"CAST('{value!r}' AS DOUBLE)")
    if isinstance(value, str):
        return E("'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'")
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def col(name: str) -> E:
    return E(f"`{name}`")


def expr(sql: str) -> E:
    return E(f"({sql})")


def _call(fn: str, *args: Any) -> E:
    return E(f"{fn}({', '.join(lit(a).sql for a in args)})")


def _lambda(fn: Callable[..., E], arity: int) -> str:
    names = [f"lv{next(_names)}" for _ in range(arity)]
    body = fn(*[E(n) for n in names])
    params = names[0] if arity == 1 else "(" + ", ".join(names) + ")"
    return f"{params} -> {lit(body).sql}"


def _arity(fn: Callable[..., Any]) -> int:
    return fn.__code__.co_argcount


def when(condition: Any, value: Any) -> When:
    return When([(lit(condition), lit(value))])


def transform(c: E, fn: Callable[..., E]) -> E:
    return E(f"transform({c.sql}, {_lambda(fn, _arity(fn))})")


def filter(c: E, fn: Callable[[E], E]) -> E:  # noqa: A001 - the pyspark name
    return E(f"filter({c.sql}, {_lambda(fn, 1)})")


def forall(c: E, fn: Callable[[E], E]) -> E:
    return E(f"forall({c.sql}, {_lambda(fn, 1)})")


def zip_with(a: E, b: E, fn: Callable[[E, E], E]) -> E:
    return E(f"zip_with({a.sql}, {b.sql}, {_lambda(fn, 2)})")


def aggregate(c: E, start: E, merge: Callable[[E, E], E]) -> E:
    return E(f"aggregate({c.sql}, {start.sql}, {_lambda(merge, 2)})")


def struct(*fields: E) -> E:
    """A struct of aliased expressions (`named_struct`)."""
    return E("named_struct(" + ", ".join(f"{lit(f.name).sql}, {f.sql}" for f in fields) + ")")


def try_variant_get(v: E, path: str, to: str) -> E:
    return E(f"try_variant_get({v.sql}, {lit(path).sql}, {lit(to).sql})")


def _simple(name: str) -> Callable[..., E]:
    def fn(*args: Any) -> E:
        return _call(name, *args)
    fn.__name__ = name
    return fn


abs = _simple("abs")  # noqa: A001 - the pyspark name
array = _simple("array")
array_join = _simple("array_join")
coalesce = _simple("coalesce")
concat = _simple("concat")
flatten = _simple("flatten")
floor = _simple("floor")
get = _simple("get")
greatest = _simple("greatest")
is_variant_null = _simple("is_variant_null")
named_struct = _simple("named_struct")
parse_json = _simple("parse_json")
raise_error = _simple("raise_error")
schema_of_variant = _simple("schema_of_variant")
sequence = _simple("sequence")
size = _simple("size")
slice = _simple("slice")  # noqa: A001 - the pyspark name
split = _simple("split")
to_json = _simple("to_json")
to_variant_object = _simple("to_variant_object")


def column(e: E) -> Column:
    """The Spark Column of an expression (one parse of its text in Spark)."""
    return _F.expr(e.sql)
