"""rules/autocast.rw against torch's own `replace_autocast_with_hop_pass`, model by model.

For each model: capture the raw program once; apply our rules (the input must come out
untouched), then torch's pass; the two results must be alpha-equivalent with equivalent
signatures, except where the case documents a deviation, which is then checked for what it is.
Our program must run, match eager, and survive a `.pt2` round trip. The before/after dump of
each model is snapshotted in snapshots/test_autocast_oracle/.
"""

from __future__ import annotations

import copy
from pathlib import Path
import io

import pytest
import torch
from torch._export.passes.replace_autocast_with_hop_pass import replace_autocast_with_hop_pass

import engine
from engine.equivalence import alpha_difference
from tests.autocast_models import CASES, TORCH_COND_IN_REGION, TORCH_ZERO_OUTPUTS, Case

RULES = engine.load_rules(Path(__file__).parent.parent / "rules" / "autocast.rw")
ENTER = torch.amp.autocast_mode._enter_autocast
HOP = torch.ops.higher_order.wrap_with_autocast


def _round_trip(program):
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    return torch.export.load(buffer)


def _run_eager(model, args):
    model = copy.deepcopy(model)
    return model(*args), dict(model.named_buffers())


def _assert_runs_like_eager(program, model, args):
    expected, expected_buffers = _run_eager(model, args)
    runnable = program.module()
    torch.testing.assert_close(runnable(*args), expected, rtol=0, atol=0)
    for name, value in expected_buffers.items():
        torch.testing.assert_close(runnable.get_buffer(name), value, rtol=0, atol=0)


def _nodes(gm, target):
    return [n for m in gm.modules() if isinstance(m, torch.fx.GraphModule)
            for n in m.graph.nodes if n.target is target]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_autocast_rules_match_torch(case: Case, snapshot):
    model, args = case.build()
    raw = engine.capture(model, args, dynamic_shapes=case.dynamic_shapes)
    raw_text = engine.dump(raw)
    raw_signature = copy.deepcopy(raw.graph_signature)

    program, report = RULES.rewrite_program(raw)
    assert engine.dump(raw) == raw_text, "the input program was changed"
    assert raw.graph_signature == raw_signature, "the input signature was changed"
    ours, our_signature = program.graph_module, program.graph_signature
    ours.graph.lint()
    assert not _nodes(ours, ENTER), "markers left behind"

    theirs, their_signature = replace_autocast_with_hop_pass(
        copy.deepcopy(raw.graph_module), copy.deepcopy(raw.graph_signature))
    if case.deviation is None:
        assert alpha_difference(ours, theirs, our_signature, their_signature) is None
    else:
        _check_deviation(case, program, theirs, their_signature, raw)

    _assert_runs_like_eager(program, model, args)
    loaded = _round_trip(program)
    _assert_runs_like_eager(loaded, model, args)
    if case.other_args is not None:
        _assert_runs_like_eager(loaded, model, case.other_args())

    snapshot_text = (f"# raw capture\n{raw_text}\n# after rules/autocast.rw\n"
                     f"{engine.dump(program)}")
    assert snapshot_text == snapshot
    assert report.counts()["autocast_regions"] == len(_nodes(raw.graph_module, ENTER))


def _check_deviation(case: Case, program, theirs, their_signature, raw) -> None:
    if case.deviation is TORCH_ZERO_OUTPUTS:
        # The only difference: torch's output-less HOP has meta['val'] = (), ours None ...
        hops = [n for n in _nodes(theirs, HOP) if n.meta["val"] == ()]
        assert hops, "expected a region without outputs"
        for node in hops:
            node.meta["val"] = None
        assert alpha_difference(program.graph_module, theirs, program.graph_signature,
                                their_signature) is None
        for node in hops:
            node.meta["val"] = ()
        # ... and because of it torch's program does not load back.
        with pytest.raises(Exception, match="missing val"):
            _round_trip(raw._update(theirs, their_signature))
    elif case.deviation is TORCH_COND_IN_REGION:
        assert _nodes(theirs, ENTER), "torch was expected to leave the markers in"
        assert not _nodes(theirs, HOP)
        with pytest.raises(Exception):
            _round_trip(raw._update(theirs, their_signature))
    else:
        raise AssertionError(f"no check for the deviation of {case.name}")
