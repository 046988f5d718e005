"""The language features rule libraries are written with: named patterns (from another file,
with its own `use` names), optional calls, dims normalised against a rank, `or` in guards, and
arithmetic folded into templates. Must-match and must-not-match cases are text fixtures in
tests/language/fixtures, run through `engine test`; what fixtures cannot show is here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.fx.passes.shape_prop import ShapeProp

import engine
from engine.graphs.errors import GraphError
from engine.language.load import check_paths
from engine.language.symbols import PATTERN

REPO = Path(__file__).resolve().parent.parent


def test_the_feature_fixtures_pass_through_engine_test():
    script = shutil.which("engine", path=str(Path(sys.executable).parent))
    result = subprocess.run([script, "test", "tests/language/features.rw",
                             "tests/language/fixtures"], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().splitlines()[-1] == "33 passed, 0 failed"


def test_a_named_pattern_is_defined_in_its_file_and_referred_to_where_it_is_used():
    result = check_paths([str(REPO / "tests" / "language" / "features.rw")])
    assert not result.diagnostics
    definitions = [s for s in result.symbols.definitions(
        str(REPO / "tests" / "language" / "transposes.rw")) if s.kind == PATTERN]
    assert [s.name for s in definitions] == ["transposed_last"]
    uses = [o for o in result.symbols.occurrences_of(definitions[0]) if not o.defines]
    lines = (REPO / "tests" / "language" / "features.rw").read_text().splitlines()
    written = [number for number, line in enumerate(lines, 1) if "transposed_last(" in line]
    assert len(written) == 2
    assert [(Path(o.span.source.path).name, o.span.line) for o in uses] == [
        ("features.rw", number) for number in written]


RULES = """
use torch.ops.aten.div.Tensor as div
use torch.ops.aten.mul.Tensor as mul
rule reciprocal:
    match div($x, $s)
    where is_literal($s) and 1.0 / $s < 0.3
    replace with mul($x, 1.0 / $s)
"""


def _divisions(*divisors):
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    for divisor in divisors:
        x = graph.call_function(torch.ops.aten.div.Tensor, (x, divisor))
    graph.output(x)
    module = torch.fx.GraphModule(torch.nn.Module(), graph)
    ShapeProp(module).propagate(torch.randn(4))
    return module


def test_float_arithmetic_in_a_guard_and_folded_in_a_template():
    module = _divisions(2.0, 4, 8.0)
    rewritten, _ = engine.rules_from_text(RULES).apply(module)
    calls = [(n.target, n.args[1]) for n in rewritten.graph.nodes if n.op == "call_function"]
    # 1 / 2.0 is not below 0.3: left; 1 / 4 and 1 / 8.0 are, and fold to floats
    assert calls == [(torch.ops.aten.div.Tensor, 2.0), (torch.ops.aten.mul.Tensor, 0.25),
                     (torch.ops.aten.mul.Tensor, 0.125)]


def test_a_template_that_divides_by_zero_is_refused_naming_the_rule_and_the_node():
    unguarded = RULES.replace("where is_literal($s) and 1.0 / $s < 0.3\n", "")
    module = _divisions(0.0)
    before = module.code
    with pytest.raises(GraphError) as caught:
        engine.rules_from_text(unguarded).apply(module)
    assert "rule `reciprocal`" in str(caught.value) and "divides by zero" in str(caught.value)
    assert "`div_tensor`" in str(caught.value)
    assert module.code == before


def test_the_dtype_builtins_tell_kind_and_width():
    from engine.language import checked
    from engine.language.diagnostics import Source, Span
    from engine.matching.guards import UNKNOWN, Context, operand_value

    span = Span(Source("<test>", ""), 1, 1, 1, 1)

    def facts(dtype):
        return tuple(operand_value(checked.BuiltinCall(name, (checked.Const(dtype, span),), span),
                                   {}, Context(ambient_grad=True))
                     for name in ("is_floating", "is_complex", "is_signed", "bits"))

    assert facts(torch.float16) == facts(torch.bfloat16) == (True, False, True, 16)
    assert facts(torch.float8_e4m3fn) == (True, False, True, 8)
    assert facts(torch.float64) == (True, False, True, 64)
    assert facts(torch.complex64) == (False, True, True, 64)
    assert facts(torch.int64) == (False, False, True, 64)
    assert facts(torch.uint8) == (False, False, False, 8)
    assert facts(torch.bool) == (False, False, False, 8)
    assert facts(torch.strided) == (UNKNOWN,) * 4  # a layout is no dtype


def test_a_builtin_inside_another_in_a_template():
    rules = engine.rules_from_text(
        "use torch.ops.aten.add.Tensor as add\n"
        "use torch.ops.aten.mul.Tensor as mul\n"
        "rule doubled:\n"
        "    match add($x, $x)\n"
        "    where size($x, -1) == 2\n"
        "    replace with mul($x, size($x, rank($x) - 1))\n")
    gm = engine.parse_graph("def forward(x: f32[3, 2]):\n"
                            "    add: f32[3, 2] = aten.add.Tensor(x, x)\n"
                            "    return (add,)\n")
    out, _ = rules.apply(gm)
    assert [(n.target, n.args[1:]) for n in out.graph.nodes if n.op == "call_function"] == [
        (torch.ops.aten.mul.Tensor, (2,))]


def test_without_shared_a_named_pattern_s_node_used_outside_keeps_the_match_out():
    text = (REPO / "tests" / "language" / "features.rw").read_text()
    assert "match relu(shared doubled($a))" in text
    plain = engine.rules_from_text(text.replace("relu(shared doubled($a))", "relu(doubled($a))"),
                                   str(REPO / "tests" / "language" / "features.rw"))
    shared = engine.load_rules(REPO / "tests" / "language" / "features.rw")
    graph = ("def forward(x: f32[4]):\n"
             "    add: f32[4] = aten.add.Tensor(x, x)\n"
             "    relu: f32[4] = aten.relu.default(add)\n"
             "    return (relu, add)\n")
    targets = {name: [n.target for n in rules.apply(engine.parse_graph(graph))[0].graph.nodes
                      if n.op == "call_function"]
               for name, rules in (("plain", plain), ("shared", shared))}
    assert targets == {"plain": [torch.ops.aten.add.Tensor, torch.ops.aten.relu.default],
                       "shared": [torch.ops.aten.add.Tensor, torch.ops.aten.relu.default,
                                  torch.ops.aten.mul.Tensor]}


def test_a_quantifier_is_decided_by_one_item_and_else_unknown_with_an_unknown_item():
    from engine.language import checked
    from engine.language.diagnostics import Source, Span
    from engine.matching.guards import Context, truth

    span = Span(Source("<test>", ""), 1, 1, 1, 1)
    item = checked.Value("v", span)
    positive = checked.Guard(">", item, checked.Const(0, span), span)  # `"a" > 0` is unknown

    def quantified(every: bool, values):
        return truth(checked.Every(every, "v", checked.Const(values, span), positive, span), {},
                     Context(ambient_grad=True))

    assert [quantified(True, values) for values in ([1, 2], [1, -1], [], ["a", -1], ["a", 1],
                                                     7)] == [True, False, True, False, None, None]
    assert [quantified(False, values) for values in ([-1, 2], [-1], [], ["a", 1], ["a", -1])] == [
        True, False, False, True, None]
