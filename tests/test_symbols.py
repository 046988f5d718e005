"""The symbol index: every definition and use of a name, with its span (what hover, go to
definition and document symbols are answered from)."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.language import symbols
from engine.language.load import check_paths, check_sources
from engine.language.diagnostics import Source

REPO = Path(__file__).resolve().parent.parent

TEXT = """\
use torch.ops.aten.mul
use torch.ops.aten.add.Tensor as add
rule times_one:
    match $y = commutative mul($x, 1)
    where dtype($y) == dtype($x)
    replace with add($x, $x)
"""


def at(index, text, line, needle, offset=0):
    """The occurrence at the first `needle` on `line` (1-based)."""
    column = text.splitlines()[line - 1].index(needle) + 1 + offset
    return index.at("t.rw", line, column)


def test_uses_rules_and_variables_are_defined_where_written():
    result = check_sources([Source("t.rw", TEXT)])
    assert result.diagnostics == []
    index = result.symbols
    add = at(index, TEXT, 2, "as add", offset=3)  # the alias, not the path
    assert add.defines and add.symbol.kind == symbols.USE
    assert add.symbol.detail.value is torch.ops.aten.add.Tensor
    assert [(s.kind, s.name) for s in index.definitions("t.rw")] == [
        (symbols.USE, "mul"), (symbols.USE, "add"), (symbols.RULE, "times_one")]
    x = at(index, TEXT, 4, "$x")
    assert x.defines and x.symbol.kind == symbols.VARIABLE and x.symbol.container == "times_one"


def test_each_use_refers_to_its_definition():
    index = check_sources([Source("t.rw", TEXT)]).symbols
    mul_use = at(index, TEXT, 4, "mul(")
    assert not mul_use.defines and mul_use.symbol is at(index, TEXT, 1, "mul").symbol
    x = at(index, TEXT, 4, "$x").symbol
    assert at(index, TEXT, 5, "$x)").symbol is x  # in the guard
    assert at(index, TEXT, 6, "$x").symbol is x  # in the template
    assert [o.span.line for o in index.occurrences_of(x)] == [4, 5, 6, 6]
    assert at(index, TEXT, 5, "$y").symbol is at(index, TEXT, 4, "$y").symbol


def test_builtins_are_symbols_no_file_defines():
    index = check_sources([Source("t.rw", TEXT)]).symbols
    dtype = at(index, TEXT, 5, "dtype")
    assert dtype.symbol.kind == symbols.BUILTIN and dtype.symbol.span is None
    assert dtype.symbol.detail.arity == 1


def test_the_innermost_occurrence_wins_and_gaps_have_none():
    index = check_sources([Source("t.rw", TEXT)]).symbols
    assert at(index, TEXT, 6, "$x").symbol.name == "$x"  # inside `add(...)`, on the variable
    assert at(index, TEXT, 4, "match") is None


def test_two_rules_have_two_variables_of_one_name():
    text = TEXT + TEXT.split("\n", 2)[2].replace("times_one", "again")
    index = check_sources([Source("t.rw", text)]).symbols
    first, second = at(index, text, 4, "$x").symbol, at(index, text, 8, "$x").symbol
    assert first is not second and second.container == "again"


def test_an_include_refers_to_the_file_it_names(monkeypatch):
    monkeypatch.chdir(REPO)
    result = check_paths(["rules/export.rw"])
    text = (REPO / "rules" / "export.rw").read_text()
    line = next(n for n, s in enumerate(text.splitlines(), 1) if s.startswith('include "auto'))
    include = result.symbols.at("rules/export.rw", line, 3)
    assert include.symbol.kind == symbols.FILE and include.symbol.name == "rules/autocast.rw"
    assert include.symbol.span.source.path == "rules/autocast.rw"
    # ... and the included file's own symbols are in the same index
    assert [s.name for s in result.symbols.definitions("rules/autocast.rw")] == [
        "enter_autocast", "exit_autocast", "wrap_with_autocast", "autocast_regions"]
