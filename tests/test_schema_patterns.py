"""Patterns read calls as torch's schemas do: by argument name, defaults filled in, values read
as their parameter's type reads them. Every case is run through both matchers, which must
agree: the interpreter (`match_node`) and the compiled closure (`compile_node`)."""

from __future__ import annotations

import pytest
import torch

import engine
from engine.language import checked
from engine.matching.match import compile_node, match_node
from tests.graphs import Sketch, aten

USES = """
use torch.ops.aten.mean
use torch.ops.aten.mean.dim as mean_dim
use torch.ops.aten.sum
use torch.ops.aten.mul
use torch.ops.aten.add
use torch.ops.aten.native_dropout
use torch.ops.aten.gelu
use torch.ops.aten.relu
use torch.ops.aten.sin
use torch.ops.aten.cos
"""


def root_pattern(text: str) -> checked.NodePattern:
    rules = engine.rules_from_text(f"{USES}\nrule r:\n    match {text}\n    erase\n")
    (_, pattern), = rules.rules[0].pattern.roots
    return pattern.pattern if isinstance(pattern, checked.BindNode) else pattern


def matches(pattern_text: str, target, *args, **kwargs) -> dict | None:
    """What the pattern binds at a node `target(x, *args, **kwargs)`, or None; both matchers."""
    sketch = Sketch()
    x = sketch.input("x")
    node = sketch.op(target, x, *args, **kwargs)
    pattern = root_pattern(pattern_text)
    slow, fast = ({}, []), ({}, [])
    interpreted = match_node(pattern, node, *slow)
    compiled = compile_node(pattern)(node, *fast)
    assert interpreted == compiled, (pattern_text, node.format_node())
    if not interpreted:
        return None
    assert slow == fast
    return {name: (value.name if isinstance(value, torch.fx.Node) else value)
            for name, value in slow[0].items()}


MEAN = aten.mean.dim


@pytest.mark.parametrize("pattern", ["mean($x, [-1], keepdim=True)", "mean($x, [-1], True)",
                                     "mean_dim($x, keepdim=True, dim=[-1])"])
@pytest.mark.parametrize("args, kwargs", [(([-1], True), {}), (([-1],), {"keepdim": True}),
                                          ((), {"dim": [-1], "keepdim": True})],
                         ids=["positional", "keyword", "both_keywords"])
def test_an_argument_matches_by_name_however_either_side_gives_it(pattern, args, kwargs):
    assert matches(pattern, MEAN, *args, **kwargs) == {"x": "x"}


@pytest.mark.parametrize("args, kwargs, matched", [
    (([-1],), {}, True),                       # keepdim left out: its default
    (([-1], False), {}, True),                 # the default, spelled out
    (([-1],), {"keepdim": False}, True),
    (([-1], True), {}, False),                 # not the default
    (([-1],), {"dtype": torch.float64}, False),
    (([-1],), {"dtype": None}, True),
], ids=["left_out", "default_positional", "default_keyword", "other", "other_keyword_only",
        "none_keyword_only"])
def test_an_argument_the_pattern_leaves_out_must_have_its_default(args, kwargs, matched):
    assert (matches("mean($x, [-1])", MEAN, *args, **kwargs) is not None) is matched


def test_keywords_left_out_go_to_a_double_star():
    assert matches("mean($x, [-1], **_)", MEAN, [-1], True, dtype=torch.float64) == {"x": "x"}
    assert matches("mean($x, $d, **$kw)", MEAN, [-1], True) == {
        "x": "x", "d": [-1], "kw": {"keepdim": True}}
    assert matches("mean($x, $d, **$kw)", MEAN, [-1], False) == {"x": "x", "d": [-1], "kw": {}}


@pytest.mark.parametrize("pattern", ["mean($x, -1)", "mean($x, [-1])"])
@pytest.mark.parametrize("dims", [-1, [-1]], ids=["int", "list"])
def test_an_int_for_an_int_list_is_a_list_of_one(pattern, dims):
    assert matches(pattern, MEAN, dims) == {"x": "x"}
    assert matches(pattern.replace("-1", "0"), MEAN, dims) is None


def test_a_variable_binds_the_value_as_its_parameter_reads_it():
    assert matches("mean($x, $d)", MEAN, -1) == {"x": "x", "d": [-1]}
    assert matches("native_dropout($x, $p, _)", aten.native_dropout.default, 0, True) == {
        "x": "x", "p": 0.0}


@pytest.mark.parametrize("pattern, value, matched", [
    ("native_dropout($x, 0, _)", 0.0, True),    # `p` is a float: 0 is 0.0, either way round
    ("native_dropout($x, 0.0, _)", 0, True),
    ("native_dropout($x, 0.5, _)", 0.5, True),
    ("native_dropout($x, 1, _)", 0.5, False),
], ids=["int_pattern", "int_graph", "same", "other"])
def test_two_is_two_point_oh_where_the_schema_says_float(pattern, value, matched):
    node_matched = matches(pattern, aten.native_dropout.default, value, True) is not None
    assert node_matched is matched


@pytest.mark.parametrize("pattern, value, matched", [
    ("mul($x, 2)", 2, True), ("mul($x, 2.0)", 2.0, True),
    ("mul($x, 2)", 2.0, False), ("mul($x, 2.0)", 2, False),
], ids=["int", "float", "int_pattern", "float_pattern"])
def test_two_is_not_two_point_oh_where_the_schema_says_scalar_or_tensor(pattern, value, matched):
    """`mul(int_tensor, 2)` stays an integer tensor; `mul(int_tensor, 2.0)` becomes a float one."""
    assert (matches(pattern, aten.mul.Tensor, value) is not None) is matched
    assert (matches(pattern, aten.mul.Scalar, value) is not None) is matched


def test_a_keyword_only_argument_is_named_in_the_pattern():
    assert matches("gelu($x, approximate='tanh')", aten.gelu.default, approximate="tanh")
    assert matches("gelu($x)", aten.gelu.default, approximate="tanh") is None
    assert matches("gelu($x)", aten.gelu.default, approximate="none") == {"x": "x"}
    with pytest.raises(engine.RuleError) as caught:
        root_pattern("gelu($x, 'tanh')")
    assert "`approximate` is keyword-only: write `approximate=...`" in str(caught.value)


def test_a_packet_reads_each_overload_by_its_own_schema():
    """`sum($x, $d)` is `sum.dim_IntList(self, dim)`; `sum.default(self, *, dtype)` takes no
    second positional argument, so its nodes never match."""
    assert matches("sum($x, $d)", aten.sum.dim_IntList, [0]) == {"x": "x", "d": [0]}
    assert matches("sum($x, $d)", aten.sum.default) is None
    assert matches("sum($x)", aten.sum.default) == {"x": "x"}


def test_commutative_swaps_the_arguments_not_their_names():
    sketch = Sketch()
    x, y = sketch.input("x"), sketch.input("y")
    node = sketch.op(aten.add.Tensor, y, x, alpha=2)
    for text in ("commutative add($x, $y, alpha=2)", "commutative add($y, $x, alpha=2)"):
        pattern = root_pattern(text)
        slow, fast = {}, {}
        assert match_node(pattern, node, slow, []) and compile_node(pattern)(node, fast, [])
        assert slow == fast and {slow["x"].name, slow["y"].name} == {"x", "y"}
    both = root_pattern("commutative add($x, $x)")
    assert not match_node(both, node, {}, []) and not compile_node(both)(node, {}, [])


def test_a_rewrite_through_the_whole_pipeline_reads_calls_by_schema():
    sketch = Sketch()
    x = sketch.input("x")
    sketch.value = sketch.value[:, :1]
    positional = sketch.op(MEAN, x, [-1], True)
    keyword = sketch.op(MEAN, x, [-1], keepdim=True)
    gm = sketch.finish(positional, keyword)
    result = engine.rules_from_text(USES + """
use torch.ops.aten.amax
rule mean_as_sum:
    match mean($x, -1, keepdim=True)
    replace with amax($x, [-1], True)
""").rewrite(gm)
    assert result.report.counts() == {"mean_as_sum": 2}
