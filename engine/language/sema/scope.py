"""What the checks of one file share: its diagnostics, its `use` names, a rule's variables.

Input: `use` declarations, names and variables as the checker meets them. Output: what each
resolves to, every mistake as a diagnostic, and every definition and reference recorded in the
symbol index with its span.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import ast
from ..builtins import BUILTINS, DTYPE_NAMES
from ..diagnostics import Diagnostic, Note, Span
from ..names import Resolved, ResolveError, resolve
from ..schemas import check_call
from ..suggest import did_you_mean
from ..symbols import BUILTIN, RULE, USE, VARIABLE, Symbol, SymbolIndex
from .subpatterns import within

KIND_WORDS = {
    "op": "an operator",
    "function": "a function",
    "hop": "a higher-order operator",
    "constant": "a constant",
}

MAX_NESTING = 100  # uses of named patterns and conditions, one inside another

# The symbols of the built-ins: no file defines them, every file may refer to them.
BUILTIN_SYMBOLS = {name: Symbol(BUILTIN, name, None, info) for name, info in BUILTINS.items()}


@dataclass
class Reporter:
    """Where checks put what they find: diagnostics, and symbols with their spans."""

    diagnostics: list[Diagnostic]
    symbols: SymbolIndex
    # Rules named in conditions (`inside(name)`), checked once every rule is known.
    rule_references: list[tuple[str, Span]] = field(default_factory=list)
    # The named sub-patterns of every file (`subpatterns.Definition`), and the uses being
    # checked now, innermost last (`subpatterns.Expansion`).
    patterns: dict = field(default_factory=dict)
    expansions: list = field(default_factory=list)
    # The named conditions of every file (`named_conditions.ConditionDefinition`).
    conditions: dict = field(default_factory=dict)
    # How deep named patterns and conditions are being expanded (or checked) inside one another.
    depth: int = 0
    told_too_deep: bool = False
    _reported: set = field(default_factory=set)

    def too_deep(self, span: Span) -> bool:
        """Is a use here one more than MAX_NESTING deep? Then it is told here and not expanded
        (each level costs the checker's stack: a chain of 400 was a RecursionError)."""
        if self.depth < MAX_NESTING:
            return False
        if not self.told_too_deep:  # once: every definition of a long chain reaches it
            self.told_too_deep = True
            self.error(span, "named patterns and conditions are used inside one another more "
                             f"than {MAX_NESTING} deep here")
        return True

    def error(self, span: Span, message: str, *notes: Note) -> None:
        """A diagnostic; inside a sub-pattern's body, with a note at each use that reaches
        it, and once however many uses do."""
        if (span, message) in self._reported:
            return
        self._reported.add((span, message))
        notes += tuple(Note(expansion.use, f"in {expansion.what} `{expansion.name}`, used here")
                       for expansion in reversed(self.expansions)
                       if within(span, expansion.body))
        self.diagnostics.append(Diagnostic(span, message, tuple(notes)))

    def check_schema(self, target, positional: int, more: bool, keywords, node) -> None:
        """A call in a pattern or template against its op's schema (no schema: no check)."""
        problem = check_call(target, positional, more, {name for name, _ in keywords})
        if problem is not None:
            self.error(node.span, problem)

    def method_name(self, method: ast.Method) -> str:
        if method.name.startswith("_") or not callable(getattr(torch.Tensor, method.name, None)):
            methods = [name for name in dir(torch.Tensor) if not name.startswith("_")]
            self.error(method.name_span, f"`{method.name}` is not a public method of tensors"
                       + did_you_mean(method.name, methods))
        return method.name


class Scope:
    """The names one file declares with `use`."""

    def __init__(self, reporter: Reporter, broken: tuple[str, ...] = ()):
        self.reporter = reporter
        self.names: dict[str, Symbol] = {}
        # Names whose `use` failed (did not parse, or did not resolve): already reported, so
        # their uses are not reported again.
        self.broken: set[str] = set(broken)

    def declare(self, use: ast.Use) -> None:
        try:
            resolved = resolve(use.path)
        except ResolveError as error:
            self.reporter.error(use.path_span, str(error))
            self.broken.add(use.alias)
            return
        if use.alias in self.names:
            self.reporter.error(use.alias_span, f"`{use.alias}` is already declared",
                                Note(self.names[use.alias].span, "previous declaration here"))
            return
        self.names[use.alias] = self.reporter.symbols.define(
            Symbol(USE, use.alias, use.alias_span, resolved))

    def lookup(self, name: str, span: Span, also=()) -> Resolved | None:
        """What a name the file declares stands for; `also`: other names that would do here,
        for the suggestion when it is unknown."""
        symbol = self.names.get(name)
        if symbol is None and name in self.reporter.patterns:
            self.reporter.error(span, f"`{name}` is a pattern: it stands in a `match`, for what "
                                      "it matches")
            return None
        if symbol is None and name in self.reporter.conditions:
            self.reporter.error(span, f"`{name}` is a condition: it stands in a `where` clause, "
                                      "where a condition goes")
            return None
        if symbol is None:
            if name not in self.broken:
                self.reporter.error(span, f"unknown name `{name}`; declare it with `use`"
                                    + did_you_mean(name, [*self.names, *also]))
            return None
        self.reporter.symbols.refer(span, symbol)
        return symbol.detail

    def callee(self, call: ast.Call, kinds: tuple[str, ...], where: str):
        """What a call's name resolves to, if it is of one of these kinds; else None."""
        resolved = self.lookup(call.callee, call.callee_span)
        if resolved is None:
            return None
        if resolved.kind not in kinds:
            wanted = " or ".join(KIND_WORDS[k] for k in kinds)
            self.reporter.error(call.callee_span, f"{where} needs {wanted}; `{call.callee}` is "
                                f"{KIND_WORDS[resolved.kind]} (`{resolved.dotted}`)")
            return None
        return resolved.value

    def constant(self, arg: ast.Literal | ast.Constant | ast.QualifiedConstant):
        if isinstance(arg, ast.Literal):
            return arg.value
        if isinstance(arg, ast.QualifiedConstant):  # `torch.float32`, without a `use`
            try:
                resolved = resolve(arg.path)
            except ResolveError as error:
                self.reporter.error(arg.span, str(error))
                return None
            if resolved.kind != "constant":
                self.reporter.error(arg.span, f"`{resolved.dotted}` is "
                                              f"{KIND_WORDS[resolved.kind]}, not a constant")
            return resolved.value
        if (arg.name in DTYPE_NAMES and arg.name not in self.names
                and arg.name not in self.broken and arg.name not in self.reporter.patterns):
            return DTYPE_NAMES[arg.name]  # `float16`, `bf16`: a dtype, unless the file says
        resolved = self.lookup(arg.name, arg.span, also=DTYPE_NAMES)
        if resolved is not None and resolved.kind != "constant":
            self.reporter.error(arg.span,
                                f"`{arg.name}` is {KIND_WORDS[resolved.kind]}, not a constant")
        return resolved.value if resolved is not None else None


class Variables:
    """The variables of one rule: each bound once, by the pattern, as one kind of thing
    ("value", "rest" for `*$x`, "keywords" for `**$x`), then used as that kind."""

    def __init__(self, reporter: Reporter, rule: str, bound: dict[str, Symbol] | None = None,
                 uses: dict[str, int] | None = None):
        self.reporter = reporter
        self.rule = rule
        self.bound: dict[str, Symbol] = dict(bound or {})
        # How many times the rule uses each sub-pattern; forks share it, so that every use's
        # own variables get a prefix of their own.
        self.uses: dict[str, int] = uses if uses is not None else {}
        # What a variable holds, where the pattern tells (`schemas.TENSOR`, `schemas.SCALAR`):
        # bound at a parameter of that type, or naming a call that returns one.
        self.value_kinds: dict[str, str] = {}

    def fork(self) -> "Variables":
        """A copy to check one alternative with; `adopt` takes what it bound."""
        return Variables(self.reporter, self.rule, self.bound, self.uses)

    def expansion(self, pattern: str) -> str:
        """The prefix of the variables a use of a sub-pattern keeps to itself: `name1`..."""
        self.uses[pattern] = self.uses.get(pattern, 0) + 1
        return f"{pattern}{self.uses[pattern]}"

    def new_since(self, earlier: "Variables") -> dict[str, Symbol]:
        return {name: symbol for name, symbol in self.bound.items() if name not in earlier.bound}

    def adopt(self, bound: dict[str, Symbol]) -> None:
        self.bound.update(bound)

    def __contains__(self, name: str) -> bool:
        return name in self.bound

    def names(self) -> set[str]:
        return set(self.bound)

    def kind(self, name: str) -> str | None:
        symbol = self.bound.get(name)
        return symbol.detail if symbol is not None else None

    def _define(self, var, kind: str) -> None:
        self.bound[var.name] = self.reporter.symbols.define(
            Symbol(VARIABLE, f"${var.name}", var.span, kind, self.rule))

    def bind_node(self, var: ast.Var, what: str) -> None:
        """`$var = ...`: binds the node the pattern on the right matched."""
        if var.name in self.bound:
            self.reporter.error(var.span, f"`${var.name}` names {what} and cannot also be bound "
                                          "inside it or before it",
                                Note(self.bound[var.name].span, "also bound here"))
        else:
            self._define(var, "value")

    def in_pattern(self, var, kind: str) -> bool:
        """A pattern occurrence of a variable; True when it was bound before (it must then
        equal what it bound)."""
        symbol = self.bound.get(var.name)
        if symbol is None:
            self._define(var, kind)
            return False
        self.reporter.symbols.refer(var.span, symbol)
        if symbol.detail != kind:
            self.reporter.error(var.span, kind_clash(var.name, symbol.detail),
                                Note(symbol.span, "bound here"))
        return True

    def unbound(self, var) -> None:
        self.reporter.error(var.span, f"`${var.name}` is not bound by the pattern"
                            + did_you_mean(var.name, self.bound, "`${}`"))

    def used(self, var, kind: str) -> bool:
        """A use in a template or a guard: it must be bound, as this kind. True if it is."""
        symbol = self.bound.get(var.name)
        if symbol is None:
            self.unbound(var)
            return False
        self.reporter.symbols.refer(var.span, symbol)
        if symbol.detail != kind:
            if kind == "keywords":
                self.reporter.error(var.span, f"`**${var.name}` needs keywords bound by "
                                              f"`**${var.name}` in the pattern")
            else:
                self.reporter.error(var.span, kind_clash(var.name, symbol.detail),
                                    Note(symbol.span, "bound here"))
            return False
        return True


class RuleChecks:
    """What checking one part of a rule needs: where to report, the file's names, the rule's
    variables."""

    def __init__(self, reporter: Reporter, scope: Scope, variables: Variables):
        self.reporter = reporter
        self.scope = scope
        self.variables = variables

    def error(self, span: Span, message: str, *notes: Note) -> None:
        self.reporter.error(span, message, *notes)


def define_rule(reporter: Reporter, defined: dict[str, Symbol], rule: ast.Rule) -> None:
    """Rule names are unique across every file loaded together."""
    if rule.name in defined:
        reporter.error(rule.name_span, f"rule `{rule.name}` is already defined",
                       Note(defined[rule.name].span, "previous definition here"))
    else:
        defined[rule.name] = reporter.symbols.define(Symbol(RULE, rule.name, rule.name_span))


def kind_clash(name: str, bound_kind: str) -> str:
    if bound_kind == "rest":
        return f"`${name}` holds several arguments (`*${name}`); it cannot stand for one"
    if bound_kind == "keywords":
        return f"`${name}` holds keyword arguments (`**${name}`); use it as `**${name}`"
    return f"`${name}` holds one value; `*${name}` would spread several"
