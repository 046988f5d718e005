"""engine.backend: rules applied to the graphs Dynamo hands torch.compile backends."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

import engine
from tests.oracle import ENTER, SET_GRAD, nodes

EXPORT = engine.load_rules(Path(__file__).resolve().parent.parent / "rules" / "export.rw")


class Mixed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(8, 8) / 8)

    def forward(self, x):
        a = x @ self.w
        with torch.no_grad():
            b = a.sin()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            c = a @ self.w
            with torch.no_grad():
                e = c @ self.w
            with torch.autocast("cpu", enabled=False):
                d = c.float() + b
        return d + a, e


class Recorder:
    """An inner backend that keeps the graphs it is given and runs them as they are."""

    def __init__(self):
        self.graphs: list[torch.fx.GraphModule] = []

    def __call__(self, gm, example_inputs):
        self.graphs.append(gm)
        return gm.forward


def _compare(compiled, model, x):
    x_eager, x_compiled = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected, actual = model(x_eager), compiled(x_compiled)
    assert [o.requires_grad for o in actual] == [o.requires_grad for o in expected]
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    expected[0].sum().backward()
    actual[0].sum().backward()
    torch.testing.assert_close(x_compiled.grad, x_eager.grad)


def test_the_inner_backend_gets_a_graph_without_markers():
    torch._dynamo.reset()
    recorder = Recorder()
    model = Mixed()
    compiled = torch.compile(copy.deepcopy(model), backend=engine.backend(EXPORT, inner=recorder))
    _compare(compiled, model, torch.randn(8, 8))
    (graph,) = recorder.graphs
    graph.graph.lint()
    assert not nodes(graph, ENTER) and not nodes(graph, SET_GRAD)
    assert len(nodes(graph, torch.ops.higher_order.wrap_with_set_grad_enabled)) == 2
    text = engine.dump(graph)
    assert "operator.matmul(l_x_, l_self_parameters_w_)" in text  # torch-level ops, as Dynamo made
    assert "b: (f32[8, 8],) = higher_order.wrap_with_set_grad_enabled(False" in text


def test_numbers_and_gradients_equal_eager_through_aot_autograd():
    torch._dynamo.reset()
    model = Mixed()
    backend = engine.backend(Path(__file__).resolve().parent.parent / "rules" / "export.rw",
                             inner="aot_eager")
    _compare(torch.compile(copy.deepcopy(model), backend=backend), model, torch.randn(8, 8))


def test_dynamic_shapes():
    torch._dynamo.reset()
    model = Mixed()
    compiled = torch.compile(copy.deepcopy(model), backend=engine.backend(EXPORT, "aot_eager"),
                             dynamic=True)
    for rows in (4, 6, 9):
        _compare(compiled, model, torch.randn(rows, 8))


def test_default_inner_backend_is_inductor():
    torch._dynamo.reset()
    model = Mixed()
    compiled = torch.compile(copy.deepcopy(model), backend=engine.backend(EXPORT))
    x = torch.randn(8, 8)
    torch.testing.assert_close(compiled(x), model(x))


def test_dag_rules_apply_to_dynamo_graphs_too():
    """Dynamo's graphs hold torch-level calls: `operator.mul` and `call_method` nodes."""
    torch._dynamo.reset()
    recorder = Recorder()

    def f(x):
        return (x * 1).sin().sin() + x.cos()

    rules = engine.rules_from_text("""
use operator.mul
rule times_one:
    match mul($x, 1)
    replace with $x

rule sine_twice:
    match $x.sin().sin()
    replace with $x.sin().neg().neg().sin()
""")
    compiled = torch.compile(f, backend=engine.backend(rules, inner=recorder))
    x = torch.randn(4)
    torch.testing.assert_close(compiled(x), f(x))
    (graph,) = recorder.graphs
    text = engine.dump(graph)
    assert "operator.mul" not in text and "method neg" in text
