"""The AST of a rule file: plain dataclasses, each carrying the span it was parsed from.

Input: nothing (data definitions). Built by `engine.syntax`, read by `engine.sema`.
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


Arg = Union[Var, StarVar, Wildcard, StarWildcard, Literal, Constant, Keyword]


@dataclass(frozen=True)
class Call:
    """`callee(args...)`: a call pattern, or a call template in an action."""

    span: Span
    callee: str
    callee_span: Span
    args: tuple[Arg, ...]


# --- patterns, actions, rules --------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    """`$open = opener(...) ... closer(...)`: the nodes from an opener to its closer."""

    span: Span
    binder: Var | None
    opener: Call
    closer: Call


@dataclass(frozen=True)
class Outline:
    """`outline with hop(args...)`: move the region into a submodule called through `hop`."""

    span: Span
    hop: Call


Pattern = Region
Action = Outline


@dataclass(frozen=True)
class Rule:
    span: Span
    name: str
    name_span: Span
    pattern: Pattern
    action: Action


@dataclass(frozen=True)
class RuleFile:
    path: str
    uses: tuple[Use, ...]
    rules: tuple[Rule, ...]
