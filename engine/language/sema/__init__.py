"""AST -> checked rules: the language's semantic checks.

Input: parsed `ast.RuleFile`s, includes already expanded. Output: `checked.Rule`s, the
diagnostics found on the way, and the symbol index (every definition and reference with its
span). Each file's `use` declarations resolve through the allowlist (`engine.language.names`);
every name must be declared and fit where it is used, variables are bound once and used as what
they are, ops are called as their schemas allow, and rule names are unique across the files
loaded together. It keeps going after an error, so that a file's mistakes are reported together.

    scope.py      diagnostics, `use` names and a rule's variables, recorded in the symbol index
    patterns.py   regions and DAG patterns
    conditions.py `where` clauses and the values they read
    actions.py    actions and templates
    promises.py   `verify` clauses: what `engine verify` holds a rule to
    subpatterns.py named sub-patterns (`pattern name($x) = ...`), expanded where they are used
    named_conditions.py named conditions (`condition name($x) = ...`), expanded in `where`
"""

from __future__ import annotations

from .. import ast, checked
from ..diagnostics import Diagnostic
from ..symbols import Symbol, SymbolIndex
from .actions import ActionChecker
from .conditions import ConditionChecker, check_condition_definition
from .patterns import PatternChecker
from .promises import check_promises
from ..names import forget_op_names
from ..suggest import did_you_mean
from .named_conditions import UNCHECKED, define_conditions
from .scope import Reporter, Scope, Variables, define_rule
from .subpatterns import Definition, define_patterns, unused_parameters


def check_files(files: list[ast.RuleFile], symbols: SymbolIndex | None = None
                ) -> tuple[list[checked.Rule], list[Diagnostic]]:
    """Each file in its own scope; rules in the order given. Definitions and references go to
    `symbols` when one is given."""
    forget_op_names()  # ops registered since the last check are seen
    reporter = Reporter([], symbols if symbols is not None else SymbolIndex())
    rule_names: dict[str, Symbol] = {}
    rules = []
    scopes = []
    for file in files:
        scope = Scope(reporter, file.broken_names)
        for use in file.uses:
            scope.declare(use)
        scopes.append(scope)
    reporter.patterns = define_patterns(reporter, zip(files, scopes))
    for definition in reporter.patterns.values():
        check_pattern(reporter, definition)
    reporter.conditions = define_conditions(reporter, zip(files, scopes))
    for definition in reporter.conditions.values():
        if definition.state == UNCHECKED:  # else checked already, as another's part
            check_condition_definition(reporter, definition)
    for file, scope in zip(files, scopes):
        for rule in file.rules:
            define_rule(reporter, rule_names, rule)
            checked_rule = check_rule(reporter, scope, rule)
            if checked_rule is not None:
                rules.append(checked_rule)
    for name, span in reporter.rule_references:
        if name in rule_names:
            reporter.symbols.refer(span, rule_names[name])
        else:
            reporter.error(span, f"unknown rule `{name}`" + did_you_mean(name, rule_names))
    return rules, reporter.diagnostics


def check_pattern(reporter: Reporter, definition: Definition) -> None:
    """A sub-pattern's body on its own, its parameters as plain variables: its mistakes are
    reported once, at the definition, whether a rule uses it or not."""
    pattern = definition.pattern
    variables = Variables(reporter, f"pattern {pattern.name}")
    PatternChecker(reporter, definition.scope, variables).arg_pattern(pattern.body, marker=False)
    for param in unused_parameters(pattern):
        reporter.error(param.span, f"parameter `${param.name}` is not used in the pattern")


def check_rule(reporter: Reporter, scope: Scope, rule: ast.Rule) -> checked.Rule | None:
    """One rule, or None if it has errors (each reported)."""
    before = len(reporter.diagnostics)
    variables = Variables(reporter, rule.name)
    patterns = PatternChecker(reporter, scope, variables)
    if isinstance(rule.pattern, ast.Dag):
        pattern = patterns.dag(rule.pattern)
    else:
        pattern = patterns.region(rule.pattern)
    conditions = ConditionChecker(reporter, scope, variables)
    guards = tuple(conditions.condition(guard) for guard in rule.guards)
    action = ActionChecker(reporter, scope, variables).action(rule.action, pattern)
    promises = check_promises(reporter, rule.verify, isinstance(rule.pattern, ast.Dag))
    if len(reporter.diagnostics) > before:
        return None
    return checked.Rule(rule.name, rule.span, pattern, guards, action, promises)
