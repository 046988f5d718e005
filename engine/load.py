"""Rule files -> a `RuleSet`, or every diagnostic at once.

Input: paths of `.rw` files (or text). Output: a compiled `RuleSet`; or `RuleError` whose
message renders every error of every file (syntax first; if all files parse, their checks),
never a traceback. `include "other.rw"` brings another file's rules in at that point, its path
taken relative to the including file; each file is read once however often it is included, and
each keeps its own `use` names.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import ast, checked
from .diagnostics import Diagnostic, RuleError, Source
from .driver import RuleSet
from .regions import StructureIndex
from .sema import check_files
from .syntax import parse_source


def load_rules(*paths: str | Path) -> RuleSet:
    """The rules of these files, checked together and compiled; `RuleError` on any error."""
    if not paths:
        raise ValueError("load_rules needs at least one rule file")
    return _rule_set([_read(str(path)) for path in paths])


def rules_from_text(text: str, path: str = "<text>") -> RuleSet:
    """`load_rules` for rules held in a string; diagnostics name it `path`; includes are
    relative to the working directory."""
    return _rule_set([Source(path, text)])


def check_rules(*paths: str | Path) -> tuple[list[checked.Rule], list[Diagnostic]]:
    """(checked rules, diagnostics) for the files together; rules are only usable if no errors."""
    return check_sources([_read(str(path)) for path in paths])


def _rule_set(sources: list[Source]) -> RuleSet:
    rules, diagnostics = check_sources(sources)
    if diagnostics:
        raise RuleError(diagnostics)
    return RuleSet(rules)


def _read(path: str) -> Source:
    return Source(path, Path(path).read_text())


class _Files:
    """Every file reached from the roots through includes, parsed once each."""

    def __init__(self):
        self.parsed: dict[str, ast.RuleFile] = {}
        self.targets: dict[int, str] = {}  # id(ast.Include) -> path of the file it names
        self.diagnostics: list[Diagnostic] = []

    def add(self, source: Source, chain: tuple[str, ...] = ()) -> None:
        file, syntax_errors = parse_source(source)
        self.parsed[source.path] = file
        self.diagnostics += syntax_errors
        for include in (item for item in file.items if isinstance(item, ast.Include)):
            self._include(source.path, include, chain + (source.path,))

    def _include(self, includer: str, include: ast.Include, chain: tuple[str, ...]) -> None:
        path = os.path.normpath(os.path.join(os.path.dirname(includer), include.path))
        self.targets[id(include)] = path
        if path in chain:
            cycle = " -> ".join(chain[chain.index(path):] + (path,))
            self.diagnostics.append(Diagnostic(include.span, f"include cycle: {cycle}"))
        elif path not in self.parsed:
            try:
                source = _read(path)
            except OSError as error:
                self.diagnostics.append(Diagnostic(
                    include.span, f"cannot read `{path}`: {error.strerror or error}"))
                return
            self.add(source, chain)

    def rule_order(self, roots: list[str], checked_rules: dict[str, checked.Rule]) -> list:
        """Rules in the order the files state them, an included file's where it is included."""
        ordered, walked = [], set()

        def walk(path: str) -> None:
            walked.add(path)
            for item in self.parsed[path].items:
                if isinstance(item, ast.Rule) and item.name in checked_rules:
                    ordered.append(checked_rules.pop(item.name))
                elif isinstance(item, ast.Include):
                    target = self.targets.get(id(item))
                    if target in self.parsed and target not in walked:
                        walk(target)

        for root in roots:
            if root not in walked:
                walk(root)
        return ordered


def check_sources(sources: list[Source]) -> tuple[list[checked.Rule], list[Diagnostic]]:
    files = _Files()
    for source in sources:
        if source.path not in files.parsed:
            files.add(source)
    if files.diagnostics:
        return [], files.diagnostics
    rules, diagnostics = check_files(list(files.parsed.values()))
    if diagnostics:
        return [], diagnostics
    rules = files.rule_order([source.path for source in sources],
                             {rule.name: rule for rule in rules})
    conflicts = StructureIndex(rules).conflicts(rules)
    return rules, [Diagnostic(rule.pattern.opener.span, message) for rule, message in conflicts]
