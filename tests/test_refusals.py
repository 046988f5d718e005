"""Rewrites that would lie, refused when the rules are applied: each message snapshotted.

Each case is a real model, captured, and a rule that passes the checker (what makes it wrong
is only known from the graph's values); applying it must raise `GraphError` naming the rule
(file:line:col), the node with the model's source line, and both values, and leave the
program as it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import engine

REPO = Path(__file__).resolve().parent.parent


class Sine(nn.Module):
    def forward(self, x):
        return torch.sin(x) * 2.0


class RMSNormWithAWrongWeight(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1))  # broadcasts in eager; rms_norm refuses it

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + 1e-6))


class HalfCopy(nn.Module):
    def forward(self, x):
        return x.half() + 1


CASES = {
    "a_number_for_a_tensor": (Sine, """
use torch.ops.aten.sin
rule sine_as_a_number:
    match sin($x)
    replace with 1.5
"""),
    "a_template_that_fails_on_its_values": (RMSNormWithAWrongWeight, """
use torch.ops.aten.mul.Tensor as mul
use torch.ops.aten.rsqrt
use torch.ops.aten.add
use torch.ops.aten.mean
use torch.ops.aten.pow
use torch.ops.aten.rms_norm
rule rms_norm_without_a_weight_check:
    match commutative mul($w, mul($x, rsqrt(add(mean(pow($x, 2), -1, keepdim=True), $eps))))
    replace with rms_norm($x, [shape($x)[-1]], $w, $eps)
"""),
    "a_number_where_a_tensor_goes": (Sine, """
use torch.ops.aten.mul
use torch.ops.aten.cos
rule cosine_of_the_factor:
    match mul($x, $k)
    replace with cos($k)
"""),
    "another_dtype": (HalfCopy, """
use torch.ops.aten.to.dtype as to_dtype
rule drop_every_conversion:
    match to_dtype($x, _)
    replace with $x
"""),
    "another_shape": (Sine, """
use torch.ops.aten.sin
use torch.ops.aten.sum
rule sine_as_a_sum:
    match sin($x)
    replace with sum($x)
"""),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_rewrite_that_would_lie_is_refused(case, snapshot):
    make, text = CASES[case]
    program = torch.export.export(make(), (torch.randn(4, 8),))
    before = engine.dump(program)
    rules = engine.rules_from_text(text, path="refusal.rw")
    with pytest.raises(engine.GraphError) as caught:
        rules.apply_program(program)
    assert engine.dump(program) == before
    message = str(caught.value).replace(f"{REPO}/", "")
    assert message.startswith("error: rule `") and "refusal.rw:" in message
    assert message == snapshot


class Flatten(nn.Module):
    def forward(self, x):
        return x.reshape(x.shape[0] * 8)


def test_a_tensor_for_a_number_is_refused(snapshot):
    """A size (`Sym(8*s77)`) replaced by a tensor would make `reshape` take a tensor for an
    int. (Found by `engine verify` on a rule over `aten.mul`'s scalar overloads.)"""
    program = torch.export.export(Flatten(), (torch.randn(4, 8),),
                                  dynamic_shapes=({0: torch.export.Dim("b")},))
    before = engine.dump(program)
    rules = engine.rules_from_text("""
use operator.mul
use torch.ops.aten.scalar_tensor.default as scalar_tensor
rule size_as_a_tensor:
    match mul($s, 8)
    replace with scalar_tensor($s)
""", path="refusal.rw")
    with pytest.raises(engine.GraphError) as caught:
        rules.apply_program(program)
    assert engine.dump(program) == before
    assert str(caught.value).replace(f"{REPO}/", "") == snapshot
