"""`where` clauses and values: AST -> checked conditions and operands, each with its kind.

Input: a rule's conditions (comparisons, memberships, predicates, `and`/`or`/`not`) and the
values they read (variables, literals, constants, built-ins, indexing, arithmetic).
Output: `checked` conditions and operands. Each value's kind (`schemas.TENSOR`, `SCALAR`,
`LIST`...) is known where the rule tells it (a literal, a built-in's result, a variable bound at
a typed parameter), and a value of the wrong kind is an error here, not a guard that is silently
false when the rule is applied: `dtype($k)` for a number, `$eps >= 0` for a tensor, arithmetic
on a list.
"""

from __future__ import annotations

from .. import ast, checked
from ..builtins import ANY, BOOL, BUILTINS, RULE
from ..diagnostics import Note
from ..names import ResolveError, resolve
from ..schemas import LIST, OP, SCALAR, TENSOR, literal_kind
from ..suggest import did_you_mean
from ..symbols import VARIABLE, Symbol
from .named_conditions import (BROKEN, CHECKING, SOUND, UNCHECKED, ConditionDefinition,
                               expand, free_variables, name_span, not_a_parameter,
                               unused_parameters)
from .scope import BUILTIN_SYMBOLS, RuleChecks, Variables
from .subpatterns import Expansion, Substituted

_ORDERING = ("<", "<=", ">", ">=")
QUANTIFIERS = ("all", "any")


class ConditionChecker(RuleChecks):
    def condition(self, condition) -> checked.Condition:
        if isinstance(condition, ast.Truth) and isinstance(condition.value, ast.Builtin) and (
                condition.value.name in self.reporter.conditions):
            return self.use_of_condition(condition.value)
        if isinstance(condition, ast.Truth) and isinstance(condition.value, ast.Quantified):
            return self.quantified(condition.value)
        if isinstance(condition, ast.AllOf):
            return checked.AllOf(tuple(map(self.condition, condition.items)), condition.span)
        if isinstance(condition, ast.AnyOf):
            return checked.AnyOf(tuple(map(self.condition, condition.items)), condition.span)
        if isinstance(condition, ast.Not):
            return checked.Not(self.condition(condition.item), condition.span)
        if isinstance(condition, ast.Membership):
            value = self.operand(condition.value)[0]
            options = tuple(self.operand(option)[0] for option in condition.options)
            return checked.Member(value, options, condition.negated, condition.span)
        if isinstance(condition, ast.Truth):
            value, kind = self.operand(condition.value)
            if kind not in (None, BOOL):
                self.error(condition.span, f"a condition is a comparison or a predicate such as "
                                           f"`is_tensor($x)`; this is {kind}")
            return checked.Test(value, condition.span)
        return self.comparison(condition)

    def comparison(self, guard: ast.Guard) -> checked.Guard:
        (left, left_kind), (right, right_kind) = self.operand(guard.left), self.operand(guard.right)
        if guard.op in _ORDERING:
            for side, kind in ((guard.left, left_kind), (guard.right, right_kind)):
                if kind not in (None, SCALAR):
                    self.error(side.span, f"`{guard.op}` orders numbers; this is {kind}")
        elif TENSOR in (left_kind, right_kind) and left_kind != right_kind and None not in (
                left_kind, right_kind):
            self.error(guard.span, f"compares {left_kind} with {right_kind}: never equal; "
                                   "compare what the tensor holds, as in `dtype($x) == ...`")
        return checked.Guard(guard.op, left, right, guard.span)

    # --- named conditions ------------------------------------------------------------------------
    def use_of_condition(self, call: ast.Builtin) -> checked.Named:
        """`name(v, w)`: the definition's body, checked with the values given (see
        `named_conditions`)."""
        definition = self.reporter.conditions[call.name]
        self.reporter.symbols.refer(name_span(call), definition.symbol)
        args = tuple(self.operand(arg)[0] for arg in call.args)
        params = definition.condition.params
        # In place of a body that cannot be checked (its mistakes are told already).
        unchecked = checked.Named(call.name, args, checked.AllOf((), call.span), call.span)
        if len(call.args) != len(params):
            names = ", ".join(f"${param.name}" for param in params)
            self.error(call.span, f"condition `{call.name}` takes {len(params)} value"
                                  f"{'s' if len(params) != 1 else ''} ({names}), not "
                                  f"{len(call.args)}",
                       Note(definition.condition.name_span, "defined here"))
            return unchecked
        if definition.state == CHECKING:
            self.error(call.span, f"condition `{call.name}` uses itself; a condition is a test "
                                  "of fixed size, expanded where it is used")
            return unchecked
        if self.reporter.too_deep(call.span):
            return unchecked
        self.reporter.depth += 1
        try:
            if definition.state == UNCHECKED:  # a condition defined further on, used here
                check_condition_definition(self.reporter, definition)
            if definition.state == BROKEN:  # its mistakes are reported at it, once
                return unchecked
            self.reporter.expansions.append(Expansion(call.name, call.span,
                                                      definition.condition.span, "condition"))
            try:
                body = ConditionChecker(self.reporter, definition.scope, self.variables
                                        ).condition(expand(definition, call, self.scope))
            finally:
                self.reporter.expansions.pop()
        finally:
            self.reporter.depth -= 1
        return checked.Named(call.name, args, body, call.span)

    # --- quantifiers ----------------------------------------------------------------------------
    def quantified(self, quantified: ast.Quantified) -> checked.Every:
        """`all(test for $v in list)`, `any(...)`: the test checked with `$v` bound to an item
        (a number for the items of `shape(...)`), `$v` seen only inside it."""
        name, var = quantified.name, quantified.var
        if name not in QUANTIFIERS:
            self.error(quantified.name_span, f"`{name}(... for ${var.name} in ...)` tests the "
                                             "items of a list with `all` or `any`"
                       + did_you_mean(name, QUANTIFIERS, "`{}`"))
        values, kind = self.operand(quantified.values)
        self._expect(quantified.values, kind, LIST, f"`{name}` goes through a list")
        scoped = self.variables.fork()
        scoped.value_kinds = dict(self.variables.value_kinds)
        if var.name in self.variables:  # the test is not checked: it would read the other
            self.error(var.span, f"`${var.name}` is bound already; `{name}(...)` needs a "
                                 "variable of its own for the items",
                       Note(self.variables.bound[var.name].span, "bound here"))
            return checked.Every(name != "any", var.name, values,
                                 checked.AllOf((), quantified.span), quantified.span)
        scoped.in_pattern(var, "value")
        if isinstance(quantified.values, ast.Builtin) and quantified.values.name == "shape":
            scoped.value_kinds[var.name] = SCALAR
        body = ConditionChecker(self.reporter, self.scope, scoped).condition(quantified.body)
        return checked.Every(name != "any", var.name, values, body, quantified.span)

    # --- values --------------------------------------------------------------------------------
    def operand(self, operand) -> tuple[checked.Operand, str | None]:
        """The checked value and its kind (None: the rule cannot tell)."""
        if isinstance(operand, Substituted):  # a named condition's value, from its use
            return ConditionChecker(self.reporter, operand.scope, self.variables).operand(
                operand.inner)
        if isinstance(operand, ast.Quantified):
            self.error(operand.span, f"`{operand.name}(... for ...)` is a condition: it stands "
                                     "where a condition goes, not as a value")
            return checked.Const(None, operand.span), None
        if isinstance(operand, ast.Builtin) and operand.name in self.reporter.conditions:
            self.reporter.symbols.refer(name_span(operand),
                                        self.reporter.conditions[operand.name].symbol)
            self.error(operand.span, f"`{operand.name}` is a condition: it stands where a "
                                     "condition goes (`where`, `and`, `or`, `not`), not as a "
                                     "value")
            return checked.Const(None, operand.span), None
        if isinstance(operand, ast.Builtin):
            return self.builtin(operand)
        if isinstance(operand, ast.Var):
            if operand.name not in self.variables:
                self.variables.unbound(operand)
            else:
                self.reporter.symbols.refer(operand.span, self.variables.bound[operand.name])
            return (checked.Value(operand.name, operand.span),
                    self.variables.value_kinds.get(operand.name))
        if isinstance(operand, ast.Index):
            (value, kind), (index, index_kind) = self.operand(operand.value), self.operand(
                operand.index)
            self._expect(operand.value, kind, LIST, "indexing takes a list")
            self._expect(operand.index, index_kind, SCALAR, "an index is an int")
            return checked.Index(value, index, operand.span), None if kind is None else SCALAR
        if isinstance(operand, (ast.Arithmetic, ast.Negative)):
            sides = (operand.left, operand.right) if isinstance(operand, ast.Arithmetic) else (
                operand.operand,)
            values = []
            for side in sides:
                value, kind = self.operand(side)
                self._expect(side, kind, SCALAR, "arithmetic takes numbers")
                values.append(value)
            op = operand.op if isinstance(operand, ast.Arithmetic) else "neg"
            return checked.Arithmetic(op, tuple(values), operand.span), SCALAR
        if isinstance(operand, ast.Constant) and operand.name in self.scope.names:
            resolved = self.scope.names[operand.name].detail
            if resolved.kind in ("op", "hop", "function"):  # `$f in (relu, sin)`
                self.reporter.symbols.refer(operand.span, self.scope.names[operand.name])
                return checked.Const(resolved.value, operand.span), OP
        if isinstance(operand, ast.QualifiedConstant):
            try:
                resolved = resolve(operand.path)
            except ResolveError:
                resolved = None  # reported below, as a constant
            if resolved is not None and resolved.kind in ("op", "hop", "function"):
                return checked.Const(resolved.value, operand.span), OP
        if isinstance(operand, ast.ListExpr):  # `[4, size($x, 0)]`
            items = [self.operand(item) for item in operand.items]
            return checked.Items(tuple(item for item, _ in items), operand.span), LIST
        value = self.scope.constant(operand)
        return checked.Const(value, operand.span), literal_kind(value)

    def builtin(self, call: ast.Builtin) -> tuple[checked.BuiltinCall, str | None]:
        info = BUILTINS.get(call.name)
        rule_args = {i for i, kind in enumerate(info.params) if kind == RULE} if info else set()
        args = [(None, None) if i in rule_args else self.operand(arg)
                for i, arg in enumerate(call.args)]
        if info is None:
            known = ", ".join(f"{name}()" for name in BUILTINS)
            self.error(call.span, f"unknown built-in `{call.name}`; the built-ins are {known}"
                       + did_you_mean(call.name, [*BUILTINS, *self.reporter.conditions],
                                      "`{}()`"))
            return checked.BuiltinCall(call.name, tuple(a for a, _ in args), call.span), None
        self.reporter.symbols.refer(call.span, BUILTIN_SYMBOLS[call.name])
        if len(call.args) != info.arity:
            self.error(call.span, f"`{call.name}` takes {info.arity} argument"
                                  f"{'s' if info.arity != 1 else ''}, not {len(call.args)}")
        else:
            for index, (arg, (_, kind), wanted) in enumerate(zip(call.args, args, info.params)):
                if wanted == RULE:  # `inside(autocast_regions)`: a rule, by its name
                    args[index] = self._rule_name(arg), RULE
                elif wanted != ANY:
                    self._expect(arg, kind, wanted, f"`{call.name}` takes {wanted}")
        return checked.BuiltinCall(call.name, tuple(a for a, _ in args), call.span), info.result

    def _rule_name(self, arg) -> checked.Const:
        if not isinstance(arg, ast.Constant):
            self.error(arg.span, "a rule is named as it is defined, as in "
                                 "`inside(autocast_regions)`")
            return checked.Const(None, arg.span)
        self.reporter.rule_references.append((arg.name, arg.span))
        return checked.Const(arg.name, arg.span)

    def _expect(self, node, kind: str | None, wanted: str, words: str) -> None:
        if kind is not None and kind != wanted:
            self.error(node.span, f"{words}; this is {kind}")


def check_condition_definition(reporter, definition: ConditionDefinition) -> None:
    """A named condition's body on its own, its parameters standing for values of any kind:
    its mistakes are reported once, at the definition, whether a rule uses it or not. Then it
    is SOUND (expanded at each use) or BROKEN (not expanded: its uses would repeat them)."""
    definition.state = CHECKING
    before = len(reporter.diagnostics)
    variables = Variables(reporter, f"condition {definition.condition.name}",
                          bound=definition.parameters)
    for var in free_variables(definition):
        reporter.error(var.span, not_a_parameter(var, definition))
        variables.bound.setdefault(var.name, Symbol(VARIABLE, f"${var.name}", var.span, "value"))
    ConditionChecker(reporter, definition.scope, variables).condition(definition.condition.body)
    for param in unused_parameters(definition):
        reporter.error(param.span, f"parameter `${param.name}` is not used in the condition")
    definition.state = BROKEN if len(reporter.diagnostics) > before else SOUND
