"""Rule files -> checked rules, or every diagnostic at once.

Input: the paths (or `Source`s: path and text) of root `.rw` files. Output: a `CheckResult`:
the checked rules in rule order, the diagnostics of every file (syntax errors, and the checks
of every item that parsed), the symbol index and the sources read; never a traceback for anything a
file holds. `include "other.rw"` brings another file's rules in at that point, its path taken
relative to the including file; each file is read once however it is named (`rules/a.rw`,
`./rules/a.rw` and its absolute path are one file) and keeps its own `use` names. A file that
is not UTF-8 text, or holds a NUL byte, is reported at the offending position.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import ast, checked
from .diagnostics import Diagnostic, Source, Span
from .sema import check_files
from .symbols import FILE, Symbol, SymbolIndex
from .syntax import parse_source


@dataclass
class CheckResult:
    """What checking a set of rule files found. The rules are usable only without diagnostics."""

    rules: list[checked.Rule]
    diagnostics: list[Diagnostic]
    symbols: SymbolIndex
    sources: dict[str, Source] = field(default_factory=dict)  # by the path shown in diagnostics


def check_paths(paths: list[str | Path]) -> CheckResult:
    """Root files by path (an unreadable root raises OSError: that is a usage error)."""
    files = _Files()
    for path in paths:
        files.add_path(str(path))
    return files.check()


def check_sources(sources: list[Source], open_texts: dict[str, str] | None = None) -> CheckResult:
    """Root files given as text. `open_texts` (by `file_key`): the text of files an editor holds
    open, read instead of the disk where an include names one."""
    files = _Files(open_texts or {})
    for source in sources:
        files.add_source(source)
    return files.check()


def file_key(path: str) -> str:
    """What tells two names of one file apart from two files: the real path. Names that are no
    files (`<text>`) stand for themselves."""
    return os.path.realpath(path) if os.path.exists(path) else path


def decode(path: str, data: bytes) -> tuple[Source, Diagnostic | None]:
    """The file's text, and a diagnostic at its first byte that is NUL or not UTF-8 text."""
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
        bad = -1
    except UnicodeDecodeError as error:
        text = data.decode("utf-8", errors="replace")
        bad = error.start
    source = Source(path, text)
    if nul != -1 and (bad == -1 or nul < bad):
        return source, _at_offset(source, data[:nul], "the file holds a NUL byte; rule files "
                                                      "are text")
    if bad != -1:
        return source, _at_offset(source, data[:bad], f"the file is not UTF-8 text: byte "
                                                      f"0x{data[bad]:02x} cannot start a "
                                                      "character here")
    return source, None


def _at_offset(source: Source, data: bytes, message: str) -> Diagnostic:
    """At the position just after `data`, the bytes before the problem."""
    before = data.decode("utf-8", errors="replace")
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return Diagnostic(Span(source, line, column, line, column + 1), message)


class _Files:
    """Every file reached from the roots through includes, parsed once each."""

    def __init__(self, open_texts: dict[str, str] | None = None):
        self.open_texts = open_texts or {}  # by file key: what an editor holds, not the disk
        self.parsed: dict[str, ast.RuleFile] = {}  # by file key
        self.shown: dict[str, str] = {}  # file key -> the path diagnostics show
        self.roots: list[str] = []  # file keys
        self.targets: dict[int, str] = {}  # id(ast.Include) -> key of the file it names
        self.diagnostics: list[Diagnostic] = []
        self.symbols = SymbolIndex()
        self.sources: dict[str, Source] = {}
        self.file_symbols: dict[str, Symbol] = {}  # by file key

    def add_path(self, path: str, chain: tuple[str, ...] = ()) -> None:
        path = os.path.normpath(path)
        key = file_key(path)
        if not chain:
            self.roots.append(key)
        if key in self.parsed:
            return
        text = self.open_texts.get(key)
        data = Path(path).read_bytes() if text is None else text.encode("utf-8", "surrogatepass")
        source, problem = decode(path, data)
        self._add(key, source, problem, chain)

    def add_source(self, source: Source) -> None:
        key = file_key(source.path)
        self.roots.append(key)
        if key not in self.parsed:
            problem = decode(source.path, source.text.encode("utf-8", "surrogatepass"))[1]
            self._add(key, source, problem, ())

    def _add(self, key: str, source: Source, problem: Diagnostic | None, chain) -> None:
        self.shown[key] = source.path
        self.sources[source.path] = source
        if problem is not None:
            self.diagnostics.append(problem)
            self.parsed[key] = ast.RuleFile(source.path, ())
            return
        file, syntax_errors = parse_source(source)
        self.parsed[key] = file
        self.diagnostics += syntax_errors
        for include in (item for item in file.items if isinstance(item, ast.Include)):
            self._include(source.path, include, chain + (key,))

    def _include(self, includer: str, include: ast.Include, chain: tuple[str, ...]) -> None:
        path = os.path.normpath(os.path.join(os.path.dirname(includer), include.path))
        key = file_key(path)
        self.targets[id(include)] = key
        if key in chain:
            cycle = " -> ".join(self.shown[k] for k in chain[chain.index(key):]) + f" -> {path}"
            self.diagnostics.append(Diagnostic(include.span, f"include cycle: {cycle}"))
            return
        if key not in self.parsed:
            try:
                self.add_path(path, chain)
            except OSError as error:
                self.diagnostics.append(Diagnostic(
                    include.span, f"cannot read `{path}`: {error.strerror or error}"))
                return
        target = self.sources[self.shown[key]]
        self.symbols.refer(include.span, self._file_symbol(key, target))

    def _file_symbol(self, key: str, source: Source) -> Symbol:
        if key not in self.file_symbols:
            self.file_symbols[key] = Symbol(FILE, source.path, Span(source, 1, 1, 1, 1))
        return self.file_symbols[key]

    def check(self) -> CheckResult:
        """Every file's checks, syntax errors or not: what parsed is checked too, so that one
        broken line does not hide the mistakes of the others."""
        rules, diagnostics = check_files(list(self.parsed.values()), self.symbols)
        diagnostics = self.diagnostics + diagnostics
        if diagnostics:
            return CheckResult([], diagnostics, self.symbols, self.sources)
        ordered = self.rule_order({rule.name: rule for rule in rules})
        return CheckResult(ordered, [], self.symbols, self.sources)

    def rule_order(self, checked_rules: dict[str, checked.Rule]) -> list[checked.Rule]:
        """Rules in the order the files state them, an included file's where it is included."""
        ordered, walked = [], set()

        def walk(key: str) -> None:
            walked.add(key)
            for item in self.parsed[key].items:
                if isinstance(item, ast.Rule) and item.name in checked_rules:
                    ordered.append(checked_rules.pop(item.name))
                elif isinstance(item, ast.Include):
                    target = self.targets.get(id(item))
                    if target in self.parsed and target not in walked:
                        walk(target)

        for root in self.roots:
            if root not in walked:
                walk(root)
        return ordered
