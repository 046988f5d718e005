"""Graph text under hostile edits (`tests/graph_fuzz.py`): every mutant of the repository's own
graphs either is told with a located `file:line:col: error:` for each mistake, or is a graph
whose dump parses back to the same dump, which the rules rewrite or refuse with a GraphError,
and which `engine test` runs or refuses to run, without a traceback and within seconds.

CI runs FUZZ_MUTANTS (default 500) mutants, the edit classes in turn; `scripts/nightly`
runs thousands."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

import engine
from engine.tools.ruletest import Case, run_case

from .graph_fuzz import EDITS, corpus, mutant

MUTANTS = int(os.environ.get("FUZZ_MUTANTS", 500))
SECONDS = 10  # the most one mutant may take, parsed, rewritten and run
RULES = None


def rules():
    global RULES
    if RULES is None:
        RULES = engine.load_rules("rules/export.rw")
    return RULES


def outcome(seed: int) -> str | None:
    """What is wrong with one mutant's handling, or None."""
    name, _, text = mutant(seed)
    try:
        module = engine.parse_graph(text, "mutant.fxg")
    except engine.GraphTextError as error:
        unlocated = [d for d in error.diagnostics if not d.span.where.startswith("mutant.fxg:")]
        rendered = str(error)
        if unlocated or not rendered.startswith("mutant.fxg:") or " error: " not in rendered:
            return f"an error that is not located: {rendered[:300]}"
        return None
    if not isinstance(module, torch.fx.GraphModule):
        return f"parsed to a {type(module).__name__}"
    text = engine.dump(module)
    try:
        again = engine.dump(engine.parse_graph(text, "dump.fxg"))
    except engine.GraphTextError as error:
        return f"its dump does not parse back:\n{error}"
    if again != text:
        return f"its dump parses back to another dump:\n{text}\n---\n{again}"
    try:
        rules().rewrite(module, module.meta.get("graph_signature"))
    except engine.GraphError:
        pass
    run_case(rules(), Path("mutant.fxt"), Case("mutant", 1, text))  # passes or fails, told
    return None


@pytest.mark.parametrize("edit", list(EDITS))
def test_every_mutant_is_told_where_it_is_wrong_or_parses_back_and_rewrites(edit):
    index = list(EDITS).index(edit)
    seeds = range(index, MUTANTS, len(EDITS))
    failures = []
    for seed in seeds:
        start = time.perf_counter()
        try:
            problem = outcome(seed)
        except Exception as error:  # noqa: BLE001 - any exception is the finding
            problem = f"raised {type(error).__name__}: {str(error)[:300]}"
        took = time.perf_counter() - start
        if took > SECONDS:
            problem = f"took {took:.1f} s"
        if problem is not None:
            failures.append(f"seed {seed}: {problem}")
    assert not failures, "\n".join(failures)



def _grammar_sections(source):
    from engine.graphs import parse

    try:
        tree = parse._parser().parse(source.text)
    except Exception:  # noqa: BLE001 - a syntax error: the reader must have declined
        return None
    sections = parse._Sections(source)
    result = sections.transform(tree)
    return None if sections.diagnostics else result


def test_the_line_reader_reads_what_the_grammar_reads():
    """The common lines are read without the grammar (`parse._read_common`): on every text it
    reads, the sections are the grammar's, spans included; every graph of the corpus is one of
    those texts, and mutants it declines go to the grammar."""
    from engine.graphs import parse

    read = declined = 0
    texts = list(corpus()) + [mutant(seed)[2] for seed in range(MUTANTS)]
    for index, text in enumerate(texts):
        source = parse.Source("text.fxg", text)
        fast = parse._read_common(source)
        if fast is None:
            assert index >= len(corpus()), f"the reader declines a graph of the corpus:\n{text}"
            declined += 1
            continue
        read += 1
        assert fast == _grammar_sections(source), text
    assert read > len(corpus()) and declined > MUTANTS // 4


def test_a_dtype_written_as_a_number_is_refused_before_torch_reads_it_unchecked():
    """The nightly fuzz's `aten.to.dtype(x, -2)`: run, torch reads -2 as a dtype's index and
    the process dies (a segmentation fault), so the text is told where it says it."""
    text = ("def forward(x: f32[2, 3]):\n    y: f32[2, 3] = aten.to.dtype(x, -2)\n"
            "    z: f32[2] = aten.empty.memory_format([2], dtype=torch.float32, layout=0)\n"
            "    return (y, z)\n")
    with pytest.raises(engine.GraphTextError) as caught:
        engine.parse_graph(text, "dtype.fxg")
    assert [(d.span.line, d.message) for d in caught.value.diagnostics] == [
        (2, "`aten.to.dtype`'s `dtype` takes a dtype (`torch.float32`), not -2"),
        (3, "`aten.empty.memory_format`'s `layout` takes a layout (`torch.strided`), not 0")]
