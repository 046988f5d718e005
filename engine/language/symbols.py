"""Where each name of a rule file is defined and where it is used: the symbol index.

Input: what the checker records as it goes (`engine.language.sema`) and the include targets the
loader resolves (`engine.language.load`). Output: `SymbolIndex`, every occurrence of every
symbol with its span: `use` names (with what they resolve to), rules, variables (per rule),
`where` built-ins and included files. It is what a language server answers hover, go to
definition, references and document symbols from; nothing in the rewrite reads it.

    index.at(path, line, column)  -> the occurrence under a position, or None
    index.definitions(path)       -> the symbols a file defines (uses, rules, patterns,
                                     conditions), in order
    index.occurrences_of(symbol)  -> the definition and every use of a symbol
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .diagnostics import Span

# What a symbol is.
USE = "use"          # a name bound by `use`; `detail` is the `names.Resolved` it stands for
RULE = "rule"        # a rule's name
PATTERN = "pattern"  # a named sub-pattern; `detail` is its `ast.PatternDef`
CONDITION = "condition"  # a named condition; `detail` is its `ast.ConditionDef`
VARIABLE = "variable"  # `$x` in one rule; `detail` is its kind: "value", "rest" or "keywords"
BUILTIN = "builtin"  # a `where` built-in; `detail` is its `builtins.BuiltinInfo`
FILE = "file"        # a rule file, as an `include` names it; `name` is its path


@dataclass(frozen=True, eq=False)
class Symbol:
    """One defined thing. Compared by identity: two rules' `$x` are two symbols."""

    kind: str
    name: str
    span: Span | None  # where it is defined; None for built-ins, which no file defines
    detail: object = None
    container: str | None = None  # the rule a variable belongs to


@dataclass(frozen=True)
class Occurrence:
    span: Span
    symbol: Symbol
    defines: bool  # the definition itself, not a use


@dataclass
class SymbolIndex:
    occurrences: list[Occurrence] = field(default_factory=list)
    _referred: set = field(default_factory=set, repr=False)

    def define(self, symbol: Symbol) -> Symbol:
        if symbol.span is not None:
            self.occurrences.append(Occurrence(symbol.span, symbol, True))
        return symbol

    def refer(self, span: Span, symbol: Symbol) -> None:
        occurrence = Occurrence(span, symbol, False)
        if occurrence not in self._referred:  # a part checked twice (`f?(a)`) is one use
            self._referred.add(occurrence)
            self.occurrences.append(occurrence)

    def at(self, path: str, line: int, column: int) -> Occurrence | None:
        """The innermost occurrence whose span holds the position (1-based, as spans are)."""
        holding = [o for o in self.occurrences
                   if o.span.source.path == path and _holds(o.span, line, column)]
        return min(holding, key=lambda o: _size(o.span), default=None)

    def definitions(self, path: str) -> list[Symbol]:
        return [o.symbol for o in self.occurrences
                if o.defines and o.span.source.path == path
                and o.symbol.kind in (USE, RULE, PATTERN, CONDITION)]

    def occurrences_of(self, symbol: Symbol) -> list[Occurrence]:
        return [o for o in self.occurrences if o.symbol is symbol]


def _holds(span: Span, line: int, column: int) -> bool:
    return (span.line, span.column) <= (line, column) < (span.end_line, span.end_column)


def _size(span: Span) -> tuple[int, int]:
    return span.end_line - span.line, span.end_column - span.column
