"""AST -> checked rules.

Input: parsed `ast.RuleFile`s. Output: `checked.Rule`s and the diagnostics found on the way.
Resolves `use` declarations through the allowlist in `engine.language.names`, checks that every name is
declared and fits where it is used, that variables are bound once and used as what they are,
and that rule names are unique across the files loaded together. It keeps going after an error
so that a file's mistakes are reported together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch._ops import OpOverload, OpOverloadPacket

from . import ast, checked
from .diagnostics import Diagnostic, Note, Span
from .builtins import BUILTINS
from .names import Resolved, ResolveError, resolve
from .schemas import check_call

_TEMPLATE_FUNCTION_HOMES = ("operator", "_operator", "math")
_ANY_NODE = checked.NodePattern("call_function", None, (), checked.AnyRest(), (), None)


@dataclass
class _Scope:
    """The names a file declares with `use`."""

    names: dict[str, tuple[Resolved, Span]] = field(default_factory=dict)


@dataclass
class _Binding:
    kind: str  # "value" | "rest"
    span: Span


class _Checker:
    def __init__(self):
        self.diagnostics: list[Diagnostic] = []
        self.rule_spans: dict[str, Span] = {}

    def error(self, span: Span, message: str, *notes: Note) -> None:
        self.diagnostics.append(Diagnostic(span, message, tuple(notes)))

    # --- files and declarations --------------------------------------------------------------
    def check_file(self, file: ast.RuleFile) -> list[checked.Rule]:
        scope = _Scope()
        for use in file.uses:
            self.declare(scope, use)
        rules = []
        for rule in file.rules:
            checked_rule = self.check_rule(scope, rule)
            if checked_rule is not None:
                rules.append(checked_rule)
        return rules

    def declare(self, scope: _Scope, use: ast.Use) -> None:
        try:
            resolved = resolve(use.path)
        except ResolveError as error:
            self.error(use.path_span, str(error))
            return
        if use.alias in scope.names:
            self.error(use.alias_span, f"`{use.alias}` is already declared",
                       Note(scope.names[use.alias][1], "previous declaration here"))
            return
        scope.names[use.alias] = (resolved, use.alias_span)

    def check_rule(self, scope: _Scope, rule: ast.Rule) -> checked.Rule | None:
        if rule.name in self.rule_spans:
            self.error(rule.name_span, f"rule `{rule.name}` is already defined",
                       Note(self.rule_spans[rule.name], "previous definition here"))
        else:
            self.rule_spans[rule.name] = rule.name_span
        before = len(self.diagnostics)
        bindings: dict[str, _Binding] = {}
        if isinstance(rule.pattern, ast.Dag):
            pattern = self.check_dag(scope, rule.pattern, bindings)
        else:
            pattern = self.check_region(scope, rule.pattern, bindings)
        guards = tuple(self.check_guard(scope, guard, bindings) for guard in rule.guards)
        action = self.check_action(scope, rule, pattern, bindings)
        if len(self.diagnostics) > before:
            return None
        return checked.Rule(rule.name, rule.span, pattern, guards, action)

    # --- region patterns -----------------------------------------------------------------------
    def check_region(self, scope, region: ast.Region, bindings) -> checked.RegionPattern:
        opener = self.node_pattern(scope, region.opener, bindings, marker=True)
        binder = None
        if region.binder is not None:
            binder = region.binder.name
            self.bind_node(region.binder, bindings, "the opener node")
        if region.closer is None:
            return checked.RegionPattern(binder, opener, None, None)
        closer = self.node_pattern(scope, region.closer, bindings, marker=True)
        if opener.target is not None and opener.target is closer.target:
            self.error(region.closer.callee_span,
                       "a region's closer must call something other than its opener")
        link = next((i for i, arg in enumerate(closer.args)
                     if binder is not None and arg == checked.Same(binder)), None)
        return checked.RegionPattern(binder, opener, closer, link)

    def bind_node(self, var: ast.Var, bindings, what: str) -> None:
        """`$var = ...`: binds the node the pattern on the right matched."""
        if var.name in bindings:
            self.error(var.span, f"`${var.name}` names {what} and cannot also be bound inside it "
                                 "or before it", Note(bindings[var.name].span, "also bound here"))
        else:
            bindings[var.name] = _Binding("value", var.span)

    # --- DAG patterns --------------------------------------------------------------------------
    def check_dag(self, scope, dag: ast.Dag, bindings) -> checked.DagPattern:
        roots = []
        for index, root in enumerate(dag.roots):
            earlier = set(bindings)
            var, inner = (root.var, root.inner) if isinstance(root, ast.Bound) else (None, root)
            pattern = self.arg_pattern(scope, inner, bindings, marker=False)
            if not _is_node_pattern(pattern):
                self.error(_span_of(inner), "a pattern's root must be a call, such as `relu($x)`")
            elif index > 0 and not _uses(pattern, earlier):
                self.error(_span_of(inner), "each root after the first must use a variable bound "
                                            "by an earlier one, so that the match is connected")
            if var is not None:
                self.bind_node(var, bindings, "a root")
            roots.append((var.name if var is not None else None, pattern))
        return checked.DagPattern(tuple(roots))

    def node_pattern(self, scope, expr, bindings, marker: bool) -> checked.NodePattern:
        """A call, method call, `commutative` call or `shared` one, checked as a pattern."""
        shared = isinstance(expr, ast.Shared)
        if shared:
            expr = expr.inner
            if not isinstance(expr, (ast.Call, ast.Method, ast.Commutative)):
                self.error(_span_of(expr), "`shared` applies to a call")
                return _ANY_NODE
        commutative = isinstance(expr, ast.Commutative)
        if commutative:
            expr = expr.call
        if isinstance(expr, ast.Method):
            op, target = "call_method", self.method_name(expr)
            args = (expr.receiver, *expr.args)
        else:
            op, target = "call_function", self.callee(scope, expr, ("op", "function", "hop"),
                                                      "a pattern")
            args = expr.args
        positional, rest, kwargs, more = self.arguments(scope, args, bindings, marker)
        if commutative and (len(positional) != 2 or rest is not None):
            self.error(expr.span, "`commutative` needs a call of exactly two positional "
                                  "arguments")
        if more is None:
            self.check_schema(target, len(positional), rest is not None, kwargs, expr)
        return checked.NodePattern(op, target, positional, rest, kwargs, expr.span,
                                   commutative, shared, more)

    def arguments(self, scope, args, bindings, marker: bool):
        """(positional patterns, `*` rest, keyword patterns, `**` rest) of a call or list."""
        positional: list = []
        rest = more = None
        kwargs: dict[str, object] = {}
        for arg in args:
            if isinstance(arg, (ast.StarStarVar, ast.StarStarWildcard)):
                if more is not None:
                    self.error(arg.span, "one `**` pattern is enough")
                more = checked.AnyRest() if isinstance(arg, ast.StarStarWildcard) else (
                    checked.SameRest(arg.name) if self.use_variable(arg, "keywords", bindings)
                    else checked.BindRest(arg.name))
                continue
            if more is not None:
                self.error(_span_of(arg), "nothing can follow a `**` pattern")
            if isinstance(arg, ast.Keyword):
                if arg.name in kwargs:
                    self.error(arg.span, f"keyword `{arg.name}` appears twice")
                kwargs[arg.name] = self.arg_pattern(scope, arg.value, bindings, marker)
                continue
            if kwargs:
                self.error(_span_of(arg), "a positional argument cannot follow a keyword argument")
            if rest is not None:
                self.error(_span_of(arg), "nothing can follow a `*` pattern but keywords")
            if isinstance(arg, (ast.StarVar, ast.StarWildcard)):
                rest = self.rest_pattern(arg, bindings)
            else:
                positional.append(self.arg_pattern(scope, arg, bindings, marker))
        return tuple(positional), rest, tuple(kwargs.items()), more

    def arg_pattern(self, scope, arg, bindings, marker: bool) -> checked.ArgPattern:
        if isinstance(arg, ast.Var):
            if self.use_variable(arg, "value", bindings):
                return checked.Same(arg.name)
            return checked.Bind(arg.name)
        if isinstance(arg, ast.Wildcard):
            return checked.Anything()
        if isinstance(arg, (ast.Literal, ast.Constant)):
            return checked.Equals(self.constant(scope, arg))
        if marker and isinstance(arg, (ast.Call, ast.Method, ast.Commutative, ast.Shared,
                                       ast.Bound, ast.ListExpr, ast.Alternatives)):
            self.error(_span_of(arg), "the arguments of a region's markers are plain values: "
                                      "variables, `_` and literals")
            return checked.Anything()
        if isinstance(arg, (ast.Call, ast.Method, ast.Commutative, ast.Shared)):
            return self.node_pattern(scope, arg, bindings, marker)
        if isinstance(arg, ast.Bound):
            pattern = self.arg_pattern(scope, arg.inner, bindings, marker)
            self.bind_node(arg.var, bindings, "a node of the pattern")
            return checked.BindNode(arg.var.name, pattern)
        if isinstance(arg, ast.ListExpr):
            items, rest, kwargs, more = self.arguments(scope, arg.items, bindings, marker)
            if kwargs or more is not None:
                self.error(arg.span, "a list holds values, not keywords")
            return checked.ListPattern(items, rest)
        if isinstance(arg, ast.Alternatives):
            return self.alternatives(scope, arg, bindings)
        if isinstance(arg, ast.Keyword):
            self.error(arg.span, "a keyword argument cannot be nested in another")
        else:
            self.error(_span_of(arg), "a `*` pattern belongs among a call's arguments")
        return checked.Anything()

    def alternatives(self, scope, alternatives: ast.Alternatives, bindings) -> checked.OneOf:
        """Each option is checked from the bindings before it; all must bind the same new
        variables, so that whichever matches, the rest of the rule can use them."""
        options, new_names = [], []
        for option in alternatives.options:
            trial = dict(bindings)
            options.append(self.arg_pattern(scope, option, trial, marker=False))
            new_names.append({name: trial[name] for name in trial if name not in bindings})
        first = new_names[0]
        for option, names in zip(alternatives.options[1:], new_names[1:]):
            if set(names) != set(first):
                odd = sorted(set(names) ^ set(first))[0]
                self.error(_span_of(option), f"every alternative must bind the same variables; "
                                             f"`${odd}` is bound by some and not others")
        bindings.update(first)
        return checked.OneOf(tuple(options))

    def rest_pattern(self, arg, bindings) -> checked.RestPattern:
        if isinstance(arg, ast.StarWildcard):
            return checked.AnyRest()
        if self.use_variable(arg, "rest", bindings):
            return checked.SameRest(arg.name)
        return checked.BindRest(arg.name)

    def use_variable(self, var, kind: str, bindings) -> bool:
        """Records a pattern occurrence of a variable; True when it was bound before."""
        binding = bindings.get(var.name)
        if binding is None:
            bindings[var.name] = _Binding(kind, var.span)
            return False
        if binding.kind != kind:
            self.error(var.span, _kind_clash(var.name, binding.kind),
                       Note(binding.span, "bound here"))
        return True

    def method_name(self, method: ast.Method) -> str:
        if method.name.startswith("_") or not callable(getattr(torch.Tensor, method.name, None)):
            self.error(method.name_span, f"`{method.name}` is not a public method of tensors")
        return method.name

    def check_schema(self, target, positional: int, more: bool, kwargs, node: ast.Call) -> None:
        problem = check_call(target, positional, more, {name for name, _ in kwargs})
        if problem is not None:
            self.error(node.span, problem)

    # --- guards ------------------------------------------------------------------------------
    def check_guard(self, scope, guard: ast.Guard, bindings) -> checked.Guard:
        return checked.Guard(guard.op, self.operand(scope, guard.left, bindings),
                             self.operand(scope, guard.right, bindings), guard.span)

    def operand(self, scope, operand, bindings) -> checked.Operand:
        if isinstance(operand, ast.Builtin):
            builtin = BUILTINS.get(operand.name)
            if builtin is None:
                known = ", ".join(f"{name}()" for name in BUILTINS)
                self.error(operand.span, f"unknown built-in `{operand.name}`; the built-ins of "
                                         f"`where` are {known}")
            elif len(operand.args) != builtin.arity:
                self.error(operand.span, f"`{operand.name}` takes {builtin.arity} argument"
                                         f"{'s' if builtin.arity != 1 else ''}, "
                                         f"not {len(operand.args)}")
            args = tuple(self.operand(scope, arg, bindings) for arg in operand.args)
            return checked.BuiltinCall(operand.name, args)
        if isinstance(operand, ast.Var):
            binding = bindings.get(operand.name)
            if binding is None:
                self.error(operand.span, f"`${operand.name}` is not bound by the pattern")
            return checked.Value(operand.name)
        return checked.Const(self.constant(scope, operand))

    # --- actions -----------------------------------------------------------------------------
    def check_action(self, scope, rule: ast.Rule, pattern, bindings) -> checked.Action:
        action = rule.action
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
            return self.check_replace(scope, action, pattern, bindings)
        hop = self.callee(scope, action.hop, ("hop",), "`outline with`")
        args = [self.template_arg(scope, arg, bindings, nested=False) for arg in action.hop.args]
        return checked.Outline(hop, tuple(a for a in args if a is not None), action.span)

    def check_replace(self, scope, action: ast.Replace, pattern, bindings) -> checked.Replace:
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
                index = root_names.index(var.name)
                if any(done == index for done, _ in replacements):
                    self.error(var.span, f"`${var.name}` is replaced twice")
            built = self.template_arg(scope, template, bindings, nested=True)
            if built is not None:
                replacements.append((index, built))
        return checked.Replace(tuple(replacements), action.span)

    def template_arg(self, scope, arg, bindings, nested: bool) -> checked.TemplateArg | None:
        """A value a template builds: a bound variable, a literal, or (`nested`) a call."""
        if isinstance(arg, (ast.Var, ast.StarVar)):
            kind = "rest" if isinstance(arg, ast.StarVar) else "value"
            binding = bindings.get(arg.name)
            if binding is None:
                self.error(arg.span, f"`${arg.name}` is not bound by the pattern")
                return None
            if binding.kind != kind:
                self.error(arg.span, _kind_clash(arg.name, binding.kind),
                           Note(binding.span, "bound here"))
                return None
            return checked.Splat(arg.name) if kind == "rest" else checked.Value(arg.name)
        if isinstance(arg, (ast.Literal, ast.Constant)):
            return checked.Const(self.constant(scope, arg))
        if nested and isinstance(arg, (ast.Call, ast.Method)):
            return self.node_template(scope, arg, bindings)
        if nested and isinstance(arg, ast.ListExpr):
            items = [self.template_arg(scope, item, bindings, nested) for item in arg.items]
            return checked.ListTemplate(tuple(item for item in items if item is not None))
        if isinstance(arg, ast.Keyword):
            self.error(arg.span, "`outline with` passes arguments by position only")
        elif isinstance(arg, (ast.Wildcard, ast.StarWildcard)):
            self.error(arg.span, "`_` matches anything; it cannot build a value")
        else:
            self.error(_span_of(arg), "a template builds values: variables, literals and calls, "
                                      "not alternatives, `shared`, `commutative` or `$x = ...`")
        return None

    def node_template(self, scope, expr, bindings) -> checked.NodeTemplate | None:
        if isinstance(expr, ast.Method):
            op, target, args = "call_method", self.method_name(expr), (expr.receiver, *expr.args)
        else:
            op, args = "call_function", expr.args
            target = self.callee(scope, expr, ("op", "function"), "a template")
            if target is not None and not isinstance(target, (OpOverload, OpOverloadPacket)) \
                    and getattr(target, "__module__", "") not in _TEMPLATE_FUNCTION_HOMES:
                self.error(expr.callee_span, f"a template calls ops (`torch.ops...`), `operator` "
                                             f"or `math` functions; `{expr.callee}` is none")
        positional, kwargs, more = [], {}, False
        for arg in args:
            if isinstance(arg, ast.Keyword):
                kwargs[arg.name] = self.template_arg(scope, arg.value, bindings, nested=True)
            elif isinstance(arg, ast.StarStarVar):
                binding = bindings.get(arg.name)
                if binding is None or binding.kind != "keywords":
                    self.error(arg.span, f"`**${arg.name}` needs keywords bound by `**${arg.name}` "
                                         "in the pattern")
                kwargs[None] = checked.Splat(arg.name)
                more = True
            else:
                more = more or isinstance(arg, ast.StarVar)
                positional.append(self.template_arg(scope, arg, bindings, nested=True))
        count = sum(1 for arg in positional if not isinstance(arg, checked.Splat))
        named = tuple((name, value) for name, value in kwargs.items() if name is not None)
        self.check_schema(target, count, more, named, expr)
        if any(arg is None for arg in positional) or any(v is None for v in kwargs.values()):
            return None
        return checked.NodeTemplate(op, target, tuple(positional), tuple(kwargs.items()),
                                    expr.span)

    # --- names -------------------------------------------------------------------------------
    def callee(self, scope, call: ast.Call, kinds: tuple[str, ...], where: str):
        resolved = self.lookup(scope, call.callee, call.callee_span)
        if resolved is None:
            return None
        if resolved.kind not in kinds:
            wanted = " or ".join(_KIND_WORDS[k] for k in kinds)
            self.error(call.callee_span, f"{where} needs {wanted}; `{call.callee}` is "
                       f"{_KIND_WORDS[resolved.kind]} (`{resolved.dotted}`)")
            return None
        return resolved.value

    def constant(self, scope, arg):
        if isinstance(arg, ast.Literal):
            return arg.value
        resolved = self.lookup(scope, arg.name, arg.span)
        if resolved is not None and resolved.kind != "constant":
            self.error(arg.span, f"`{arg.name}` is {_KIND_WORDS[resolved.kind]}, not a constant")
        return resolved.value if resolved is not None else None

    def lookup(self, scope, name: str, span: Span) -> Resolved | None:
        entry = scope.names.get(name)
        if entry is None:
            self.error(span, f"unknown name `{name}`; declare it with `use`")
            return None
        return entry[0]


_KIND_WORDS = {
    "op": "an operator",
    "function": "a function",
    "hop": "a higher-order operator",
    "constant": "a constant",
}


def _kind_clash(name: str, bound_kind: str) -> str:
    if bound_kind == "rest":
        return f"`${name}` holds several arguments (`*${name}`); it cannot stand for one"
    if bound_kind == "keywords":
        return f"`${name}` holds keyword arguments (`**${name}`); use it as `**${name}`"
    return f"`${name}` holds one value; `*${name}` would spread several"


def _span_of(node) -> Span:
    return node.span


def _is_node_pattern(pattern) -> bool:
    if isinstance(pattern, checked.BindNode):
        return _is_node_pattern(pattern.pattern)
    if isinstance(pattern, checked.OneOf):
        return all(_is_node_pattern(option) for option in pattern.options)
    return isinstance(pattern, checked.NodePattern)


def _uses(pattern, names: set[str]) -> bool:
    """Does the pattern refer to any of these already-bound variables?"""
    return any(name in names for name in checked.variables(pattern, (checked.Same, checked.SameRest)))


def check_files(files: list[ast.RuleFile]) -> tuple[list[checked.Rule], list[Diagnostic]]:
    """Each file in its own scope; rules in the order given (includes already expanded)."""
    checker = _Checker()
    rules = [rule for file in files for rule in checker.check_file(file)]
    return rules, checker.diagnostics
