"""Rule files -> a `RuleSet`: the Python API's front door.

Input: paths of `.rw` files, or text. Output: a compiled `RuleSet`; or `RuleError` whose message
renders every error of every file at once. The language stage checks each rule
(`engine.language.load`); the region matcher then checks that the rules' markers can share
one stack (`StructureIndex.conflicts`), which only the set as a whole can tell.
"""

from __future__ import annotations

from pathlib import Path

from ..language import checked
from ..language.diagnostics import Diagnostic, RuleError, Source
from ..language.load import CheckResult, check_paths, check_sources
from ..matching.regions import StructureIndex
from ..rewriting.driver import RuleSet


def load_rules(*paths: str | Path) -> RuleSet:
    """The rules of these files, checked together and compiled; `RuleError` on any error."""
    if not paths:
        raise ValueError("load_rules needs at least one rule file")
    return _rule_set(check_paths(list(paths)))


def rules_from_text(text: str, path: str = "<text>") -> RuleSet:
    """`load_rules` for rules held in a string; diagnostics name it `path`; includes are
    relative to the working directory."""
    return _rule_set(check_sources([Source(path, text)]))


def check_rules(*paths: str | Path) -> tuple[list[checked.Rule], list[Diagnostic]]:
    """(checked rules, diagnostics) for the files together; rules are only usable if no errors."""
    result = check_rule_set(check_paths(list(paths)))
    return result.rules, result.diagnostics


def check_rule_set(result: CheckResult) -> CheckResult:
    """Adds what only the rules together can tell: markers that cannot share one stack."""
    if not result.diagnostics:
        conflicts = StructureIndex(result.rules).conflicts(result.rules)
        if conflicts:
            result.diagnostics = [Diagnostic(rule.pattern.opener.span, message)
                                  for rule, message in conflicts]
            result.rules = []
    return result


def _rule_set(result: CheckResult) -> RuleSet:
    result = check_rule_set(result)
    if result.diagnostics:
        raise RuleError(result.diagnostics)
    return RuleSet(result.rules)
