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
from ..language.load import check_sources, read_source
from ..matching.regions import StructureIndex
from ..rewriting.driver import RuleSet


def load_rules(*paths: str | Path) -> RuleSet:
    """The rules of these files, checked together and compiled; `RuleError` on any error."""
    if not paths:
        raise ValueError("load_rules needs at least one rule file")
    return _rule_set([read_source(path) for path in paths])


def rules_from_text(text: str, path: str = "<text>") -> RuleSet:
    """`load_rules` for rules held in a string; diagnostics name it `path`; includes are
    relative to the working directory."""
    return _rule_set([Source(path, text)])


def check_rules(*paths: str | Path) -> tuple[list[checked.Rule], list[Diagnostic]]:
    """(checked rules, diagnostics) for the files together; rules are only usable if no errors."""
    return check_rule_sources([read_source(path) for path in paths])


def check_rule_sources(sources: list[Source]) -> tuple[list[checked.Rule], list[Diagnostic]]:
    rules, diagnostics = check_sources(sources)
    if diagnostics:
        return [], diagnostics
    conflicts = StructureIndex(rules).conflicts(rules)
    return rules, [Diagnostic(rule.pattern.opener.span, message) for rule, message in conflicts]


def _rule_set(sources: list[Source]) -> RuleSet:
    rules, diagnostics = check_rule_sources(sources)
    if diagnostics:
        raise RuleError(diagnostics)
    return RuleSet(rules)
