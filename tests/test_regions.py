"""Region rules on hand-built graphs: which regions match, what the outline builds, and how the
driver treats modules it does not change."""

from __future__ import annotations

import operator
from pathlib import Path

import torch
import torch.fx

import engine
from tests.graphs import ENTER, Sketch, aten

HOP = torch.ops.higher_order.wrap_with_autocast
AUTOCAST = engine.load_rules(Path(__file__).resolve().parent.parent / "rules" / "autocast.rw")
USES = """
use torch.amp.autocast_mode._enter_autocast as enter
use torch.amp.autocast_mode._exit_autocast as exit
use torch.ops.higher_order.wrap_with_autocast as hop
use torch.bfloat16
"""


def rules(text: str) -> engine.RuleSet:
    return engine.rules_from_text(USES + text)


def disabled_around_enabled() -> torch.fx.GraphModule:
    """x -> [disabled: sin, [enabled: mm], cos] -> out."""
    sketch = Sketch()
    x = sketch.input("x")
    outer = sketch.enter("cpu", torch.bfloat16, False, False)
    a = sketch.op(aten.sin.default, x)
    inner = sketch.enter("cpu", torch.bfloat16, True, False)
    b = sketch.op(aten.mm.default, a, a)
    sketch.exit(inner)
    c = sketch.op(aten.cos.default, b)
    sketch.exit(outer)
    return sketch.finish(c)


def targets(gm: torch.fx.GraphModule) -> list:
    return [node.target for node in gm.graph.nodes if node.op == "call_function"]


def test_a_region_whose_opener_matches_no_rule_stays_and_its_inner_regions_are_outlined():
    only_enabled = rules("""
rule enabled_regions:
    match $e = enter(_, _, True, _) ... exit($e)
    outline with hop('cpu', bfloat16, True, False)
""")
    gm = disabled_around_enabled()
    result = only_enabled.rewrite(gm)
    assert targets(result.module) == [
        ENTER, aten.sin.default, HOP, operator.getitem, aten.cos.default,
        torch.amp.autocast_mode._exit_autocast]
    hop = next(n for n in result.module.graph.nodes if n.target is HOP)
    assert targets(getattr(result.module, hop.args[4].target)) == [aten.mm.default]
    assert result.report.counts() == {"enabled_regions": 1}
    x = torch.randn(4, 4)
    torch.testing.assert_close(result.module(x), gm(x), rtol=0, atol=0)


def test_rules_sharing_an_opener_try_in_file_order():
    two = rules("""
rule disabled_regions:
    match $e = enter(_, _, False, _) ... exit($e)
    outline with hop('cpu', None, False, False)

rule other_regions:
    match $e = enter(*$mode) ... exit($e)
    outline with hop(*$mode)
""")
    result = two.rewrite(disabled_around_enabled())
    assert result.report.counts() == {"disabled_regions": 1, "other_regions": 1}
    outer = next(n for n in result.module.graph.nodes if n.target is HOP)
    assert outer.args[:4] == ("cpu", None, False, False)
    inner = next(n for n in result.module.submod_1.graph.nodes if n.target is HOP)
    assert inner.args[:4] == ("cpu", torch.bfloat16, True, False)
    assert [m.rule for m in result.report.matches] == ["disabled_regions", "other_regions"]


def test_a_closer_that_does_not_name_its_opener_pairs_by_nesting():
    by_nesting = rules("""
rule regions:
    match enter(*$mode) ... exit(_)
    outline with hop(*$mode)
""")
    gm = disabled_around_enabled()
    assert engine.dump(by_nesting.apply(gm)[0]) == engine.dump(AUTOCAST.apply(gm)[0])


def test_template_arguments_come_from_bindings_and_literals():
    picked = rules("""
rule regions:
    match $e = enter($device, _, $enabled, *_) ... exit($e)
    outline with hop($device, bfloat16, $enabled, True)
""")
    module, _ = picked.apply(disabled_around_enabled())
    hop = next(n for n in module.graph.nodes if n.target is HOP)
    assert hop.args[:4] == ("cpu", torch.bfloat16, False, True)


def test_a_module_without_regions_comes_back_as_it_is():
    sketch = Sketch()
    x = sketch.input("x")
    gm = sketch.finish(sketch.op(aten.sin.default, x))
    signature = object()
    rewritten = AUTOCAST.rewrite(gm, signature)
    assert rewritten.module is gm and rewritten.signature is signature
    assert rewritten.report.matches == []


def test_a_module_held_twice_is_rewritten_once():
    branch = Sketch()
    x = branch.input("x")
    enter = branch.enter()
    y = branch.op(aten.mm.default, x, x)
    branch.exit(enter)
    shared = branch.finish(y)

    top = Sketch()
    x = top.input("x")
    first, second = top.graph.get_attr("first"), top.graph.get_attr("second")
    top.graph.output((x, first, second))
    root = torch.nn.Module()
    root.first = root.second = shared
    result = AUTOCAST.rewrite(torch.fx.GraphModule(root, top.graph))
    assert result.module.first is result.module.second
    assert result.module.first is not shared
    assert result.report.counts() == {"autocast_regions": 1}
    assert ENTER in targets(shared)  # the input is untouched


def test_new_submodules_avoid_attribute_names_the_graph_already_uses():
    sketch = Sketch()
    x = sketch.input("x")
    taken = sketch.graph.get_attr("submod_1")
    enter = sketch.enter()
    y = sketch.op(aten.mm.default, x, x)
    sketch.exit(enter)
    sketch.graph.output((y, taken))
    root = torch.nn.Module()
    root.register_buffer("submod_1", torch.ones(2))
    module, _ = AUTOCAST.apply(torch.fx.GraphModule(root, sketch.graph))
    assert isinstance(module.submod_1, torch.Tensor)
    assert isinstance(module.submod_2, torch.fx.GraphModule)


def test_module_calls_inside_a_region_move_into_its_submodule():
    root = torch.nn.Module()
    root.block = torch.nn.Module()
    root.block.lin = torch.nn.Linear(4, 4)
    sketch = Sketch()
    x = sketch.input("x")
    enter = sketch.enter()
    y = sketch.graph.call_module("block.lin", (x,))
    sketch.exit(enter)
    z = sketch.op(aten.cos.default, y)
    sketch.graph.output(z)
    gm = torch.fx.GraphModule(root, sketch.graph)
    module, _ = AUTOCAST.apply(gm)
    call = next(n for n in module.submod_1.graph.nodes if n.op == "call_module")
    assert call.target == "block_lin"
    assert module.submod_1.block_lin is root.block.lin
    x = torch.randn(2, 4)
    torch.testing.assert_close(module(x), gm(x), rtol=0, atol=0)
