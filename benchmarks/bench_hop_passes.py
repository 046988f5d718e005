"""Benchmark: our rule files against torch.export's HOP passes, timed in the same run.

Four workloads, each a chain of N links built directly as the raw graph torch.export hands its
passes (7 to 9 nodes a link):
- autocast: [enter, mul, add, relu, sin, exit, cos]: rules/autocast.rw vs
  `replace_autocast_with_hop_pass`;
- set_grad: [set_grad(False), mul, add, relu, sin, set_grad(True), cos]: rules/set_grad.rw vs
  `replace_set_grad_with_hop_pass`;
- mixed: [set_grad(False), enter, mul, add, exit, relu, set_grad(True), sin, cos]:
  rules/export.rw vs both passes in torch.export's order;
- side_by_side: [set_grad(False), mul, set_grad(True), enter, add, relu, exit, sin]: the same,
  a level holding both kinds, which torch splits twice (our names simulate both splits).
For each N it times, best of a few runs:
- floor: one `graph_copy` plus one `recompile` of the same graph, the least a rewrite can cost;
- ours: `RuleSet.apply`: the rewritten module, compiled; outlined submodules compile on first
  use (torch's `_LazyGraphModule`), which an exported program that is only saved never needs;
- ours+code: the same, then every submodule compiled too, the cost when all of it runs;
- torch: its passes (once; skipped above --torch-max links: they are quadratic).
It prints nodes, times and ratios, and checks our result against torch's where both ran.

    .venv/bin/python benchmarks/bench_hop_passes.py [--workload mixed] [--links 100 800 8000]
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import torch
import torch.fx
from torch._export.passes.replace_autocast_with_hop_pass import replace_autocast_with_hop_pass
from torch._export.passes.replace_set_grad_with_hop_pass import replace_set_grad_with_hop_pass
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx._lazy_graph_module import _LazyGraphModule

import engine
from engine.graphs.equivalence import alpha_difference

RULES = Path(__file__).resolve().parent.parent / "rules"
aten = torch.ops.aten
ENTER, EXIT = torch.amp.autocast_mode._enter_autocast, torch.amp.autocast_mode._exit_autocast
SET_GRAD = torch._C._set_grad_enabled

# One link of each chain: ("op", target, *extra args) for a value, or ("marker", target, *args).
LINKS = {
    "autocast": [("enter",), ("op", aten.mul.Tensor, 2.0), ("op", aten.add.Tensor, 1.0),
                 ("op", aten.relu.default), ("op", aten.sin.default), ("exit",),
                 ("op", aten.cos.default)],
    "set_grad": [("marker", SET_GRAD, False), ("op", aten.mul.Tensor, 2.0),
                 ("op", aten.add.Tensor, 1.0), ("op", aten.relu.default),
                 ("op", aten.sin.default), ("marker", SET_GRAD, True), ("op", aten.cos.default)],
    "mixed": [("marker", SET_GRAD, False), ("enter",), ("op", aten.mul.Tensor, 2.0),
              ("op", aten.add.Tensor, 1.0), ("exit",), ("op", aten.relu.default),
              ("marker", SET_GRAD, True), ("op", aten.sin.default), ("op", aten.cos.default)],
    "side_by_side": [("marker", SET_GRAD, False), ("op", aten.mul.Tensor, 2.0),
                     ("marker", SET_GRAD, True), ("enter",), ("op", aten.add.Tensor, 1.0),
                     ("op", aten.relu.default), ("exit",), ("op", aten.sin.default)],
}
WORKLOADS = {
    "autocast": ("autocast.rw", [replace_autocast_with_hop_pass]),
    "set_grad": ("set_grad.rw", [replace_set_grad_with_hop_pass]),
    "mixed": ("export.rw", [replace_set_grad_with_hop_pass, replace_autocast_with_hop_pass]),
    "side_by_side": ("export.rw",
                     [replace_set_grad_with_hop_pass, replace_autocast_with_hop_pass]),
}


def chain(workload: str, links: int) -> torch.fx.GraphModule:
    with FakeTensorMode():
        value = torch.empty(8, 8)
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    x.meta["val"] = value
    for _ in range(links):
        enter = None
        for kind, *rest in LINKS[workload]:
            if kind == "enter":
                enter = graph.call_function(ENTER, ("cpu", torch.bfloat16, True, False))
            elif kind == "exit":
                graph.call_function(EXIT, (enter,))
            elif kind == "marker":
                graph.call_function(rest[0], tuple(rest[1:]))
            else:
                x = graph.call_function(rest[0], (x, *rest[1:]))
                x.meta["val"] = value
    graph.output((x,))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def best_of(runs: int, work) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        result = None
        gc.collect()  # each run starts from a clean heap, whatever ran before it
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


def torch_passes(passes, gm):
    signature = None
    for torch_pass in passes:
        gm, signature = torch_pass(gm, signature)
    return gm


def run(workload: str, sizes: list[int], torch_max: int, runs: int) -> None:
    rule_file, passes = WORKLOADS[workload]
    rules = engine.load_rules(RULES / rule_file)
    print(f"\n{workload}: rules/{rule_file} vs {' + '.join(p.__name__ for p in passes)}")
    print(f"{'links':>6} {'nodes':>7} {'floor s':>8} {'ours s':>8} {'ours/floor':>10} "
          f"{'us/node':>8} {'ours+code s':>11} {'/floor':>7} {'torch s':>8} {'torch/ours':>10}")
    for links in sizes:
        gm = chain(workload, links)
        nodes = len(gm.graph.nodes)
        floor, _ = best_of(runs, lambda: copy_and_recompile(gm))
        ours, (module, _) = best_of(runs, lambda: rules.apply(gm))
        compiled, _ = best_of(runs, lambda: apply_and_compile_all(rules, gm))
        torch_time = torch_ratio = "-"
        if links <= torch_max:
            seconds, theirs = best_of(1, lambda: torch_passes(passes, gm))
            difference = alpha_difference(module, theirs)
            assert difference is None, difference
            torch_time, torch_ratio = f"{seconds:8.2f}", f"{seconds / ours:9.0f}x"
        print(f"{links:>6} {nodes:>7} {floor:8.3f} {ours:8.3f} {ours / floor:9.2f}x "
              f"{ours / nodes * 1e6:8.1f} {compiled:11.3f} {compiled / floor:6.2f}x "
              f"{torch_time:>8} {torch_ratio:>10}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    parser.add_argument("--links", type=int, nargs="+", default=[100, 200, 800, 8000])
    parser.add_argument("--torch-max", type=int, default=200,
                        help="run torch's passes only up to this many links (default 200)")
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    for workload in WORKLOADS if options.workload == "all" else [options.workload]:
        run(workload, options.links, options.torch_max, options.runs)


if __name__ == "__main__":
    main()
