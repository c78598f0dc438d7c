"""FHIRPath, compiled to Spark SQL: every expression becomes an expression holding its
collection as `array<variant>`, evaluated in the executors with no Python call per resource.

The expression is parsed by fhirpathpy's grammar (the official ANTLR one); the tree is then
compiled here. A collection is an array of VARIANT values (FHIR JSON parsed with
`parse_json`); navigation flattens arrays as FHIRPath does; empty collections propagate as
FHIRPath's empty (SQL null once reduced to a single boolean, which gives FHIRPath's
three-valued `and` / `or`). What the subset leaves out is refused when the view is read,
with the expression and the reason, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from medgov.views import sql as F
from medgov.views.definition import ViewError
from medgov.views.sql import E as Column

Coll = Column  # array<variant>
NUMERIC = ("BIGINT", "INT", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT", "DECIMAL")


@dataclass
class Env:
    """What an expression may refer to besides its focus: the resource, constants (already
    variants), %rowIndex of the innermost forEach."""

    resource: Column  # variant
    resource_type: str
    constants: dict[str, Column] = field(default_factory=dict)
    row_index: Column | None = None


def parse(expression: str) -> dict[str, Any]:
    """The fhirpathpy parse tree of `expression`; ViewError with the reason when it is not FHIRPath."""
    if not isinstance(expression, str) or not expression.strip():
        raise ViewError(f"not a FHIRPath expression: {expression!r}")
    return _parse(expression)


@lru_cache(maxsize=4096)
def _parse(expression: str) -> dict[str, Any]:
    """Parsed once per process: the ANTLR parser is the slow part of compiling a view (the
    tree is only read, never changed)."""
    from fhirpathpy.parser import parse as fhirpath_parse

    try:
        return fhirpath_parse(expression)
    except Exception as exc:  # the ANTLR lexer and parser raise their own types
        raise ViewError(f"invalid FHIRPath {expression!r}: {type(exc).__name__}") from None


# -- collections --------------------------------------------------------------------------

def let(value: Column, body: Callable[[Column], Column]) -> Column:
    """`body(value)` with `value` computed once: an expression used twice would otherwise be
    copied into the plan twice, and nested copies grow the plan exponentially."""
    return F.get(F.transform(F.array(value), body), 0)


def let2(a: Column, b: Column, body: Callable[[Column, Column], Column]) -> Column:
    return let(a, lambda x: let(b, lambda y: body(x, y)))


def to_variant(value: Column) -> Column:
    """A Spark scalar as a VARIANT (null stays null)."""
    return F.try_variant_get(F.to_variant_object(F.named_struct(F.lit("v"), value)), "$.v", "variant")


def empty() -> Coll:
    return F.expr("filter(array(parse_json('null')), x -> false)")


def single(value: Column) -> Coll:
    """A collection of one Spark scalar, empty when it is null."""
    return let(value, lambda v: F.when(v.isNull(), empty()).otherwise(F.array(to_variant(v))))


def of_variant(v: Column) -> Coll:
    """A JSON value as a collection: an array's items, a value alone, nothing for null."""
    # `v` is a small expression of a lambda variable: repeating it is cheaper than binding it.
    # A JSON null inside an array (`"given": [null, "Wei"]`, beside `_given`) is no item.
    items = F.filter(F.try_variant_get(v, "$", "array<variant>"), lambda x: ~(x.isNull() | F.is_variant_null(x)))
    return F.coalesce(items, F.when(v.isNull() | F.is_variant_null(v), empty()).otherwise(F.array(v)))


def child(c: Coll, name: str) -> Coll:
    return F.flatten(F.transform(c, lambda x: of_variant(F.try_variant_get(x, f"$.{name}", "variant"))))


def first(c: Coll) -> Column:
    return F.get(c, 0)


def kind(v: Column) -> Column:
    """'n' number, 's' string, 'b' boolean, 'o' anything else (object, array)."""
    def of(t: Column) -> Column:
        return (F.when(t.rlike("^(" + "|".join(NUMERIC) + ")"), "n").when(t == "STRING", "s")
                .when(t == "BOOLEAN", "b").otherwise("o"))
    return let(F.schema_of_variant(v), of)


def as_string(v: Column) -> Column:
    return let(v, lambda x: F.coalesce(F.try_variant_get(x, "$", "string"), F.to_json(x)))


def as_double(v: Column) -> Column:
    return F.try_variant_get(v, "$", "double")


def as_boolean(c: Coll) -> Column:
    """FHIRPath's singleton boolean of a collection: null (empty) when empty."""
    return let(c, lambda x: F.when(F.size(x) == 0, F.lit(None).cast("boolean")).otherwise(
        F.try_variant_get(first(x), "$", "boolean")))


# -- the compiler ------------------------------------------------------------------------

_TYPE_SUFFIX = {"boolean": "Boolean", "string": "String", "integer": "Integer", "decimal": "Decimal",
                "dateTime": "DateTime", "date": "Date", "time": "Time", "instant": "Instant", "code": "Code",
                "id": "Id", "oid": "Oid", "uri": "Uri", "url": "Url", "uuid": "Uuid", "canonical": "Canonical",
                "markdown": "Markdown", "base64Binary": "Base64Binary", "positiveInt": "PositiveInt",
                "unsignedInt": "UnsignedInt", "integer64": "Integer64"}


class Compiler:
    """Compiles one parse tree against an environment; `compile(node, focus)` -> Coll."""

    def __init__(self, env: Env, expression: str) -> None:
        self.env = env
        self.expression = expression

    def refuse(self, why: str) -> ViewError:
        return ViewError(f"FHIRPath {self.expression!r}: {why}")

    def compile(self, node: dict[str, Any], focus: Coll) -> Coll:
        t = node.get("type")
        kids = node.get("children") or []
        if t is None or t in ("TermExpression", "InvocationTerm", "LiteralTerm", "ExternalConstantTerm"):
            if len(kids) != 1:
                raise self.refuse("unexpected expression shape")
            return self.compile(kids[0], focus)
        handler: Callable[[dict[str, Any], Coll], Coll] | None = getattr(self, f"_{t}", None)
        if handler is None:
            raise self.refuse(f"{t} is not supported")
        return handler(node, focus)

    # terms
    def _MemberInvocation(self, node: dict[str, Any], focus: Coll) -> Coll:
        name = _identifier(node)
        if name == self.env.resource_type:
            return focus  # `Patient.name`: the type names the resource itself
        return child(focus, name)

    def _ThisInvocation(self, node: dict[str, Any], focus: Coll) -> Coll:
        return focus

    def _ParenthesizedTerm(self, node: dict[str, Any], focus: Coll) -> Coll:
        return self.compile(node["children"][0], focus)

    def _StringLiteral(self, node: dict[str, Any], focus: Coll) -> Coll:
        return single(F.lit(_unquote(node["terminalNodeText"][0])))

    def _NumberLiteral(self, node: dict[str, Any], focus: Coll) -> Coll:
        text = node["terminalNodeText"][0]
        return single(F.lit(float(text)) if "." in text else F.lit(int(text)))

    def _BooleanLiteral(self, node: dict[str, Any], focus: Coll) -> Coll:
        return single(F.lit(node["terminalNodeText"][0] == "true"))

    def _NullLiteral(self, node: dict[str, Any], focus: Coll) -> Coll:
        return empty()

    def _DateTimeLiteral(self, node: dict[str, Any], focus: Coll) -> Coll:
        return single(F.lit(node["terminalNodeText"][0].lstrip("@")))

    _DateLiteral = _DateTimeLiteral
    _TimeLiteral = _DateTimeLiteral

    def _ExternalConstant(self, node: dict[str, Any], focus: Coll) -> Coll:
        name = _identifier(node) if node.get("children") else node["terminalNodeText"][-1]
        if name == "rowIndex":
            return single(self.env.row_index if self.env.row_index is not None else F.lit(0))
        if name == "resource" or name == "rootResource":
            return F.array(self.env.resource)
        if name not in self.env.constants:
            raise self.refuse(f"%{name} is not a constant of the view")
        return single(self.env.constants[name])

    # navigation and functions
    def _InvocationExpression(self, node: dict[str, Any], focus: Coll) -> Coll:
        left, right = node["children"]
        if right.get("type") == "FunctionInvocation" and _function_name(right) == "ofType":
            return self._of_type(left, right, focus)
        return self.compile(right, self.compile(left, focus))

    def _FunctionInvocation(self, node: dict[str, Any], focus: Coll) -> Coll:
        name = _function_name(node)
        args = _arguments(node)
        fn = getattr(self, f"fn_{name}", None)
        if fn is None:
            raise self.refuse(f"function {name}() is not supported")
        return fn(focus, args)

    def _of_type(self, left: dict[str, Any], call: dict[str, Any], focus: Coll) -> Coll:
        """`value.ofType(Quantity)`: FHIR JSON writes a choice element as `valueQuantity`."""
        args = _arguments(call)
        if len(args) != 1:
            raise self.refuse("ofType() takes one type")
        type_name = _type_name(args[0])
        if type_name is None:
            raise self.refuse("ofType() takes a type name")
        suffix = _TYPE_SUFFIX.get(type_name, type_name[:1].upper() + type_name[1:])
        member, parent = _last_member(left)
        if member is None:
            raise self.refuse("ofType() is supported on a choice element (value.ofType(Quantity))")
        base = self.compile(parent, focus) if parent is not None else focus
        return child(base, member + suffix)

    def fn_where(self, c: Coll, args: list[dict[str, Any]]) -> Coll:
        (criteria,) = self._arity("where", args, 1)
        return F.filter(c, lambda x: F.coalesce(as_boolean(self.compile(criteria, F.array(x))), F.lit(False)))

    def fn_exists(self, c: Coll, args: list[dict[str, Any]]) -> Coll:
        if args:
            c = self.fn_where(c, args)
        return single(F.size(c) > 0)

    def fn_empty(self, c: Coll, args: list[dict[str, Any]]) -> Coll:
        self._arity("empty", args, 0)
        return single(F.size(c) == 0)

    def fn_count(self, c: Coll, args: list[dict[str, Any]]) -> Coll:
        self._arity("count", args, 0)
        return single(F.size(c))

    def fn_first(self, c: Coll, args: list[dict[str, Any]]) -> Coll:
        self._arity("first", args, 0)
        return F.slice(c, 1, 1)

    def fn_last(self, c: Coll, args: list[dict[str, Any]]) -> Coll:
        self._arity("last", args, 0)
        return let(c, lambda x: F.when(F.size(x) == 0, x).otherwise(F.slice(x, -1, 1)))

    def fn_not(self, c: Coll, args: list[dict[str, Any]]) -> Coll:
        self._arity("not", args, 0)
        return single(~as_boolean(c))

    def fn_join(self, c: Coll, args: list[dict[str, Any]]) -> Coll:
        sep = ""
        if args:
            (arg,) = self._arity("join", args, 1)
            sep = _string_literal(arg)
            if sep is None:
                raise self.refuse("join() takes a string literal separator")
        return single(F.array_join(F.transform(c, as_string), sep))

    def fn_extension(self, c: Coll, args: list[dict[str, Any]]) -> Coll:
        (arg,) = self._arity("extension", args, 1)
        url = as_string(first(self.compile(arg, c)))
        return F.filter(child(c, "extension"), lambda x: F.try_variant_get(x, "$.url", "string") == url)

    def fn_getResourceKey(self, c: Coll, args: list[dict[str, Any]]) -> Coll:
        self._arity("getResourceKey", args, 0)
        return child(c, "id")

    def fn_getReferenceKey(self, c: Coll, args: list[dict[str, Any]]) -> Coll:
        wanted = None
        if args:
            (arg,) = self._arity("getReferenceKey", args, 1)
            wanted = _type_name(arg)
            if wanted is None:
                raise self.refuse("getReferenceKey() takes a resource type")
        refs = F.transform(c, lambda x: F.try_variant_get(x, "$.reference", "string"))
        parts = F.filter(F.transform(refs, lambda r: F.split(r, "/")), lambda p: F.size(p) >= 2)
        if wanted is not None:
            parts = F.filter(parts, lambda p: F.get(p, F.size(p) - 2) == F.lit(wanted))
        return F.transform(parts, lambda p: to_variant(F.get(p, F.size(p) - 1)))

    def _arity(self, name: str, args: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
        if len(args) != n:
            raise self.refuse(f"{name}() takes {n} argument(s), not {len(args)}")
        return args

    # indexer and operators
    def _IndexerExpression(self, node: dict[str, Any], focus: Coll) -> Coll:
        base, index = node["children"]
        c = self.compile(base, focus)
        return let(F.try_variant_get(first(self.compile(index, focus)), "$", "int"), lambda i: (
            F.when(i.isNull() | (i < 0), empty()).otherwise(F.slice(c, i + 1, 1))))

    def _pair(self, node: dict[str, Any], focus: Coll) -> tuple[Coll, Coll, str]:
        a, b = node["children"]
        return self.compile(a, focus), self.compile(b, focus), node["terminalNodeText"][0]

    def _EqualityExpression(self, node: dict[str, Any], focus: Coll) -> Coll:
        a, b, op = self._pair(node, focus)
        if op in ("~", "!~"):
            raise self.refuse(f"the {op} operator is not supported")

        def body(x: Column, y: Column) -> Column:
            same = _equal(x, y)
            return F.when((F.size(x) == 0) | (F.size(y) == 0), empty()).otherwise(
                single(same if op == "=" else ~same))
        return let2(a, b, body)

    def _InequalityExpression(self, node: dict[str, Any], focus: Coll) -> Coll:
        a, b, op = self._pair(node, focus)
        ops = {"<": lambda p, q: p < q, "<=": lambda p, q: p <= q, ">": lambda p, q: p > q,
               ">=": lambda p, q: p >= q}

        def body(ca: Column, cb: Column) -> Column:
            def cmp(x: Column, y: Column) -> Column:
                numbers = (kind(x) == "n") & (kind(y) == "n")
                return F.when(numbers, ops[op](as_double(x), as_double(y))).otherwise(
                    ops[op](as_string(x), as_string(y)))
            return F.when((F.size(ca) == 0) | (F.size(cb) == 0), empty()).otherwise(
                single(let2(first(ca), first(cb), cmp)))
        return let2(a, b, body)

    def _AndExpression(self, node: dict[str, Any], focus: Coll) -> Coll:
        a, b, _ = self._pair(node, focus)
        return single(as_boolean(a) & as_boolean(b))

    def _OrExpression(self, node: dict[str, Any], focus: Coll) -> Coll:
        a, b, op = self._pair(node, focus)
        p, q = as_boolean(a), as_boolean(b)
        if op == "xor":
            return single((p | q) & ~(p & q))
        return single(p | q)

    def _ImpliesExpression(self, node: dict[str, Any], focus: Coll) -> Coll:
        a, b, _ = self._pair(node, focus)
        return single(~as_boolean(a) | as_boolean(b))

    def _AdditiveExpression(self, node: dict[str, Any], focus: Coll) -> Coll:
        a, b, op = self._pair(node, focus)

        def body(ca: Column, cb: Column) -> Column:
            def combine(x: Column, y: Column) -> Column:
                if op == "&":
                    return F.concat(F.coalesce(as_string(x), F.lit("")), F.coalesce(as_string(y), F.lit("")))
                numbers = (kind(x) == "n") & (kind(y) == "n")
                if op == "+":
                    return F.when(numbers, as_double(x) + as_double(y))
                return F.when(numbers, as_double(x) - as_double(y))
            value = let2(first(ca), first(cb), combine)
            if op == "&":
                return single(value)
            return _number_or_empty(ca, cb, value)
        return let2(a, b, body)

    def _MultiplicativeExpression(self, node: dict[str, Any], focus: Coll) -> Coll:
        a, b, op = self._pair(node, focus)
        ops = {"*": lambda x, y: x * y, "/": lambda x, y: F.when(y != 0, x / y),
               "div": lambda x, y: F.when(y != 0, F.floor(x / y)), "mod": lambda x, y: F.when(y != 0, x % y)}

        def body(ca: Column, cb: Column) -> Column:
            return _number_or_empty(ca, cb, let2(as_double(first(ca)), as_double(first(cb)), ops[op]))
        return let2(a, b, body)

    def _PolarityExpression(self, node: dict[str, Any], focus: Coll) -> Coll:
        c = self.compile(node["children"][0], focus)
        if node["terminalNodeText"][0] == "+":
            return c
        return let(c, lambda x: F.when(F.size(x) == 0, x).otherwise(single(-as_double(first(x)))))


def _number_or_empty(a: Coll, b: Coll, value: Column) -> Coll:
    """A number as a collection: an integer where it is one, empty where an operand was."""
    def of(v: Column) -> Column:
        whole = (v == F.floor(v)) & (F.abs(v) < 1e15)
        item = F.when(whole, to_variant(v.cast("bigint"))).otherwise(to_variant(v))
        return F.when((F.size(a) == 0) | (F.size(b) == 0) | v.isNull(), empty()).otherwise(F.array(item))
    return let(value, of)


def _equal(a: Coll, b: Coll) -> Column:
    """FHIRPath `=` of two non-empty collections: same size and equal items in order (numbers
    by value, the rest by their JSON)."""
    def item(x: Column, y: Column) -> Column:
        numbers = (kind(x) == "n") & (kind(y) == "n")
        return F.when(numbers, as_double(x) == as_double(y)).otherwise(as_string(x) == as_string(y))

    return (F.size(a) == F.size(b)) & F.forall(F.zip_with(a, b, item), lambda same: same)


def _string_literal(node: dict[str, Any]) -> str | None:
    """The text of a string literal argument, None when the argument is something else."""
    while node.get("type") in ("TermExpression", "LiteralTerm") and len(node.get("children") or []) == 1:
        node = node["children"][0]
    if node.get("type") == "StringLiteral":
        return _unquote(node["terminalNodeText"][0])
    return None


def _unquote(text: str) -> str:
    body = text[1:-1]
    escapes = {"\\'": "'", '\\"': '"', "\\\\": "\\", "\\n": "\n", "\\t": "\t", "\\r": "\r", "\\/": "/", "\\`": "`"}
    for k, v in escapes.items():
        body = body.replace(k, v)
    return body


def _identifier(node: dict[str, Any]) -> str:
    for c in node.get("children") or []:
        if c.get("type") == "Identifier":
            return c["terminalNodeText"][0].strip("`")
        found = _identifier(c)
        if found:
            return found
    return ""


def _function_name(node: dict[str, Any]) -> str:
    functn = node["children"][0]
    return next(c for c in functn["children"] if c.get("type") == "Identifier")["terminalNodeText"][0]


def _arguments(node: dict[str, Any]) -> list[dict[str, Any]]:
    functn = node["children"][0]
    params = [c for c in functn["children"] if c.get("type") == "ParamList"]
    return params[0]["children"] if params else []


def _type_name(arg: dict[str, Any]) -> str | None:
    """`Quantity` (or `FHIR.Quantity`) as an argument: the type's name."""
    text = arg.get("text")
    if isinstance(text, str) and text.replace(".", "").replace("_", "").isalnum():
        return text.split(".")[-1]
    return None


def _last_member(node: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """(`value`, the expression before it) for `a.b.value` or `value`; (None, None) otherwise."""
    t = node.get("type")
    if t == "InvocationExpression":
        left, right = node["children"]
        if right.get("type") == "MemberInvocation":
            return _identifier(right), left
        return None, None
    if t in ("TermExpression", "InvocationTerm"):
        kids = node.get("children") or []
        if len(kids) == 1 and kids[0].get("type") in ("InvocationTerm", "MemberInvocation"):
            if kids[0].get("type") == "MemberInvocation":
                return _identifier(kids[0]), None
            return _last_member(kids[0])
    return None, None


def compile_path(expression: str, env: Env, focus: Coll) -> Coll:
    """`expression` evaluated on the collection `focus`, as a Spark Column (array<variant>)."""
    return Compiler(env, expression).compile(parse(expression), focus)
