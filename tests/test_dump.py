"""The canonical dump: deterministic, free of paths and addresses, nested graphs included."""

from __future__ import annotations

import re

import torch
from torch.export import Dim

import engine
from tests.autocast_models import DynamicBatch, RegionInCondBranch


def test_dump_is_the_same_for_two_captures_of_one_model():
    first = engine.dump(engine.capture(RegionInCondBranch(), (torch.randn(8, 8),)))
    second = engine.dump(engine.capture(RegionInCondBranch(), (torch.randn(8, 8),)))
    assert first == second


def test_dump_has_no_paths_stack_traces_or_addresses():
    text = engine.dump(engine.capture(RegionInCondBranch(), (torch.randn(8, 8),)))
    assert "File" not in text and ".py" not in text
    assert not re.search(r"0x[0-9a-f]{4,}", text)


def test_dump_includes_nested_graphs_after_their_parent():
    text = engine.dump(engine.capture(RegionInCondBranch(), (torch.randn(8, 8),)))
    headers = [line for line in text.splitlines() if line.startswith("def ")]
    assert [h.split("(")[0] for h in headers] == [
        "def forward", "def true_graph_0", "def false_graph_0"]
    assert "cond: (f32[8, 8],) = higher_order.cond(gt, true_graph_0, false_graph_0, (x, p_w))" in text


def test_dump_shows_symbolic_shapes():
    program = engine.capture(DynamicBatch(), (torch.randn(4, 8),),
                             dynamic_shapes=({0: Dim("batch", min=2)},))
    first_line = engine.dump(program).splitlines()[0]
    assert re.fullmatch(r"def forward\(p_lin_weight: f32\[4, 8\], p_lin_bias: f32\[4\], "
                        r"x: f32\[(s\d+), 8\]\):", first_line)


def test_dump_of_a_program_ends_with_its_signature():
    text = engine.dump(engine.capture(DynamicBatch(), (torch.randn(4, 8),)))
    assert text.split("signature:\n")[1] == (
        "    input p_lin_weight: PARAMETER lin.weight\n"
        "    input p_lin_bias: PARAMETER lin.bias\n"
        "    input x: USER_INPUT\n"
        "    output mul: USER_OUTPUT\n")
