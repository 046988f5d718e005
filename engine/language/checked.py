"""Checked rules: what `engine.language.sema` produces and `engine.matching.match` compiles.

Names are resolved to Python objects, every variable occurrence is classified as the one that
binds it or a later one that must equal it. Every pattern, template and guard part keeps the
span it was written at (what `explain` points a caret at); spans take no part in equality, so
two parts written alike are equal. Nothing here refers to text any more, except the spans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Union

from .diagnostics import Span
from .schemas import SchemaParam


def _span():
    """Where a part was written; not part of its identity."""
    return field(default=None, compare=False, repr=False)


# --- argument patterns ---------------------------------------------------------------------
@dataclass(frozen=True)
class Bind:
    """First sight of `$name`: binds the argument."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Same:
    """A later `$name`: the argument must be the bound value (the same node, an equal literal)."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class BindRest:
    """`*$name`: binds the remaining positional arguments as a tuple."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class SameRest:
    """A later `*$name`: the remaining positional arguments must equal the bound tuple."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Anything:
    """`_`."""

    span: Span | None = _span()


@dataclass(frozen=True)
class AnyRest:
    """`*_`."""

    span: Span | None = _span()


@dataclass(frozen=True)
class Equals:
    """A literal or a `use`d constant."""

    value: object
    span: Span | None = _span()


RestPattern = Union[BindRest, SameRest, AnyRest]


# --- DAG patterns ----------------------------------------------------------------------------
@dataclass(frozen=True)
class NodePattern:
    """A node: `call_function` of `target` (an op packet matches its overloads), or
    `call_method` named `target`, with these arguments. `commutative`: its two arguments match
    in either order. `shared`: as an interior node it may have users outside the match."""

    op: str
    target: object
    args: tuple["ArgPattern", ...]
    rest: RestPattern | None
    kwargs: tuple[tuple[str, "ArgPattern"], ...]
    span: Span
    commutative: bool = False
    shared: bool = False
    more_kwargs: RestPattern | None = None  # `**_` or `**$kw`: keywords the pattern does not name
    forms: tuple["SchemaForm", ...] | None = None  # an op's call, read by its schema
    target_var: "Bind | Same | None" = None  # `$f(...)`: any target, bound to (or equal to) `$f`


@dataclass(frozen=True)
class SchemaArg:
    """One argument of an overload, and the pattern for it (None: the pattern does not name
    it, so it must have its default value, unless `**` takes it)."""

    param: SchemaParam
    pattern: "ArgPattern | None"


@dataclass(frozen=True)
class SchemaForm:
    """A call pattern of an op, read as one overload's schema reads calls: each argument by
    name, wherever the graph gives it (by position, by keyword, or not at all: its default).
    `args` lists the arguments the pattern names in the order it writes them (the order its
    variables bind), then the others. A `commutative` pattern has a form with its first two
    arguments the other way round."""

    overload: object
    args: tuple[SchemaArg, ...]


@dataclass(frozen=True)
class ListPattern:
    """A list or tuple argument: these items, then maybe a rest."""

    items: tuple["ArgPattern", ...]
    rest: RestPattern | None
    span: Span | None = _span()


@dataclass(frozen=True)
class OneOf:
    """Alternation: the first option that matches. `absent[i]` names the variables option `i`
    binds to None: those of an optional call (`add?(a, $m)`) that only the call binds."""

    options: tuple["ArgPattern", ...]
    span: Span | None = _span()
    absent: tuple[tuple[str, ...], ...] = ()

    def nones(self, index: int) -> tuple[str, ...]:
        return self.absent[index] if index < len(self.absent) else ()


@dataclass(frozen=True)
class BindNode:
    """`$name = pattern`: matches `pattern`, and binds what it matched."""

    name: str
    pattern: "ArgPattern"
    span: Span | None = _span()


ArgPattern = Union[Bind, Same, Anything, Equals, NodePattern, ListPattern, OneOf, BindNode]


def inner_patterns(pattern) -> tuple:
    """The patterns directly inside one: a call's arguments and rests, a list's items, options."""
    if isinstance(pattern, NodePattern):
        parts = (*pattern.args, pattern.rest, *(p for _, p in pattern.kwargs), pattern.more_kwargs)
    elif isinstance(pattern, ListPattern):
        parts = (*pattern.items, pattern.rest)
    elif isinstance(pattern, OneOf):
        parts = pattern.options
    elif isinstance(pattern, BindNode):
        parts = (pattern.pattern,)
    else:
        parts = ()
    return tuple(part for part in parts if part is not None)


def variables(pattern, kinds: tuple[type, ...]) -> list[str]:
    """The names of the variable occurrences of these kinds (`Same`, `Bind`...) in a pattern."""
    found = [pattern.name] if isinstance(pattern, kinds) else []
    return found + [name for part in inner_patterns(pattern) for name in variables(part, kinds)]


@dataclass(frozen=True)
class DagPattern:
    """Roots, each with the variable naming it (or None): the outputs of the match."""

    roots: tuple[tuple[str | None, ArgPattern], ...]


@dataclass(frozen=True)
class RegionPattern:
    """An opener call, the nodes after it, and the closer call that ends them.

    `link` is the position of the closer's argument that names the opener node (as in
    `exit_autocast($enter)`), or None when the closer does not name it and pairs by nesting.
    Without a closer, a segment: it ends at the next marker of its kind or with the graph.
    """

    binder: str | None
    opener: "NodePattern"
    closer: "NodePattern | None"
    link: int | None

    @property
    def is_segment(self) -> bool:
        return self.closer is None


# --- templates and actions -----------------------------------------------------------------
@dataclass(frozen=True)
class Value:
    """`$name` in a template: the bound value."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Splat:
    """`*$name` in a template: the bound tuple, spread."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Const:
    value: object
    span: Span | None = _span()


@dataclass(frozen=True)
class NodeTemplate:
    """A node to build: `call_function` of `target`, or `call_method` named `target`.
    A keyword named None spreads a bound dict of keywords (`**$kw`). A `Value` target is the op
    a pattern's `$f(...)` bound."""

    op: str
    target: object
    args: tuple["TemplateArg", ...]
    kwargs: tuple[tuple[str | None, "TemplateArg"], ...]
    span: Span
    kind: str | None = field(default=None, compare=False)  # what it returns, if the rule tells


@dataclass(frozen=True)
class ListTemplate:
    items: tuple["TemplateArg", ...]
    span: Span | None = _span()


# --- values: what `where` clauses compare, and templates compute before they build ---------------
@dataclass(frozen=True)
class BuiltinCall:
    """A built-in such as `grad_enabled()` or `shape($x)` (see `language.builtins`)."""

    name: str
    args: tuple["Operand", ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Index:
    """`value[index]`: an item of a list (`shape($x)[-1]`)."""

    value: "Operand"
    index: "Operand"
    span: Span | None = _span()


@dataclass(frozen=True)
class Arithmetic:
    """Arithmetic on numbers: `+ - * / // %`, and `neg` for a negation."""

    op: str
    operands: tuple["Operand", ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Items:
    """`[a, b]`: a list of values, in a condition."""

    values: tuple["Operand", ...]
    span: Span | None = _span()


Operand = Union[Value, Splat, Const, BuiltinCall, Index, Arithmetic, Items]
TemplateArg = Union[Value, Splat, Const, NodeTemplate, ListTemplate, BuiltinCall, Index,
                    Arithmetic]


def template_uses(template) -> Iterator[Value | Splat]:
    """The variable uses (`$x`, `*$xs`, `**$kw`) of a template or value, in the order written."""
    if isinstance(template, (Value, Splat)):
        yield template
        return
    if isinstance(template, NodeTemplate):
        parts = (*template.args, *(t for _, t in template.kwargs))
    elif isinstance(template, ListTemplate):
        parts = template.items
    elif isinstance(template, BuiltinCall):
        parts = template.args
    elif isinstance(template, Index):
        parts = (template.value, template.index)
    elif isinstance(template, Arithmetic):
        parts = template.operands
    elif isinstance(template, Items):
        parts = template.values
    else:
        parts = ()
    for part in parts:
        yield from template_uses(part)


# --- conditions: `where` clauses ----------------------------------------------------------------
@dataclass(frozen=True)
class Guard:
    """A comparison: `==`, `!=`, `<`, `<=`, `>`, `>=`."""

    op: str
    left: Operand
    right: Operand
    span: Span


@dataclass(frozen=True)
class Member:
    """`value in (options...)`, or `not in`."""

    value: Operand
    options: tuple[Operand, ...]
    negated: bool
    span: Span


@dataclass(frozen=True)
class Test:
    """A predicate: holds when the value is true (`is_tensor($v)`)."""

    value: Operand
    span: Span


@dataclass(frozen=True)
class AllOf:
    items: tuple["Condition", ...]
    span: Span


@dataclass(frozen=True)
class AnyOf:
    items: tuple["Condition", ...]
    span: Span


@dataclass(frozen=True)
class Not:
    item: "Condition"
    span: Span


@dataclass(frozen=True)
class Named:
    """A use of a named condition, `same_dtype($q, $k)`: holds when `body` holds. `body` is the
    definition's, checked with each parameter replaced by the value given for it (its spans
    are the definition's); `args` are those values."""

    name: str
    args: tuple[Operand, ...]
    body: "Condition"
    span: Span  # the use


@dataclass(frozen=True)
class Every:
    """`all(body for $v in values)` (`every`) or `any(...)`: `body` holds for each item of the
    list (for one); `var` is bound to the item while `body` is tested."""

    every: bool  # all; else any
    var: str
    values: Operand
    body: "Condition"
    span: Span


Condition = Union[Guard, Member, Test, AllOf, AnyOf, Not, Named, Every]


# --- actions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outline:
    """Move the region into a submodule and call it as `hop(*args, submodule, *inputs)`."""

    hop: object
    args: tuple[TemplateArg, ...]
    span: Span


@dataclass(frozen=True)
class Inline:
    """Drop the markers; the nodes stay where they are."""

    span: Span


@dataclass(frozen=True)
class Keep:
    """Leave the region as it is: the rule declares structure (a bracket a segment marker
    cuts is re-entered piece by piece, markers copied), and takes the region from later rules."""

    span: Span


@dataclass(frozen=True)
class Erase:
    """Drop the markers and every node between them (none may be used after)."""

    span: Span


@dataclass(frozen=True)
class Replace:
    """Each named root (by index into the pattern's roots) replaced by what its template builds."""

    replacements: tuple[tuple[int, TemplateArg], ...]
    span: Span

    def template_for(self, root: int) -> TemplateArg | None:
        for index, template in self.replacements:
            if index == root:
                return template
        return None


Action = Union[Outline, Inline, Keep, Erase, Replace]


@dataclass(frozen=True)
class Promises:
    """What `engine verify` holds a DAG rule to, from its `verify` clause: the dtypes it is
    meant for (None: all that verify draws), the tolerance of float comparisons (None:
    torch.testing's for each dtype), and what it allows itself: being more defined than its
    pattern, finite where the pattern gives nan or inf (`refines`); returning an input, or a view
    of one, where the pattern made a new tensor (`aliases`: right in functional graphs only);
    giving -0.0 for 0.0 or the other way round (`unsigned_zeros`); and what it assumes of its
    inputs: no nan or inf in them (`finite`, as fast-math's `nnan ninf`)."""

    dtypes: tuple | None = None
    rtol: float | None = None
    atol: float | None = None
    refines: bool = False
    aliases: bool = False
    unsigned_zeros: bool = False
    finite: bool = False
    span: Span | None = _span()


@dataclass(frozen=True)
class Rule:
    name: str
    span: Span
    pattern: RegionPattern | DagPattern
    guards: tuple[Condition, ...]  # all must hold
    action: Action
    promises: Promises = Promises()

    @property
    def is_dag(self) -> bool:
        return isinstance(self.pattern, DagPattern)

    @property
    def where(self) -> str:
        return f"{self.span.source.path}:{self.span.line}"
