"""Patterns: AST regions and DAG patterns -> checked patterns.

Input: an `ast.Region` or `ast.Dag`, the file's scope and the rule's variables. Output: a
`checked.RegionPattern` or `checked.DagPattern` whose every part keeps its span, with each
variable occurrence classified as binding or repeating (in the order the matchers visit them:
positional arguments, the `*` rest, keywords, the `**` rest; a nested call before the
`$name =` that binds it).
"""

from __future__ import annotations

import dataclasses

from torch._ops import OpOverload, OpOverloadPacket

from .. import ast, checked
from ..diagnostics import Note
from ..names import op_key
from ..schemas import OP, fits, params_of, read_as, returns_kind
from .scope import RuleChecks
from .subpatterns import Expansion, Substituted, expand, is_local, needs_variables

_STARS = (ast.Keyword, ast.StarVar, ast.StarWildcard, ast.StarStarVar, ast.StarStarWildcard)

_MARKER_ARGUMENT = ("the arguments of a region's markers are plain values: variables, `_` and "
                    "literals")


class PatternChecker(RuleChecks):
    # --- regions -------------------------------------------------------------------------------
    def region(self, region: ast.Region) -> checked.RegionPattern:
        opener = self.node_pattern(region.opener, marker=True)
        binder = None
        if region.binder is not None:
            binder = region.binder.name
            self.variables.bind_node(region.binder, "the opener node")
        if region.closer is None:
            return checked.RegionPattern(binder, opener, None, None)
        closer = self.node_pattern(region.closer, marker=True)
        if opener.target is not None and op_key(opener.target) is op_key(closer.target):
            self.error(region.closer.callee_span,
                       "a region's closer must call something other than its opener")
        link = next((i for i, arg in enumerate(closer.args)
                     if binder is not None and arg == checked.Same(binder)), None)
        return checked.RegionPattern(binder, opener, closer, link)

    # --- DAG patterns --------------------------------------------------------------------------
    def dag(self, dag: ast.Dag) -> checked.DagPattern:
        roots = []
        for index, root in enumerate(dag.roots):
            earlier = self.variables.names()
            var, inner = (root.var, root.inner) if isinstance(root, ast.Bound) else (None, root)
            pattern = self.arg_pattern(inner, marker=False)
            if not _is_node_pattern(pattern):
                self.error(inner.span, "a pattern's root must be a call, such as `relu($x)`")
            elif index > 0 and not _uses(pattern, earlier):
                self.error(inner.span, "each root after the first must use a variable bound by "
                                       "an earlier one, so that the match is connected")
            if var is not None:
                self.variables.bind_node(var, "a root")
                if isinstance(pattern, checked.NodePattern) and returns_kind(pattern.target):
                    self.variables.value_kinds[var.name] = returns_kind(pattern.target)
            roots.append((var.name if var is not None else None, pattern))
        return checked.DagPattern(tuple(roots))

    # --- calls ---------------------------------------------------------------------------------
    def node_pattern(self, expr, marker: bool) -> checked.NodePattern:
        """A call, method call, `commutative` call or `shared` one, checked as a pattern."""
        shared = isinstance(expr, ast.Shared)
        if shared:
            expr = expr.inner
            if not isinstance(expr, (ast.Call, ast.Method, ast.Commutative)):
                self.error(expr.span, "`shared` applies to a call")
                return checked.NodePattern("call_function", None, (), checked.AnyRest(), (),
                                           expr.span)
        commutative = isinstance(expr, ast.Commutative)
        if commutative:
            expr = expr.call
        if shared and isinstance(expr, ast.Call) and not expr.optional and self._uses_pattern(
                expr):  # `shared name(...)`: the node the body's root call matches
            expanded = self.use_of_pattern(expr)
            made = _shared(expanded)
            if made is None:
                self.error(expr.span, f"`shared` applies to a call; pattern `{expr.callee}` "
                                      "matches no call of its own")
                return expanded
            return made
        if isinstance(expr, ast.Call) and (expr.optional or self._uses_pattern(expr)):
            thing = "an optional call" if expr.optional else "a named pattern"
            what = ("`shared`" if shared else "`commutative`" if commutative
                    else "a region's marker")
            self.error(expr.span, f"{thing} cannot be {what}")
            if not expr.optional:
                self.use_of_pattern(expr)  # its own mistakes, and its variables bound
                return checked.NodePattern("call_function", None, (), checked.AnyRest(), (),
                                           expr.span)
            expr = dataclasses.replace(expr, optional=False)
        target_var = None
        if isinstance(expr, ast.Method):
            op, target = "call_method", self.reporter.method_name(expr)
            args = (expr.receiver, *expr.args)
        elif expr.callee_is_var:  # `$f(...)`: any op; `$f` binds it
            if marker:
                self.error(expr.callee_span, "a region's markers name the op they call")
            var = ast.Var(expr.callee_span, expr.callee)
            target_var = (checked.Same if self.variables.in_pattern(var, "value")
                          else checked.Bind)(var.name, var.span)
            self.variables.value_kinds[var.name] = OP
            op, target, args = "call_function", None, expr.args
        else:
            op, target = "call_function", self.scope.callee(expr, ("op", "function", "hop"),
                                                            "a pattern")
            args = expr.args
        positional, rest, kwargs, more = self.arguments(args, marker)
        if commutative and (len(positional) != 2 or rest is not None):
            self.error(expr.span, "`commutative` needs a call of exactly two positional "
                                  "arguments")
        if more is None:
            self.reporter.check_schema(target, len(positional), rest is not None, kwargs, expr)
        forms = None
        if isinstance(target, (OpOverload, OpOverloadPacket)) and rest is None:
            forms = schema_forms(target, positional, kwargs, more is not None, commutative)
            self._learn_kinds(forms)
        return checked.NodePattern(op, target, positional, rest, kwargs, expr.span,
                                   commutative, shared, more, forms, target_var)

    def _learn_kinds(self, forms) -> None:
        """A variable bound at a parameter every overload types alike holds that kind of
        value; a `$y = call(...)` names what the call returns."""
        kinds: dict[str, set] = {}
        for form in forms:
            for arg in form.args:
                pattern = arg.pattern
                if isinstance(pattern, checked.Bind):
                    kinds.setdefault(pattern.name, set()).add(arg.param.value_kind)
                elif isinstance(pattern, checked.BindNode) and isinstance(
                        pattern.pattern, checked.NodePattern):
                    kinds.setdefault(pattern.name, set()).add(returns_kind(pattern.pattern.target))
        for name, found in kinds.items():
            if len(found) == 1 and None not in found:
                self.variables.value_kinds[name] = found.pop()

    def arguments(self, args, marker: bool):
        """(positional patterns, `*` rest, keyword patterns, `**` rest) of a call or list."""
        positional: list = []
        rest = more = None
        kwargs: dict[str, object] = {}
        for arg in args:
            if isinstance(arg, (ast.StarStarVar, ast.StarStarWildcard)):
                if more is not None:
                    self.error(arg.span, "one `**` pattern is enough")
                more = self.rest_pattern(arg, "keywords")
                continue
            if more is not None:
                self.error(arg.span, "nothing can follow a `**` pattern")
            if isinstance(arg, ast.Keyword):
                if arg.name in kwargs:
                    self.error(arg.span, f"keyword `{arg.name}` appears twice")
                kwargs[arg.name] = self.arg_pattern(arg.value, marker)
                continue
            if kwargs:
                self.error(arg.span, "a positional argument cannot follow a keyword argument")
            if rest is not None:
                self.error(arg.span, "nothing can follow a `*` pattern but keywords")
            if isinstance(arg, (ast.StarVar, ast.StarWildcard)):
                rest = self.rest_pattern(arg, "rest")
            else:
                positional.append(self.arg_pattern(arg, marker))
        return tuple(positional), rest, tuple(kwargs.items()), more

    def rest_pattern(self, arg, kind: str) -> checked.RestPattern:
        """`*_`, `*$x` (kind "rest"), `**_`, `**$x` (kind "keywords")."""
        if isinstance(arg, (ast.StarWildcard, ast.StarStarWildcard)):
            return checked.AnyRest(arg.span)
        if self.variables.in_pattern(arg, kind):
            return checked.SameRest(arg.name, arg.span)
        return checked.BindRest(arg.name, arg.span)

    # --- arguments -----------------------------------------------------------------------------
    def arg_pattern(self, arg, marker: bool) -> checked.ArgPattern:
        if isinstance(arg, Substituted):  # a sub-pattern's argument, in its own file's scope
            return PatternChecker(self.reporter, arg.scope, self.variables).arg_pattern(
                arg.inner, marker)
        if isinstance(arg, ast.Var):
            if self.variables.in_pattern(arg, "value"):
                return checked.Same(arg.name, arg.span)
            return checked.Bind(arg.name, arg.span)
        if isinstance(arg, ast.Wildcard):
            return checked.Anything(arg.span)
        if isinstance(arg, (ast.Literal, ast.Constant, ast.QualifiedConstant)):
            return checked.Equals(self.scope.constant(arg), arg.span)
        if isinstance(arg, (ast.Index, ast.Negative, ast.Arithmetic)):
            self.error(arg.span, "a pattern matches calls, variables and literals; indexing and "
                                 "arithmetic compute values: compare them in `where`")
            return checked.Anything(arg.span)
        if marker and isinstance(arg, (ast.Call, ast.Method, ast.Commutative, ast.Shared,
                                       ast.Bound, ast.ListExpr, ast.Alternatives)):
            self.error(arg.span, _MARKER_ARGUMENT)
            return checked.Anything(arg.span)
        if isinstance(arg, ast.Call) and self._uses_pattern(arg):
            return self.use_of_pattern(arg)
        call = arg.call if isinstance(arg, ast.Commutative) else arg
        if isinstance(call, ast.Call) and call.optional:
            return self.optional(arg)
        if isinstance(arg, (ast.Call, ast.Method, ast.Commutative, ast.Shared)):
            return self.node_pattern(arg, marker)
        if isinstance(arg, ast.Bound):
            pattern = self.arg_pattern(arg.inner, marker)
            self.variables.bind_node(arg.var, "a node of the pattern")
            return checked.BindNode(arg.var.name, pattern, arg.span)
        if isinstance(arg, ast.ListExpr):
            items, rest, kwargs, more = self.arguments(arg.items, marker)
            if kwargs or more is not None:
                self.error(arg.span, "a list holds values, not keywords")
            return checked.ListPattern(items, rest, arg.span)
        if isinstance(arg, ast.Alternatives):
            return self.alternatives(arg)
        if isinstance(arg, ast.Keyword):
            self.error(arg.span, "a keyword argument cannot be nested in another")
        else:
            self.error(arg.span, "a `*` pattern belongs among a call's arguments")
        return checked.Anything(arg.span)

    # --- named sub-patterns and optional calls ------------------------------------------------
    def _uses_pattern(self, call: ast.Call) -> bool:
        """Does the call name a sub-pattern? A `use`d name of the file comes first."""
        return (not call.callee_is_var and call.callee in self.reporter.patterns
                and call.callee not in self.scope.names)

    def use_of_pattern(self, call: ast.Call) -> checked.ArgPattern:
        """`name(args)`: the definition's body, checked in the use's place (see subpatterns)."""
        definition = self.reporter.patterns[call.callee]
        self.reporter.symbols.refer(call.callee_span, definition.symbol)
        params = definition.pattern.params
        defined_here = Note(definition.pattern.name_span, "defined here")
        if call.optional:
            self.error(call.span, "a named pattern cannot be optional; write the optional call "
                                  "inside it, or around it")
        elif any(isinstance(arg, _STARS) for arg in call.args):
            odd = next(arg for arg in call.args if isinstance(arg, _STARS))
            self.error(odd.span, "a named pattern takes one pattern for each parameter; no "
                                 "keywords or `*` patterns", defined_here)
        elif len(call.args) != len(params):
            names = ", ".join(f"${param.name}" for param in params)
            self.error(call.span, f"pattern `{call.callee}` takes {len(params)} argument"
                                  f"{'s' if len(params) != 1 else ''} ({names}), not "
                                  f"{len(call.args)}", defined_here)
        elif problems := needs_variables(definition, call):
            for arg, place in problems:
                self.error(arg.span, f"pattern `{call.callee}` calls or spreads this "
                                     "parameter: give it a variable",
                           Note(place, "used here"))
        elif any(e.name == call.callee for e in self.reporter.expansions):
            self.error(call.span, f"pattern `{call.callee}` uses itself; a pattern matches a "
                                  "fixed shape of graph")
        elif not self.reporter.too_deep(call.span):
            body = expand(definition, call, self.scope, self.variables.expansion(call.callee))
            self.reporter.expansions.append(Expansion(call.callee, call.span,
                                                      definition.pattern.span))
            self.reporter.depth += 1
            try:
                return PatternChecker(self.reporter, definition.scope,
                                      self.variables).arg_pattern(body, marker=False)
            finally:
                self.reporter.expansions.pop()
                self.reporter.depth -= 1
        for arg in call.args:  # bound all the same: no knock-on errors
            while isinstance(arg, Substituted):  # given through uses inside one another
                arg = arg.inner
            if isinstance(arg, ast.Var):
                self.variables.in_pattern(arg, "value")
        return checked.NodePattern("call_function", None, (), checked.AnyRest(), (), call.span)

    def optional(self, arg) -> checked.ArgPattern:
        """`f?(a, b)` (or `commutative f?(a, b)`): `f(a, b)` if the node is such a call, else
        `a`; then the variables only `f(...)` binds are None."""
        commutative = isinstance(arg, ast.Commutative)
        call = arg.call if commutative else arg
        if not call.args or isinstance(call.args[0], _STARS):
            self.error(call.span, "an optional call `f?(a, ...)` stands for its first argument "
                                  "when the call is not there; it needs one")
            return self.arg_pattern(dataclasses.replace(call, optional=False), marker=False)
        plain = dataclasses.replace(call, optional=False)
        present = PatternChecker(self.reporter, self.scope, self.variables.fork())
        full = present.arg_pattern(dataclasses.replace(arg, call=plain) if commutative
                                   else plain, marker=False)
        absent = PatternChecker(self.reporter, self.scope, self.variables.fork())
        alone = absent.arg_pattern(call.args[0], marker=False)
        bound = present.variables.new_since(self.variables)
        missing = tuple(name for name in bound if name not in absent.variables)
        self.variables.adopt(bound)
        self.variables.value_kinds.update(
            (name, kind) for name, kind in present.variables.value_kinds.items()
            if name not in missing)
        return checked.OneOf((full, alone), arg.span, ((), missing))

    def alternatives(self, alternatives: ast.Alternatives) -> checked.OneOf:
        """Each option is checked from the variables bound before it; all must bind the same
        new variables, so that whichever matches, the rest of the rule can use them."""
        options, new = [], []
        for option in alternatives.options:
            trial = PatternChecker(self.reporter, self.scope, self.variables.fork())
            options.append(trial.arg_pattern(option, marker=False))
            new.append(trial.variables.new_since(self.variables))
        first = new[0]
        for option, names in zip(alternatives.options[1:], new[1:]):
            if _nameable(names) != _nameable(first):
                odd = sorted(_nameable(names) ^ _nameable(first))[0]
                self.error(option.span, f"every alternative must bind the same variables; "
                                        f"`${odd}` is bound by some and not others")
        self.variables.adopt(first)
        return checked.OneOf(tuple(options), alternatives.span)


def _nameable(names) -> set[str]:
    """The variables a rule can name: not those a sub-pattern keeps to itself."""
    return {name for name in names if not is_local(name)}


def schema_forms(target, positional, kwargs, more: bool, commutative: bool):
    """The call pattern read by each overload's schema it fits (see `checked.SchemaForm`)."""
    overloads = [target] if isinstance(target, OpOverload) else [
        getattr(target, name) for name in target.overloads()]
    names = {name for name, _ in kwargs}
    orders = [tuple(range(len(positional)))]
    if commutative and len(positional) == 2:
        orders.append((1, 0))
    forms = []
    for overload in overloads:
        if not fits(overload, len(positional), more, names):
            continue
        params = params_of(overload)
        by_position = [param for param in params if param.position is not None]
        by_name = {param.name: param for param in params}
        for order in orders:
            named = [(by_position[slot], pattern) for slot, pattern in zip(order, positional)]
            named += [(by_name[name], pattern) for name, pattern in kwargs]
            given = {param.name for param, _ in named}
            args = [checked.SchemaArg(param, _read_literal(param, pattern))
                    for param, pattern in named]
            args += [checked.SchemaArg(param, None) for param in params
                     if param.name not in given]
            forms.append(checked.SchemaForm(overload, tuple(args)))
    return tuple(forms)


def _read_literal(param, pattern):
    """A literal reads as its parameter's type reads it: `2` for a float is `2.0`."""
    if isinstance(pattern, checked.Equals):
        return checked.Equals(read_as(param.kind, pattern.value), pattern.span)
    return pattern


def _is_node_pattern(pattern) -> bool:
    if isinstance(pattern, checked.BindNode):
        return _is_node_pattern(pattern.pattern)
    if isinstance(pattern, checked.OneOf):
        return all(_is_node_pattern(option) for option in pattern.options)
    return isinstance(pattern, checked.NodePattern)


def _uses(pattern, names: set[str]) -> bool:
    """Does the pattern refer to any of these already-bound variables?"""
    return any(name in names
               for name in checked.variables(pattern, (checked.Same, checked.SameRest)))


def _shared(pattern) -> checked.ArgPattern | None:
    """A named pattern's expansion with the call its body's root matches marked `shared` (in
    each alternative, and under `$x = ...`); None when the body's root is no call at all."""
    if isinstance(pattern, checked.NodePattern):
        return dataclasses.replace(pattern, shared=True)
    if isinstance(pattern, checked.BindNode):
        inner = _shared(pattern.pattern)
        return None if inner is None else dataclasses.replace(pattern, pattern=inner)
    if isinstance(pattern, checked.OneOf):
        options = [_shared(option) for option in pattern.options]
        if all(option is None for option in options):
            return None
        return dataclasses.replace(pattern, options=tuple(
            option if made is None else made for option, made in zip(pattern.options, options)))
    return None
