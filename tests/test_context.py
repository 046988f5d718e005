"""Rules that ask where they stand: `top_level()`, `inside(rule)`, `autocast_enabled(device)`,
for region rules (the regions around a region) and DAG rules (the outlined region a graph is
the body of)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import engine

OFF = dict(device_type="cpu", enabled=False)
BF16 = dict(device_type="cpu", dtype=torch.bfloat16)

AUTOCAST = """
use torch.amp.autocast_mode._enter_autocast as enter_autocast
use torch.amp.autocast_mode._exit_autocast as exit_autocast
use torch.ops.higher_order.wrap_with_autocast
use torch.ops.aten._assert_tensor_metadata
"""

INLINE_DISABLED = AUTOCAST + """
rule disabled_where_already_off:
    # autocast(enabled=False) changes nothing where autocast is off: its markers can go
    match $e = enter_autocast($device, _, False, _) ... exit_autocast($e)
    where not autocast_enabled($device)
    inline

rule autocast_regions:
    match $e = enter_autocast(*$mode) ... exit_autocast($e)
    outline with wrap_with_autocast(*$mode)
"""


class DisabledAtTop(nn.Module):
    def forward(self, x):
        with torch.autocast(**OFF):
            y = x @ x
        return y + 1


class DisabledInsideEnabled(nn.Module):
    def forward(self, x):
        with torch.autocast(**BF16):
            a = x @ x
            with torch.autocast(**OFF):
                b = a.float() @ x  # float32 here; inlined, it would run in bfloat16
        return b


def rewrite(rule_text: str, model: nn.Module, x: torch.Tensor):
    rules = engine.rules_from_text(rule_text)
    program, report = rules.rewrite_program(engine.capture(model, (x,)))
    torch.testing.assert_close(program.module()(x), model(x), rtol=0, atol=0)
    return program, report


def test_a_disabled_region_is_inlined_only_where_autocast_is_off():
    x = torch.randn(8, 8)
    _, report = rewrite(INLINE_DISABLED, DisabledAtTop(), x)
    assert report.counts() == {"disabled_where_already_off": 1}
    program, report = rewrite(INLINE_DISABLED, DisabledInsideEnabled(), x)
    assert report.counts() == {"autocast_regions": 2}  # the inner one outlined, not inlined
    inner = program.graph_module.submod_1
    assert any(n.target is torch.ops.higher_order.wrap_with_autocast for n in inner.graph.nodes)


def test_the_ambient_autocast_mode_counts_at_the_top():
    rules = engine.rules_from_text(INLINE_DISABLED)
    raw = engine.capture(DisabledAtTop(), (torch.randn(8, 8),))
    with torch.autocast(**BF16):
        assert rules.rewrite_program(raw)[1].counts() == {"autocast_regions": 1}
    assert rules.rewrite_program(raw)[1].counts() == {"disabled_where_already_off": 1}


class AssertsAtTopAndInside(nn.Module):
    def forward(self, x):
        y = x.float() * 2  # an _assert_tensor_metadata here ...
        with torch.autocast(**BF16):
            z = (y @ y).float()  # ... and one in the region
        return z


PLACES = AUTOCAST + """
rule autocast_regions:
    match $e = enter_autocast(*$mode) ... exit_autocast($e)
    outline with wrap_with_autocast(*$mode)

rule asserts_{where}:
    match _assert_tensor_metadata(*_, **_)
    where {condition}
    erase
"""


@pytest.mark.parametrize("where, condition, module", [
    ("inside", "inside(autocast_regions)", "submod_1"),
    ("at_the_top", "top_level()", ""),
    ("under_autocast", "autocast_enabled('cpu')", "submod_1"),
], ids=["inside", "top_level", "autocast_enabled"])
def test_dag_rules_know_the_region_their_graph_is_the_body_of(where, condition, module):
    x = torch.randn(8, 8)
    _, report = rewrite(PLACES.format(where=where, condition=condition),
                        AssertsAtTopAndInside(), x)
    assert [m.module for m in report.matches if m.rule == f"asserts_{where}"] == [module]


def test_a_rule_named_in_a_condition_must_exist():
    with pytest.raises(engine.RuleError) as caught:
        engine.rules_from_text(PLACES.format(where="x", condition="inside(autocast_region)"))
    assert "unknown rule `autocast_region`; did you mean `autocast_regions`?" in str(
        caught.value)
    with pytest.raises(engine.RuleError, match="a rule is named as it is defined"):
        engine.rules_from_text(PLACES.format(where="x", condition="inside('autocast_regions')"))


def test_a_kept_region_still_has_its_nested_regions_decided_inside_it():
    rules = engine.rules_from_text(AUTOCAST + """
rule outer_stays:
    match $e = enter_autocast(_, _, True, _) ... exit_autocast($e)
    keep

rule nested_off:
    match $e = enter_autocast($d, _, False, _) ... exit_autocast($e)
    where inside(outer_stays)
    outline with wrap_with_autocast($d, None, False, None)
""")
    program, report = rules.rewrite_program(
        engine.capture(DisabledInsideEnabled(), (torch.randn(8, 8),)))
    assert report.counts() == {"outer_stays": 1, "nested_off": 1}
