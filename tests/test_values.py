"""`where` conditions over values (and, or, not, in, arithmetic, indexing, built-ins), the
values templates compute (`[shape($x)[-1]]`), and what the checker refuses about them. Each
predicate has a case that must hold and one that must not."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.fx
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import ShapeEnv

import engine
from tests.graphs import Sketch, aten

USES = """
use torch.ops.aten.relu.default as relu
use torch.ops.aten.mul.Tensor as mul
use torch.ops.aten.mul.Scalar as mul_scalar
use torch.ops.aten.add.Tensor as add
use torch.ops.aten.sum
use torch.ops.aten.view
use torch.ops.aten.sym_size
use torch.ops.aten.clamp_min
use torch.float16
use torch.bfloat16
"""


def fires(condition: str, gm: torch.fx.GraphModule, pattern: str = "relu($x)") -> bool:
    """Does `match PATTERN where CONDITION` fire on the graph?"""
    rules = engine.rules_from_text(
        f"{USES}\nrule r:\n    match $y = {pattern}\n    where {condition}\n    "
        f"replace with mul($x, $x)\n")
    return rules.rewrite(gm).report.counts().get("r", 0) > 0


def relu_of(*shape, dtype=torch.float32) -> torch.fx.GraphModule:
    sketch = Sketch(shape)
    if dtype != torch.float32:
        with sketch.value.fake_mode:
            sketch.value = torch.empty(*shape, dtype=dtype)
    x = sketch.input("x")
    return sketch.finish(sketch.op(aten.relu.default, x))


@pytest.mark.parametrize("condition, holds", [
    ("rank($x) == 2 and size($x, -1) == 8", True),
    ("rank($x) == 2 and size($x, -1) == 4", False),
    ("rank($x) == 3 or numel($x) == 32", True),
    ("rank($x) == 3 or numel($x) == 33", False),
    ("not rank($x) == 3", True),
    ("not (rank($x) == 2 and size($x, 0) == 4)", False),
    ("shape($x)[-1] == 8 and shape($x)[0] * shape($x)[1] == numel($x)", True),
    ("shape($x)[-1] % 8 == 1", False),
    ("(rank($x) - 1) * 4 == size($x, 0)", True),
    ("size($x, 1) // 3 == 2 and -size($x, 0) < 0", True),
    ("dtype($x) in (float16, bfloat16)", False),
    ("dtype($x) not in (float16, torch.bfloat16)", True),
    ("dtype($x) == torch.float32", True),
    ("dtype($x) != torch.float32", False),
    ("shape($x) == [4, 8]", True),
    ("shape($x)[5] == 8", False),  # no such item: unknown, so it does not hold
    ("not shape($x)[5] == 8", False),  # ... nor does its negation
], ids=lambda value: str(value))
def test_conditions_read_values(condition, holds):
    assert fires(condition, relu_of(4, 8)) is holds


def test_predicates_tell_tensors_literals_and_users():
    sketch = Sketch()
    x = sketch.input("x")
    product = sketch.op(aten.mul.Scalar, x, 2.0)
    gm = sketch.finish(product, sketch.op(aten.relu.default, product))
    pattern = "mul_scalar($x, $k)"
    assert fires("is_tensor($x) and is_literal($k)", gm, pattern)
    assert not fires("is_tensor($k)", gm, pattern)
    assert not fires("is_literal($x)", gm, pattern)
    assert fires("users($y) == 2", gm, pattern)  # the output and the relu
    assert not fires("users($y) == 1", gm, pattern)
    assert fires("$k > 1.5 and $k == 2", gm, pattern)  # numbers compare by value in `where`


def test_a_symbolic_size_holds_only_where_its_constraints_decide():
    shape_env = ShapeEnv()
    with FakeTensorMode(shape_env=shape_env) as mode:
        value = mode.from_tensor(torch.empty(4, 8), symbolic_context=None)
        batch = shape_env.create_unbacked_symint()
        torch._check(batch >= 2)
        value = torch.empty(batch, 8)
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    x.meta["val"] = value
    y = graph.call_function(aten.relu.default, (x,))
    y.meta["val"] = value
    graph.output((y,))
    gm = torch.fx.GraphModule(torch.nn.Module(), graph)
    assert fires("size($x, 1) == 8", gm)
    assert not fires("size($x, 0) == 4", gm)  # unknown: neither it nor its negation holds
    assert not fires("size($x, 0) != 4", gm)
    assert fires("size($x, 0) >= 2", gm)  # what the constraints say


# --- templates compute values before they build --------------------------------------------------
def test_a_template_takes_sizes_as_values():
    gm = relu_of(4, 8)
    result = engine.rules_from_text(USES + """
rule flatten_then_relu:
    match relu($x)
    replace with view(clamp_min($x, 0), [size($x, 0), shape($x)[-1]])
""").rewrite(gm)
    view = result.module.graph.output_node().args[0][0]
    assert view.target is aten.view.default and view.args[1] == [4, 8]


def test_a_symbolic_size_in_a_template_stays_symbolic():
    class Model(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x)

    program = engine.capture(Model(), (torch.randn(4, 8),),
                             dynamic_shapes=({0: torch.export.Dim("batch")},))
    rules = engine.rules_from_text(USES + """
rule r:
    match relu($x)
    replace with view(clamp_min($x, 0), [size($x, 0), shape($x)[-1]])
""")
    result = rules.apply_program(program)
    nodes = [n for n in result.graph.nodes if n.op == "call_function"]
    sizes = [n for n in nodes if n.target is aten.sym_size.int]
    assert len(sizes) == 1 and sizes[0].args[1] == 0
    view = next(n for n in nodes if n.target is aten.view.default)
    assert view.args[1] == [sizes[0], 8]
    for batch in (3, 7):
        x = torch.randn(batch, 8)
        torch.testing.assert_close(result.module()(x), torch.relu(x))


# --- the checker knows what each value is -----------------------------------------------------
@pytest.mark.parametrize("where, message", [
    ("dtype($k) == float16", "`dtype` takes a tensor; this is a number"),
    ("$x >= 0", "`>=` orders numbers; this is a tensor"),
    ("shape($x) + 1 == 2", "arithmetic takes numbers; this is a list"),
    ("rank($x)[0] == 1", "indexing takes a list; this is a number"),
    ("rank($x)", "a condition is a comparison or a predicate"),
    ("$x == 1.5", "compares a tensor with a number: never equal"),
    ("dtype($x) == torch.nn", "`torch.nn` is a module"),
    ("size($x)", "`size` takes 2 arguments, not 1"),
], ids=["dtype_of_a_number", "ordering_a_tensor", "arithmetic_on_a_list", "indexing_a_number",
        "number_as_condition", "tensor_and_number", "module", "arity"])
def test_a_value_of_the_wrong_kind_is_a_check_time_error(where, message):
    with pytest.raises(engine.RuleError, match="error: " + message.replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[").replace("$", r"\$")):
        engine.rules_from_text(USES + f"rule r:\n    match mul_scalar($x, $k)\n"
                                      f"    where {where}\n    erase\n")


def test_a_where_builtin_in_a_template_says_so():
    with pytest.raises(engine.RuleError, match="`is_tensor` is a built-in of `where` clauses"):
        engine.rules_from_text(USES + "rule r:\n    match relu($x)\n"
                                      "    replace with mul($x, is_tensor($x))\n")


# --- the RMSNorm of HF Llama, as a rule ---------------------------------------------------------
class LlamaRMSNorm(torch.nn.Module):
    """transformers' LlamaRMSNorm, as it is written there."""

    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


RMS_NORM = """
include "{repo}/rules/cleanup.rw"
use torch.ops.aten.mul.Tensor as mul
use torch.ops.aten.rsqrt
use torch.ops.aten.add
use torch.ops.aten.mean
use torch.ops.aten.pow
use torch.ops.aten.rms_norm

rule llama_rms_norm:
    match commutative mul($w, mul($x, rsqrt(add(mean(pow($x, 2), {mean_rest}), $eps))))
    where is_literal($eps) and rank($w) == 1 and shape($w)[0] == shape($x)[-1]
    replace with rms_norm($x, [shape($x)[-1]], $w, $eps)
"""


@pytest.mark.parametrize("mean_rest", ["-1, keepdim=True", "[-1], True", "-1, True"],
                         ids=["keyword", "positional", "int_dim"])
def test_llama_rms_norm_is_one_rule(mean_rest):
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    model, x = LlamaRMSNorm(16), torch.randn(2, 5, 16)
    rules = engine.rules_from_text(RMS_NORM.format(repo=repo, mean_rest=mean_rest))
    program, report = rules.rewrite_program(engine.capture(model, (x,)))
    assert report.counts()["llama_rms_norm"] == 1
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert targets == [aten.rms_norm.default]
    torch.testing.assert_close(program.module()(x), model(x))
    wrong_weight = LlamaRMSNorm(16)
    wrong_weight.weight = torch.nn.Parameter(torch.randn(1))  # broadcasts: not an RMSNorm weight
    _, report = rules.rewrite_program(engine.capture(wrong_weight, (x,)))
    assert "llama_rms_norm" not in report.counts()


# --- any op, and guards on which: `$f(...)` -------------------------------------------------------
ODD = """
use torch.ops.aten.neg
use torch.ops.aten.sin
use torch.ops.aten.tanh
rule odd_through_neg:
    # sin(-x) -> -sin(x), for any odd pointwise op named here
    match $f(neg($x))
    where is_pointwise($f) and $f in (sin, tanh, torch.ops.aten.atan)
    replace with neg($f($x))
"""


def unary_chain(*ops) -> torch.fx.GraphModule:
    sketch = Sketch()
    value = sketch.input("x")
    for op in ops:
        value = sketch.op(op, value)
    return sketch.finish(value)


def test_any_op_binds_its_target_and_a_template_calls_it():
    gm = unary_chain(aten.neg.default, aten.tanh.default)
    result = engine.rules_from_text(ODD).rewrite(gm)
    assert result.report.counts() == {"odd_through_neg": 1}
    assert [n.target for n in result.module.graph.nodes if n.op == "call_function"] == [
        aten.tanh.default, aten.neg.default]
    x = torch.randn(4, 4)
    torch.testing.assert_close(result.module(x), gm(x))


@pytest.mark.parametrize("op", [aten.cos.default, aten.relu.default, aten.t.default],
                         ids=["even", "not_named", "a_view"])
def test_any_op_is_held_by_its_guard(op):
    assert engine.rules_from_text(ODD).rewrite(unary_chain(aten.neg.default, op)).report.counts() \
        == {}


def test_is_view_tells_views():
    rules = engine.rules_from_text("""
use torch.ops.aten.clone
rule clone_of_a_view:
    match clone($v = $f($x, *_))
    where is_view($f)
    replace with clone($x)
""")
    gm = unary_chain(aten.t.default, aten.clone.default)
    assert rules.rewrite(gm).report.counts() == {"clone_of_a_view": 1}
    assert rules.rewrite(unary_chain(aten.neg.default, aten.clone.default)).report.counts() == {}


def test_a_named_rule_and_an_any_op_rule_keep_their_file_order():
    text = """
use torch.ops.aten.neg
use torch.ops.aten.tanh
rule {first}
rule {second}
"""
    named = "named:\n    match tanh(neg($x))\n    replace with neg(tanh($x))"
    anyop = "any:\n    match $f(neg($x))\n    where $f in (tanh,)\n    replace with neg($f($x))"
    gm = unary_chain(aten.neg.default, aten.tanh.default)
    for first, second in ((named, anyop), (anyop, named)):
        counts = engine.rules_from_text(text.format(first=first, second=second)).rewrite(
            gm).report.counts()
        assert list(counts) == [first.split(":")[0]]


def test_a_call_of_a_variable_that_is_no_op_is_refused():
    with pytest.raises(engine.RuleError, match=r"`\$x` is not an op"):
        engine.rules_from_text("use torch.ops.aten.neg\nrule r:\n    match neg($x)\n"
                               "    replace with $x($x)\n")


FLATTEN = USES + """
rule flatten_relu:
    match relu($x)
    where rank($x) == 3
    replace with view(clamp_min(view($x, [size($x, 0) * size($x, 1), -1]), 0), shape($x))
"""


def test_templates_do_integer_arithmetic_on_sizes():
    gm = relu_of(2, 3, 4)
    result = engine.rules_from_text(FLATTEN).rewrite(gm)
    views = [n for n in result.module.graph.nodes if n.target is aten.view.default]
    assert [v.args[1] for v in views] == [[6, -1], [2, 3, 4]]
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(result.module(x), gm(x))


def test_arithmetic_on_a_symbolic_size_is_a_node():
    class Model(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x)

    program = engine.capture(Model(), (torch.randn(2, 3, 4),),
                             dynamic_shapes=({0: torch.export.Dim("batch")},))
    result = engine.rules_from_text(FLATTEN).apply_program(program)
    products = [n for n in result.graph.nodes if n.target is operator.mul]
    assert len(products) == 1 and products[0].args[1] == 3
    for batch in (2, 5):
        x = torch.randn(batch, 3, 4)
        torch.testing.assert_close(result.module()(x), torch.relu(x))
