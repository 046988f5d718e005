"""Benchmark: `torch.export.export` end to end, with torch's HOP passes and with the rules
installed as them (`engine.torch_export_passes`), in the same run.

The model: N small transformer blocks (attention, then an MLP), each with an autocast region
(the attention, in bfloat16) and a `no_grad` block (a running statistic of its output), as
people write them. For each N: the whole export (best of --runs, each on a fresh model), the
time spent inside the two passes (wrapped with a timer), and their share of the export; then
the first call of the exported program's module (which compiles its lazy Python code, and
runs it), torch's and ours, against the floor, one `graph_copy` plus `recompile` of the same
graph. Each result is checked: the
program with the rules runs as torch's does on the same inputs.

    .venv/bin/python benchmarks/bench_export.py [--layers 8 32 128] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time
import warnings

import torch
import torch._export.passes.replace_autocast_with_hop_pass as autocast_pass
import torch._export.passes.replace_set_grad_with_hop_pass as set_grad_pass

import engine


class Block(torch.nn.Module):
    def __init__(self, width: int = 32, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.out = torch.nn.Linear(width, width)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(width, 2 * width), torch.nn.GELU(),
                                       torch.nn.Linear(2 * width, width))
        self.norm = torch.nn.LayerNorm(width)
        self.register_buffer("seen", torch.zeros(width))

    def forward(self, x):
        b, s, w = x.shape
        with torch.autocast("cpu", dtype=torch.bfloat16):
            q, k, v = self.qkv(self.norm(x)).view(b, s, 3, self.heads, -1).unbind(2)
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
            attention = torch.softmax(q @ k.transpose(-2, -1) / 8.0, dim=-1) @ v
        x = x + self.out(attention.transpose(1, 2).reshape(b, s, w).float())
        with torch.no_grad():
            self.seen.mul_(0.9).add_(x.detach().mean((0, 1)), alpha=0.1)
        return x + self.mlp(x)


def model(layers: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(*(Block() for _ in range(layers)))


@contextlib.contextmanager
def timing_passes(clock: list[float]):
    """Adds the time spent in both HOP passes (whichever are installed) to `clock[0]`."""
    originals = (set_grad_pass.replace_set_grad_with_hop_pass,
                 autocast_pass.replace_autocast_with_hop_pass)

    def timed(run):
        def wrapper(gm, signature):
            start = time.perf_counter()
            try:
                return run(gm, signature)
            finally:
                clock[0] += time.perf_counter() - start
        return wrapper

    set_grad_pass.replace_set_grad_with_hop_pass = timed(originals[0])
    autocast_pass.replace_autocast_with_hop_pass = timed(originals[1])
    try:
        yield
    finally:
        set_grad_pass.replace_set_grad_with_hop_pass, \
            autocast_pass.replace_autocast_with_hop_pass = originals


def export(layers: int, ours: bool, runs: int):
    """Best total and pass time over `runs` exports; the last program."""
    best_total, best_passes, program = float("inf"), float("inf"), None
    x = torch.randn(2, 8, 32)
    for _ in range(runs):
        fresh, clock = model(layers), [0.0]
        with (engine.torch_export_passes() if ours else contextlib.nullcontext()), \
                timing_passes(clock):
            start = time.perf_counter()
            program = torch.export.export(fresh, (x,))
            total = time.perf_counter() - start
        best_total, best_passes = min(best_total, total), min(best_passes, clock[0])
    return best_total, best_passes, program


def first_call(program) -> float:
    """The first call of the program's module: its lazy code compiles then."""
    module, x = program.module(), torch.randn(2, 8, 32)
    start = time.perf_counter()
    module(x)
    return time.perf_counter() - start


def floor(program) -> float:
    """One copy of the program's graph and one recompile of it."""
    gm = program.graph_module
    start = time.perf_counter()
    graph = torch.fx.Graph()
    output = graph.graph_copy(gm.graph, {})
    graph.output(output)
    torch.fx.GraphModule(gm, graph).recompile()
    return time.perf_counter() - start


def check(theirs, ours) -> None:
    x = torch.randn(2, 8, 32)
    expected = theirs.module()(x)
    torch.testing.assert_close(ours.module()(x), expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # torch's deprecation notes while it exports
    for ours in (False, True):  # warm-up: torch.export's first call imports and caches
        export(1, ours, 1)
    print(" layers  nodes | export: torch s  ours s  ratio | passes: torch s  share  "
          "ours s  share  ratio | first call: torch s  ours s  floor s  /floor")
    for layers in args.layers:
        torch_total, torch_passes, theirs = export(layers, False, args.runs)
        our_total, our_passes, ours = export(layers, True, args.runs)
        check(theirs, ours)
        nodes = sum(len(m.graph.nodes) for m in ours.graph_module.modules()
                    if isinstance(m, torch.fx.GraphModule))
        their_call, call = first_call(copy.deepcopy(theirs)), first_call(copy.deepcopy(ours))
        base = floor(ours)
        print(f"{layers:7d} {nodes:6d} | {torch_total:15.2f} {our_total:7.2f} "
              f"{torch_total / our_total:5.2f}x | {torch_passes:15.3f} "
              f"{torch_passes / torch_total:5.0%} {our_passes:7.3f} "
              f"{our_passes / our_total:5.0%} {torch_passes / our_passes:5.1f}x | "
              f"{their_call:19.3f} {call:7.3f} {base:8.3f} {call / base:6.2f}x")


if __name__ == "__main__":
    main()
