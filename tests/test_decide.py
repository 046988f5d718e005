"""Deciding before building: which rule, what it binds, removes, keeps and builds, or why not.

Each case of a footprint is checked twice: as data (`decide_dag_pass`, `decide_regions`), and
as the rewritten graph, against the graph the rule describes, written out by hand.
"""

from __future__ import annotations

import operator

import pytest
import torch
import torch.fx
from torch._subclasses.fake_tensor import FakeTensorMode

import engine
from engine.graphs.dump import dump
from engine.matching.guards import Context
from engine.matching.regions import find_regions
from engine.rewriting import decide
from engine.rewriting.evaluate import Evaluator
from tests.graphs import Sketch, aten

USES = """
use torch.ops.aten.add
use torch.ops.aten.sin
use torch.ops.aten.cos
use torch.ops.aten.neg
use torch.ops.aten.relu
use torch.ops.aten.exp
use torch.ops.aten.sum
use torch.ops.aten.mm
use torch.ops.aten._assert_tensor_metadata
use torch.float32
use torch.amp.autocast_mode._enter_autocast as enter
use torch.amp.autocast_mode._exit_autocast as exit
use torch.ops.higher_order.wrap_with_autocast as autocast_hop
"""
CONTEXT = Context(ambient_grad=True)


def rules(text: str) -> engine.RuleSet:
    return engine.rules_from_text(USES + text)


def decided(rule_text: str, gm: torch.fx.GraphModule) -> decide.DagPass:
    ruleset = rules(rule_text)
    return decide.decide_dag_pass(gm, ruleset.dags, CONTEXT, "", Evaluator(), every_rejection=True)


def names(nodes) -> set[str]:
    return {node.name for node in nodes}


def same_graph(result: torch.fx.GraphModule, expected: torch.fx.GraphModule, *inputs) -> None:
    """The rewrite is the hand-written graph: same nodes, same order, same numbers."""
    assert [(n.op, n.target) for n in result.graph.nodes] == [
        (n.op, n.target) for n in expected.graph.nodes]
    result.graph.lint()
    torch.testing.assert_close(result(*inputs), expected(*inputs))


def chain(*ops, outputs=(-1,)):
    """x -> ops applied in turn; the graph returns the values at `outputs` (indices)."""
    sketch = Sketch()
    values = [sketch.input("x")]
    for op in ops:
        values.append(sketch.op(op, values[-1]))
    return sketch.finish(*(values[i] for i in outputs)), values


def outputs_of_x(*ops) -> torch.fx.GraphModule:
    """x -> each op applied to x, each an output."""
    sketch = Sketch()
    x = sketch.input("x")
    return sketch.finish(*(sketch.op(op, x) for op in ops))


X = torch.randn(4, 4)


# --- footprints: a node is removed only if nothing that stays uses it ---------------------------
def test_a_template_that_reuses_an_interior_node_keeps_what_that_node_needs():
    """relu($y = neg(sin($x))) -> cos($y): sin stays, because the kept neg uses it."""
    gm, (x, sin, neg, relu) = chain(aten.sin.default, aten.neg.default, aten.relu.default)
    text = "rule r:\n    match relu($y = neg(sin($x)))\n    replace with cos($y)\n"
    (decision,) = decided(text, gm).decisions
    assert decision.kept == {sin, neg} and decision.removed == set()
    assert names(decision.replaced[relu].args) == {"neg_default"}
    result = rules(text).rewrite(gm).module
    expected, _ = chain(aten.sin.default, aten.neg.default, aten.cos.default)
    same_graph(result, expected, X)


def test_a_shared_interior_used_outside_keeps_its_own_inputs():
    """relu(shared neg(sin($x))) -> cos($x), neg also an output: neg stays, so sin stays."""
    gm, (x, sin, neg, relu) = chain(aten.sin.default, aten.neg.default, aten.relu.default,
                                    outputs=(-1, 2))
    text = "rule r:\n    match relu(shared neg(sin($x)))\n    replace with cos($x)\n"
    (decision,) = decided(text, gm).decisions
    assert decision.kept == {sin, neg} and decision.removed == set()
    result = rules(text).rewrite(gm).module
    sketch = Sketch()
    x = sketch.input("x")
    neg_expected = sketch.op(aten.neg.default, sketch.op(aten.sin.default, x))
    expected = sketch.finish(sketch.op(aten.cos.default, x), neg_expected)
    same_graph(result, expected, X)


def test_a_shared_interior_goes_when_every_user_it_had_is_rewritten():
    """Two relus of one neg, both rewritten: each match keeps neg for the other's sake, and
    after both, nothing uses it: it goes."""
    sketch = Sketch()
    x = sketch.input("x")
    neg = sketch.op(aten.neg.default, x)
    gm = sketch.finish(sketch.op(aten.relu.default, neg), sketch.op(aten.relu.default, neg))
    text = "rule r:\n    match relu(shared neg($x))\n    replace with sin($x)\n"
    first, second = decided(text, gm).decisions
    assert neg in first.removed | second.removed and neg not in first.kept | second.kept
    result = rules(text).rewrite(gm).module
    same_graph(result, outputs_of_x(aten.sin.default, aten.sin.default), X)


def test_an_exclusive_interior_below_a_removed_one_goes_with_it():
    gm, (x, sin, neg, relu) = chain(aten.sin.default, aten.neg.default, aten.relu.default)
    (decision,) = decided("rule r:\n    match relu(neg(sin($x)))\n    replace with cos($x)\n",
                          gm).decisions
    assert decision.removed == {sin, neg} and decision.kept == set()


def test_a_later_root_that_uses_an_interior_of_the_first_keeps_it():
    """$a = relu(neg($x)), $b = sin($a), replacing only $b: $a stays, and with it neg."""
    gm, (x, neg, relu, sin) = chain(aten.neg.default, aten.relu.default, aten.sin.default)
    text = """
rule r:
    match $a = relu(neg($x)), $b = sin($a)
    replace $b with cos($a)
"""
    (decision,) = decided(text, gm).decisions
    assert decision.roots == (relu, sin)
    assert decision.kept == {neg} and decision.removed == set()
    result = rules(text).rewrite(gm).module
    expected, _ = chain(aten.neg.default, aten.relu.default, aten.cos.default)
    same_graph(result, expected, X)


def test_a_later_root_may_be_bound_inside_the_first_root():
    """$a = relu($n = neg($x)), $b = exp($n): exp is a user of neg, an interior of $a."""
    sketch = Sketch()
    x = sketch.input("x")
    neg = sketch.op(aten.neg.default, x)
    relu = sketch.op(aten.relu.default, neg)
    exp = sketch.op(aten.exp.default, neg)
    gm = sketch.finish(relu, exp)
    text = """
rule r:
    match $a = relu($n = neg($x)), $b = exp($n)
    replace $a with cos($x), $b with sin($x)
"""
    (decision,) = decided(text, gm).decisions
    assert decision.roots == (relu, exp) and decision.removed == {neg}
    result = rules(text).rewrite(gm).module
    same_graph(result, outputs_of_x(aten.cos.default, aten.sin.default), X)


def test_keywords_bound_in_one_call_and_repeated_in_another():
    """sum(sum($x, $d, **$kw), $e, **$kw): the inner call binds `$kw`, the outer compares."""
    sketch = Sketch()
    x = sketch.input("x")
    inner = sketch.op(aten.sum.dim_IntList, x, [0], keepdim=True)
    outer = sketch.op(aten.sum.dim_IntList, inner, [1], keepdim=True)
    with sketch.value.fake_mode:
        inner.meta["val"], outer.meta["val"] = torch.empty(1, 4), torch.empty(1, 1)
    gm = sketch.finish(outer)
    text = """
rule r:
    match sum(sum($x, [$d], **$kw), [$e], **$kw)
    replace with sum($x, [$d, $e], **$kw)
"""
    (decision,) = decided(text, gm).decisions
    assert decision.bindings["kw"] == {"keepdim": True}
    result = rules(text).rewrite(gm).module
    (node,) = [n for n in result.graph.nodes if n.op == "call_function"]
    assert node.args == (result.graph.find_nodes(op="placeholder")[0], [0, 1])
    assert node.kwargs == {"keepdim": True}
    torch.testing.assert_close(result(X), (X.sum([0, 1], keepdim=True),))
    other = Sketch()
    y = other.input("x")
    mixed = other.finish(other.op(aten.sum.dim_IntList,
                                  other.op(aten.sum.dim_IntList, y, [0], keepdim=True), [1]))
    assert decided(text, mixed).decisions == []  # `**$kw` differs: {} vs {keepdim: True}


def test_replace_with_none_where_the_value_is_none():
    """A node whose value is None (an assertion's) can be replaced by None."""
    sketch = Sketch()
    x = sketch.input("x")
    check = sketch.graph.call_function(aten._assert_tensor_metadata.default, (x,),
                                       {"dtype": torch.float32})
    check.meta["val"] = None
    gm = sketch.finish(x, check)
    result = rules("""
rule r:
    match _assert_tensor_metadata($x, dtype=float32)
    replace with None
""").rewrite(gm)
    assert [n.op for n in result.module.graph.nodes] == ["placeholder", "output"]
    assert result.module.graph.output_node().args[0][1] is None
    assert result.module(X)[1] is None


# --- rejections, as data -----------------------------------------------------------------------
def test_a_guard_that_fails_is_named():
    gm, (x, relu) = chain(aten.relu.default)
    found = decided("rule r:\n    match relu($x)\n    where rank($x) == 3\n    erase\n", gm)
    (rejection,) = found.rejections
    assert rejection.reason == decide.GUARD and rejection.node is relu
    assert rejection.guard.op == "==" and rejection.guard.span.line == USES.count("\n") + 3


def test_an_interior_node_used_outside_names_its_user():
    gm, (x, sin, relu) = chain(aten.sin.default, aten.relu.default, outputs=(-1, 1))
    found = decided("rule r:\n    match relu(sin($x))\n    replace with cos($x)\n", gm)
    (rejection,) = found.rejections
    assert rejection.reason == decide.USED_OUTSIDE
    assert rejection.nodes[0] is sin and rejection.nodes[1].op == "output"


def test_a_node_taken_by_an_earlier_match_is_named():
    """neg(neg(neg(x))): the first two negs match; the third would need the second again."""
    gm, (x, a, b, c) = chain(*[aten.neg.default] * 3)
    found = decided("rule r:\n    match neg(neg($x))\n    replace with $x\n", gm)
    (decision,) = found.decisions
    assert decision.roots == (b,)
    (rejection,) = found.rejections
    assert rejection.reason == decide.TAKEN and rejection.node is c and rejection.nodes == (b,)


def test_erase_of_a_used_root_is_a_rejection():
    gm, (x, relu) = chain(aten.relu.default)
    (rejection,) = decided("rule r:\n    match relu($x)\n    erase\n", gm).rejections
    assert rejection.reason == decide.ERASE_USED and rejection.nodes[0] is relu


def test_a_later_rule_is_tried_when_the_first_is_rejected():
    gm, (x, relu) = chain(aten.relu.default)
    found = decided("""
rule first:
    match relu($x)
    where rank($x) == 3
    replace with neg($x)
rule second:
    match relu($x)
    replace with cos($x)
""", gm)
    assert [r.rule.name for r in found.rejections] == ["first"]
    assert [d.rule.name for d in found.decisions] == ["second"]


# --- every problem before anything is built -------------------------------------------------------
def test_a_template_problem_is_found_before_anything_is_built():
    """Two matches in one pass; the second cannot be built: nothing is, and both are decided."""
    sketch = Sketch()
    x = sketch.input("x")
    first = sketch.op(aten.sin.default, x)
    second = sketch.op(aten.sin.default, sketch.op(aten.sum.default, first))
    gm = sketch.finish(second)
    with sketch.value.fake_mode:  # sum's value is a number: mm cannot take it
        gm.graph.find_nodes(op="call_function", target=aten.sum.default)[0].meta["val"] = \
            torch.empty(())
    text = "rule r:\n    match sin($x)\n    replace with cos(mm($x, $x))\n"
    found = decided(text, gm)
    assert len(found.decisions) == 2 and len(found.problems) == 1
    assert found.problems[0].message.startswith(
        "rule `r` (<text>:17:22) `aten.mm.default(sum_default, sum_default)` fails on its "
        "inputs: a must be 2D")
    before = dump(gm)
    with pytest.raises(engine.GraphError, match=r"rule `r` \(<text>:\d+:\d+\)"):
        rules(text).rewrite(gm)
    assert dump(gm) == before


def test_a_literal_for_a_tensor_is_refused_when_applied():
    """`aten.sin` has overloads for numbers, so only the graph can tell: here it is a tensor."""
    gm, (x, sin) = chain(aten.sin.default)
    with pytest.raises(engine.GraphError) as caught:
        rules("rule r:\n    match sin($x)\n    replace with 1.5\n").rewrite(gm)
    assert str(caught.value).splitlines()[0] == (
        "error: rule `r` (<text>:17:18) replaces `sin_default` (f32[4, 4]) with 1.5, which is "
        "not a tensor")


def test_a_template_value_is_computed_not_copied_from_the_root():
    """`mul($x, $k)` also binds `$k` to a number: `cos($k)` passes the checker (a variable can
    hold anything), and picks the overload for numbers. Computed, not copied from the root, its
    value is refused before anything is built."""
    sketch = Sketch()
    x = sketch.input("x")
    gm = sketch.finish(sketch.op(aten.mul.Tensor, x, 2.0))
    text = "use torch.ops.aten.mul\nrule r:\n    match mul($x, $k)\n    replace with {}\n"
    with pytest.raises(engine.GraphError) as caught:
        rules(text.format("cos($k)")).rewrite(gm)
    assert str(caught.value).splitlines()[0] == (
        "error: rule `r` (<text>:18:18) replaces `mul_tensor` (f32[4, 4]) with "
        "`aten.cos.float(2.0)` (-0.4161468365471424), which is not a tensor")
    with pytest.raises(engine.GraphError) as caught:  # the overload for tensors, given a number
        engine.rules_from_text(text.format("cos($k)").replace(
            "use torch.ops.aten.mul", "use torch.ops.aten.mul\nuse torch.ops.aten.cos.default "
                                      "as cos")).rewrite(gm)
    assert str(caught.value).splitlines()[0].startswith(
        "error: rule `r` (<text>:5:18) `aten.cos.default(2.0)` fails on its inputs: ")


def test_a_template_of_another_shape_is_refused():
    gm, _ = chain(aten.relu.default)
    with pytest.raises(engine.GraphError) as caught:
        rules("rule r:\n    match relu($x)\n    replace with sum($x)\n").rewrite(gm)
    assert str(caught.value).splitlines()[0] == (
        "error: rule `r` (<text>:17:18) replaces `relu_default` (f32[4, 4]) with "
        "`aten.sum.default(x)` (f32[]), of another shape")


def test_a_template_with_other_strides_gets_its_own_value():
    """Same dtype, shape and device is a fit; the strides it computes are its own, not the
    root's."""
    gm, (x, relu) = chain(aten.relu.default)
    result = engine.rules_from_text("""
use torch.ops.aten.relu
use torch.ops.aten.t
use torch.ops.aten.clone
use torch.ops.aten.clamp_min
use torch.contiguous_format
rule r:
    match relu($x)
    replace with t(clone(t(clamp_min($x, 0)), memory_format=contiguous_format))
""").rewrite(gm)
    last = result.module.graph.output_node().args[0][0]
    assert last.target is aten.t.default and last.meta["val"].stride() == (1, 4)
    assert relu.meta["val"].stride() == (4, 1)
    torch.testing.assert_close(result.module(X)[0], gm(X)[0])


def test_a_captured_value_of_another_dtype_is_refused():
    sketch = Sketch()
    x = sketch.input("x")
    half = sketch.op(aten._to_copy.default, x, dtype=torch.float16)
    with torch._subclasses.fake_tensor.FakeTensorMode():
        half.meta["val"] = torch.empty(4, 4, dtype=torch.float16)
    gm = sketch.finish(half)
    with pytest.raises(engine.GraphError) as caught:
        engine.rules_from_text("""
use torch.ops.aten._to_copy
rule drop_conversions:
    match _to_copy($x, **_)
    replace with $x
""").rewrite(gm)
    assert str(caught.value).splitlines()[0] == (
        "error: rule `drop_conversions` (<text>:5:18) replaces `_to_copy_default` (f16[4, 4]) "
        "with `x` (f32[4, 4]), of another dtype")


def test_a_value_made_after_the_root_is_a_problem_before_building():
    """$a = sin($x), $b = add($a, $y) with $y made after $a: $a cannot be rebuilt from $y."""
    sketch = Sketch()
    x = sketch.input("x")
    a = sketch.op(aten.sin.default, x)
    y = sketch.op(aten.cos.default, x)
    b = sketch.op(aten.add.Tensor, a, y)
    gm = sketch.finish(b)
    text = """
rule r:
    match $a = sin($x), $b = add($a, $y)
    replace $a with neg($y)
"""
    found = decided(text, gm)
    (problem,) = found.problems
    assert problem.message == ("rule `r` (<text>:18:25) replaces `sin_default` with a value that "
                               "needs `$y`, which the graph makes only after it")


def test_region_problems_of_every_graph_are_reported_together():
    """Two erased regions whose values are used after them, one nested in a cond branch."""
    def region_used_after():
        sketch = Sketch()
        x = sketch.input("x")
        enter = sketch.enter()
        y = sketch.op(aten.mm.default, x, x)
        sketch.exit(enter)
        return sketch.finish(sketch.op(aten.sin.default, y))

    outer = region_used_after()
    outer.branch = region_used_after()
    with outer.graph.inserting_before(outer.graph.output_node()):
        outer.graph.get_attr("branch")
    before = dump(outer)
    with pytest.raises(engine.GraphError) as caught:
        rules("rule dead:\n    match $e = enter(*_) ... exit($e)\n    erase\n").rewrite(outer)
    assert [p.module for p in caught.value.problems] == ["branch", ""]
    assert dump(outer) == before


def test_region_decisions_say_what_an_outline_takes_and_gives():
    sketch = Sketch()
    x = sketch.input("x")
    enter = sketch.enter()
    y = sketch.op(aten.mm.default, x, x)
    z = sketch.op(aten.sin.default, y)
    sketch.exit(enter)
    gm = sketch.finish(sketch.op(aten.cos.default, z))
    ruleset = rules("""
rule wrong_guard:
    match $e = enter($device, *_) ... exit($e)
    where $device == 'cuda'
    inline
rule regions:
    match $e = enter(*$mode) ... exit($e)
    outline with autocast_hop(*$mode)
""")
    items, problems = find_regions(gm.graph.nodes, ruleset.index)
    assert problems == []
    decisions = decide.decide_regions(items, gm, CONTEXT, ruleset.index.markers, "")
    (decision,) = decisions.decisions.values()
    assert decision.rule.name == "regions"
    assert [r.rule.name for r in decision.rejected] == ["wrong_guard"]
    assert decision.interface == decide.Interface((x,), (), (z,))
    assert decision.bindings["mode"] == ("cpu", torch.bfloat16, True, False)


# --- markers by op packet and overload, as in DAG patterns --------------------------------------
def bracketed(opener, closer):
    """x -> opener(x) -> relu -> closer(opener) -> out: aten ops standing in for markers."""
    sketch = Sketch()
    x = sketch.input("x")
    opened = sketch.op(opener, x)
    y = sketch.op(aten.relu.default, x)
    sketch.op(closer, opened)
    return sketch.finish(y)


@pytest.mark.parametrize("opener, closer", [("sin", "cos"), ("sin.default", "cos"),
                                            ("sin", "cos.default"),
                                            ("sin.default", "cos.default")],
                         ids=["packets", "overload_opener", "overload_closer", "overloads"])
def test_region_markers_match_as_packets_or_overloads(opener, closer):
    gm = bracketed(aten.sin.default, aten.cos.default)
    ruleset = engine.rules_from_text(f"""
use torch.ops.aten.{opener} as opener
use torch.ops.aten.{closer} as closer
rule r:
    match $o = opener($x) ... closer($o)
    inline
""")
    result = ruleset.rewrite(gm)
    assert result.report.counts() == {"r": 1}
    assert [n.target for n in result.module.graph.nodes if n.op == "call_function"] == [
        aten.relu.default]


def test_an_overload_marker_does_not_take_another_overload():
    gm = bracketed(aten.sin.default, aten.cos.default)
    ruleset = engine.rules_from_text("""
use torch.ops.aten.sin.out as opener
use torch.ops.aten.cos.out as closer
rule r:
    match $o = opener($x, out=_) ... closer($o, out=_)
    inline
""")
    result = ruleset.rewrite(gm)  # sin.default and cos.default are no markers here
    assert result.report.counts() == {}
    assert result.module is gm


def test_an_overload_and_its_packet_are_one_marker_kind():
    with pytest.raises(engine.RuleError) as caught:
        engine.rules_from_text("""
use torch.ops.aten.sin
use torch.ops.aten.sin.default as sin_default
use torch.ops.aten.cos
use torch.ops.aten.neg
rule a:
    match $o = sin_default($x) ... cos($o)
    inline
rule b:
    match $o = sin($x) ... neg($o)
    inline
""")
    # the same opener's op, closed two ways: one stack could not tell the regions apart
    assert [d.message for d in caught.value.diagnostics] == [
        "opens regions with the same call as rule `a` but closes them differently"]


def test_an_op_packet_names_its_overloads_as_markers_for_outlining():
    """The markers' uses do not make a value an input of an outlined region, whatever the
    overload: the closer uses the opener, and the opener stays out of the submodule."""
    gm = bracketed(aten.sin.default, aten.cos.default)
    result = engine.rules_from_text("""
use torch.ops.aten.sin
use torch.ops.aten.cos
use torch.ops.higher_order.wrap_with_autocast as hop
rule r:
    match $o = sin($x) ... cos($o)
    outline with hop('cpu', None, True, None)
""").rewrite(gm)
    body = result.module.submod_1
    assert [n.op for n in body.graph.nodes] == ["placeholder", "call_function", "output"]
    assert [n.target for n in result.module.graph.nodes if n.op == "call_function"] == [
        torch.ops.higher_order.wrap_with_autocast, operator.getitem]



# --- values: computed once for each kind of input -----------------------------------------------
def test_values_are_computed_once_for_inputs_of_one_kind():
    evaluator = Evaluator()
    with FakeTensorMode() as mode:
        a, b = torch.empty(2, 3), torch.empty(2, 3)
    for tensor in (a, b):
        key = evaluator.key((tensor, 0), {})
        spec, value = evaluator.spec("call_function", aten.clamp_min.default, (tensor, 0), {},
                                     key)
        assert spec[:3] == ("tensor", torch.float32, (2, 3))
        assert (value is None) == (tensor is b)  # the second time: a lookup, nothing run
        assert value is None or value.fake_mode is mode
    assert len(evaluator.specs) == 1
    other = evaluator.key((a, 1), {})  # another literal is another key
    assert evaluator.spec("call_function", aten.clamp_min.default, (a, 1), {}, other)[1] \
        is not None


def test_symbolic_sizes_are_computed_every_time():
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    evaluator = Evaluator()
    with FakeTensorMode(shape_env=ShapeEnv()) as mode:
        x = torch.empty(mode.shape_env.create_unbacked_symint(), 3)
    assert evaluator.key((x,), {}) is None
    spec, value = evaluator.spec("call_function", aten.neg.default, (x,), {}, None)
    assert spec is None and value.shape[1] == 3


def test_apply_program_runs_torchs_verifier_on_the_result():
    class Sine(torch.nn.Module):
        def forward(self, x):
            return torch.sin(x)

    program = engine.capture(Sine(), (torch.randn(3, 3),))
    rules = engine.rules_from_text("use torch.ops.aten.sin\nuse operator.matmul\nrule r:\n"
                                   "    match sin($x)\n    replace with matmul($x, $x)\n")
    with pytest.raises(engine.GraphError, match="the rewritten program fails torch.export's "
                                                "verifier: .*matmul"):
        rules.apply_program(program)
    assert rules.apply(program.graph_module)[0] is not program.graph_module  # a graph module


# --- rules written alike: one structural match, runs passed over where their first guard fails
ALIKE = "".join(f"rule never_{i}:\n    match $f($x)\n    where dtype($x) == torch.float16 and "
                f"rank($x) == {i}\n    erase\n\n" for i in range(5)) + """
rule later_guard_fails:
    match $f($x)
    where dtype($x) == float32 and rank($x) == 7
    erase

rule same_first_guard_holds:
    match $f($x)
    where dtype($x) == float32 and rank($x) == 2
    replace with neg($x)

rule never_reached:
    match $f($x)
    replace with exp($x)
"""


def test_rules_written_alike_decide_as_each_tried_in_turn():
    gm, _ = chain(aten.sin.default, aten.relu.default)
    ruleset = rules(ALIKE)
    fast = decide.decide_dag_pass(gm, ruleset.dags, CONTEXT, "", Evaluator())
    each = decide.decide_dag_pass(gm, ruleset.dags, CONTEXT, "", Evaluator(), every_rejection=True)
    chosen = [(d.rule.name, d.roots[0].name) for d in fast.decisions]
    assert chosen == [(d.rule.name, d.roots[0].name) for d in each.decisions]
    assert chosen == [("same_first_guard_holds", "sin_default"),
                      ("same_first_guard_holds", "relu_default")]
    # Tried in turn, each rule before the one that applies is rejected at its guard there.
    assert [r.rule.name for r in each.rejections if r.node.name == "sin_default"] == [
        *(f"never_{i}" for i in range(5)), "later_guard_fails"]
    # The index groups the five `never_` rules in one run, and the next two in another.
    candidates = ruleset.dags.candidates(next(iter(gm.graph.find_nodes(
        op="call_function", target=aten.sin.default))))
    assert candidates.skip[:8] == [5, 5, 5, 5, 5, 7, 7, 8]
