"""Named conditions: `condition name($a, $b) = body`, used in `where` clauses as `name(v, w)`.

Input: the `ast.ConditionDef`s of every file loaded together, each with its file's scope, and a
use (an `ast.Builtin` naming one, standing where a condition goes). Output: the definitions by
name, and for a use the body to check in its place, each parameter replaced by the value given
for it (checked in the use's file and rule, where its names and variables are). A body reads
its parameters and nothing else of a rule: it binds nothing, and two rules that use it share
only what they give it.

A body is checked once on its own, at its definition, its parameters standing for values of any
kind; then at each use with the values given, so that a mistake only those values show
(`dtype($x)` where the use gives a number) is reported at the definition with a note at the
use, and once however many uses reach it. A definition with mistakes of its own is not expanded
at its uses (they would repeat them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import ast
from ..builtins import BUILTINS
from ..diagnostics import Note, Span
from ..suggest import did_you_mean
from ..symbols import CONDITION, VARIABLE, Symbol
from .subpatterns import (Substituted, children, parameters_unused, substitute,
                          variables_of)

UNCHECKED, CHECKING, SOUND, BROKEN = "unchecked", "checking", "sound", "broken"


@dataclass
class ConditionDefinition:
    condition: ast.ConditionDef
    scope: object  # the `Scope` of the file that defines it: its body's names resolve there
    symbol: Symbol
    state: str = UNCHECKED  # SOUND or BROKEN once its body is checked on its own
    parameters: dict[str, Symbol] = field(default_factory=dict)


def define_conditions(reporter, files_and_scopes) -> dict[str, ConditionDefinition]:
    """Every file's `condition` definitions. A name is unique among the conditions and named
    patterns loaded together, and is not a built-in or a name the file declares by `use`; the
    parameters are distinct variables."""
    defined: dict[str, ConditionDefinition] = {}
    for file, scope in files_and_scopes:
        for condition in file.conditions:
            name, span = condition.name, condition.name_span
            if name in defined:
                reporter.error(span, f"condition `{name}` is already defined",
                               Note(defined[name].condition.name_span, "previous definition here"))
                continue
            if name in reporter.patterns:
                reporter.error(span, f"`{name}` is already a pattern; a condition needs a name "
                                     "of its own",
                               Note(reporter.patterns[name].pattern.name_span, "defined here"))
                continue
            if name in BUILTINS:
                reporter.error(span, f"`{name}` is a built-in; a condition needs a name of its "
                                     "own")
                continue
            if name in scope.names:
                reporter.error(span, f"`{name}` is declared by `use` in this file; a condition "
                                     "needs a name of its own")
                continue
            symbol = reporter.symbols.define(Symbol(CONDITION, name, span, condition))
            definition = ConditionDefinition(condition, scope, symbol)
            for param in condition.params:
                if param.name in definition.parameters:
                    reporter.error(param.span, f"parameter `${param.name}` appears twice",
                                   Note(definition.parameters[param.name].span, "first here"))
                    continue
                definition.parameters[param.name] = reporter.symbols.define(Symbol(
                    VARIABLE, f"${param.name}", param.span, "value", f"condition {name}"))
            defined[name] = definition
    return defined


def free_variables(definition: ConditionDefinition) -> list[ast.Var]:
    """The variables of the body that are none of its parameters (a mistake: a condition
    reads only what its uses give it)."""
    body = definition.condition.body
    local = {var.name for var in _quantified_variables(body)}  # `all(... for $v in ...)`
    return [var for var, _ in variables_of(body)
            if var.name not in definition.parameters and var.name not in local]


def _quantified_variables(node):
    if isinstance(node, ast.Quantified):
        yield node.var
    for child in children(node):
        yield from _quantified_variables(child)


def unused_parameters(definition: ConditionDefinition) -> list[ast.Var]:
    return parameters_unused(definition.condition.params, definition.condition.body)


def expand(definition: ConditionDefinition, use: ast.Builtin, use_scope) -> ast.Condition:
    """The body for this use: each parameter replaced by the value given for it, placed where
    the parameter is written (a value of the wrong kind is told there, with a note at the
    use)."""
    arguments = {param.name: Substituted(arg.span, arg, use_scope)
                 for param, arg in zip(definition.condition.params, use.args)}
    return substitute(definition.condition.body, arguments, prefix=definition.condition.name,
                      at_parameter=True)


def name_span(use: ast.Builtin) -> Span:
    """Where the condition's name is written in a use."""
    if use.name_span is not None:
        return use.name_span
    span = use.span
    return Span(span.source, span.line, span.column, span.line, span.column + len(use.name))


def not_a_parameter(var: ast.Var, definition: ConditionDefinition) -> str:
    name = definition.condition.name
    return (f"`${var.name}` is no parameter of condition `{name}`; a condition reads only its "
            "parameters" + did_you_mean(var.name, definition.parameters, "`${}`"))
