"""Graphs the rules cannot be applied to: a clear `GraphError`, and the input left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import engine
from tests.graphs import EXIT, Sketch, aten

RULES = engine.load_rules(Path(__file__).resolve().parent.parent / "rules" / "autocast.rw")


def _apply_expecting_error(gm) -> str:
    before = engine.dump(gm)
    with pytest.raises(engine.GraphError) as caught:
        RULES.apply(gm)
    assert engine.dump(gm) == before, "a failed rewrite changed its input"
    return str(caught.value)


def test_enter_without_exit_names_the_node_and_its_source_line():
    sketch = Sketch()
    x = sketch.input("x")
    sketch.enter(line=12)
    y = sketch.op(aten.sin.default, x)
    message = _apply_expecting_error(sketch.finish(y))
    assert message == ("error: `_enter_autocast` opens a region that is never closed\n"
                       "    `_enter_autocast`: from model.py:12 in forward: statement_12()")


def test_exit_without_enter():
    sketch = Sketch()
    x = sketch.input("x")
    y = sketch.op(aten.sin.default, x)
    sketch.op(EXIT, y, line=20)
    message = _apply_expecting_error(sketch.finish(y))
    assert message.startswith("error: `_exit_autocast` closes a region that is not open\n")
    assert "from model.py:20" in message


def test_crossing_regions_name_all_three_markers():
    sketch = Sketch()
    x = sketch.input("x")
    outer = sketch.enter(line=1)
    y = sketch.op(aten.sin.default, x)
    inner = sketch.enter(line=3)
    sketch.exit(outer, line=4)
    z = sketch.op(aten.cos.default, y)
    sketch.exit(inner, line=6)
    message = _apply_expecting_error(sketch.finish(z))
    assert message.splitlines() == [
        "error: regions cross: `_exit_autocast` closes the region of `_enter_autocast` while "
        "`_enter_autocast_1`, opened inside it, is still open",
        "    `_exit_autocast`: from model.py:4 in forward: statement_4()",
        "    `_enter_autocast`: from model.py:1 in forward: statement_1()",
        "    `_enter_autocast_1`: from model.py:3 in forward: statement_3()",
    ]


def test_every_problem_of_every_graph_is_reported():
    sketch = Sketch()
    x = sketch.input("x")
    sketch.enter(line=1)
    y = sketch.op(aten.sin.default, x)
    sketch.op(EXIT, y, line=3)
    with pytest.raises(engine.GraphError) as caught:
        RULES.apply(sketch.finish(y))
    assert [p.message.split(" ", 1)[0] for p in caught.value.problems] == [
        "`_exit_autocast`", "`_enter_autocast`"]


def test_problem_inside_a_nested_graph_names_the_submodule():
    branch = Sketch()
    x = branch.input("x")
    branch.enter(line=7)
    y = branch.op(aten.sin.default, x)
    branch_gm = branch.finish(y)

    top = Sketch()
    x = top.input("x")
    attr = top.graph.get_attr("branch")
    y = top.op(aten.cos.default, x)
    top.graph.output((y, attr))
    root = torch.nn.Module()
    root.branch = branch_gm
    gm = torch.fx.GraphModule(root, top.graph)
    message = _apply_expecting_error(gm)
    assert "(in submodule `branch`)" in message
    assert gm.branch is branch_gm


def test_marker_used_by_another_node():
    sketch = Sketch()
    x = sketch.input("x")
    enter = sketch.enter(line=1)
    y = sketch.op(aten.add.Tensor, x, enter, line=2)
    sketch.exit(enter)
    message = _apply_expecting_error(sketch.finish(y))
    assert message.startswith("error: `add_tensor` uses `_enter_autocast`, a region marker that rule "
                              "`autocast_regions` removes")


def test_unclosed_region_in_a_real_model_points_at_the_model_source():
    class NoExit(torch.nn.Module):
        def forward(self, x):
            torch.amp.autocast_mode._enter_autocast("cpu", torch.bfloat16, True, False)
            return x.sin()

    program = engine.capture(NoExit(), (torch.randn(2, 2),))
    with pytest.raises(engine.GraphError) as caught:
        RULES.apply_program(program)
    assert f"from {__file__}:" in str(caught.value)
    assert '_enter_autocast("cpu", torch.bfloat16, True, False)' in str(caught.value)


def _nested_autocast(depth: int) -> torch.fx.GraphModule:
    lines, value = ["def forward(x: f32[4]):"], "x"
    for level in range(depth):
        lines.append(f"    e{level}: None = torch.amp.autocast_mode._enter_autocast("
                     "'cpu', torch.bfloat16, True, False)")
        lines.append(f"    s{level}: f32[4] = aten.sin.default({value})")
        value = f"s{level}"
    lines += [f"    x{level}: None = torch.amp.autocast_mode._exit_autocast(e{level})"
              for level in reversed(range(depth))]
    return engine.parse_graph("\n".join(lines + [f"    return ({value},)"]) + "\n")


def test_regions_nest_a_hundred_deep_and_deeper_is_one_located_error():
    module, _ = RULES.apply(_nested_autocast(100))
    text = engine.dump(module)
    assert text.count("higher_order.wrap_with_autocast(") == 100
    for depth in (101, 10_000):
        message = _apply_expecting_error(_nested_autocast(depth))
        assert message.splitlines()[0] == ("error: `e100` opens a region 101 deep: regions and "
                                           "segments nest at most 100 deep")
        assert message.count("error:") == 1
