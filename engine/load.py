"""Rule files -> a `RuleSet`, or every diagnostic at once.

Input: paths of `.rw` files. Output: a compiled `RuleSet`; or `RuleError` whose message renders
every error of every file (syntax first; if a file parses, its checks), never a traceback.
"""

from __future__ import annotations

from pathlib import Path

from .diagnostics import Diagnostic, RuleError, Source
from .driver import RuleSet
from .regions import BracketIndex
from .sema import check_files
from .syntax import parse_source


def load_rules(*paths: str | Path) -> RuleSet:
    """The rules of these files, checked together and compiled; `RuleError` on any error."""
    if not paths:
        raise ValueError("load_rules needs at least one rule file")
    return _rule_set(*(Source(str(path), Path(path).read_text()) for path in paths))


def rules_from_text(text: str, path: str = "<text>") -> RuleSet:
    """`load_rules` for rules held in a string; diagnostics name it `path`."""
    return _rule_set(Source(path, text))


def check_rules(*paths: str | Path):
    """(checked rules, diagnostics) for the files together; rules are only usable if no errors."""
    return check_sources([Source(str(path), Path(path).read_text()) for path in paths])


def _rule_set(*sources: Source) -> RuleSet:
    rules, diagnostics = check_sources(list(sources))
    if diagnostics:
        raise RuleError(diagnostics)
    return RuleSet(rules)


def check_sources(sources: list[Source]):
    files, diagnostics = [], []
    for source in sources:
        file, syntax_errors = parse_source(source)
        files.append(file)
        diagnostics += syntax_errors
    if diagnostics:
        return [], diagnostics
    rules, diagnostics = check_files(files)
    if not diagnostics:
        diagnostics = [Diagnostic(rule.pattern.opener.span, message)
                       for rule, message in BracketIndex(rules).conflicts(rules)]
    return rules, diagnostics
