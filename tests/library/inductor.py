"""Our attention rules beside Inductor's `fuse_attention` pass, on the same written-out
attention: what each fuses, and whether the numbers stay eager's.

Each family is a function of (batch, heads, seq, d) tensors, or (batch, seq, heads, d) where it
permutes them inside, written as people write attention. Inductor: `torch.compile` on CPU, its
`fuse_attention` counter read after one call. Ours: `torch.export` then rules/cleanup.rw and
rules/attention.rw, the sdpa calls counted. Both compared with eager (largest difference): the
table says which side of two bounds it is on, within TOLERANCE (eager's) or past WRONG (off),
never the difference itself, which moves with the kernels and thread counts.

`python -m tests.library.inductor` prints the table the README shows.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
SDPA = torch.ops.aten.scaled_dot_product_attention.default


def plain(q, k, v, mask, keep):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1) @ v


def multiplied(q, k, v, mask, keep):
    return torch.matmul(q, k.transpose(-2, -1)).mul(0.125).softmax(dim=-1).matmul(v)


def additive_mask(q, k, v, mask, keep):
    return torch.softmax(q @ k.transpose(-2, -1) / 8.0 + mask, dim=-1) @ v


def mask_first(q, k, v, mask, keep):
    return torch.softmax(mask + q @ k.transpose(-2, -1) / 8.0, dim=-1) @ v


def query_scaled_first(q, k, v, mask, keep):
    return torch.softmax((q / math.sqrt(q.size(-1))) @ k.transpose(-2, -1), dim=-1) @ v


def bshd_permuted(q, k, v, mask, keep):
    q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))
    return torch.matmul(q, k.transpose(-2, -1)).div(8.0).softmax(dim=-1).matmul(v)


def hf_eager(q, k, v, mask, keep):
    weights = torch.softmax(torch.matmul(q, k.transpose(2, 3)) * 0.125 + mask, dim=-1,
                            dtype=torch.float32).to(q.dtype)
    return torch.matmul(F.dropout(weights, p=0.1, training=False), v)


def causal_masked_fill(q, k, v, mask, keep):
    scores = torch.matmul(q, k.transpose(-2, -1)).div(8.0)
    return torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1).matmul(v)


def softmax_over_queries(q, k, v, mask, keep):
    return torch.matmul(q, k.transpose(-2, -1)).div(8.0).softmax(dim=-2).matmul(v)


def value_permuted_0231(q, k, v, mask, keep):
    q, k = (t.permute(0, 2, 1, 3) for t in (q, k))
    return torch.matmul(q, k.transpose(-2, -1)).div(8.0).softmax(dim=-1).matmul(
        v.permute(0, 2, 3, 1))


def weights_returned(q, k, v, mask, keep):
    weights = torch.softmax(q @ k.transpose(-2, -1) / 8.0, dim=-1)
    return weights @ v, weights


@dataclass(frozen=True)
class Family:
    name: str
    function: Callable
    bshd: bool = False  # inputs (batch, seq, heads, d)
    fusable: bool = True  # one sdpa computes it


FAMILIES = (
    Family("q @ kᵀ / sqrt(d)", plain),
    Family("q @ kᵀ * s", multiplied),
    Family("q @ kᵀ / s + mask", additive_mask),
    Family("mask + q @ kᵀ / s", mask_first),
    Family("(q / sqrt(d)) @ kᵀ", query_scaled_first),
    Family("(b, s, h, d) inputs permuted inside", bshd_permuted, bshd=True),
    Family("HF eager: softmax in float32, cast back, dropout off", hf_eager),
    Family("causal bool mask by masked_fill(-inf)", causal_masked_fill),
    Family("near miss: softmax over the queries (dim -2)", softmax_over_queries,
           fusable=False),
    Family("v permuted [0, 2, 3, 1] inside, not [0, 2, 1, 3]", value_permuted_0231, bshd=True),
    Family("near miss: the weights returned too", weights_returned, fusable=False),
)


def inputs(family: Family) -> tuple:
    generator = torch.Generator().manual_seed(0)
    shape = (2, 8, 4, 8) if family.bshd else (2, 4, 8, 8)  # seq == d: [0, 2, 3, 1] type-checks
    q, k, v = (torch.randn(shape, generator=generator) for _ in range(3))
    keep = torch.ones(8, 8, dtype=torch.bool).tril()
    mask = torch.randn(1, 1, 8, 8, generator=generator)
    return q, k, v, mask, keep


class _Module(torch.nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, *args):
        return self.function(*args)


def _error(ours, eager) -> float:
    ours = ours if isinstance(ours, tuple) else (ours,)
    eager = eager if isinstance(eager, tuple) else (eager,)
    return max((a - b).abs().max().item() for a, b in zip(ours, eager))


@dataclass(frozen=True)
class Result:
    fused: int  # sdpa calls made
    error: float  # largest difference from eager


@functools.cache  # both tests of a family ask
def ours(family: Family) -> Result:
    import engine

    args = inputs(family)
    exported = torch.export.export(_Module(family.function), args)
    rules = engine.load_rules(REPO / "rules" / "cleanup.rw", REPO / "rules" / "attention.rw")
    module, _ = rules.apply(exported.module())
    fused = sum(1 for node in module.graph.nodes if node.target is SDPA)
    return Result(fused, _error(module(*args), family.function(*args)))


def inductor(family: Family) -> Result:
    import torch._inductor.config
    from torch._dynamo.utils import counters

    args = inputs(family)
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(family.function, backend="inductor", fullgraph=True)
    # A graph found in Inductor's on-disk cache skips its passes, and the counter with them.
    with torch._inductor.config.patch(force_disable_caches=True):
        out = compiled(*args)
    return Result(counters["inductor"]["fuse_attention"], _error(out, family.function(*args)))


TOLERANCE = 1e-5  # float32 eager against one sdpa call: a few units in the last place
WRONG = 0.1  # a difference past this is a different computation, no rounding


def numbers(result: Result) -> str:
    """Which side of the bounds the difference from eager is on: the same on every machine
    and thread count, where the difference itself moves in its last places."""
    if result.error <= TOLERANCE:
        return "eager's"
    if result.error > WRONG:
        return f"**off by more than {WRONG:g}**"
    return f"**off by {result.error:.2g}**"  # between the bounds: no row says this


def row(family: Family, theirs: Result, mine: Result) -> str:
    return (f"| {family.name} | {theirs.fused} | {numbers(theirs)} | {mine.fused} "
            f"| {numbers(mine)} |")


def table() -> str:
    rows = ["| attention written as | Inductor fuses | its numbers | our rules fuse "
            "| our numbers |", "|---|---|---|---|---|"]
    rows += [row(family, inductor(family), ours(family)) for family in FAMILIES]
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
