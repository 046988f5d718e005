"""Named conditions (`condition name($a) = ...`) beyond what fixtures show: `engine explain`
through its process, names resolved in the defining file, values of any kind given, `and`/`or`
deciding at the first part that settles them, and `engine verify` drawing for a rule with one
as for the same rule written out. Must-match and must-not-match cases are in
tests/language/fixtures/attention_unscaled.fxt; the mistakes in tests/diagnostics."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import torch

import engine
from engine.language import checked
from engine.language.diagnostics import Source, Span
from engine.matching.guards import Context, truth
from engine.tools.verify import verify

REPO = Path(__file__).resolve().parent.parent

NOT_SAME_BATCH = """\
def forward(q: f32[2, 2, 4, 8], k: f32[1, 2, 4, 8], v: f32[2, 2, 4, 8]):
    transpose: f32[1, 2, 8, 4] = aten.transpose.int(k, -2, -1)
    matmul: f32[2, 2, 4, 4] = aten.matmul.default(q, transpose)
    softmax: f32[2, 2, 4, 4] = aten.softmax.int(matmul, -1)
    matmul_1: f32[2, 2, 4, 8] = aten.matmul.default(softmax, v)
    return (matmul_1,)
"""


def test_explain_names_the_conditions_a_failing_part_is_inside(tmp_path):
    graph = tmp_path / "batch.fxg"
    graph.write_text(NOT_SAME_BATCH)
    script = shutil.which("engine", path=str(Path(sys.executable).parent))
    result = subprocess.run([script, "explain", "tests/language/features.rw", str(graph),
                             "--rule", "attention_unscaled"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("  `matmul_1`: not matched: the condition does not hold: in condition "
                        "`attention_inputs($q, $k, $v)`: in condition `same_lead_dims($q, $k)`: "
                        "`shape($q)[0] == shape($k)[0]`: 2 vs 1")
    assert lines[start + 2:start + 5] == [
        "      tests/language/conditions.rw:7:61:",
        "          condition same_lead_dims($a, $b) = rank($a) == rank($b) and shape($a)[0] "
        "== shape($b)[0]",
        "          " + " " * 60 + "^" * 28]


def _one_add(dtype: str, rows: int) -> torch.fx.GraphModule:
    return engine.parse_graph(f"def forward(x: {dtype}[{rows}, 3]):\n"
                              f"    add: {dtype}[{rows}, 3] = aten.add.Tensor(x, x)\n"
                              "    return (add,)\n")


def test_a_body_resolves_names_in_its_own_file_and_takes_values_of_any_kind(tmp_path):
    (tmp_path / "lib.rw").write_text(
        "use torch.float16 as half\n"
        "condition halfish($x) = dtype($x) == half\n"
        "condition at_least($n, $least) = $n >= $least\n")
    (tmp_path / "main.rw").write_text(
        'include "lib.rw"\n'
        "use torch.ops.aten.add.Tensor as add\n"
        "use torch.ops.aten.mul.Tensor as mul\n"
        "rule doubled:\n"
        "    match add($x, $x)\n"
        "    where halfish($x) and at_least(size($x, 0), 2 + 1)\n"
        "    replace with mul($x, 2)\n")
    rules = engine.load_rules(tmp_path / "main.rw")  # `half` is not declared in main.rw
    rewritten = {(dtype, rows): [n.target for n in rules.apply(_one_add(dtype, rows))[0].graph.nodes
                                 if n.op == "call_function"]
                 for dtype in ("f16", "f32") for rows in (2, 3)}
    assert rewritten == {("f16", 2): [torch.ops.aten.add.Tensor],
                         ("f16", 3): [torch.ops.aten.mul.Tensor],
                         ("f32", 2): [torch.ops.aten.add.Tensor],
                         ("f32", 3): [torch.ops.aten.add.Tensor]}


def test_and_and_or_decide_at_the_first_part_that_settles_them():
    span = Span(Source("<test>", ""), 1, 1, 1, 1)
    never = checked.Test(checked.BuiltinCall("no_such_builtin", (), span), span)  # would raise
    false, true = checked.Test(checked.Const(False, span), span), checked.Test(
        checked.Const(True, span), span)
    unknown = checked.Guard("<", checked.Const(1, span), checked.Const("a", span), span)
    context = Context(ambient_grad=True)
    assert truth(checked.AllOf((false, never), span), {}, context) is False
    assert truth(checked.AnyOf((true, never), span), {}, context) is True
    # An unknown part does not settle them: what follows still can.
    assert truth(checked.AllOf((unknown, false), span), {}, context) is False
    assert truth(checked.AllOf((unknown, true), span), {}, context) is None
    assert truth(checked.AnyOf((unknown, true), span), {}, context) is True
    assert truth(checked.AnyOf((unknown, false), span), {}, context) is None
    named = checked.Named("c", (), checked.AllOf((true, false), span), span)
    assert truth(named, {}, context) is False and truth(checked.Not(named, span), {},
                                                         context) is True


WRITTEN_OUT = """\
use torch.ops.aten.matmul.default as matmul
use torch.ops.aten.transpose.int as transpose
rule mm:
    match matmul($a, transpose($b, -2, -1))
    where rank($a) == 3 and rank($b) == 3 and dtype($b) == dtype($a)
        and shape($a)[0] == shape($b)[0]
    replace with matmul($a, transpose($b, -1, -2))
"""

NAMED = """\
use torch.ops.aten.matmul.default as matmul
use torch.ops.aten.transpose.int as transpose
condition batched($x, $y) = rank($x) == 3 and rank($y) == 3 and dtype($y) == dtype($x)
    and shape($x)[0] == shape($y)[0]
rule mm:
    match matmul($a, transpose($b, -2, -1))
    where batched($a, $b)
    replace with matmul($a, transpose($b, -1, -2))
"""


def test_verify_draws_for_a_named_condition_as_for_the_condition_written_out():
    """The draws read ranks and dtypes from the guards (`rank($a) == 3`): inside a named
    condition too, so the same instances are drawn and as many get past the guards."""
    lines = []
    for text in (WRITTEN_OUT, NAMED):
        result = verify(engine.rules_from_text(text), examples=60, seed=0)
        assert result.sound, result.render()
        line = result.stats[0].render()
        lines.append(line[line.index("checked on"):line.rindex(";")])
    assert lines[0] == lines[1]
    assert not lines[0].startswith("checked on 0 instances")
