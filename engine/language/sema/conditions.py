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
from ..names import ResolveError, resolve
from ..schemas import LIST, OP, SCALAR, TENSOR, literal_kind
from ..suggest import did_you_mean
from .scope import BUILTIN_SYMBOLS, RuleChecks

_ORDERING = ("<", "<=", ">", ">=")


class ConditionChecker(RuleChecks):
    def condition(self, condition) -> checked.Condition:
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

    # --- values --------------------------------------------------------------------------------
    def operand(self, operand) -> tuple[checked.Operand, str | None]:
        """The checked value and its kind (None: the rule cannot tell)."""
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
                       + did_you_mean(call.name, BUILTINS, "`{}()`"))
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
