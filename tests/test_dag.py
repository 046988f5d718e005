"""DAG patterns and replacements, feature by feature, on hand-built aten graphs: what matches,
what must not, what is built in its place, and that the result computes what the input did."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.fx

import engine
from engine.language import checked
from engine.matching.match import compile_node, compile_value, match_node, match_value
from tests.graphs import Sketch, aten

USES = """
use torch.ops.aten.add
use torch.ops.aten.add.Tensor as add_tensor
use torch.ops.aten.sub
use torch.ops.aten.mul
use torch.ops.aten.relu
use torch.ops.aten.sin
use torch.ops.aten.cos
use torch.ops.aten.neg
use torch.ops.aten.cat
use torch.ops.aten.clamp_min
use torch.ops.aten.mm
use torch.ops.aten._to_copy
use torch.float16
use torch.float32
"""


def rules(text: str) -> engine.RuleSet:
    return engine.rules_from_text(USES + text)


def targets(gm: torch.fx.GraphModule) -> list:
    return [node.target for node in gm.graph.nodes if node.op in ("call_function", "call_method")]


def rewrite(rule_text: str, gm: torch.fx.GraphModule, *inputs) -> engine.Rewrite:
    """Applies the rules; checks the input is untouched and the result computes the same."""
    before = engine.dump(gm)
    result = rules(rule_text).rewrite(gm)
    assert engine.dump(gm) == before
    result.module.graph.lint()
    if inputs:
        torch.testing.assert_close(result.module(*inputs), gm(*inputs))
    return result


def chain(*ops) -> tuple[torch.fx.GraphModule, tuple]:
    """x, y -> each op applied in turn to (previous, y)-style arguments given as callables."""
    sketch = Sketch()
    x, y = sketch.input("x"), sketch.input("y")
    value = x
    for make in ops:
        value = make(sketch, value, x, y)
    return sketch.finish(value), (torch.randn(4, 4), torch.randn(4, 4))


RELU_ADD = """
rule fuse:
    match relu(add($a, $b))
    replace with clamp_min(add($a, $b), 0)
"""


def test_a_nested_pattern_is_replaced_and_computes_the_same():
    gm, inputs = chain(lambda s, v, x, y: s.op(aten.add.Tensor, v, y),
                       lambda s, v, x, y: s.op(aten.relu.default, v))
    result = rewrite(RELU_ADD, gm, *inputs)
    assert targets(result.module) == [aten.add.Tensor, aten.clamp_min.default]
    assert result.report.counts() == {"fuse": 1}
    clamp = next(n for n in result.module.graph.nodes if n.target is aten.clamp_min.default)
    assert clamp.meta["val"].shape == (4, 4)


def test_an_interior_node_used_outside_the_match_prevents_it():
    sketch = Sketch()
    x, y = sketch.input("x"), sketch.input("y")
    total = sketch.op(aten.add.Tensor, x, y)
    relu = sketch.op(aten.relu.default, total)
    gm = sketch.finish(relu, total)  # `total` is used by the output too
    assert rewrite(RELU_ADD, gm).report.counts() == {}


def test_shared_lets_an_interior_node_be_used_outside_and_keeps_it():
    sketch = Sketch()
    x, y = sketch.input("x"), sketch.input("y")
    total = sketch.op(aten.add.Tensor, x, y)
    relu = sketch.op(aten.relu.default, total)
    gm = sketch.finish(relu, total)
    result = rewrite("""
rule fuse:
    match relu(shared add($a, $b))
    replace with clamp_min(add($a, $b), 0)
""", gm, torch.randn(4, 4), torch.randn(4, 4))
    assert targets(result.module) == [aten.add.Tensor, aten.add.Tensor, aten.clamp_min.default]


def test_an_op_packet_matches_every_overload_and_an_overload_only_itself():
    gm, inputs = chain(lambda s, v, x, y: s.op(aten.add.Scalar, v, 2),
                       lambda s, v, x, y: s.op(aten.relu.default, v))
    assert rewrite(RELU_ADD, gm, *inputs).report.counts() == {"fuse": 1}
    one_overload = """
rule fuse:
    match relu(add_tensor($a, $b))
    replace with clamp_min(add_tensor($a, $b), 0)
"""
    assert rewrite(one_overload, gm, *inputs).report.counts() == {}


def test_the_same_variable_twice_is_the_same_node():
    doubled = """
rule twice:
    match add($x, $x)
    replace with mul($x, 2)
"""
    same, inputs = chain(lambda s, v, x, y: s.op(aten.add.Tensor, v, v))
    different, _ = chain(lambda s, v, x, y: s.op(aten.add.Tensor, v, y))
    assert targets(rewrite(doubled, same, *inputs).module) == [aten.mul.Tensor]
    assert rewrite(doubled, different, *inputs).report.counts() == {}


def test_literals_must_be_equal_and_wildcards_take_anything():
    gm, inputs = chain(lambda s, v, x, y: s.op(aten.mul.Tensor, v, 1),
                       lambda s, v, x, y: s.op(aten.mul.Tensor, v, 2.0),
                       lambda s, v, x, y: s.op(aten.mul.Tensor, v, 1.0))
    result = rewrite("""
rule times_one:
    match mul($x, 1)
    replace with $x
""", gm, *inputs)
    # `other` is a Tensor (or a Scalar, in mul.Scalar): 1 is not 1.0, which makes an integer
    # tensor a float one
    assert result.report.counts() == {"times_one": 1}
    assert targets(result.module) == [aten.mul.Tensor, aten.mul.Tensor]
    either = rewrite("""
rule times_one:
    match mul($x, 1) | mul($x, 1.0)
    replace with $x
""", gm, *inputs)
    assert either.report.counts() == {"times_one": 2}
    assert targets(either.module) == [aten.mul.Tensor]
    anything = rewrite("""
rule any_product:
    match mul($x, _)
    replace with $x
""", gm)
    assert anything.report.counts() == {"any_product": 3}


def test_keyword_arguments_are_constrained_by_name():
    sketch = Sketch()
    x = sketch.input("x")
    half = sketch.op(aten._to_copy.default, x, dtype=torch.float16)
    full = sketch.op(aten._to_copy.default, half, dtype=torch.float32)
    gm = sketch.finish(full)
    result = rewrite("""
rule round_trip_to_half:
    match _to_copy(_to_copy($x, dtype=float16), dtype=float32)
    replace with _to_copy($x, dtype=float32)
""", gm)
    assert result.report.counts() == {"round_trip_to_half": 1}
    assert targets(result.module) == [aten._to_copy.default]
    missing_keyword = rewrite("""
rule any_copy:
    match _to_copy($x)
    replace with $x
""", gm)
    assert missing_keyword.report.counts() == {}  # the nodes have a keyword the pattern lacks


def test_alternatives_take_the_first_option_that_matches():
    gm, inputs = chain(lambda s, v, x, y: s.op(aten.sub.Tensor, v, y),
                       lambda s, v, x, y: s.op(aten.relu.default, v))
    result = rewrite("""
rule fuse_either:
    match relu(add($a, $b) | sub($a, $b))
    replace with clamp_min(sub($a, $b), 0)
""", gm, *inputs)
    assert result.report.counts() == {"fuse_either": 1}


def test_commutative_matches_both_orders():
    gm, inputs = chain(lambda s, v, x, y: s.op(aten.mul.Tensor, 1, v))
    plain = "rule r:\n    match mul($x, 1)\n    replace with $x\n"
    either = "rule r:\n    match commutative mul($x, 1)\n    replace with $x\n"
    assert rewrite(plain, gm).report.counts() == {}
    assert rewrite(either, gm).report.counts() == {"r": 1}


def test_variadic_captures_rebuild_a_list():
    sketch = Sketch()
    x, y = sketch.input("x"), sketch.input("y")
    joined = sketch.op(aten.cat.default, [x, y, x], 0)
    relu = sketch.op(aten.relu.default, joined)
    with sketch.value.fake_mode:  # three [4, 4] along dim 0
        joined.meta["val"] = relu.meta["val"] = torch.empty(12, 4)
    gm = sketch.finish(relu)
    result = rewrite("""
rule relu_each:
    match relu(cat([$first, *$rest], 0))
    replace with cat([relu($first), *$rest], 0)
""", gm)
    (cat,) = [n for n in result.module.graph.nodes if n.target is aten.cat.default]
    assert [a.name for a in cat.args[0]] == ["relu_default", "y", "x"]


def test_several_roots_are_replaced_together():
    sketch = Sketch()
    x = sketch.input("x")
    s, c = sketch.op(aten.sin.default, x), sketch.op(aten.cos.default, x)
    gm = sketch.finish(sketch.op(aten.add.Tensor, s, c))
    result = rewrite("""
rule both:
    match $s = sin($x), $c = cos($x)
    replace $s with neg($x), $c with relu($x)
""", gm)
    assert targets(result.module) == [aten.neg.default, aten.relu.default, aten.add.Tensor]
    assert result.report.counts() == {"both": 1}


def test_guards_read_the_values_of_nodes():
    gm, inputs = chain(lambda s, v, x, y: s.op(aten.neg.default, v),
                       lambda s, v, x, y: s.op(aten.neg.default, v))
    for guard, fires in [("dtype($x) == float32", True), ("dtype($x) == float16", False),
                         ("rank($x) == 2", True), ("rank($x) > 2", False),
                         ("shape($x) == shape($y)", True), ("device($x) == 'cpu'", True)]:
        result = rewrite(f"""
rule double_negation:
    match $y = neg(neg($x))
    where {guard}
    replace with $x
""", gm, *inputs)
        assert result.report.counts() == ({"double_negation": 1} if fires else {}), guard


def test_erase_takes_only_nodes_nothing_uses():
    sketch = Sketch()
    x = sketch.input("x")
    sketch.op(aten.sin.default, x)  # unused
    used = sketch.op(aten.sin.default, x)
    gm = sketch.finish(used)
    result = rewrite("rule unused_sines:\n    match sin(_)\n    erase\n", gm, torch.randn(4, 4))
    assert result.report.counts() == {"unused_sines": 1}
    assert targets(result.module) == [aten.sin.default]


def test_rewrites_go_on_to_a_fixpoint():
    gm, inputs = chain(*[lambda s, v, x, y: s.op(aten.neg.default, v)] * 6)
    result = rewrite("rule r:\n    match neg(neg($x))\n    replace with $x\n", gm, *inputs)
    assert targets(result.module) == []
    assert result.report.counts() == {"r": 3}


def test_rules_that_keep_firing_stop_with_an_error_naming_them():
    gm, _ = chain(lambda s, v, x, y: s.op(aten.sin.default, v))
    forever = rules("""
rule to_cos:
    match sin($x)
    replace with cos($x)

rule to_sin:
    match cos($x)
    replace with sin($x)
""")
    forever.max_passes = 5
    with pytest.raises(engine.GraphError,
                       match=r"still match after 5 passes.*`to_(cos|sin)` \(1 match\)"):
        forever.apply(gm)


def test_the_first_rule_in_file_order_wins():
    gm, inputs = chain(lambda s, v, x, y: s.op(aten.neg.default, v),
                       lambda s, v, x, y: s.op(aten.neg.default, v))
    result = rewrite("""
rule first:
    match neg($x)
    replace with mul($x, -1)

rule second:
    match neg(neg($x))
    replace with $x
""", gm, *inputs)
    assert result.report.counts() == {"first": 2}


def test_overlapping_matches_take_the_earlier_root():
    gm, inputs = chain(*[lambda s, v, x, y: s.op(aten.neg.default, v)] * 3)
    result = rewrite("rule r:\n    match neg(neg($x))\n    replace with $x\n", gm, *inputs)
    assert result.report.counts() == {"r": 1}
    assert targets(result.module) == [aten.neg.default]


def test_a_template_may_reuse_a_bound_interior_node():
    gm, inputs = chain(lambda s, v, x, y: s.op(aten.add.Tensor, v, y),
                       lambda s, v, x, y: s.op(aten.relu.default, v))
    result = rewrite("""
rule keep_the_sum:
    match relu($total = add($a, $b))
    replace with clamp_min($total, 0)
""", gm, *inputs)
    assert targets(result.module) == [aten.add.Tensor, aten.clamp_min.default]


def test_a_packet_in_a_template_becomes_the_overload_its_arguments_pick():
    gm, inputs = chain(lambda s, v, x, y: s.op(aten.relu.default, v))
    result = rewrite("rule r:\n    match relu($x)\n    replace with add(clamp_min($x, 0), 0)\n",
                     gm, *inputs)
    assert targets(result.module) == [aten.clamp_min.default, aten.add.Tensor]
    for node in result.module.graph.nodes:
        if node.op == "call_function":
            assert node.meta["val"].shape == (4, 4)


def test_method_calls_match_and_are_built():
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    y = graph.call_method("mul", (x, 2))
    graph.output(graph.call_method("mul", (y, 3)))
    gm = torch.fx.GraphModule(torch.nn.Module(), graph)
    result = rewrite("rule r:\n    match $x.mul(2).mul(3)\n    replace with $x.mul(6)\n",
                     gm, torch.randn(3))
    assert targets(result.module) == ["mul"]


# --- the matchers: interpreter and compiler agree ----------------------------------------------
def test_compiled_dag_matchers_agree_with_the_interpreter():
    ruleset = rules("""
rule a:
    match relu(add($x, $y) | sub($x, $y))
    erase
rule b:
    match commutative mul($x, 1)
    erase
rule c:
    match cat([$first, *$rest], _)
    erase
rule d:
    match $r = relu(shared add($x, $x))
    erase
rule e:
    match add(add($x, $y, **$kw), $y, **$kw)
    erase
""")
    sketch = Sketch()
    x, y = sketch.input("x"), sketch.input("y")
    nodes = [sketch.op(aten.add.Tensor, sketch.op(aten.add.Tensor, x, y, alpha=2), y, alpha=2),
             sketch.op(aten.add.Tensor, sketch.op(aten.add.Tensor, x, y, alpha=2), y),
             sketch.op(aten.relu.default, sketch.op(aten.add.Tensor, x, y)),
             sketch.op(aten.relu.default, sketch.op(aten.sub.Tensor, x, y)),
             sketch.op(aten.relu.default, sketch.op(aten.add.Tensor, x, x)),
             sketch.op(aten.mul.Tensor, 1, x), sketch.op(aten.mul.Tensor, x, 2),
             sketch.op(aten.cat.default, [x, y], 0), sketch.op(aten.cat.default, [], 0)]
    for rule in ruleset.rules:
        (name, pattern), = rule.pattern.roots
        compiled = compile_node(pattern) if isinstance(pattern, checked.NodePattern) else \
            compile_value(pattern)
        for node in nodes:
            slow, fast = ({}, []), ({}, [])
            expected = match_node(pattern, node, *slow) if isinstance(
                pattern, checked.NodePattern) else match_value(pattern, node, *slow)
            assert compiled(node, *fast) == expected, (rule.name, node.format_node())
            if expected:
                assert slow == fast


def test_operator_functions_can_be_matched_and_built():
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_function(operator.mul, (x, 1)))
    gm = torch.fx.GraphModule(torch.nn.Module(), graph)
    result = engine.rules_from_text("""
use operator.mul
use operator.add
rule r:
    match mul($x, 1)
    replace with add($x, 0)
""").rewrite(gm)
    assert targets(result.module) == [operator.add]


def test_every_builtin_the_language_declares_has_an_evaluator():
    from engine.language.builtins import BUILTINS
    from engine.matching.guards import EVALUATORS

    assert EVALUATORS.keys() == BUILTINS.keys()


def test_rules_apply_inside_a_graph_module_called_with_call_module():
    inner, inputs = chain(lambda s, v, x, y: s.op(aten.neg.default, v),
                          lambda s, v, x, y: s.op(aten.neg.default, v))
    graph = torch.fx.Graph()
    x, y = graph.placeholder("x"), graph.placeholder("y")
    graph.output(graph.call_module("inner", (x, y)))
    root = torch.nn.Module()
    root.inner = inner
    gm = torch.fx.GraphModule(root, graph)
    result = rewrite("rule r:\n    match neg(neg($x))\n    replace with $x\n", gm, *inputs)
    assert result.report.counts() == {"r": 1}
    assert targets(result.module.inner) == []
    assert targets(gm.inner) == [aten.neg.default, aten.neg.default]
