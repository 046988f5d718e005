"""AST -> checked rules.

Input: parsed `ast.RuleFile`s. Output: `checked.Rule`s and the diagnostics found on the way.
Resolves `use` declarations through the allowlist in `engine.names`, checks that every name is
declared and fits where it is used, that variables are bound once and used as what they are,
and that rule names are unique across the files loaded together. It keeps going after an error
so that a file's mistakes are reported together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ast, checked
from .diagnostics import Diagnostic, Note, Span
from .guards import BUILTINS
from .names import Resolved, ResolveError, resolve


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
        pattern = self.check_region(scope, rule.pattern, bindings)
        guards = tuple(self.check_guard(scope, guard, bindings) for guard in rule.guards)
        action = self.check_action(scope, rule.action, bindings)
        if len(self.diagnostics) > before:
            return None
        return checked.Rule(rule.name, rule.span, pattern, guards, action)

    # --- patterns ----------------------------------------------------------------------------
    def check_region(self, scope, region: ast.Region, bindings) -> checked.RegionPattern:
        opener = self.check_call_pattern(scope, region.opener, bindings)
        binder = None
        if region.binder is not None:
            binder = region.binder.name
            if binder in bindings:
                previous = bindings[binder].span
                self.error(region.binder.span,
                           f"`${binder}` names the opener node and cannot also be one of its "
                           "arguments", Note(previous, "also bound here"))
            else:
                bindings[binder] = _Binding("value", region.binder.span)
        if region.closer is None:
            return checked.RegionPattern(binder, opener, None, None)
        closer = self.check_call_pattern(scope, region.closer, bindings)
        if opener.target is not None and opener.target is closer.target:
            self.error(region.closer.callee_span,
                       "a region's closer must call something other than its opener")
        link = next((i for i, arg in enumerate(closer.args)
                     if binder is not None and arg == checked.Same(binder)), None)
        return checked.RegionPattern(binder, opener, closer, link)

    def check_call_pattern(self, scope, call: ast.Call, bindings) -> checked.CallPattern:
        target = self.callee(scope, call, ("op", "function", "hop"), "a pattern")
        args: list = []
        rest = None
        kwargs: dict[str, object] = {}
        for arg in call.args:
            if isinstance(arg, ast.Keyword):
                if arg.name in kwargs:
                    self.error(arg.span, f"keyword `{arg.name}` appears twice")
                kwargs[arg.name] = self.arg_pattern(scope, arg.value, bindings)
                continue
            if kwargs:
                self.error(arg.span, "a positional argument cannot follow a keyword argument")
            if rest is not None:
                self.error(arg.span, "nothing can follow a `*` pattern but keywords")
            if isinstance(arg, (ast.StarVar, ast.StarWildcard)):
                rest = self.rest_pattern(arg, bindings)
            else:
                args.append(self.arg_pattern(scope, arg, bindings))
        return checked.CallPattern(target, tuple(args), rest, tuple(kwargs.items()), call.span)

    def arg_pattern(self, scope, arg, bindings) -> checked.ArgPattern:
        if isinstance(arg, ast.Var):
            if self.use_variable(arg, "value", bindings):
                return checked.Same(arg.name)
            return checked.Bind(arg.name)
        if isinstance(arg, ast.Wildcard):
            return checked.Anything()
        if isinstance(arg, (ast.Literal, ast.Constant)):
            return checked.Equals(self.constant(scope, arg))
        if isinstance(arg, ast.Keyword):
            self.error(arg.span, "a keyword argument cannot be nested in another")
            return checked.Anything()
        self.error(arg.span, "a `*` pattern cannot be a keyword's value")
        return checked.Anything()

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
    def check_action(self, scope, action, bindings) -> checked.Action:
        if isinstance(action, ast.Inline):
            return checked.Inline(action.span)
        if isinstance(action, ast.Erase):
            return checked.Erase(action.span)
        hop = self.callee(scope, action.hop, ("hop",), "`outline with`")
        args = [self.template_arg(scope, arg, bindings) for arg in action.hop.args]
        return checked.Outline(hop, tuple(a for a in args if a is not None), action.span)

    def template_arg(self, scope, arg, bindings) -> checked.TemplateArg | None:
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
        if isinstance(arg, ast.Keyword):
            self.error(arg.span, "`outline with` passes arguments by position only")
            return None
        self.error(arg.span, "`_` matches anything; it cannot build a value")
        return None

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
    return f"`${name}` holds one value; `*${name}` would spread several"


def check_files(files: list[ast.RuleFile]) -> tuple[list[checked.Rule], list[Diagnostic]]:
    """Each file in its own scope; rules in the order given (includes already expanded)."""
    checker = _Checker()
    rules = [rule for file in files for rule in checker.check_file(file)]
    return rules, checker.diagnostics
