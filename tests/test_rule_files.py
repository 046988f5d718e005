"""The DAG rule files of rules/ on real exported programs: snapshots of before and after, and
the programs still verify, run as before and survive a .pt2 round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import engine
from examples.models import AutocastMLP, TwoBlocks
from tests.oracle import round_trip

RULES = Path(__file__).resolve().parent.parent / "rules"


class Conversions(nn.Module):
    """`.float()` on a float tensor is an identity; on a half tensor it is not."""

    def forward(self, x, h):
        return x.float() * 2, h.float() + 1


class Identities(nn.Module):
    def forward(self, x, n):
        a = x * 1
        b = 1 * (a / 1)
        c = (b + 0) - 0
        d = -(-c) * 1.0 + 0.0  # for a float tensor, 1.0 and 0.0 are identities too
        kept = n * 1.0  # an integer tensor times 1.0 is a float tensor: not `n`
        return d, kept, x * 2


def exported(model: nn.Module, args):
    """What torch.export gives, HOP passes and all: the programs users have."""
    return torch.export.export(model, args)


CASES = {
    "cleanup-autocast_mlp": ("cleanup.rw", lambda: (AutocastMLP(), (torch.randn(4, 16),))),
    "cleanup-two_blocks": ("cleanup.rw", lambda: (TwoBlocks(), (torch.randn(4, 16),))),
    "cleanup-conversions": ("cleanup.rw", lambda: (
        Conversions(), (torch.randn(4, 4), torch.randn(4, 4).half()))),
    "algebra-identities": ("algebra.rw", lambda: (
        Identities(), (torch.randn(4, 4), torch.arange(4)))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rule_file_on_a_real_program(case, snapshot):
    rule_file, make = CASES[case]
    torch.manual_seed(0)
    model, args = make()
    program = exported(model, args)
    rules = engine.load_rules(RULES / rule_file)
    rewritten, report = rules.rewrite_program(program)
    expected = model(*args)
    torch.testing.assert_close(rewritten.module()(*args), expected, rtol=0, atol=0)
    torch.testing.assert_close(round_trip(rewritten).module()(*args), expected, rtol=0, atol=0)
    lines = [line.split(" from ")[0] for line in report.render(rules.rules).splitlines()]
    text = (f"# torch.export.export\n{engine.dump(program)}\n# after rules/{rule_file}\n"
            f"{engine.dump(rewritten)}\n# report\n"
            + "\n".join(line[line.index("rules/"):] if "rules/" in line else line
                        for line in lines) + "\n")
    assert text == snapshot


def test_cleanup_removes_every_assert_and_identity_conversion():
    program = exported(AutocastMLP(), (torch.randn(4, 16),))
    rewritten = engine.load_rules(RULES / "cleanup.rw").apply_program(program)
    targets = [n.target for m in rewritten.graph_module.modules()
               if isinstance(m, torch.fx.GraphModule) for n in m.graph.nodes]
    assert torch.ops.aten._assert_tensor_metadata.default not in targets


def test_algebra_keeps_what_changes_the_dtype():
    program = exported(Identities(), (torch.randn(4, 4), torch.arange(4)))
    rewritten = engine.load_rules(RULES / "algebra.rw").apply_program(program)
    muls = [n for n in rewritten.graph.nodes if n.target is torch.ops.aten.mul.Tensor]
    assert sorted(n.args[1] for n in muls) == [1.0, 2]  # `n * 1.0` and `x * 2` stay


def test_region_and_dag_rules_together_reach_every_submodule():
    """export.rw outlines the regions; cleanup.rw then cleans inside the submodules it made."""
    model, args = AutocastMLP(), (torch.randn(4, 16),)
    raw = engine.capture(model, args)
    rules = engine.load_rules(RULES / "export.rw", RULES / "cleanup.rw")
    program, report = rules.rewrite_program(raw)
    modules = [m for m in program.graph_module.modules() if isinstance(m, torch.fx.GraphModule)]
    assert len(modules) == 3  # the top and two nested autocast bodies
    targets = {n.target for m in modules for n in m.graph.nodes}
    assert torch.ops.aten._assert_tensor_metadata.default not in targets
    assert report.counts()["drop_metadata_asserts"] == 1
    assert {m.module for m in report.matches if m.rule == "drop_metadata_asserts"} == {
        "submod_1.submod_1"}
    torch.testing.assert_close(program.module()(*args), model(*args), rtol=0, atol=0)
