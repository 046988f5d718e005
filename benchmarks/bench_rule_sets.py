"""Benchmark: a big rule set on a big graph, against a small one, in the same run.

The graph: a chain of N nodes (10,000 by default) cycling through a few ops (`add`, `mul`,
`sub`, `relu`, `neg`), each node's value a fake tensor. The rule sets, each timed on a freshly
built graph (best of a few runs), rules loaded outside the timing:
- 20 rules, over the chain's ops: `add`, `mul`... each with a guard that holds nowhere;
- 2,000 rules: those 20, and 1,980 more over 198 ops the chain does not use (10 each);
- 2,000 catch-all rules, `$f($x, $y)` with a guard that holds nowhere (dtype against a dtype
  the chain never has), each with its own guard.
Each set must leave the graph as it is (no guard holds). Printed: seconds a set, and the ratio
to the 20 rules: an index by op makes the 1,980 rules over other ops cost nothing at a node,
and grouping catch-all patterns makes one structural match serve them all.

    .venv/bin/python benchmarks/bench_rule_sets.py [--nodes 10000] [--rules 2000]
"""

from __future__ import annotations

import argparse
import gc
import time

import torch

import engine
from bench_dag import Y, chain_of

aten = torch.ops.aten
CHAIN_OPS = ("add", "mul", "sub")  # binary ops of the chain (relu and neg in between)


def _binary(name: str) -> bool:
    """An aten op with an overload of two tensors and nothing else required, out of place."""
    packet = getattr(aten, name, None)
    if packet is None or name.endswith("_"):
        return False
    for overload in packet.overloads():
        arguments = getattr(packet, overload)._schema.arguments
        required = [a for a in arguments if not a.has_default_value() and not a.kwarg_only]
        if len(required) == 2 and all(str(a.type) == "Tensor" for a in required) \
                and not any(a.kwarg_only and not a.has_default_value() for a in arguments):
            return True
    return False


BINARY_OPS = [name for name in sorted({n.split("::")[1].split(".")[0]
                                       for n in torch._C._dispatch_get_all_op_names()
                                       if n.startswith("aten::")})
              if name.isidentifier() and not name.startswith("_") and name not in CHAIN_OPS
              and _binary(name)]


def chain(nodes: int) -> torch.fx.GraphModule:
    return chain_of([(aten.add.Tensor, (Y,)), (aten.relu.default, ()), (aten.mul.Tensor, (Y,)),
                     (aten.neg.default, ()), (aten.sub.Tensor, (Y,))], nodes)


def rule_text(ops: list[str], count: int) -> str:
    """`count` rules, over the ops in turn: `op($x, $y) where dtype($x) == float16 and ...`."""
    uses = "".join(f"use torch.ops.aten.{op}\n" for op in ops)
    rules = "".join(f"rule {ops[i % len(ops)]}_{i}:\n    match {ops[i % len(ops)]}($x, $y)\n"
                    f"    where dtype($x) == torch.float16 and rank($y) == {i}\n"
                    f"    replace with $x\n\n" for i in sorted(range(count),
                                                            key=lambda i: i % len(ops)))
    return uses + "\n" + rules


def catch_all_text(count: int, own_first_guard: bool = False) -> str:
    """`$f($x, $y)` rules whose guard never holds: all beginning with the same condition, or
    each with its own (then each is one guard evaluated a node)."""
    first = "rank($y) == {i} and dtype($x) == torch.float16" if own_first_guard else \
        "dtype($x) == torch.float16 and rank($y) == {i}"
    return "".join(f"rule any_{i}:\n    match $f($x, $y)\n    where {first.format(i=i)}\n"
                   f"    replace with $x\n\n" for i in range(count))


def timed(rules, nodes: int, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        gm = chain(nodes)
        gc.collect()
        start = time.perf_counter()
        result = rules.rewrite(gm)
        best = min(best, time.perf_counter() - start)
        assert result.module is gm and not result.report.matches
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument("--rules", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    small = list(CHAIN_OPS)
    others = BINARY_OPS[:max(1, (options.rules - 21) // 7)]
    sets = {
        "21 rules over the chain's ops (7 an op)": rule_text(small, 21),
        f"{options.rules} rules: those, {options.rules - 21} over {len(others)} other ops":
            rule_text(small, 21).split("\n\n", 1)[0] + "\n" + rule_text(
                others, options.rules - 21) + rule_text(small, 21).split("\n\n", 1)[1],
        f"{options.rules} rules `$f($x, $y)`, one first guard": catch_all_text(options.rules),
        f"{options.rules} rules `$f($x, $y)`, each its own": catch_all_text(options.rules, True),
    }
    print(f"{'rule set':<52} {'load s':>7} {'rewrite s':>9} {'ratio':>7}")
    base = None
    for name, text in sets.items():
        start = time.perf_counter()
        rules = engine.rules_from_text(text)
        loaded = time.perf_counter() - start
        seconds = timed(rules, options.nodes, options.runs)
        base = base or seconds
        print(f"{name:<52} {loaded:7.2f} {seconds:9.3f} {seconds / base:6.1f}x", flush=True)


if __name__ == "__main__":
    main()
