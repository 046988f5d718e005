"""Named sub-patterns: `pattern name($a) = body`, used in patterns as `name(arg)`.

Input: the `ast.PatternDef`s of every file loaded together, each with its file's scope, and a
use (an `ast.Call` naming one). Output: the body to check in the use's place, with each
parameter replaced by the argument given for it (checked in the use's file, which is where its
names resolve) and every other variable of the body renamed apart, so that two uses of one
pattern do not share them. A use works as a macro: a variable given as an argument is bound by
what the body matches there, and the rule's guards and template may use it.

The body is checked at every use, with the use's arguments; a mistake inside it is reported at
the definition, with a note at each use that reaches it (and once, however many uses reach it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .. import ast
from ..diagnostics import Note, Span
from ..symbols import PATTERN, Symbol


@dataclass(frozen=True)
class Definition:
    pattern: ast.PatternDef
    scope: object  # the `Scope` of the file that defines it: its body's names resolve there
    symbol: Symbol


@dataclass(frozen=True)
class Substituted:
    """An argument of a use, standing where its parameter stood in the body; checked in the
    scope of the file that wrote it."""

    span: Span
    inner: object
    scope: object


@dataclass(frozen=True)
class Expansion:
    """One use being checked: diagnostics inside the definition get a note pointing here."""

    name: str
    use: Span
    body: Span
    what: str = "pattern"  # or "condition"


def define_patterns(reporter, files_and_scopes) -> dict[str, Definition]:
    """Every file's `pattern` definitions; names are unique across the files loaded together,
    and a pattern's parameters are distinct variables."""
    defined: dict[str, Definition] = {}
    for file, scope in files_and_scopes:
        for pattern in file.patterns:
            if pattern.name in defined:
                reporter.error(pattern.name_span, f"pattern `{pattern.name}` is already defined",
                               Note(defined[pattern.name].pattern.name_span,
                                    "previous definition here"))
                continue
            if pattern.name in scope.names:
                reporter.error(pattern.name_span, f"`{pattern.name}` is declared by `use` in "
                                                  "this file; a pattern needs a name of its own")
                continue
            seen: dict[str, Span] = {}
            for param in pattern.params:
                if param.name in seen:
                    reporter.error(param.span, f"parameter `${param.name}` appears twice",
                                   Note(seen[param.name], "first here"))
                seen[param.name] = param.span
            symbol = reporter.symbols.define(Symbol(PATTERN, pattern.name, pattern.name_span,
                                                    pattern))
            defined[pattern.name] = Definition(pattern, scope, symbol)
    return defined


def unused_parameters(pattern: ast.PatternDef) -> list[ast.Var]:
    return parameters_unused(pattern.params, pattern.body)


def parameters_unused(params: tuple[ast.Var, ...], body) -> list[ast.Var]:
    """The parameters a body (of a pattern or a condition) never names."""
    used = {var.name for var, _ in _vars(body)}
    return [param for param in params if param.name not in used]


def variables_of(body):
    """Each variable a body names, and whether it stands for one value (not `$f(...)`)."""
    return _vars(body)


def needs_variables(definition: Definition, use: ast.Call) -> list[tuple[object, Span]]:
    """The arguments given for parameters the body calls (`$f(...)`) or spreads (`*$xs`),
    which must be variables, and that are not: each with the place in the body."""
    given = dict(zip((param.name for param in definition.pattern.params), use.args))
    return [(given[var.name], var.span) for var, plain in _vars(definition.pattern.body)
            if not plain and var.name in given and not isinstance(given[var.name], ast.Var)]


def is_local(name: str) -> bool:
    """Is this a variable a use of a sub-pattern keeps to itself (`expand` names them
    `prefix.name`), which no rule can name?"""
    return "." in name


def expand(definition: Definition, use: ast.Call, use_scope, prefix: str):
    """The body of `definition` for this use: parameters replaced by the arguments, the body's
    own variables renamed `prefix.name`."""
    arguments = {param.name: Substituted(arg.span, arg, use_scope)
                 for param, arg in zip(definition.pattern.params, use.args)}
    return substitute(definition.pattern.body, arguments, prefix)


def substitute(node, arguments: dict, prefix: str, at_parameter: bool = False):
    """`node` with each variable in `arguments` replaced by its argument (a `Substituted`), and
    the others renamed `prefix.name`. `at_parameter`: each argument is placed where its
    parameter is written (its `span`), so that a mistake it makes there is told there."""
    if isinstance(node, ast.Var):
        if node.name in arguments:
            given = arguments[node.name]
            return dataclasses.replace(given, span=node.span) if at_parameter else given
        return ast.Var(node.span, f"{prefix}.{node.name}")
    if isinstance(node, (ast.StarVar, ast.StarStarVar)):  # `*$xs`: a variable given spreads
        given = arguments.get(node.name)
        name = (given.inner.name if given is not None and isinstance(given.inner, ast.Var)
                else f"{prefix}.{node.name}")
        return dataclasses.replace(node, name=name)
    if isinstance(node, ast.Call) and node.callee_is_var:  # `$f(...)`
        given = arguments.get(node.callee)
        callee = (given.inner.name if given is not None and isinstance(given.inner, ast.Var)
                  else f"{prefix}.{node.callee}")
        node = dataclasses.replace(node, callee=callee)
    if not dataclasses.is_dataclass(node):
        return node
    changes = {}
    for field in dataclasses.fields(node):
        value = getattr(node, field.name)
        if isinstance(value, tuple):
            changes[field.name] = tuple(substitute(item, arguments, prefix, at_parameter)
                                        for item in value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, Span):
            changes[field.name] = substitute(value, arguments, prefix, at_parameter)
    return dataclasses.replace(node, **changes)


def _vars(node):
    """Each variable of a body, and whether it stands for one value (not `$f(...)`, `*$xs`)."""
    if isinstance(node, ast.Var):
        yield node, True
    elif isinstance(node, (ast.StarVar, ast.StarStarVar)):
        yield node, False
    else:
        if isinstance(node, ast.Call) and node.callee_is_var:
            yield ast.Var(node.callee_span, node.callee), False
        for child in children(node):
            yield from _vars(child)


def children(node):
    """The AST nodes directly inside one (a Span is data, not a child)."""
    if not dataclasses.is_dataclass(node) or isinstance(node, Span):
        return
    for field in dataclasses.fields(node):
        value = getattr(node, field.name)
        yield from (value if isinstance(value, tuple) else (value,))


def within(span: Span, outer: Span) -> bool:
    return span.source is outer.source and (span.line, span.column) >= (
        outer.line, outer.column) and (span.end_line, span.end_column) <= (
        outer.end_line, outer.end_column)
