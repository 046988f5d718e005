"""Rule files -> checked rules, or every diagnostic at once.

Input: `Source`s (paths and texts of `.rw` files). Output: the checked rules in rule order and
the diagnostics of every file (syntax first; if all files parse, their checks), never a
traceback. `include "other.rw"` brings another file's rules in at that point, its path
taken relative to the including file; each file is read once however often it is included, and
each keeps its own `use` names.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import ast, checked
from .diagnostics import Diagnostic, Source
from .sema import check_files
from .syntax import parse_source


def read_source(path: str | Path) -> Source:
    return Source(str(path), Path(path).read_text())


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
                source = read_source(path)
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
    return files.rule_order([source.path for source in sources],
                            {rule.name: rule for rule in rules}), []
