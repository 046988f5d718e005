"""The AST of a rule file: plain dataclasses, each carrying the span it was parsed from.

Input: nothing (data definitions). Built by `engine.language.syntax`, read by
`engine.language.sema`.
Names are unresolved here: a `Call` names its callee as written, a `Constant` likewise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .diagnostics import Span


@dataclass(frozen=True)
class Use:
    """`use torch.ops.aten.add as add`: binds `alias` (default: the last part) to a dotted path."""

    span: Span
    path: tuple[str, ...]
    path_span: Span
    alias: str
    alias_span: Span


# --- argument patterns and templates -------------------------------------------------------
@dataclass(frozen=True)
class Var:
    """`$x`: binds a value on first sight, requires the same value afterwards."""

    span: Span
    name: str


@dataclass(frozen=True)
class StarVar:
    """`*$xs`: the remaining positional arguments, as a tuple."""

    span: Span
    name: str


@dataclass(frozen=True)
class Wildcard:
    """`_`: any one argument."""

    span: Span


@dataclass(frozen=True)
class StarWildcard:
    """`*_`: any remaining positional arguments."""

    span: Span


@dataclass(frozen=True)
class StarStarVar:
    """`**$kw`: the keyword arguments the pattern does not name, as a dict."""

    span: Span
    name: str


@dataclass(frozen=True)
class StarStarWildcard:
    """`**_`: any keyword arguments the pattern does not name."""

    span: Span


@dataclass(frozen=True)
class Literal:
    """A string, number, True, False or None."""

    span: Span
    value: object


@dataclass(frozen=True)
class Constant:
    """A name bound by `use` to a constant such as `torch.bfloat16`."""

    span: Span
    name: str


@dataclass(frozen=True)
class Keyword:
    """`name=pattern` inside a call."""

    span: Span
    name: str
    value: "Arg"


@dataclass(frozen=True)
class Call:
    """`callee(args...)`: a call pattern, or a call template in an action."""

    span: Span
    callee: str
    callee_span: Span
    args: tuple["Arg", ...]
    callee_is_var: bool = False  # `$f(...)`: `callee` names a variable bound to the op
    optional: bool = False  # `add?(a, $m)`: the call, or its first argument alone


@dataclass(frozen=True)
class Method:
    """`receiver.name(args...)`: a `call_method` node, as Dynamo graphs hold them."""

    span: Span
    receiver: "Expr"
    name: str
    name_span: Span
    args: tuple["Arg", ...]


@dataclass(frozen=True)
class ListExpr:
    """`[a, b, *$rest]`: a list argument, such as `cat`'s tensors."""

    span: Span
    items: tuple["Arg", ...]


@dataclass(frozen=True)
class Alternatives:
    """`a | b`: the first option that matches."""

    span: Span
    options: tuple["Expr", ...]


@dataclass(frozen=True)
class Shared:
    """`shared p`: an interior node that may also be used outside the match (then it stays)."""

    span: Span
    inner: "Expr"


@dataclass(frozen=True)
class Commutative:
    """`commutative f(a, b)`: also matches `f(b, a)`."""

    span: Span
    call: Call


@dataclass(frozen=True)
class Bound:
    """`$name = pattern`: the node the pattern matches, bound to a variable."""

    span: Span
    var: Var
    inner: "Expr"


Expr = Union[Var, Wildcard, Literal, Constant, Call, Method, ListExpr, Alternatives, Shared,
             Commutative, Bound, "QualifiedConstant", "Negative", "Index"]
Arg = Union[Expr, StarVar, StarWildcard, StarStarVar, StarStarWildcard, Keyword]


# --- patterns, actions, rules --------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    """`$open = opener(...) ... closer(...)`: the nodes from an opener to its closer.

    Without a closer, a segment: from the marker to the next marker of its kind or the end of
    the body it is in."""

    span: Span
    binder: Var | None
    opener: Call
    closer: Call | None


# --- values and conditions: `where` clauses, and the value parts of templates ------------------
@dataclass(frozen=True)
class Builtin:
    """`grad_enabled()`, `shape($x)`: a built-in (not a `use`d name)."""

    span: Span
    name: str
    args: tuple["Operand", ...]
    name_span: Span | None = None


@dataclass(frozen=True)
class QualifiedConstant:
    """`torch.float32`: a constant named by its full path, resolved like a `use`."""

    span: Span
    path: tuple[str, ...]


@dataclass(frozen=True)
class Negative:
    """`-x`: a negative number, or the negation of an integer value."""

    span: Span
    operand: "Operand"


@dataclass(frozen=True)
class Index:
    """`shape($x)[-1]`: an item of a list."""

    span: Span
    value: "Operand"
    index: "Operand"


@dataclass(frozen=True)
class Arithmetic:
    """`rank($x) - 1`: arithmetic (`+ - * / // %`)."""

    span: Span
    op: str
    left: "Operand"
    right: "Operand"


Operand = Union[Var, Literal, Constant, QualifiedConstant, Builtin, Negative, Index, Arithmetic]


@dataclass(frozen=True)
class Guard:
    """`left == right`, `left < right`...: a comparison."""

    span: Span
    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Membership:
    """`value in (a, b)` (or `not in`)."""

    span: Span
    value: Operand
    options: tuple[Operand, ...]
    negated: bool


@dataclass(frozen=True)
class Truth:
    """A value used as a condition: a predicate such as `is_tensor($v)`."""

    span: Span
    value: Operand


@dataclass(frozen=True)
class AllOf:
    span: Span
    items: tuple["Condition", ...]


@dataclass(frozen=True)
class AnyOf:
    span: Span
    items: tuple["Condition", ...]


@dataclass(frozen=True)
class Not:
    span: Span
    item: "Condition"


@dataclass(frozen=True)
class Quantified:
    """`all(body for $v in values)` or `any(...)`: the body tested with `$v` each item of a
    list. Written where a value may stand; it is a condition."""

    span: Span
    name: str  # as written: the checker wants `all` or `any`
    name_span: Span
    body: "Condition"
    var: Var
    values: Operand


Condition = Union[Guard, Membership, Truth, AllOf, AnyOf, Not]


# --- actions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outline:
    """`outline with hop(args...)`: move the region into a submodule called through `hop`."""

    span: Span
    hop: Call


@dataclass(frozen=True)
class Inline:
    """`inline`: drop the markers, keep the nodes where they are."""

    span: Span


@dataclass(frozen=True)
class Keep:
    """`keep`: leave the region as it is; a rule that only declares structure."""

    span: Span


@dataclass(frozen=True)
class Erase:
    """`erase`: drop the markers and every node between them."""

    span: Span


@dataclass(frozen=True)
class Dag:
    """One or more roots, the nodes a DAG pattern's match ends in; they share variables."""

    span: Span
    roots: tuple[Expr, ...]


@dataclass(frozen=True)
class Replace:
    """`replace with t` (one root) or `replace $a with t, $b with u` (named roots)."""

    span: Span
    replacements: tuple[tuple[Var | None, Expr], ...]


Pattern = Union[Region, Dag]
Action = Union[Outline, Inline, Keep, Erase, Replace]


@dataclass(frozen=True)
class Promise:
    """One item of a `verify` clause: `refines`, or `dtypes(float32, float16)`."""

    span: Span
    name: str
    name_span: Span
    args: tuple[Expr, ...] | None  # None: written without parentheses


@dataclass(frozen=True)
class Verify:
    """`verify promise, promise...`: what `engine verify` holds a rule to."""

    span: Span
    promises: tuple[Promise, ...]


@dataclass(frozen=True)
class Rule:
    span: Span
    name: str
    name_span: Span
    pattern: Pattern
    guards: tuple[Condition, ...]  # all must hold
    action: Action
    verify: Verify | None = None


@dataclass(frozen=True)
class PatternDef:
    """`pattern name($a, $b) = body`: a sub-pattern, used in patterns as `name(arg, arg)`."""

    span: Span
    name: str
    name_span: Span
    params: tuple[Var, ...]
    body: Expr


@dataclass(frozen=True)
class ConditionDef:
    """`condition name($a, $b) = body`: a named condition, used in `where` as `name(v, w)`."""

    span: Span
    name: str
    name_span: Span
    params: tuple[Var, ...]
    body: Condition


@dataclass(frozen=True)
class Include:
    """`include "other.rw"`: that file's rules, here, in order; the path is relative to this
    file."""

    span: Span
    path: str


@dataclass(frozen=True)
class RuleFile:
    path: str
    items: tuple[Union[Include, Use, Rule, PatternDef, ConditionDef], ...]  # rule order
    broken_names: tuple[str, ...] = ()  # what `use` items that did not parse declare

    @property
    def uses(self) -> tuple[Use, ...]:
        return tuple(item for item in self.items if isinstance(item, Use))

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(item for item in self.items if isinstance(item, Rule))

    @property
    def patterns(self) -> tuple[PatternDef, ...]:
        return tuple(item for item in self.items if isinstance(item, PatternDef))

    @property
    def conditions(self) -> tuple[ConditionDef, ...]:
        return tuple(item for item in self.items if isinstance(item, ConditionDef))
