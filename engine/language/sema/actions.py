"""Actions and templates: AST -> checked actions.

Input: a rule's action, its checked pattern, the file's scope and the rule's variables.
Output: `checked` actions whose templates name only bound variables, call ops as their schemas
allow with arguments of the kinds their parameters take, and compute values (`shape($x)[-1]`,
`size($x, 0) * 2`) with the built-ins templates may use. Refused here, because no graph can
make them right:
- `outline with hop($v)` where `$v` is the opener node (the outline removes it) or is bound by
  the closer (made, perhaps, inside the region the HOP call stands in for);
- a template that uses the root it replaces (`match $y = relu($x)`, `replace with cos($y)`);
- a literal (`None`, `1.5`), or a call that gives no tensor (one whose op returns nothing, its
  schema `()`, included), as the whole replacement of a root whose op returns a tensor; a
  string or number where a tensor goes, a list where a number does, a call that returns
  nothing where any value goes.
"""

from __future__ import annotations

from torch._ops import OpOverload, OpOverloadPacket

from .. import ast, checked
from ..builtins import BUILTINS
from ..schemas import (LIST, NONE, OP, SCALAR, TENSOR, argument_problem, call_returns_kind,
                       fits, literal_kind, returns_one_tensor)
from .conditions import ConditionChecker
from .scope import RuleChecks

_TEMPLATE_FUNCTION_HOMES = ("operator", "_operator", "math")


class ActionChecker(RuleChecks):
    # --- actions -------------------------------------------------------------------------------
    def action(self, action, pattern) -> checked.Action:
        dag = isinstance(pattern, checked.DagPattern)
        if isinstance(action, ast.Erase):
            return checked.Erase(action.span)
        if isinstance(action, (ast.Inline, ast.Outline, ast.Keep)) and dag:
            self.error(action.span, "`outline`, `inline` and `keep` take a region; a DAG "
                                    "pattern is `replace`d or `erase`d")
        if isinstance(action, ast.Inline):
            return checked.Inline(action.span)
        if isinstance(action, ast.Keep):
            return checked.Keep(action.span)
        if isinstance(action, ast.Replace):
            return self.replace(action, pattern)
        return self.outline(action, pattern)

    def outline(self, action: ast.Outline, pattern) -> checked.Outline:
        hop = self.scope.callee(action.hop, ("hop",), "`outline with`")
        args = [self.template_arg(arg, nested=False) for arg in action.hop.args]
        if isinstance(pattern, checked.RegionPattern):
            self._outside_values_only(action.hop.args, pattern)
        return checked.Outline(hop, tuple(a for a in args if a is not None), action.span)

    def _outside_values_only(self, args, pattern: checked.RegionPattern) -> None:
        """The HOP call stands where the region stood: it can pass what the opener was given,
        not the opener itself (the outline removes it) nor what the closer was given."""
        from_closer = set() if pattern.closer is None else set(checked.variables(
            pattern.closer, (checked.Bind, checked.BindRest)))
        for arg in args:
            name = getattr(arg, "name", None)
            if not isinstance(arg, (ast.Var, ast.StarVar)) or name not in self.variables:
                continue
            if name == pattern.binder:
                self.error(arg.span, f"`${name}` is the opener node, which `outline` removes; "
                                     "pass the values it was called with instead, as in "
                                     "`$open = opener(*$args) ...` and `outline with hop(*$args)`")
            elif name in from_closer:
                self.error(arg.span, f"`${name}` is bound by the closer, whose arguments may be "
                                     "made inside the region; `outline with` passes values from "
                                     "before it")

    def replace(self, action: ast.Replace, pattern) -> checked.Replace:
        if not isinstance(pattern, checked.DagPattern):
            self.error(action.span, "`replace` takes a DAG pattern; a region is outlined, "
                                    "inlined, kept or erased")
            return checked.Replace((), action.span)
        root_names = [name for name, _ in pattern.roots]
        replacements = []
        for var, template in action.replacements:
            if var is None:
                if len(pattern.roots) > 1:
                    self.error(action.span, "this pattern has several roots: say which each "
                                            "template replaces, as in `replace $a with ..., $b "
                                            "with ...`")
                index = 0
            elif var.name not in root_names:
                self.error(var.span, f"`${var.name}` is not a root of the pattern; roots are "
                                     "named as in `match $a = f($x), $b = g($x)`")
                continue
            else:
                self.variables.used(var, "value")
                index = root_names.index(var.name)
                if any(done == index for done, _ in replacements):
                    self.error(var.span, f"`${var.name}` is replaced twice")
            built = self.template_arg(template, nested=True)
            if built is not None:
                self._replacement_fits(template, built, pattern.roots[index])
                replacements.append((index, built))
        return checked.Replace(tuple(replacements), action.span)

    def _replacement_fits(self, template, built, root) -> None:
        name, pattern = root
        use = next((u for u in checked.template_uses(built) if u.name == name), None)
        if use is not None:
            self.error(use.span, f"`${name}` is the node this template replaces; it cannot be "
                                 "part of its own replacement")
        if not all(returns_one_tensor(target) for target in _root_targets(pattern)):
            return
        targets = sorted({str(target) for target in _root_targets(pattern)})
        if isinstance(built, checked.Const):
            self.error(template.span, f"`{targets[0]}` returns a tensor; the literal "
                                      f"`{built.value!r}` cannot replace it")
        elif isinstance(built, checked.NodeTemplate) and built.kind == NONE:
            self.error(template.span, f"`{targets[0]}` returns a tensor; `{built.target}` "
                                      "returns nothing (its schema returns `()`), so it cannot "
                                      "replace it")
        elif self.kind_of(built) not in (None, TENSOR):
            self.error(template.span, f"`{targets[0]}` returns a tensor; this template gives "
                                      f"{self.kind_of(built)}, which cannot replace it")

    # --- templates -----------------------------------------------------------------------------
    def template_arg(self, arg, nested: bool) -> checked.TemplateArg | None:
        """A value a template builds: a bound variable, a literal, or (`nested`) a call."""
        if isinstance(arg, (ast.Var, ast.StarVar)):
            kind = "rest" if isinstance(arg, ast.StarVar) else "value"
            if not self.variables.used(arg, kind):
                return None
            if kind == "rest":
                return checked.Splat(arg.name, arg.span)
            return checked.Value(arg.name, arg.span)
        if isinstance(arg, (ast.Literal, ast.Constant, ast.QualifiedConstant)):
            return checked.Const(self.scope.constant(arg), arg.span)
        value = self._template_value(arg) if nested else None
        if value is not None:
            return value
        if nested and isinstance(arg, (ast.Call, ast.Method)):
            return self.node_template(arg)
        if nested and isinstance(arg, ast.ListExpr):
            items = [self.template_arg(item, nested) for item in arg.items]
            return checked.ListTemplate(tuple(item for item in items if item is not None),
                                        arg.span)
        if isinstance(arg, ast.Keyword):
            self.error(arg.span, "`outline with` passes arguments by position only")
        elif isinstance(arg, (ast.Wildcard, ast.StarWildcard)):
            self.error(arg.span, "`_` matches anything; it cannot build a value")
        else:
            self.error(arg.span, "a template builds values: variables, literals and calls, "
                                 "not alternatives, `shared`, `commutative` or `$x = ...`")
        return None

    def _template_value(self, arg):
        """A value a template computes before it builds (`size($x, -1)`, `shape($x)[-1]`), or
        None when `arg` is not one. A built-in's name is one unless the file `use`s it."""
        value = _as_value(arg, self.scope)
        if value is None:
            return None
        for call in _builtin_calls(value):
            info = BUILTINS.get(call.name)
            if info is not None and not info.in_templates:
                self.error(call.span, f"`{call.name}` is a built-in of `where` clauses; a "
                                      "template can use " + ", ".join(
                                          f"`{name}`" for name, i in BUILTINS.items()
                                          if i.in_templates))
                return checked.Const(None, arg.span)
        checked_value, _ = ConditionChecker(self.reporter, self.scope, self.variables).operand(
            value)
        return checked_value

    def node_template(self, expr) -> checked.NodeTemplate | None:
        if isinstance(expr, ast.Method):
            op, args = "call_method", (expr.receiver, *expr.args)
            target = self.reporter.method_name(expr)
        elif expr.callee_is_var:  # `$f(...)`: the op a pattern's `$f(...)` bound
            return self._var_call(expr)
        else:
            op, args = "call_function", expr.args
            target = self.scope.callee(expr, ("op", "function"), "a template")
            if target is not None and not isinstance(target, (OpOverload, OpOverloadPacket)) \
                    and getattr(target, "__module__", "") not in _TEMPLATE_FUNCTION_HOMES:
                self.error(expr.callee_span, f"a template calls ops (`torch.ops...`), `operator` "
                                             f"or `math` functions; `{expr.callee}` is none")
        positional, kwargs, more = [], {}, False
        for arg in args:
            if isinstance(arg, ast.Keyword):
                kwargs[arg.name] = self.template_arg(arg.value, nested=True)
            elif isinstance(arg, ast.StarStarVar):
                self.variables.used(arg, "keywords")
                kwargs[None] = checked.Splat(arg.name, arg.span)
                more = True
            else:
                more = more or isinstance(arg, ast.StarVar)
                positional.append(self.template_arg(arg, nested=True))
        count = sum(1 for arg in positional if not isinstance(arg, checked.Splat))
        named = tuple((name, value) for name, value in kwargs.items() if name is not None)
        self.reporter.check_schema(target, count, more, named, expr)
        if any(arg is None for arg in positional) or any(v is None for v in kwargs.values()):
            return None
        kind = self._argument_kinds(target, positional, dict(named), more, expr)
        return checked.NodeTemplate(op, target, tuple(positional), tuple(kwargs.items()),
                                    expr.span, kind)

    def _var_call(self, expr: ast.Call) -> checked.NodeTemplate | None:
        var = ast.Var(expr.callee_span, expr.callee)
        if not self.variables.used(var, "value"):
            return None
        if self.variables.value_kinds.get(var.name) != OP:
            self.error(var.span, f"`${var.name}` is not an op; a call `${var.name}(...)` needs "
                                 f"`${var.name}` bound by a `${var.name}(...)` pattern")
            return None
        args, kwargs = [], []
        for arg in expr.args:
            if isinstance(arg, ast.Keyword):
                kwargs.append((arg.name, self.template_arg(arg.value, nested=True)))
            elif isinstance(arg, ast.StarStarVar):
                self.variables.used(arg, "keywords")
                kwargs.append((None, checked.Splat(arg.name, arg.span)))
            else:
                args.append(self.template_arg(arg, nested=True))
        if any(a is None for a in args) or any(v is None for _, v in kwargs):
            return None
        return checked.NodeTemplate("call_function", checked.Value(var.name, var.span),
                                    tuple(args), tuple(kwargs), expr.span)

    def _argument_kinds(self, target, positional, named: dict, more: bool, expr) -> str | None:
        """Each argument against the kinds of value its parameter takes: a string or a number
        where a tensor goes, a list where a number goes, is wrong before any graph is seen.
        Returns the kind of value the call gives, where the overloads that fit agree."""
        if any(isinstance(arg, checked.Splat) for arg in positional):
            positional = positional[:next(i for i, arg in enumerate(positional)
                                          if isinstance(arg, checked.Splat))]
            more = True
        kinds = [self.kind_of(arg) for arg in positional]
        keyword_kinds = {name: self.kind_of(arg) for name, arg in named.items()}
        problem = argument_problem(target, kinds, keyword_kinds, more)
        if problem is not None:
            sentence, where = problem
            culprit = positional[where] if isinstance(where, int) else named[where]
            self.error(culprit.span or expr.span, sentence)
            return None
        if _returns_nothing(target, len(positional), more, set(named)):
            return NONE
        return call_returns_kind(target, kinds, keyword_kinds, more)

    def kind_of(self, template) -> str | None:
        """What kind of value a template gives, as far as the rule tells (None: it cannot)."""
        if isinstance(template, checked.Const):
            return literal_kind(template.value)
        if isinstance(template, checked.Value):
            return self.variables.value_kinds.get(template.name)
        if isinstance(template, checked.ListTemplate):
            return LIST
        if isinstance(template, checked.NodeTemplate):
            return template.kind
        if isinstance(template, checked.BuiltinCall) and template.name in BUILTINS:
            return BUILTINS[template.name].result
        if isinstance(template, (checked.Index, checked.Arithmetic)):
            return SCALAR
        return None

def _as_value(arg, scope):
    """The template part as a value to compute (`ast.Builtin`, `ast.Index`), or None."""
    if isinstance(arg, ast.Call) and arg.callee in BUILTINS and arg.callee not in scope.names:
        # its arguments are values too: `bits(dtype($x))`, `size($x, rank($x) - 1)`
        return ast.Builtin(arg.span, arg.callee,
                           tuple(_as_value(part, scope) or part for part in arg.args),
                           arg.callee_span)
    if isinstance(arg, ast.Index):
        inner = _as_value(arg.value, scope) or arg.value
        return ast.Index(arg.span, inner, _as_value(arg.index, scope) or arg.index)
    if isinstance(arg, ast.Negative):
        return ast.Negative(arg.span, _as_value(arg.operand, scope) or arg.operand)
    if isinstance(arg, ast.Arithmetic):
        return ast.Arithmetic(arg.span, arg.op, _as_value(arg.left, scope) or arg.left,
                              _as_value(arg.right, scope) or arg.right)
    return None


def _builtin_calls(value):
    if isinstance(value, ast.Builtin):
        yield value
        for part in value.args:
            yield from _builtin_calls(part)
    elif isinstance(value, ast.Index):
        yield from _builtin_calls(value.value)
        yield from _builtin_calls(value.index)
    elif isinstance(value, ast.Negative):
        yield from _builtin_calls(value.operand)
    elif isinstance(value, ast.Arithmetic):
        yield from _builtin_calls(value.left)
        yield from _builtin_calls(value.right)


def _returns_nothing(target, positional: int, more: bool, keywords: set[str]) -> bool:
    """Does every overload of the op that takes a call of this shape return nothing (its
    schema `-> ()`, as `_assert_async`)? False without a schema."""
    if isinstance(target, OpOverloadPacket):
        overloads = [getattr(target, name) for name in target.overloads()]
    else:
        overloads = [target] if isinstance(target, OpOverload) else []
    taking = [o for o in overloads if fits(o, positional, more, keywords)]
    return bool(taking) and all(not o._schema.returns for o in taking)


def _root_targets(pattern) -> list:
    if isinstance(pattern, checked.BindNode):
        return _root_targets(pattern.pattern)
    if isinstance(pattern, checked.OneOf):
        return [target for option in pattern.options for target in _root_targets(option)]
    return [pattern.target] if isinstance(pattern, checked.NodePattern) else [None]

