"""Benchmark: a DAG rewrite as a rule, against torch's two pattern matchers, in the same run.

The rewrite: relu(add(a, b)) -> clamp_min(add(a, b), 0), in a chain of N occurrences
(x -> relu(add(x, y)) -> mul(_, 2) -> ..., 3 nodes each, so N = 3,000 is 9,003 nodes), as an
aten graph with fake values. Timed, best of a few runs, each on a freshly built graph:
- ours: `RuleSet.apply` with benchmarks/add_relu.rw (the rewritten module, compiled);
- replace_pattern: `torch.fx.subgraph_rewriter.replace_pattern` with the same pattern and
  replacement as traced functions (it rewrites in place and recompiles);
- inductor: Inductor's `PatternMatcherPass` with `register_replacement` (its replacements are
  traced per match by `replace_by_example`), then one `recompile`.
Each result is checked: the same graph up to renaming (as a DAG: the matchers put new nodes in
different places) and the same numbers. Inductor is skipped above --inductor-max occurrences.

    .venv/bin/python benchmarks/bench_dag.py [--occurrences 3000 30000]
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import torch
import torch.fx
from torch._subclasses.fake_tensor import FakeTensorMode

import engine
from engine.graphs.equivalence import dag_difference

RULES = Path(__file__).resolve().parent / "add_relu.rw"
aten = torch.ops.aten


def pattern(a, b):
    return aten.relu.default(aten.add.Tensor(a, b))


def replacement(a, b):
    return aten.clamp_min.default(aten.add.Tensor(a, b), 0)


Y = "y"  # in a step's arguments: the second input


def chain_of(steps, nodes: int) -> torch.fx.GraphModule:
    """x, y -> the steps applied in turn to the running value, `nodes` of them: each step an op
    and its arguments after that value (`Y` for the input y); every value a fake f32[8, 8]."""
    with FakeTensorMode():
        value = torch.empty(8, 8)
    graph = torch.fx.Graph()
    x, y = graph.placeholder("x"), graph.placeholder("y")
    x.meta["val"] = y.meta["val"] = value
    for index in range(nodes):
        op, rest = steps[index % len(steps)]
        x = graph.call_function(op, (x, *(y if arg is Y else arg for arg in rest)))
        x.meta["val"] = value
    graph.output((x,))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def chain(occurrences: int) -> torch.fx.GraphModule:
    return chain_of([(aten.add.Tensor, (Y,)), (aten.relu.default, ()), (aten.mul.Tensor, (2.0,))],
                    3 * occurrences)


def timed(runs: int, make, work):
    """Best time of `work(make())` over `runs`, the input made outside the timing."""
    best, result = float("inf"), None
    for _ in range(runs):
        subject = make()
        result = None
        gc.collect()
        start = time.perf_counter()
        result = work(subject)
        best = min(best, time.perf_counter() - start)
    return best, result


def with_replace_pattern(gm):
    torch.fx.subgraph_rewriter.replace_pattern(gm, pattern, replacement)
    return gm


def inductor_pass():
    from torch._inductor.pattern_matcher import PatternMatcherPass, fwd_only, register_replacement

    matcher = PatternMatcherPass()
    example = [torch.empty(8, 8), torch.empty(8, 8)]
    register_replacement(pattern, replacement, example, fwd_only, matcher)

    def run(gm):
        matcher.apply(gm.graph)
        gm.recompile()
        return gm

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--occurrences", type=int, nargs="+", default=[3000, 30000])
    parser.add_argument("--inductor-max", type=int, default=3000)
    parser.add_argument("--replace-pattern-max", type=int, default=30000,
                        help="skip replace_pattern above this many occurrences (superlinear)")
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    rules = engine.load_rules(RULES)
    inductor = inductor_pass()
    inputs = (torch.randn(8, 8), torch.randn(8, 8))
    print(f"{'matches':>8} {'nodes':>7} {'ours s':>8} {'us/node':>8} {'replace_pattern s':>17} "
          f"{'ratio':>7} {'inductor s':>10} {'ratio':>7}")
    for occurrences in options.occurrences:
        gm = chain(occurrences)
        nodes = len(gm.graph.nodes)
        expected = gm(*inputs)
        ours, (module, _) = timed(options.runs, lambda: gm, rules.apply)
        torch.testing.assert_close(module(*inputs), expected)
        row = f"{occurrences:>8} {nodes:>7} {ours:8.3f} {ours / nodes * 1e6:8.1f} "
        if occurrences <= options.replace_pattern_max:
            theirs_time, theirs = timed(1, lambda: chain(occurrences), with_replace_pattern)
            assert dag_difference(module, theirs) is None, dag_difference(module, theirs)
            row += f"{theirs_time:17.3f} {theirs_time / ours:6.1f}x"
        else:
            row += f"{'-':>17} {'-':>7}"
        if occurrences <= options.inductor_max:
            inductor_time, induced = timed(1, lambda: chain(occurrences), inductor)
            assert dag_difference(module, induced) is None, dag_difference(module, induced)
            row += f" {inductor_time:10.3f} {inductor_time / ours:6.1f}x"
        print(row, flush=True)


if __name__ == "__main__":
    main()
