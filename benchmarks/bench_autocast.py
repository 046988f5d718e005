"""Benchmark: rules/autocast.rw against torch's `replace_autocast_with_hop_pass`, same run.

A chain of N autocast regions, each followed by one plain op (7 nodes a link: the two markers,
four ops inside, one outside), built directly as the raw graph torch.export hands its pass. For each N it times, best of a few runs:
- floor: one `graph_copy` plus one `recompile` of the same graph, the least a rewrite can cost;
- ours: `RuleSet.apply`: the rewritten module, compiled; the outlined submodules compile on
  first use (torch's `_LazyGraphModule`), which an exported program that is only saved never
  needs;
- ours+code: the same, then every submodule compiled too, the cost when all of it runs;
- torch: its pass (once; skipped above --torch-max regions: it is quadratic, minutes at 800).
It prints nodes, times and the ratios, and checks our result against torch's where both ran.

    .venv/bin/python benchmarks/bench_autocast.py [--regions 100 800 8000] [--torch-max 800]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.fx
from torch._export.passes.replace_autocast_with_hop_pass import replace_autocast_with_hop_pass
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx._lazy_graph_module import _LazyGraphModule

import engine
from engine.equivalence import alpha_difference

RULES = Path(__file__).resolve().parent.parent / "rules" / "autocast.rw"
aten = torch.ops.aten


def autocast_chain(regions: int) -> torch.fx.GraphModule:
    """x -> N x [enter, mul, add, relu, sin, exit, cos] -> output."""
    with FakeTensorMode():
        value = torch.empty(8, 8)
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    x.meta["val"] = value
    for _ in range(regions):
        enter = graph.call_function(torch.amp.autocast_mode._enter_autocast,
                                    ("cpu", torch.bfloat16, True, False))
        for op, extra in ((aten.mul.Tensor, (2.0,)), (aten.add.Tensor, (1.0,)),
                          (aten.relu.default, ()), (aten.sin.default, ())):
            x = graph.call_function(op, (x, *extra))
            x.meta["val"] = value
        graph.call_function(torch.amp.autocast_mode._exit_autocast, (enter,))
        x = graph.call_function(aten.cos.default, (x,))
        x.meta["val"] = value
    graph.output((x,))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def best_of(runs: int, work) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def copy_and_recompile(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    graph = torch.fx.Graph()
    graph.output(graph.graph_copy(gm.graph, {}))
    return torch.fx.GraphModule(gm, graph)


def apply_and_compile_all(rules, gm):
    module, signature = rules.apply(gm)
    for submodule in module.modules():
        if isinstance(submodule, _LazyGraphModule):
            submodule.real_recompile()
    return module, signature


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, nargs="+", default=[100, 200, 800, 8000])
    parser.add_argument("--torch-max", type=int, default=200,
                        help="run torch's pass only up to this many regions (default 200)")
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    rules = engine.load_rules(RULES)

    print(f"{'regions':>8} {'nodes':>7} {'floor s':>8} {'ours s':>8} {'ours/floor':>10} "
          f"{'us/node':>8} {'ours+code s':>11} {'/floor':>7} {'torch s':>8} {'torch/ours':>10}")
    for regions in options.regions:
        gm = autocast_chain(regions)
        nodes = len(gm.graph.nodes)
        floor, _ = best_of(options.runs, lambda: copy_and_recompile(gm))
        ours, (module, _) = best_of(options.runs, lambda: rules.apply(gm))
        compiled, _ = best_of(options.runs, lambda: apply_and_compile_all(rules, gm))
        torch_time = torch_ratio = "-"
        if regions <= options.torch_max:
            seconds, (theirs, _) = best_of(1, lambda: replace_autocast_with_hop_pass(gm, None))
            difference = alpha_difference(module, theirs)
            assert difference is None, difference
            torch_time, torch_ratio = f"{seconds:8.2f}", f"{seconds / ours:9.0f}x"
        print(f"{regions:>8} {nodes:>7} {floor:8.3f} {ours:8.3f} {ours / floor:9.2f}x "
              f"{ours / nodes * 1e6:8.1f} {compiled:11.3f} {compiled / floor:6.2f}x "
              f"{torch_time:>8} {torch_ratio:>10}", flush=True)


if __name__ == "__main__":
    main()
