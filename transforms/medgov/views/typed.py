"""FHIRPath compiled against the FHIR element tree: each path gets its Spark type from the
FHIR model (`fhir_model`), the resource is parsed once with `from_json` into a struct holding
only the elements the view reads, and navigation is native field access (a struct's field, an
array of structs' fields, `flatten`), which Spark generates code for. Lambdas remain only
where FHIRPath filters (`where`, `extension`) or drops empty items.

What this compiler does not cover raises `Untyped` with the reason; the runner then runs the
view on the VARIANT compiler (`fhirpath`), which covers the whole conformance suite.

A compiled value is a `T`: its SQL, its FHIR type, and whether it is a collection. A single
value is null when empty. A collection is an array that may be null or hold nulls (an array
of structs' field is null where the struct lacks it); `items()` gives its FHIRPath items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from medgov.views import fhir_model
from medgov.views import sql as F
from medgov.views.definition import ViewError
from medgov.views.fhirpath import (
    _TYPE_SUFFIX,
    Env,
    _arguments,
    _function_name,
    _identifier,
    _last_member,
    _string_literal,
    _type_name,
    _unquote,
    let,
    parse,
)
from medgov.views.sql import E


class Untyped(Exception):
    """The expression is outside what the typed compiler covers (the reason)."""


@dataclass
class Shape:
    """The elements read below one complex value: the struct `from_json` parses it into."""

    fields: dict[str, tuple[fhir_model.Element, Shape | None]] = field(default_factory=dict)

    def child(self, el: fhir_model.Element) -> Shape | None:
        if el.name not in self.fields:
            self.fields[el.name] = (el, None if fhir_model.spark_type(el.type) else Shape())
        return self.fields[el.name][1]

    def ddl(self) -> str:
        """The Spark DDL of the struct (an element read only for its presence keeps its `id`)."""
        parts = []
        for name, (el, shape) in (self.fields or {"id": (fhir_model.Element("id", "string", False), None)}).items():
            t = fhir_model.spark_type(el.type) if shape is None else shape.ddl()
            parts.append(f"`{name}`:{f'array<{t}>' if el.many else t}")
        return f"struct<{','.join(parts)}>"


def _all(*conditions: E | None) -> E | None:
    """The conjunction of conditions (None: always true)."""
    present = [c for c in conditions if c is not None]
    if not present:
        return None
    out = present[0]
    for c in present[1:]:
        out = out & c
    return out


@dataclass
class T:
    """A compiled FHIRPath value.

    Besides its exact expression (`sql`, which may hold lambdas), a value may carry a native
    reading: Spark generates code for a plan node only when none of its expressions is a
    lambda, so the runner computes the native reading in one node and the exact expression in
    the next, for the rows where the native one is not known to be exact (`sure`).

    - a single value: `fast` equals `sql` wherever `sure` holds (None: always);
    - a collection, wherever `sure` holds: `head`, when not null, is its first item; `one`
      holds where it has at most one item, and `complete` where a null head means it is
      empty (both None: not known); `raw` is its array with the empty items still in.
    """

    sql: E
    type: str  # a FHIR type: a primitive, a complex type, a resource
    many: bool
    shape: Shape | None = None  # where the elements read below this value are recorded
    clean: bool = False  # a collection known to be a non-null array without null items
    fast: E | None = None
    sure: E | None = None
    head: E | None = None
    one: E | None = None
    complete: E | None = None
    raw: E | None = None

    def item(self, sql: E) -> T:
        """One item of this collection (a lambda variable); its native reading is the head."""
        return T(sql, self.type, False, self.shape, fast=self.head, sure=self.sure)

    def first(self) -> T:
        """The first item (null when empty)."""
        if not self.many:
            return self
        exact = F.get(items(self), 0)
        if self.head is None:
            return T(exact, self.type, False, self.shape)
        return T(exact, self.type, False, self.shape, fast=self.head, sure=self._head_decides())

    def exists(self) -> T:
        if not self.many:
            return T(~self.sql.isNull(), "boolean", False, fast=None if self.fast is None else ~self.fast.isNull(),
                     sure=self.sure)
        exact = F.size(items(self)) > 0
        if self.head is None:
            return T(exact, "boolean", False)
        return T(exact, "boolean", False, fast=~self.head.isNull(), sure=self._head_decides())

    def _head_decides(self) -> E | None:
        """Where the head alone gives the first item: found, or none to find."""
        assert self.head is not None
        return _all(self.sure, _any(~self.head.isNull(), self.complete))

    def single(self) -> tuple[E | None, E | None]:
        """(the native reading of a value that is one item or none, when it is) — for a
        collection, only where it has at most one item."""
        if not self.many:
            return self.fast, self.sure
        if self.head is None or self.one is None:
            return None, None
        return self.head, _all(self.sure, self.one)


def _any(*conditions: E | None) -> E:
    """The disjunction of conditions (None: not known, false)."""
    present = [c for c in conditions if c is not None]
    if not present:
        return F.lit(False)
    out = present[0]
    for c in present[1:]:
        out = out | c
    return out


def _native(sql: E, fhir_type: str) -> T:
    """A value with no lambda in it: its own native reading."""
    return T(sql, fhir_type, False, fast=sql)


def _combine(fhir_type: str, build: Callable[..., E], *operands: T) -> T:
    """A single value built from single values, its native reading built the same way."""
    sql = build(*[o.sql for o in operands])
    if any(o.fast is None for o in operands):
        return T(sql, fhir_type, False)
    return T(sql, fhir_type, False, fast=build(*[o.fast for o in operands]), sure=_all(*[o.sure for o in operands]))


def items(t: T) -> E:
    """The FHIRPath items of `t` as a non-null array without nulls."""
    if not t.many:
        return F.when(t.sql.isNull(), F.expr("array()")).otherwise(F.array(t.sql))
    if t.clean:
        return t.sql
    return F.filter(F.coalesce(t.sql, F.expr("array()")), lambda v: ~v.isNull())


def _field_equals(criteria: dict[str, Any]) -> tuple[str, str] | None:
    """(element, string) of a criteria `element = 'string'`; None for any other criteria."""
    node = criteria
    while node.get("type") in ("TermExpression", "InvocationTerm") and len(node.get("children") or []) == 1:
        node = node["children"][0]
    if node.get("type") != "EqualityExpression" or node.get("terminalNodeText") != ["="]:
        return None
    left, right = node["children"]
    literal = _string_literal(right)
    member, parent = _last_member(left)
    if literal is None or member is None or parent is not None:
        return None
    return member, literal


def _scalar(value: Any, fhir_type: str) -> T:
    return _native(F.lit(value), fhir_type)


def constant(fhir_type: str, value: Any) -> T:
    """A view constant as a typed value."""
    if fhir_type == "decimal":
        return _scalar(float(value), "decimal")
    return _scalar(value, fhir_type)


def _kind(t: T) -> str:
    """'number', 'boolean', 'text' (string-like primitives) or 'complex'."""
    if fhir_model.is_number(t.type):
        return "number"
    if t.type == "boolean":
        return "boolean"
    return "text" if t.type in fhir_model.PRIMITIVES else "complex"


def _size_at_most_one(array: E) -> E:
    return F.coalesce(F.size(array), F.lit(0)) <= 1


class Compiler:
    """Compiles one parse tree to a `T`; `Untyped` where it leaves the covered subset."""

    def __init__(self, env: Env, expression: str) -> None:
        self.env = env
        self.expression = expression

    def compile(self, node: dict[str, Any], focus: T) -> T:
        t = node.get("type")
        kids = node.get("children") or []
        if t is None or t in ("TermExpression", "InvocationTerm", "LiteralTerm", "ExternalConstantTerm"):
            if len(kids) != 1:
                raise Untyped("unexpected expression shape")
            return self.compile(kids[0], focus)
        handler: Callable[[dict[str, Any], T], T] | None = getattr(self, f"_{t}", None)
        if handler is None:
            raise Untyped(f"{t} is not compiled natively")
        return handler(node, focus)

    # navigation
    def child(self, t: T, name: str) -> T:
        if t.shape is None:
            raise Untyped(f"{name} of a {t.type}, which has no elements")
        el = fhir_model.element(t.type, name)
        if el is None:
            why = "a choice element, read through ofType()" if fhir_model.is_choice(t.type, name) else \
                "not an element of the FHIR R4 model"
            raise Untyped(f"{t.type}.{name}: {why}")
        shape = t.shape.child(el)
        value = t.sql[name]  # on an array of structs: the array of their fields
        if not t.many:
            if not el.many:
                return T(value, el.type, False, shape, fast=None if t.fast is None else t.fast[name], sure=t.sure)
            if t.fast is None:
                return T(value, el.type, True, shape)
            raw = t.fast[name]
            one = _size_at_most_one(raw)
            return T(value, el.type, True, shape, sure=t.sure, head=F.get(raw, 0), one=one, complete=one, raw=raw)
        if el.many:  # an array of arrays: one array, its absent parts left out
            value = F.flatten(F.filter(value, lambda a: ~a.isNull()))
        if t.head is None:
            return T(value, el.type, True, shape)
        # a null head below an empty parent means empty too
        parent_empty = None if t.complete is None else t.head.isNull() & t.complete
        if not el.many:
            return T(value, el.type, True, shape, sure=t.sure, head=t.head[name], one=t.one,
                     complete=_any(t.one, parent_empty), raw=None if t.raw is None else t.raw[name])
        inner = t.head[name]
        one = None if t.one is None else t.one & _size_at_most_one(inner)
        return T(value, el.type, True, shape, sure=t.sure, head=F.get(inner, 0), one=one,
                 complete=_any(one, parent_empty))

    def _MemberInvocation(self, node: dict[str, Any], focus: T) -> T:
        name = _identifier(node)
        if name == self.env.resource_type and focus.type == name:
            return focus
        return self.child(focus, name)

    def _ThisInvocation(self, node: dict[str, Any], focus: T) -> T:
        return focus

    def _ParenthesizedTerm(self, node: dict[str, Any], focus: T) -> T:
        return self.compile(node["children"][0], focus)

    def _StringLiteral(self, node: dict[str, Any], focus: T) -> T:
        return _scalar(_unquote(node["terminalNodeText"][0]), "string")

    def _NumberLiteral(self, node: dict[str, Any], focus: T) -> T:
        text = node["terminalNodeText"][0]
        return _scalar(float(text), "decimal") if "." in text else _scalar(int(text), "integer")

    def _BooleanLiteral(self, node: dict[str, Any], focus: T) -> T:
        return _scalar(node["terminalNodeText"][0] == "true", "boolean")

    def _ExternalConstant(self, node: dict[str, Any], focus: T) -> T:
        name = _identifier(node) if node.get("children") else node["terminalNodeText"][-1]
        if name == "rowIndex":
            return _native(self.env.row_index if self.env.row_index is not None else F.lit(0), "integer")
        if name in ("resource", "rootResource"):
            return self.env.resource
        if name not in self.env.constants:
            raise ViewError(f"FHIRPath {self.expression!r}: %{name} is not a constant of the view")
        return self.env.constants[name]

    def _InvocationExpression(self, node: dict[str, Any], focus: T) -> T:
        left, right = node["children"]
        if right.get("type") == "FunctionInvocation" and _function_name(right) == "ofType":
            return self._of_type(left, right, focus)
        return self.compile(right, self.compile(left, focus))

    def _of_type(self, left: dict[str, Any], call: dict[str, Any], focus: T) -> T:
        args = _arguments(call)
        type_name = _type_name(args[0]) if len(args) == 1 else None
        member, parent = _last_member(left)
        if type_name is None or member is None:
            raise Untyped("ofType() other than on a choice element")
        suffix = _TYPE_SUFFIX.get(type_name, type_name[:1].upper() + type_name[1:])
        base = self.compile(parent, focus) if parent is not None else focus
        if not fhir_model.is_choice(base.type, member):
            raise Untyped(f"ofType() on {base.type}.{member}, which is not a choice element")
        return self.child(base, member + suffix)

    # functions
    def _FunctionInvocation(self, node: dict[str, Any], focus: T) -> T:
        name = _function_name(node)
        fn = getattr(self, f"fn_{name}", None)
        if fn is None:
            raise Untyped(f"function {name}() is not compiled natively")
        return fn(focus, _arguments(node))

    def _args(self, name: str, args: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
        if len(args) != n:
            raise Untyped(f"{name}() with {len(args)} argument(s)")
        return args

    def _boolean(self, t: T, what: str) -> T:
        if t.many or t.type != "boolean":
            raise Untyped(f"{what} is not a single boolean")
        return t

    def fn_where(self, c: T, args: list[dict[str, Any]]) -> T:
        (criteria,) = self._args("where", args, 1)

        def keep(v: E) -> E:
            crit = self._boolean(self.compile(criteria, c.item(v)), "where()'s criteria")
            return F.coalesce(crit.sql, F.lit(False))
        if not c.many:
            crit = self._boolean(self.compile(criteria, c), "where()'s criteria")
            keep_it = F.coalesce(crit.sql, F.lit(False))
            fast = None if crit.fast is None or c.fast is None else F.when(F.coalesce(crit.fast, F.lit(False)), c.fast)
            return T(F.when(keep_it, c.sql), c.type, False, c.shape, fast=fast, sure=_all(c.sure, crit.sure))
        out = T(F.filter(F.coalesce(c.sql, F.expr("array()")), lambda v: ~v.isNull() & keep(v)),
                c.type, True, c.shape, clean=True)
        found = _field_equals(criteria)
        if found is not None and self._first_equal(c, out, *found):
            return out
        self._first_meeting(c, out, lambda item: self.compile(criteria, item))
        return out

    def _first_equal(self, c: T, out: T, name: str, literal: str) -> bool:
        """`where(element = 'string')`: the first match by array_position over the raw array,
        and whether a second follows it. False where this does not apply."""
        el = fhir_model.element(c.type, name)
        if c.raw is None or c.shape is None or el is None or el.many or _kind(T(E(""), el.type, False)) != "text":
            return False
        c.shape.child(el)
        values, lit = c.raw[name].sql, F.lit(literal).sql
        at = E(f"array_position({values}, {lit})")
        after = E(f"array_position(slice({values}, ({at.sql} + 1), greatest(coalesce(size({values}), 0), 1)), {lit})")
        out.head, out.sure = F.get(c.raw, at - 1), c.sure
        out.one, out.complete = F.coalesce(after, F.lit(0)) == 0, F.lit(True)
        return True

    def _first_meeting(self, c: T, out: T, criteria: Callable[[T], T], look: int = 2) -> None:
        """Any other criteria: the first of the first `look` items that meets it (from the raw
        array, else the head alone); a null head is exact when no other item was left unseen."""
        def meets(item: E) -> tuple[E | None, E | None]:
            crit = self._boolean(criteria(T(item, c.type, False, c.shape, fast=item)), "where()'s criteria")
            return (None, None) if crit.fast is None else (F.coalesce(crit.fast, F.lit(False)), crit.sure)
        if c.raw is not None:
            candidates = [F.get(c.raw, i) for i in range(look)]
            checks = [meets(x) for x in candidates]
            if all(ok is not None for ok, _ in checks):
                head: E = F.when(checks[0][0], candidates[0])
                for (ok, _), x in zip(checks[1:], candidates[1:]):
                    head = head.when(ok, x)  # type: ignore[attr-defined]
                out.head, out.one = head, c.one
                out.complete = F.coalesce(F.size(c.raw), F.lit(0)) <= look
                out.sure = _all(c.sure, *[sure for _, sure in checks])
            return
        if c.head is None:
            return
        ok, sure = meets(c.head)
        if ok is not None:
            out.head, out.one = F.when(ok, c.head), c.one
            out.complete = _any(c.one, None if c.complete is None else c.head.isNull() & c.complete)
            out.sure = _all(c.sure, sure)

    def fn_exists(self, c: T, args: list[dict[str, Any]]) -> T:
        if args:
            c = self.fn_where(c, args)
        return c.exists()

    def fn_empty(self, c: T, args: list[dict[str, Any]]) -> T:
        self._args("empty", args, 0)
        e = c.exists()
        return T(~e.sql, "boolean", False, fast=None if e.fast is None else ~e.fast, sure=e.sure)

    def fn_count(self, c: T, args: list[dict[str, Any]]) -> T:
        self._args("count", args, 0)
        return T(F.size(items(c)), "integer", False)

    def fn_first(self, c: T, args: list[dict[str, Any]]) -> T:
        self._args("first", args, 0)
        return c.first()

    def fn_last(self, c: T, args: list[dict[str, Any]]) -> T:
        self._args("last", args, 0)
        return c if not c.many else T(E(f"try_element_at({items(c).sql}, -1)"), c.type, False, c.shape)

    def fn_not(self, c: T, args: list[dict[str, Any]]) -> T:
        self._args("not", args, 0)
        return _combine("boolean", lambda x: ~x, self._boolean(c, "not()'s input"))

    def fn_join(self, c: T, args: list[dict[str, Any]]) -> T:
        sep = ""
        if args:
            (arg,) = self._args("join", args, 1)
            sep = _string_literal(arg)
            if sep is None:
                raise Untyped("join() without a string literal separator")
        if _kind(c) != "text":
            raise Untyped(f"join() of {c.type}")
        return T(F.array_join(items(c), sep), "string", False)

    def fn_extension(self, c: T, args: list[dict[str, Any]]) -> T:
        (arg,) = self._args("extension", args, 1)
        url = self.compile(arg, c)
        if url.many or _kind(url) != "text":
            raise Untyped("extension() without a single string url")
        ext = self.child(c, "extension")
        ext.shape.child(fhir_model.element("Extension", "url"))  # type: ignore[union-attr, arg-type]
        out = T(F.filter(F.coalesce(ext.sql, F.expr("array()")), lambda v: ~v.isNull() & (v["url"] == url.sql)),
                "Extension", True, ext.shape, clean=True)
        literal = _string_literal(arg)
        if literal is not None and self._first_equal(ext, out, "url", literal):
            return out
        if url.fast is not None:
            self._first_meeting(ext, out, lambda item: _combine("boolean", lambda u, x: x["url"] == u, url, item))
        return out

    def fn_getResourceKey(self, c: T, args: list[dict[str, Any]]) -> T:
        self._args("getResourceKey", args, 0)
        return self.child(c, "id")

    def fn_getReferenceKey(self, c: T, args: list[dict[str, Any]]) -> T:
        wanted = None
        if args:
            (arg,) = self._args("getReferenceKey", args, 1)
            wanted = _type_name(arg)
            if wanted is None:
                raise Untyped("getReferenceKey() with an argument that is not a type")
        if c.type != "Reference":
            raise Untyped(f"getReferenceKey() on a {c.type}")
        ref = self.child(c, "reference")

        # the last two parts of `[base/]Type/id`, as getReferenceKey reads a relative or absolute reference
        def key(r: E) -> E:
            ok = r.rlike("/")
            if wanted is not None:
                ok = ok & (E(f"regexp_extract({r.sql}, '([^/]*)/([^/]*)$', 1)") == F.lit(wanted))
            return F.when(ok, E(f"regexp_extract({r.sql}, '([^/]*)/([^/]*)$', 2)"))
        if not ref.many:
            return _combine("string", key, ref)
        return T(F.transform(ref.sql, key), "string", True)

    # indexer and operators
    def _IndexerExpression(self, node: dict[str, Any], focus: T) -> T:
        base, index = node["children"]
        c, i = self.compile(base, focus), self.compile(index, focus)
        if i.many or not fhir_model.is_number(i.type):
            raise Untyped("an index that is not a single number")
        return T(F.get(items(c), i.sql.cast("int")), c.type, False, c.shape)

    def _pair(self, node: dict[str, Any], focus: T) -> tuple[T, T, str]:
        a, b = node["children"]
        return self.compile(a, focus), self.compile(b, focus), node["terminalNodeText"][0]

    def _comparable(self, a: T, b: T, op: str) -> None:
        if _kind(a) != _kind(b) or _kind(a) == "complex":
            raise Untyped(f"{a.type} {op} {b.type}")

    def _EqualityExpression(self, node: dict[str, Any], focus: T) -> T:
        a, b, op = self._pair(node, focus)
        if op not in ("=", "!="):
            raise Untyped(f"the {op} operator")
        self._comparable(a, b, op)

        def compare(x: E, y: E) -> E:
            return x == y if op == "=" else ~(x == y)
        if not a.many and not b.many:
            return _combine("boolean", compare, a, b)

        # collections are equal when they have the same items in the same order
        def equal(x: E, y: E) -> E:
            return F.when((F.size(x) == 0) | (F.size(y) == 0), F.lit(None).cast("boolean")).otherwise(compare(x, y))
        sql = let(items(a), lambda x: let(items(b), lambda y: equal(x, y)))
        (fa, sa), (fb, sb) = a.single(), b.single()
        if fa is None or fb is None:
            return T(sql, "boolean", False)
        # each side one item or none: the items compare as single values
        return T(sql, "boolean", False, fast=compare(fa, fb), sure=_all(sa, sb))

    def _InequalityExpression(self, node: dict[str, Any], focus: T) -> T:
        a, b, op = self._pair(node, focus)
        if a.many or b.many:
            raise Untyped(f"{op} on a collection")
        self._comparable(a, b, op)
        return _combine("boolean", lambda x, y: x._bin(op, y), a, b)

    def _AndExpression(self, node: dict[str, Any], focus: T) -> T:
        a, b, _ = self._pair(node, focus)
        return _combine("boolean", lambda x, y: x & y, self._boolean(a, "and's operand"),
                        self._boolean(b, "and's operand"))

    def _OrExpression(self, node: dict[str, Any], focus: T) -> T:
        a, b, op = self._pair(node, focus)

        def either(p: E, q: E) -> E:
            return (p | q) & ~(p & q) if op == "xor" else p | q
        return _combine("boolean", either, self._boolean(a, f"{op}'s operand"), self._boolean(b, f"{op}'s operand"))

    def _ImpliesExpression(self, node: dict[str, Any], focus: T) -> T:
        a, b, _ = self._pair(node, focus)
        return _combine("boolean", lambda p, q: ~p | q, self._boolean(a, "implies' operand"),
                        self._boolean(b, "implies' operand"))

    def _numbers(self, a: T, b: T, op: str) -> None:
        if a.many or b.many or not fhir_model.is_number(a.type) or not fhir_model.is_number(b.type):
            raise Untyped(f"{a.type} {op} {b.type}")

    def _AdditiveExpression(self, node: dict[str, Any], focus: T) -> T:
        a, b, op = self._pair(node, focus)
        if op == "&":
            if a.many or b.many or _kind(a) != "text" or _kind(b) != "text":
                raise Untyped(f"{a.type} & {b.type}")
            return _combine("string", lambda x, y: F.concat(F.coalesce(x, F.lit("")), F.coalesce(y, F.lit(""))), a, b)
        self._numbers(a, b, op)
        whole = a.type != "decimal" and b.type != "decimal"
        return _combine("integer" if whole else "decimal", lambda x, y: x + y if op == "+" else x - y, a, b)

    def _MultiplicativeExpression(self, node: dict[str, Any], focus: T) -> T:
        a, b, op = self._pair(node, focus)
        self._numbers(a, b, op)
        whole = a.type != "decimal" and b.type != "decimal"
        if op == "*":
            return _combine("integer" if whole else "decimal", lambda x, y: x * y, a, b)
        if op == "/":
            return _combine("decimal", lambda x, y: F.when(y != 0, x.cast("double") / y), a, b)
        if op == "div":
            return _combine("integer", lambda x, y: F.when(y != 0, F.floor(x.cast("double") / y)), a, b)
        return _combine("integer" if whole else "decimal", lambda x, y: F.when(y != 0, x % y), a, b)

    def _PolarityExpression(self, node: dict[str, Any], focus: T) -> T:
        c = self.compile(node["children"][0], focus)
        if c.many or not fhir_model.is_number(c.type):
            raise Untyped(f"polarity of {c.type}")
        return c if node["terminalNodeText"][0] == "+" else _combine(c.type, lambda x: -x, c)


def compile_path(expression: str, env: Env, focus: T) -> T:
    """`expression` evaluated on `focus`, typed; Untyped outside the native subset."""
    return Compiler(env, expression).compile(parse(expression), focus)


__all__ = ["Shape", "T", "Untyped", "compile_path", "constant", "items"]
