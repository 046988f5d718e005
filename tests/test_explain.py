"""`engine explain` and `RuleSet.explain`: why (not) a match, one reason kind a case, each
rendered explanation snapshotted; the explaining interpreter agrees with the matchers on every
node of the test models; the command works through its process and as JSON."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import engine
from engine.language import checked
from engine.matching.explain import explain_node
from engine.matching.match import compile_node, match_node
from engine.tools.explain import render
from tests.autocast_models import CASES as AUTOCAST_CASES
from tests.graphs import Sketch, aten
from tests.grad_models import GRAD_CASES, MIXED_CASES

REPO = Path(__file__).resolve().parent.parent
SET_GRAD = torch._C._set_grad_enabled


def explained(rule_text: str, gm, **options) -> str:
    rules = engine.rules_from_text(rule_text, path="why.rw")
    return render(rules.explain(gm, **options), rules)


def relu_of_mul(constant, outside_use=False, line=7):
    sketch = Sketch()
    x = sketch.input("x")
    product = sketch.op(aten.mul.Tensor, x, constant, line=line)
    relu = sketch.op(aten.relu.default, product, line=line + 1)
    return sketch.finish(relu, product) if outside_use else sketch.finish(relu)


DAG = """
use torch.ops.aten.relu
use torch.ops.aten.mul
use torch.ops.aten.mul.Scalar as mul_scalar
use torch.ops.aten.mean
use torch.ops.aten.sin
use torch.ops.aten.cos
use torch.ops.aten.add
"""

# One case a reason: the rule, the graph, and what must be said.
CASES = {
    "matched": (DAG + "rule r:\n    match relu(mul($x, 2.0))\n    replace with relu($x)\n",
                lambda: relu_of_mul(2.0), "matched"),
    "literal": (DAG + "rule r:\n    match relu(mul($x, 1))\n    replace with relu($x)\n",
                lambda: relu_of_mul(1.0),
                "argument `other` of `aten.mul.Tensor`: expected the literal `1`, found `1.0`"),
    "overload": (DAG + "rule r:\n    match relu(mul_scalar($x, 2.0))\n    replace with relu($x)\n",
                 lambda: relu_of_mul(2.0), "calls the overload `aten.mul.Tensor`"),
    "variable": (DAG + "rule r:\n    match mul($x, $x)\n    replace with $x\n",
                 lambda: relu_of_mul(2.0), "`$x` is already `x`, but this is `2.0`"),
    "default": (DAG + "rule r:\n    match mean($x, [-1])\n    replace with $x\n",
                lambda: _mean(keepdim=True), "so it must be its default (False)"),
    "used_outside": (DAG + "rule r:\n    match relu(mul($x, 2.0))\n    replace with relu($x)\n",
                     lambda: relu_of_mul(2.0, outside_use=True),
                     "`mul_tensor` is also used by `output`, outside the match"),
    "guard": (DAG + "rule r:\n    match $y = relu($x)\n    where dtype($y) == float64\n"
                    "    replace with $x\nuse torch.float64\n",
              lambda: relu_of_mul(2.0), "`dtype($y) == torch.float64`: torch.float32 vs "
                                        "torch.float64"),
    "taken": (DAG + "rule first:\n    match relu($x)\n    replace with sin($x)\n"
                    "rule second:\n    match relu(mul($x, _))\n    replace with cos($x)\n",
              lambda: relu_of_mul(2.0), "rule `first`'s match took `relu_default` first"),
    "later_root": (DAG + "rule r:\n    match $a = mul($x, 2.0), $b = sin($a)\n"
                         "    replace $b with cos($a)\n",
                   lambda: relu_of_mul(2.0), "no user of what the first root bound matches"),
    "erase_used": (DAG + "rule r:\n    match relu($x)\n    erase\n",
                   lambda: relu_of_mul(2.0), "`erase` would drop `relu_default`"),
}


def _mean(keepdim):
    sketch = Sketch()
    x = sketch.input("x")
    return sketch.finish(sketch.op(aten.mean.dim, x, [-1], keepdim, line=9))


def method_to(*args, **kwargs):
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_method("to", (x, *args), kwargs))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


CASES.update({
    "keyword_missing": ("rule r:\n    match $x.to(dtype=$d)\n    replace with $x\n",
                        lambda: method_to(torch.float16), "`to` has no keyword `dtype`"),
    "keyword_extra": ("rule r:\n    match $x.to($d)\n    replace with $x\n",
                      lambda: method_to(torch.float16, copy=True),
                      "`to` has the keyword `copy`, which the pattern does not name"),
})


@pytest.mark.parametrize("case", list(CASES))
def test_each_reason_is_told(case, snapshot):
    rule_text, make, said = CASES[case]
    text = explained(rule_text, make())
    assert said in text
    assert text == snapshot


REGIONS = """
use torch.amp.autocast_mode._enter_autocast as enter
use torch.amp.autocast_mode._exit_autocast as exit
use torch._C._set_grad_enabled as set_grad
use torch.ops.higher_order.wrap_with_autocast as hop
"""


def bracketed(with_marker=False, args=("cpu", torch.bfloat16, True, False)):
    sketch = Sketch()
    x = sketch.input("x")
    enter = sketch.enter(*args, line=3)
    y = sketch.op(aten.mm.default, x, x, line=4)
    if with_marker:
        sketch.op(SET_GRAD, False, line=5)
    z = sketch.op(aten.mm.default, y, y, line=6)
    sketch.exit(enter, line=7)
    return sketch.finish(z)


REGION_CASES = {
    "region_matched_and_cut": (REGIONS + "rule r:\n    match $e = enter(*$m) ... exit($e)\n"
                                         "    outline with hop(*$m)\n"
                                         "rule grad:\n    match set_grad($g) ...\n    keep\n",
                               lambda: bracketed(with_marker=True), "cut by segment markers"),
    "region_guard": (REGIONS + "rule r:\n    match $e = enter($d, *_) ... exit($e)\n"
                               "    where $d == 'cuda'\n    inline\n",
                     bracketed, "`$d == 'cuda'`: 'cpu' vs 'cuda'"),
    "region_taken": (REGIONS + "rule first:\n    match $e = enter(*_) ... exit($e)\n    keep\n"
                               "rule second:\n    match $e = enter(*_) ... exit($e)\n    inline\n",
                     bracketed, "rule `first`, earlier in file order, took the region"),
    "region_opener": (REGIONS + "rule r:\n    match $e = enter(_, _, False, _) ... exit($e)\n"
                                "    inline\n",
                      bracketed, "expected the literal `False`, found `True`"),
}


def aten_bracket(closing_constant):
    """neg(x) ... add(_, c): aten ops standing in for markers that pair by nesting."""
    sketch = Sketch()
    x = sketch.input("x")
    sketch.op(aten.neg.default, x, line=3)
    y = sketch.op(aten.relu.default, x, line=4)
    sketch.op(aten.add.Tensor, y, closing_constant, line=5)
    return sketch.finish(y)


def crossing():
    """enter; enter; exit(outer); exit(inner): the outer closes while the inner is open."""
    sketch = Sketch()
    x = sketch.input("x")
    outer = sketch.enter(line=3)
    inner = sketch.enter(line=4)
    y = sketch.op(aten.mm.default, x, x, line=5)
    sketch.exit(outer, line=6)
    sketch.exit(inner, line=7)
    return sketch.finish(y)


REGION_CASES.update({
    "region_closer": ("use torch.ops.aten.neg\nuse torch.ops.aten.add\nrule r:\n"
                      "    match neg($x) ... add(_, 2.0)\n    keep\n",
                      lambda: aten_bracket(3.0), "its closer `add_tensor` does not close it"),
    "regions_cross": (REGIONS + "rule linked:\n    match $e = enter(*_) ... exit($e)\n"
                                "    keep\n", crossing,
                      "regions cross: `_exit_autocast` closes the region of `_enter_autocast`"),
})


@pytest.mark.parametrize("case", list(REGION_CASES))
def test_each_region_reason_is_told(case, snapshot):
    rule_text, make, said = REGION_CASES[case]
    text = explained(rule_text, make())
    assert said in text
    assert text == snapshot


# --- the explaining interpreter says what the matchers do ----------------------------------------
RULE_FILES = ["autocast.rw", "set_grad.rw", "cleanup.rw", "algebra.rw"]


def _patterns(rules):
    """The patterns that match on their own: DAG roots, region openers (a closer's `$e` is
    bound by its opener)."""
    for rule in rules.rules:
        yield rule.pattern.roots[0][1] if rule.is_dag else rule.pattern.opener


def test_the_explainer_agrees_with_both_matchers_on_every_node_of_the_test_models():
    rules = engine.load_rules(*(REPO / "rules" / name for name in RULE_FILES))
    patterns = [p.pattern if isinstance(p, checked.BindNode) else p for p in _patterns(rules)]
    patterns = [p for p in patterns if isinstance(p, checked.NodePattern)]
    compiled = [compile_node(p) for p in patterns]
    cases = [*AUTOCAST_CASES, *GRAD_CASES, *MIXED_CASES]
    checked_nodes = 0
    for case in cases:
        model, args = case.build()
        program = engine.capture(model, args, dynamic_shapes=case.dynamic_shapes)
        for module in program.graph_module.modules():
            if not isinstance(module, torch.fx.GraphModule):
                continue
            for node in module.graph.nodes:
                for pattern, fast in zip(patterns, compiled):
                    told, slow, quick = {}, {}, {}
                    verdict = explain_node(pattern, node, told) is None
                    assert verdict == match_node(pattern, node, slow, []) == fast(
                        node, quick, []), (case.name, node.format_node())
                    if verdict:
                        assert told == slow == quick
                    checked_nodes += 1
    assert checked_nodes > 5000


# --- as people and tools use it ------------------------------------------------------------------
EXAMPLE = str(REPO / "examples" / "models.py") + ":autocast_mlp"


def engine_command(*argv) -> subprocess.CompletedProcess:
    script = shutil.which("engine", path=str(Path(sys.executable).parent))
    return subprocess.run([script, *argv], capture_output=True, text=True, cwd=REPO)


def test_engine_explain_on_the_bundled_example():
    result = engine_command("explain", "rules/export.rw", "rules/cleanup.rw", EXAMPLE)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "rules/autocast.rw:12: rule `autocast_regions`: 2 matched, 0 not" in out
    assert "rule `drop_identity_conversions`: 0 matched, 1 not" in out
    assert "`dtype($x) == $dtype`: torch.bfloat16 vs torch.float32" in out
    assert re.fullmatch(r"\d+ rules, \d+ places: \d+ matched, \d+ not",
                        out.rstrip().splitlines()[-1])


def line_of(path: str, start: str) -> int:
    """The line of a rule file that starts with `start` (1-based)."""
    lines = (REPO / path).read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.startswith(start))


def test_engine_explain_json_rule_and_node():
    result = engine_command("explain", "rules/cleanup.rw", EXAMPLE, "--json",
                            "--rule", "drop_identity_conversions")
    data = json.loads(result.stdout)
    (entry,) = data
    assert entry["rule"] == "drop_identity_conversions" and entry["matched"] is False
    assert entry["reason"] == "guard" and entry["span"]["line"] == line_of(
        "rules/cleanup.rw", "    where dtype($x) == $dtype")
    assert entry["bindings"] == {"x": "`linear_1`", "dtype": "torch.float32"}
    one = engine_command("explain", "rules/cleanup.rw", EXAMPLE, "--node", "to", "--all")
    assert "`to`" in one.stdout and "`add`:" not in one.stdout
    bad = engine_command("explain", "rules/cleanup.rw", EXAMPLE, "--rule", "nope")
    assert bad.returncode == 2 and "no rule `nope`" in bad.stderr


def test_engine_apply_explain_tells_the_nearest_miss_of_rules_that_fired_nowhere():
    result = engine_command("apply", "--explain", "rules/cleanup.rw", EXAMPLE)
    assert result.returncode == 0
    rule_line = line_of("rules/cleanup.rw", "rule drop_identity_conversions:")
    assert (f"rules/cleanup.rw:{rule_line}: rule `drop_identity_conversions` matched nowhere; "
            "nearest, at `to`: the condition does not hold") in result.stderr


def test_explain_on_a_dynamo_graph():
    graphs = []

    def keep(gm, example_inputs):
        graphs.append(gm)
        return gm

    def f(x):
        return torch.relu(x.sin() * 1)

    torch.compile(f, backend=keep)(torch.randn(4))
    rules = engine.rules_from_text("""
use operator.mul
rule times_one:
    match mul($x, 1)
    replace with $x
rule sine:
    match $x.sin()
    replace with $x.cos()
""")
    text = render(rules.explain(graphs[0]), rules)
    assert "rule `times_one`: 1 matched" in text and "rule `sine`: 1 matched" in text


def test_the_explained_nodes_are_those_a_root_could_match_unless_all():
    gm = relu_of_mul(2.0)
    rules = engine.rules_from_text(DAG + "rule r:\n    match sin($x)\n    replace with $x\n")
    assert rules.explain(gm) == []
    every = rules.explain(gm, all_nodes=True)
    assert [e.node for e in every] == ["mul_tensor", "relu_default"]
    assert all(e.reason == "target" for e in every)


def test_the_readme_session_is_what_the_command_prints():
    readme = (REPO / "README.md").read_text()
    block = readme.split("$ engine explain rules/cleanup.rw examples/models.py:autocast_mlp\n")[1]
    expected = block.split("```")[0]
    result = engine_command("explain", "rules/cleanup.rw", "examples/models.py:autocast_mlp")
    assert result.stdout.replace(f"{REPO}/", "") == expected
