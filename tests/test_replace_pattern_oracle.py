"""DAG rules against `torch.fx.subgraph_rewriter.replace_pattern` doing the same rewrites.

For each rewrite and model: the same number of matches, the same resulting graph (as a DAG: the
two place new nodes differently), the same numbers; and our rule leaves its input untouched.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.fx.subgraph_rewriter import replace_pattern

import engine
from engine.graphs.equivalence import dag_difference

aten = torch.ops.aten
USES = """
use torch.ops.aten.add.Tensor as add
use torch.ops.aten.sub.Tensor as sub
use torch.ops.aten.mul.Tensor as mul
use torch.ops.aten.relu.default as relu
use torch.ops.aten.neg.default as neg
use torch.ops.aten.clamp_min.default as clamp_min
"""

REWRITES = {
    "add_relu_as_clamp": (
        lambda a, b: aten.relu.default(aten.add.Tensor(a, b)),
        lambda a, b: aten.clamp_min.default(aten.add.Tensor(a, b), 0),
        "match relu(add($a, $b))\n    replace with clamp_min(add($a, $b), 0)"),
    "times_one": (
        lambda x: aten.mul.Tensor(x, 1),
        lambda x: x,
        "match mul($x, 1)\n    replace with $x"),
    "double_negation": (
        lambda x: aten.neg.default(aten.neg.default(x)),
        lambda x: x,
        "match neg(neg($x))\n    replace with $x"),
    "sub_as_add_neg": (
        lambda a, b: aten.sub.Tensor(a, b),
        lambda a, b: aten.add.Tensor(a, aten.neg.default(b)),
        "match sub($a, $b)\n    replace with add($a, neg($b))"),
}


class Residuals(nn.Module):
    def forward(self, x, w):
        for _ in range(3):
            x = torch.relu(x @ w + x)
        return x * 1


class SharedSum(nn.Module):
    """The sum is also an output: relu(add) must not match, in either rewriter."""

    def forward(self, x, y):
        total = x + y
        return torch.relu(total), total - y


class Negations(nn.Module):
    def forward(self, x, y):
        a = -(-x)
        b = -(-(-(-y)))
        return torch.relu(a + b) * 1, a - b


class ScalarAdd(nn.Module):
    """add.Scalar is another overload: a pattern on add.Tensor takes only the second relu."""

    def forward(self, x, y):
        return torch.relu(torch.ops.aten.add.Scalar(x, 1)), torch.relu(x + y)


MODELS = {"residuals": Residuals, "shared_sum": SharedSum, "negations": Negations,
          "scalar_add": ScalarAdd}
CASES = [(rewrite, model) for rewrite in REWRITES for model in MODELS]


@pytest.mark.parametrize("rewrite, model", CASES, ids=[f"{r}-{m}" for r, m in CASES])
def test_rule_matches_replace_pattern(rewrite, model):
    pattern, replacement, rule_body = REWRITES[rewrite]
    rules = engine.rules_from_text(f"{USES}\nrule {rewrite}:\n    {rule_body}\n")
    torch.manual_seed(0)
    inputs = (torch.randn(4, 4), torch.randn(4, 4))
    gm = engine.capture(MODELS[model](), inputs).graph_module
    before = engine.dump(gm)

    result = rules.rewrite(gm)
    assert engine.dump(gm) == before
    theirs = copy.deepcopy(gm)
    replaced = replace_pattern(theirs, pattern, replacement)

    assert result.report.counts()[rewrite] == len(replaced)
    assert dag_difference(result.module, theirs) is None
    torch.testing.assert_close(result.module(*inputs), theirs(*inputs), rtol=0, atol=0)
    torch.testing.assert_close(result.module(*inputs), gm(*inputs))


def test_the_cases_cover_matches_and_non_matches():
    """Every rewrite matches somewhere, and some model defeats each of the first two."""
    counts = {}
    for rewrite, model in CASES:
        pattern, replacement, rule_body = REWRITES[rewrite]
        rules = engine.rules_from_text(f"{USES}\nrule {rewrite}:\n    {rule_body}\n")
        gm = engine.capture(MODELS[model](), (torch.randn(4, 4), torch.randn(4, 4))).graph_module
        counts[rewrite, model] = rules.rewrite(gm).report.counts()[rewrite]
    for rewrite in REWRITES:
        assert any(counts[rewrite, model] for model in MODELS), rewrite
    assert counts["add_relu_as_clamp", "shared_sum"] == 0
    assert counts["add_relu_as_clamp", "scalar_add"] == 1
