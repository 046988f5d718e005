"""`engine verify`: each unsound rule in tests/verify/ caught with a shrunk counterexample
(snapshotted), the sound rules of rules/ passing with the instances they ran, and the comparisons
underneath (values, refinement, signed zeros, aliasing, writes, gradients) on graphs built by
hand."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import engine
from engine.tools.compare import (ALIASES, DIFFERS, FAILS, MUTATES, REFINES, SIGNED_ZERO,
                                  Allowance, Comparison, compare_gradients, compare_graphs)
from engine.tools.verify import META, meta_difference, verify

REPO = Path(__file__).resolve().parent.parent
MODELS = "tests/verify/models.py"
SECONDS = re.compile(r"; \d+\.\d s$", re.MULTILINE)


def engine_verify(*argv) -> subprocess.CompletedProcess:
    script = shutil.which("engine", path=str(Path(sys.executable).parent))
    return subprocess.run([script, "verify", *argv], capture_output=True, text=True, cwd=REPO)


def findings_of(output: str) -> dict[str, str]:
    """Each finding's rule and its first line."""
    return {match.group(1): match.group(0) for match in
            re.finditer(r"^\S+: error: rule `(\w+)`: .*$", output, re.MULTILINE)}


# --- through the command -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def unsound_run() -> subprocess.CompletedProcess:
    """`engine verify tests/verify/unsound.rw`, run once for the tests that read it."""
    return engine_verify("tests/verify/unsound.rw")


def test_each_unsound_rule_is_caught_with_a_shrunk_counterexample(snapshot, unsound_run):
    result = unsound_run
    assert result.returncode == 1, result.stderr
    found = findings_of(result.stdout)
    assert set(found) == {"softmax_over_the_wrong_dim", "times_zero", "abs_by_square_root",
                          "drop_clone", "add_in_place"}
    assert "the value differs" in found["softmax_over_the_wrong_dim"]
    assert "finite where the pattern's is not" in found["times_zero"]
    assert "the replacement inf" in found["abs_by_square_root"]
    assert "is `$x` itself or a view of it" in found["drop_clone"]
    assert "the replacement writes to `$x`" in found["add_in_place"]
    assert result.stdout.rstrip().endswith("5 findings in 5 rules")
    assert SECONDS.sub("", result.stdout) == snapshot


def test_the_same_seed_gives_the_same_counterexamples_and_another_finds_them_too(unsound_run):
    first = unsound_run
    again = engine_verify("tests/verify/unsound.rw")
    other = engine_verify("tests/verify/unsound.rw", "--seed", "7")
    assert SECONDS.sub("", first.stdout) == SECONDS.sub("", again.stdout)
    assert set(findings_of(other.stdout)) == set(findings_of(first.stdout))


def test_the_rules_of_the_project_are_sound_on_drawn_instances_and_on_models():
    result = engine_verify("rules/algebra.rw", "rules/cleanup.rw", "rules/export.rw",
                           "tests/verify/softmax.rw", f"{MODELS}:scaled",
                           f"{MODELS}:disabled_inside_enabled", f"{MODELS}:grad_segments",
                           f"{MODELS}:region_in_cond_branch", "examples/models.py:autocast_mlp")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "no findings in 12 rules"
    for rule in ("times_one", "divided_by_one", "plus_zero", "minus_zero", "double_negation",
                 "drop_identity_conversions", "softmax_written_out"):
        line = next(line for line in lines if f"rule `{rule}`" in line)
        instances = int(re.search(r"checked on (\d+) instances \(200 drawn", line).group(1))
        assert instances >= 50, line
    assert any("rule `times_one`" in line and "1 match in 1 model" in line for line in lines)
    for rule in ("autocast_regions", "grad_mode_changes"):
        line = next(line for line in lines if f"rule `{rule}`" in line)
        assert re.search(r"checked on \d+ regions? in \d models?, the programs run", line), line
    assert sum("computes the same before and after the rules" in line for line in lines) == 5


def test_a_conversion_torch_records_wrongly_is_caught_on_the_program(tmp_path):
    """Found by `engine verify`: torch records float32 for a bfloat16 matmul in a torch.cond
    branch's autocast region, and a rule trusting that drops the `.float()` after it.
    rules/cleanup.rw guards against it (`not under_autocast($x)`); without the guard:"""
    text = (REPO / "rules" / "cleanup.rw").read_text()
    unguarded = tmp_path / "cleanup.rw"
    unguarded.write_text(text.replace(" and not under_autocast($x)", ""))
    result = engine_verify("rules/export.rw", str(unguarded), f"{MODELS}:region_in_cond_branch")
    assert result.returncode == 1
    assert "rule `drop_identity_conversions`: the program changes: the value has dtype " \
           "bfloat16, not float32" in result.stdout


def test_a_wrong_region_rule_is_caught_on_the_program():
    result = engine_verify("tests/verify/unsound_regions.rw", f"{MODELS}:disabled_inside_enabled")
    assert result.returncode == 1
    found = findings_of(result.stdout)
    assert "the program changes: output 0 differs" in found["inline_disabled_autocast"]
    assert "on tests/verify/models.py:disabled_inside_enabled (random inputs, seed 0)" in \
        result.stdout


def test_a_promise_is_what_makes_a_rule_pass(tmp_path):
    softmax = (REPO / "tests" / "verify" / "softmax.rw").read_text()
    unpromised = tmp_path / "softmax.rw"
    unpromised.write_text(softmax.replace(", finite, refines", ""))
    result = engine_verify(str(unpromised))
    assert result.returncode == 1
    assert "hint: if the rule is meant to be more defined" in result.stdout or \
        "the value differs" in result.stdout


def test_a_match_outside_the_dtypes_a_rule_promises_is_a_finding(tmp_path):
    rules = tmp_path / "narrow.rw"
    rules.write_text("use torch.ops.aten.neg.default as neg\n"
                     "rule double_negation:\n    match neg(neg($x))\n    replace with $x\n"
                     "    verify dtypes(float64), aliases\n")
    result = engine_verify(str(rules), f"{MODELS}:scaled")
    assert result.returncode == 1
    assert "fires on a float32 tensor; its `dtypes` leave float32 out" in result.stdout
    assert "hint: guard the rule on the dtype" in result.stdout


def test_usage_errors_exit_2():
    assert engine_verify(f"{MODELS}:scaled").returncode == 2
    assert engine_verify("rules/algebra.rw", "--examples", "0").returncode == 2


# --- the comparisons, on graphs built by hand -----------------------------------------------------
def graph_of(function, *placeholders: str) -> torch.fx.GraphModule:
    """A module whose graph calls `function` on its placeholders and returns the result."""
    graph = torch.fx.Graph()
    inputs = [graph.placeholder(name) for name in placeholders]
    graph.output(graph.call_function(function, tuple(inputs)))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def identity(x):
    return x


def clone(x):
    return x.clone()


def test_values_are_compared_with_the_tolerance_of_their_dtype():
    one_more = graph_of(lambda x: x + 1e-6, "x")
    same = graph_of(clone, "x")
    x = torch.ones(3)
    seen = Comparison()
    assert compare_graphs(same, one_more, [x], Allowance(), seen) is None
    assert 0 < seen.largest < 2e-6
    difference = compare_graphs(same, one_more, [x], Allowance(rtol=0, atol=0), Comparison())
    assert difference.kind == DIFFERS and "at [0] the pattern gives 1.0" in difference.message
    ints = compare_graphs(graph_of(clone, "x"), graph_of(lambda x: x + 1, "x"),
                          [torch.arange(3)], Allowance(rtol=1, atol=1), Comparison())
    assert ints.kind == DIFFERS  # integers are exact, whatever the tolerance


def test_finite_where_the_pattern_is_not_is_refinement_and_the_reverse_is_not():
    pattern = graph_of(lambda x: x * 0, "x")
    zeros = graph_of(torch.zeros_like, "x")
    x = torch.tensor([1.0, float("inf")])
    assert compare_graphs(pattern, zeros, [x], Allowance(), Comparison()).kind == REFINES
    seen = Comparison()
    assert compare_graphs(pattern, zeros, [x], Allowance(refines=True), seen) is None
    assert seen.refined == 1
    reverse = compare_graphs(zeros, pattern, [x], Allowance(refines=True), Comparison())
    assert reverse.kind == DIFFERS


def test_the_sign_of_a_zero_counts_unless_a_rule_says_otherwise():
    plus_zero = graph_of(lambda x: x + 0, "x")
    x = torch.tensor([-0.0])
    difference = compare_graphs(plus_zero, graph_of(clone, "x"), [x], Allowance(), Comparison())
    assert difference.kind == SIGNED_ZERO and "zeros of the other sign" in difference.message
    assert compare_graphs(plus_zero, graph_of(clone, "x"), [x], Allowance(unsigned_zeros=True),
                          Comparison()) is None


def test_aliasing_either_way_and_writes_are_findings():
    x = torch.randn(3)
    returned = compare_graphs(graph_of(clone, "x"), graph_of(identity, "x"), [x], Allowance(),
                              Comparison(), ["$x"])
    assert returned.kind == ALIASES and "is `$x` itself or a view of it" in returned.message
    viewed = compare_graphs(graph_of(lambda x: x.view(-1), "x"), graph_of(clone, "x"), [x],
                            Allowance(), Comparison(), ["$x"])
    assert viewed.kind == ALIASES and "writes through it no longer reach `$x`" in viewed.message
    assert compare_graphs(graph_of(clone, "x"), graph_of(identity, "x"), [x],
                          Allowance(aliases=True), Comparison()) is None
    write_zero = graph_of(lambda x: x.add_(0), "x")  # writes, though no value changes
    written = compare_graphs(graph_of(lambda x: x + 0, "x"), write_zero, [x],
                             Allowance(aliases=True), Comparison(), ["$x"])
    assert written.kind == MUTATES and "writes to `$x`, which the pattern only reads" in \
        written.message


def test_a_replacement_that_fails_where_the_pattern_runs_is_a_finding():
    failing = graph_of(lambda x: x.view(7), "x")
    difference = compare_graphs(graph_of(clone, "x"), failing, [torch.randn(3)], Allowance(),
                                Comparison())
    assert difference.kind == FAILS and "RuntimeError" in difference.message


def test_gradients_and_grad_mode_are_compared():
    square = graph_of(lambda x: x * x, "x")
    cube_ish = graph_of(lambda x: x * x.detach(), "x")  # same values, half the gradient
    x = torch.randn(4)
    same = compare_graphs(square, cube_ish, [x], Allowance(), Comparison())
    assert same is None
    difference = compare_gradients(square, cube_ish, [x], [0], Allowance(), Comparison(), ["x"])
    assert difference.kind == DIFFERS and "the gradient of `x`" in difference.message
    no_grad = graph_of(lambda x: (x * x).detach(), "x")
    mode = compare_gradients(square, no_grad, [x], [0], Allowance(), Comparison(), ["x"])
    assert "does not require grad after the rules" in mode.message


def test_a_template_node_whose_meta_lies_is_a_finding():
    from engine.tools.extract import Extracted

    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    built = graph.call_function(torch.ops.aten.cos.default, (x,))
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        built.meta["val"] = torch.empty(3, dtype=torch.float16)  # it computes float32
    graph.output((built,))
    after = torch.fx.GraphModule(torch.nn.Module(), graph)
    extracted = Extracted(after, after, [], [built])
    difference = meta_difference(extracted, [torch.randn(3)])
    assert difference.kind == META
    assert difference.message == "the template's `cos_default` records f16[3] but computes f32[3]"


def test_the_api_returns_findings_and_counts():
    rules = engine.load_rules(REPO / "tests" / "verify" / "unsound.rw")
    result = verify(rules, examples=100)
    assert {finding.rule.name for finding in result.findings} == {
        rule.name for rule in rules.rules}
    assert rules.verify(examples=100) == result.findings
    sound = engine.load_rules(REPO / "rules" / "algebra.rw").verify(examples=30)
    assert sound == []


def test_the_readme_counterexample_is_what_the_command_prints(unsound_run):
    readme = (REPO / "README.md").read_text()
    block = readme.split("(from `tests/verify/unsound.rw`, which `snapshots/test_verify/` pins "
                         "whole):\n\n```\n")[1].split("```")[0]
    printed = unsound_run.stdout
    assert block in printed


# --- rule shapes that once crashed verify (issue 22) ----------------------------------------------
ANONYMOUS = """\
use torch.ops.aten.mm
use torch.ops.aten.matmul
use torch.ops.aten.add
use torch.ops.aten.sub
use torch.ops.aten.neg.default as neg
use torch.ops.aten.add.Tensor as add_tensor

rule mm_as_matmul:
    match mm(*$a)
    replace with matmul(*$a)

rule alpha_one:
    match add_tensor(*$a)
    replace with add_tensor(*$a, alpha=1)

rule drops_two_anonymous_inputs:
    match add(_, sub(_, $x))
    replace with $x

rule double_negation:
    match neg(neg($x))
    replace with $x
    verify aliases
"""


def rule_line(output: str, rule: str) -> str:
    return next(line for line in output.splitlines() if f": rule `{rule}`: " in line
                and " error: " not in line)


def test_patterns_with_several_anonymous_tensors_are_written_out_and_verified(tmp_path):
    """Each `_` tensor (and each `*$a` one) is a placeholder of its own: the written-out
    graph runs, the sound rule passes and the wrong one is caught, `_` named as written."""
    rules = tmp_path / "anonymous.rw"
    rules.write_text(ANONYMOUS)
    result = engine_verify(str(rules), "--examples", "25")
    assert result.returncode == 1, result.stderr
    assert set(findings_of(result.stdout)) == {"drops_two_anonymous_inputs"}
    assert re.search(r"^    _ = .*\n    _ = .*\n    \$x = ", result.stdout, re.MULTILINE)
    # two drawn 2-d tensors that `mm` takes are rare, but each drawn one is written out and run
    assert re.search(r"rule `mm_as_matmul`: checked on \d+ instances? \(25 drawn: ",
                     result.stdout), result.stdout
    for rule in ("alpha_one", "double_negation"):
        line = rule_line(result.stdout, rule)
        assert int(re.search(r"checked on (\d+) instances", line).group(1)) > 0, line
    assert result.stdout.rstrip().endswith("1 finding in 4 rules")


def test_a_crash_in_one_rule_is_a_finding_and_the_other_rules_are_verified(monkeypatch):
    """Whatever goes wrong inside verify for one rule is reported on that rule's line; the
    rules after it are checked as ever (drawn instances, and matches in a model)."""
    import engine.tools.verify as verifying

    rules = engine.rules_from_text(
        "use torch.ops.aten.mm\nuse torch.ops.aten.matmul\n"
        "use torch.ops.aten.neg.default as neg\n"
        "rule mm_as_matmul:\n    match mm(*$a)\n    replace with matmul(*$a)\n"
        "rule double_negation:\n    match neg(neg($x))\n    replace with $x\n"
        "    verify aliases\n")
    drawn = verifying.instances

    def crashing(rule):
        if rule.name == "mm_as_matmul":
            raise ZeroDivisionError("a bug of verify")
        return drawn(rule)

    monkeypatch.setattr(verifying, "instances", crashing)
    match = verifying._verify_match

    def crashing_match(stats, label, module, decision):
        if decision.rule.name == "double_negation":
            raise KeyError("another bug")
        return match(stats, label, module, decision)

    monkeypatch.setattr(verifying, "_verify_match", crashing_match)
    graph = engine.parse_graph("def forward(x: f32[3]):\n"
                               "    n: f32[3] = aten.neg.default(x)\n"
                               "    m: f32[3] = aten.neg.default(n)\n"
                               "    return (m,)\n")
    result = verify(rules, [("the graph", graph)], examples=20)
    crashes = {(finding.rule.name, finding.kind) for finding in result.findings}
    assert crashes == {("mm_as_matmul", verifying.CRASH), ("double_negation", verifying.CRASH)}
    rendered = result.render()
    assert "rule `mm_as_matmul`: verify could not check it: ZeroDivisionError: a bug of " \
           "verify" in rendered
    assert "rule `double_negation`: verify could not check it: KeyError: 'another bug'" in \
        rendered
    assert "  on the match at `m` in the graph:" in rendered
    double = next(stats for stats in result.stats if stats.rule.name == "double_negation")
    assert double.instances > 0  # its drawn instances ran before the model's crash
    assert rendered.splitlines()[-1] == "2 findings in 2 rules"


PRIM_GRAPH = """\
def forward(x: f32[4]):
    c: f16[4] = prims.convert_element_type.default(x, torch.float16)
    n: f16[4] = aten.neg.default(c)
    m: f16[4] = aten.neg.default(n)
    return (m,)
"""
TO_COPY_GRAPH = """\
def forward(x: f32[4]):
    c: f16[4] = aten._to_copy.default(x, dtype=torch.float16)
    return (c,)
"""


def test_a_program_without_gradients_is_compared_without_them(tmp_path):
    """Inductor's graphs convert with `prims.convert_element_type`, which has no autograd
    formula: the programs are compared on their values, and the line says which side has no
    gradient."""
    rules = tmp_path / "rules.rw"
    rules.write_text("use torch.ops.aten.neg.default as neg\n"
                     "use torch.ops.aten._to_copy.default as to_copy\n"
                     "use torch.ops.prims.convert_element_type.default as convert\n"
                     "rule double_negation:\n    match neg(neg($x))\n    replace with $x\n"
                     "    verify aliases\n"
                     "rule to_copy_as_prim:\n    match to_copy($x, dtype=$d)\n"
                     "    replace with convert($x, $d)\n")
    (tmp_path / "prim.fxg").write_text(PRIM_GRAPH)
    (tmp_path / "to_copy.fxg").write_text(TO_COPY_GRAPH)
    result = engine_verify(str(rules), str(tmp_path / "prim.fxg"), str(tmp_path / "to_copy.fxg"),
                           "--examples", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    prim = next(line for line in lines if line.startswith(f"{tmp_path / 'prim.fxg'}: "))
    assert prim.startswith(f"{tmp_path / 'prim.fxg'}: the program computes the same before and "
                           "after the rules (outputs, inputs written in place; 3 seeds); "
                           "gradients not compared: the program has none, neither before "
                           "the rules nor after them (RuntimeError: Trying to backward through "
                           "prims.convert_element_type.default"), prim
    copied = next(line for line in lines if line.startswith(f"{tmp_path / 'to_copy.fxg'}: "))
    assert "gradients not compared: after the rules the program has none, before them it " \
           "has one (RuntimeError: Trying to backward through prims.convert_element_type" \
           in copied, copied


def test_gradients_are_compared_where_both_sides_have_them():
    convert = graph_of(lambda x: torch.ops.prims.convert_element_type.default(
        x, torch.float64), "x")
    to_copy = graph_of(lambda x: x.double(), "x")
    x = torch.randn(3)
    seen = Comparison()
    assert compare_gradients(to_copy, convert, [x], [0], Allowance(), seen, ["x"]) is None
    assert list(seen.gradientless) == [1]
    assert "no autograd formula" in seen.gradientless[1]
    both = Comparison()
    assert compare_gradients(convert, convert, [x], [0], Allowance(), both, ["x"]) is None
    assert sorted(both.gradientless) == [0, 1]


RANDOM_RULES = """\
use torch.ops.aten.rand.default as rand
use torch.ops.aten.randperm.default as randperm
use torch.ops.aten.mul.Tensor as mul
use torch.ops.aten.add.Tensor as add

rule rand_times_one:
    match mul(rand($size), 1)
    replace with rand($size)

rule randperm_plus_zero:
    match add(randperm($n), 0)
    replace with randperm($n)
"""
RANDOM_GRAPH = """\
def forward(x: f32[4]):
    r: f32[4] = aten.rand.default([4])
    m: f32[4] = aten.mul.Tensor(r, 1)
    p: i64[4] = aten.randperm.default(4)
    a: i64[4] = aten.add.Tensor(p, 0)
    s: f32[4] = aten.add.Tensor(x, m)
    return (s, a)
"""


def test_both_sides_of_a_random_op_run_from_one_random_state(tmp_path):
    rules = tmp_path / "random.rw"
    rules.write_text(RANDOM_RULES)
    graph = tmp_path / "random.fxg"
    graph.write_text(RANDOM_GRAPH)
    result = engine_verify(str(rules), str(graph), "--examples", "40")
    assert result.returncode == 0, result.stdout + result.stderr
    for rule in ("rand_times_one", "randperm_plus_zero"):
        line = rule_line(result.stdout, rule)
        assert int(re.search(r"checked on (\d+) instances", line).group(1)) > 0, line
        assert "1 match in 1 model" in line, line
    assert "the program computes the same before and after the rules" in result.stdout


def test_verify_leaves_the_callers_random_state_as_it_was():
    rules = engine.rules_from_text(RANDOM_RULES)
    graph = engine.parse_graph(RANDOM_GRAPH)
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    assert verify(rules, [("the graph", graph)], examples=10).sound
    assert torch.equal(torch.random.get_rng_state(), state)
