"""Segments, guards, inline, erase and include, on hand-built graphs."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.fx

import engine
from tests.graphs import ENTER, EXIT, Sketch, aten

SET_GRAD = torch._C._set_grad_enabled
HOP = torch.ops.higher_order.wrap_with_set_grad_enabled
USES = """
use torch.amp.autocast_mode._enter_autocast as enter
use torch.amp.autocast_mode._exit_autocast as exit
use torch._C._set_grad_enabled as set_grad
use torch.ops.higher_order.wrap_with_set_grad_enabled as grad_hop
use torch.ops.higher_order.wrap_with_autocast as autocast_hop
"""


def rules(text: str) -> engine.RuleSet:
    return engine.rules_from_text(USES + text)


def targets(gm: torch.fx.GraphModule) -> list:
    return [node.target for node in gm.graph.nodes if node.op == "call_function"]


def grad_segments() -> torch.fx.GraphModule:
    """x -> mm -> [set_grad(False): mm] -> [set_grad(True): add] -> out."""
    sketch = Sketch()
    x = sketch.input("x")
    a = sketch.op(aten.mm.default, x, x)
    sketch.op(SET_GRAD, False)
    b = sketch.op(aten.mm.default, a, a)
    sketch.op(SET_GRAD, True)
    c = sketch.op(aten.add.Tensor, a, b)
    return sketch.finish(c)


def test_guards_pick_segments_and_one_no_rule_takes_keeps_its_marker():
    only_false = rules("""
rule no_grad_segments:
    match set_grad($mode) ...
    where $mode == False
    outline with grad_hop($mode)
""")
    result = only_false.rewrite(grad_segments())
    assert targets(result.module) == [aten.mm.default, HOP, operator.getitem, SET_GRAD,
                                      aten.add.Tensor]
    assert result.report.counts() == {"no_grad_segments": 1}


def test_inline_drops_the_marker_and_keeps_the_nodes():
    dropped = rules("""
rule markers_go:
    match set_grad(_) ...
    inline
""")
    module, _ = dropped.apply(grad_segments())
    assert targets(module) == [aten.mm.default, aten.mm.default, aten.add.Tensor]


def test_inline_works_for_brackets_too():
    sketch = Sketch()
    x = sketch.input("x")
    enter = sketch.enter()
    y = sketch.op(aten.mm.default, x, x)
    sketch.exit(enter)
    module, _ = rules("""
rule no_autocast:
    match $e = enter(*_) ... exit($e)
    inline
""").apply(sketch.finish(y))
    assert targets(module) == [aten.mm.default]


def test_erase_drops_a_region_whose_values_are_unused():
    sketch = Sketch()
    x = sketch.input("x")
    enter = sketch.enter()
    sketch.op(aten.mm.default, x, x)
    sketch.exit(enter)
    y = sketch.op(aten.sin.default, x)
    erase = rules("""
rule dead_regions:
    match $e = enter(*_) ... exit($e)
    erase
""")
    module, _ = erase.apply(sketch.finish(y))
    assert targets(module) == [aten.sin.default]


def test_erase_refuses_a_region_whose_value_is_used_after():
    sketch = Sketch()
    x = sketch.input("x")
    enter = sketch.enter(line=3)
    y = sketch.op(aten.mm.default, x, x)
    sketch.exit(enter)
    z = sketch.op(aten.sin.default, y, line=6)
    gm = sketch.finish(z)
    with pytest.raises(engine.GraphError) as caught:
        rules("""
rule dead_regions:
    match $e = enter(*_) ... exit($e)
    erase
""").apply(gm)
    assert str(caught.value).splitlines()[0] == (
        "error: rule `dead_regions` erases `_enter_autocast` and what follows it, but "
        "`sin_default` uses `mm_default`, made there")
    assert ENTER in targets(gm)


def test_a_marker_cuts_an_open_bracket_that_no_rule_takes_and_reenters_it():
    """enter; mm; set_grad(False); mm; exit: the bracket is split, each piece re-entered, and
    the graph still computes what it did, in the same grad modes."""
    sketch = Sketch()
    x = sketch.input("x")
    enter = sketch.enter("cpu", torch.bfloat16, True, False)
    a = sketch.op(aten.mm.default, x, x)
    sketch.op(SET_GRAD, False)
    b = sketch.op(aten.mm.default, a, a)
    sketch.exit(enter)
    sketch.op(SET_GRAD, True)
    gm = sketch.finish(a, b)
    cut = rules("""
rule never:
    match $e = enter(_, _, _, 'never') ... exit($e)
    outline with autocast_hop()

rule no_grad_segments:
    match set_grad($mode) ...
    where $mode != grad_enabled()
    outline with grad_hop($mode)

rule grad_kept:
    match set_grad($mode) ...
    inline
""")
    module, _ = cut.apply(gm)
    assert targets(module) == [ENTER, aten.mm.default, EXIT, HOP, operator.getitem]
    hop = next(node for node in module.graph.nodes if node.target is HOP)
    assert targets(getattr(module, hop.args[1].target)) == [ENTER, aten.mm.default, EXIT]
    x = torch.randn(4, 4, requires_grad=True)
    expected, actual = gm(x), module(x)
    torch.set_grad_enabled(True)  # the raw graph leaves grad mode as its last marker set it
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    assert [t.requires_grad for t in actual] == [t.requires_grad for t in expected] == [True, False]


def test_a_marker_of_another_kind_carries_a_segment_on():
    """A1; x; B1; y; A2; z: z runs in B1's state too, so B's segment goes on inside A2's."""
    text = """
use operator.pos as mark_a
use operator.neg as mark_b

rule a_segments:
    match mark_a(_) ...
    outline with grad_hop(False)

rule b_segments:
    match mark_b(_) ...
    outline with grad_hop(True)
"""
    sketch = Sketch()
    x = sketch.input("x")
    sketch.op(operator.pos, 1)
    y = sketch.op(aten.sin.default, x)
    sketch.op(operator.neg, 1)
    z = sketch.op(aten.cos.default, y)
    sketch.op(operator.pos, 2)
    w = sketch.op(aten.tan.default, z)
    result = rules(text).rewrite(sketch.finish(w))
    notes = [(m.rule, m.node, m.note) for m in result.report.matches]
    assert notes == [("a_segments", "pos", ""), ("b_segments", "neg", ""),
                     ("a_segments", "pos_1", ""),
                     ("b_segments", "neg", "carried on past a marker of another kind")]
    second = getattr(result.module, [n for n in result.module.graph.nodes
                                     if n.op == "get_attr"][-1].target)
    assert targets(second) == [HOP, operator.getitem]  # B's continuation, inside A2's body


def test_included_rules_come_where_they_are_included(tmp_path):
    (tmp_path / "first.rw").write_text(USES + """
rule from_first:
    match set_grad($mode) ...
    inline
""")
    (tmp_path / "second.rw").write_text(USES + """
include "first.rw"
rule from_second:
    match $e = enter(*_) ... exit($e)
    inline
""")
    (tmp_path / "top.rw").write_text(USES + """
include "first.rw"
rule from_top:
    match $e = enter(*$mode) ... exit($e)
    outline with autocast_hop(*$mode)
include "second.rw"
""")
    loaded = engine.load_rules(tmp_path / "top.rw")
    assert [rule.name for rule in loaded.rules] == ["from_first", "from_top", "from_second"]
