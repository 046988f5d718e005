"""The differential harness: models, torch's passes as the oracle, eager as the judge.

A `Case` builds a fresh model and inputs. `check_against_torch` captures the raw program,
applies a rule set (the input must come out untouched), applies torch's passes to a copy, and
requires the two to be alpha-equivalent with equivalent signatures, unless the case names a
deviation, which is then checked for what it is. Whatever torch does, our program must behave
as eager does: outputs, gradients, each output's `requires_grad`, buffers, and the same again
after a `.pt2` round trip.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from typing import Callable

import pytest
import torch
from torch import nn

import engine
from engine.language import checked
from engine.graphs.equivalence import alpha_difference

ENTER = torch.amp.autocast_mode._enter_autocast
SET_GRAD = torch._C._set_grad_enabled
AUTOCAST_HOP = torch.ops.higher_order.wrap_with_autocast
SET_GRAD_HOP = torch.ops.higher_order.wrap_with_set_grad_enabled


@dataclass(frozen=True)
class Case:
    name: str
    module: Callable[[], nn.Module]
    args: Callable[[], tuple]
    dynamic_shapes: object = None
    deviation: str | None = None  # why our result differs from torch's, where it does
    other_args: Callable[[], tuple] | None = None  # inputs of another shape, for dynamic cases
    grad_enabled: bool = True  # the ambient grad mode to export, rewrite and run under

    def build(self):
        torch.manual_seed(0)
        return self.module(), self.args()

    def ambient(self):
        return torch.set_grad_enabled(self.grad_enabled)


# --- deviations: where torch is wrong ----------------------------------------------------------
ZERO_OUTPUTS = ("torch gives a region without outputs `meta['val'] = ()`, which the .pt2 loader "
                "rejects (SpecViolationError: missing val); ours has None and loads")
COND_IN_REGION = ("torch's split puts the branch `get_attr`s first in the region's submodule, so "
                  "it no longer starts with `_enter_autocast`: torch inlines it and leaves the "
                  "markers in place, and `torch.export.save` fails. Ours outlines it")
LOST_GRAD_SEGMENT = ("torch's split re-enters autocast at the start of the grad segment's "
                     "partition, so the partition no longer starts with `_set_grad_enabled`: torch "
                     "inlines it and drops the marker, and `requires_grad` and gradients differ "
                     "from eager. Ours keeps the segment")


# --- eager as the judge ------------------------------------------------------------------------
def run(module: nn.Module, args: tuple, case: Case):
    """Outputs, their requires_grad, gradients of every parameter and input, and buffers, from a
    copy of the module (programs' modules share their parameters and buffers)."""
    module = copy.deepcopy(module)
    inputs = tuple(a.detach().clone().requires_grad_(a.is_floating_point()) if
                   isinstance(a, torch.Tensor) else a for a in args)
    before = torch.is_grad_enabled()
    try:
        with case.ambient():
            outputs = module(*inputs)
    finally:
        torch.set_grad_enabled(before)  # a model may switch grad off and never back on
    flat = [o for o in torch.utils._pytree.tree_leaves(outputs) if isinstance(o, torch.Tensor)]
    requires = [o.requires_grad for o in flat]
    loss = sum((o.float().sum() for o in flat if o.requires_grad), torch.zeros(()))
    if loss.requires_grad:
        loss.backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    grads.update({f"input {i}": a.grad for i, a in enumerate(inputs)
                  if isinstance(a, torch.Tensor)})
    return flat, requires, grads, dict(module.named_buffers())


# Gradients through bf16 and f16 ops are summed in another order once a region is a HOP: they
# agree with eager to the precision of those types, and with torch's own program exactly.
GRADIENT_TOLERANCE = dict(rtol=1e-2, atol=1e-3)
EXACT = dict(rtol=0, atol=0)


def assert_same_behaviour(actual, expected, gradients=EXACT) -> None:
    """`run` results: outputs, requires_grad and buffers equal; gradients within `gradients`.
    Only the buffers `expected` has count: a program holds its lifted constants as buffers."""
    actual = (*actual[:3], {name: actual[3][name] for name in expected[3]})
    for name, want, got in zip(("outputs", "requires_grad", "gradients", "buffers"),
                               expected, actual):
        assert type(got) is type(want), name
        tolerance = gradients if name == "gradients" else EXACT
        torch.testing.assert_close(got, want, **tolerance, msg=lambda m: f"{name}: {m}")


def assert_behaves_like_eager(program, model: nn.Module, args: tuple, case: Case) -> None:
    assert_same_behaviour(run(program.module(), args, case), run(model, args, case),
                          GRADIENT_TOLERANCE)


def round_trip(program):
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    return torch.export.load(buffer)


def nodes(gm, target) -> list:
    return [n for m in gm.modules() if isinstance(m, torch.fx.GraphModule)
            for n in m.graph.nodes if n.target is target]


# --- the differential check ----------------------------------------------------------------------
def check_against_torch(case: Case, rules: engine.RuleSet, torch_passes, snapshot,
                        rules_name: str) -> None:
    model, args = case.build()
    with case.ambient():
        raw = engine.capture(copy.deepcopy(model), args, dynamic_shapes=case.dynamic_shapes)
        raw_text = engine.dump(raw)
        raw_signature = copy.deepcopy(raw.graph_signature)
        program, report = rules.rewrite_program(raw)
        assert engine.dump(raw) == raw_text, "the input program was changed"
        assert raw.graph_signature == raw_signature, "the input signature was changed"
        theirs, their_signature = copy.deepcopy(raw.graph_module), copy.deepcopy(raw_signature)
        for torch_pass in torch_passes:
            theirs, their_signature = torch_pass(theirs, their_signature)
    ours = program.graph_module
    ours.graph.lint()
    for marker in _removed_markers(rules):
        assert not nodes(ours, marker), f"{marker} left behind"

    difference = alpha_difference(ours, theirs, program.graph_signature, their_signature)
    if case.deviation is None:
        assert difference is None, difference  # says where, if the graphs differ beyond names
        # Identical: as torch's passes hand it back (what the drop-in hands torch.export), and as
        # an ExportedProgram holds it (which registers submodules in the order its graph uses).
        with case.ambient():
            applied = rules.apply(copy.deepcopy(raw.graph_module), copy.deepcopy(raw_signature))
        assert generated_code(applied[0]) == generated_code(theirs)
        torch_program = raw._update(theirs, their_signature)
        assert generated_code(ours) == generated_code(torch_program.graph_module)
        assert program.graph_signature == their_signature == applied[1]
        assert_same_behaviour(run(program.module(), args, case),
                              run(torch_program.module(), args, case))
    else:
        assert difference is not None, "documented as a deviation, but torch agrees"
        _check_deviation(case, program, theirs, their_signature, raw, model, args)

    assert_behaves_like_eager(program, model, args, case)
    if not nodes(ours, ENTER):  # a program with markers left cannot be saved (as torch's)
        loaded = round_trip(program)
        assert_behaves_like_eager(loaded, model, args, case)
        if case.other_args is not None:
            assert_behaves_like_eager(loaded, model, case.other_args(), case)

    assert (f"# raw capture\n{raw_text}\n# after {rules_name}\n{engine.dump(program)}"
            f"\n# report\n{_portable(report.render(rules.rules))}\n") == snapshot


def generated_code(gm: torch.fx.GraphModule) -> list[tuple[str, str]]:
    """Each GraphModule of the tree, in registration order: its path and Python code."""
    return [(name, module.code) for name, module in gm.named_modules()
            if isinstance(module, torch.fx.GraphModule)]


def _removed_markers(rules: engine.RuleSet) -> set:
    """The marker targets some rule of the set removes (a `keep` rule leaves its own)."""
    removed = set()
    for rule in rules.rules:
        pattern = rule.pattern
        if not rule.is_dag and not isinstance(rule.action, checked.Keep):
            removed.add(pattern.opener.target)
            if pattern.closer is not None:
                removed.add(pattern.closer.target)
    return removed


def _portable(report: str) -> str:
    """The report without this checkout's paths, so snapshots read the same everywhere."""
    return "\n".join(line.split(" from ")[0] if line.startswith("    ") else
                     line[line.index("rules/"):] if "rules/" in line else line
                     for line in report.splitlines())


def _check_deviation(case: Case, program, theirs, their_signature, raw, model, args) -> None:
    torch_program = raw._update(theirs, their_signature)
    if case.deviation is ZERO_OUTPUTS:
        # The only difference: torch's output-less HOPs have meta['val'] = (), ours None ...
        hops = [n for hop in (AUTOCAST_HOP, SET_GRAD_HOP) for n in nodes(theirs, hop)
                if n.meta["val"] == ()]
        assert hops, "expected a region without outputs"
        for node in hops:
            node.meta["val"] = None
        assert alpha_difference(program.graph_module, theirs, program.graph_signature,
                                their_signature) is None
        for node in hops:
            node.meta["val"] = ()
        # ... and because of it torch's program does not load back.
        with pytest.raises(Exception, match="missing val"):
            round_trip(torch_program)
    elif case.deviation is COND_IN_REGION:
        assert nodes(theirs, ENTER), "torch was expected to leave the markers in"
        with pytest.raises(AssertionError, match="_enter_autocast"):  # the serializer refuses
            round_trip(torch_program)
    elif case.deviation is LOST_GRAD_SEGMENT:
        with pytest.raises(AssertionError):  # torch's program does not run as eager does
            assert_behaves_like_eager(torch_program, model, args, case)
    else:
        raise AssertionError(f"no check for the deviation of {case.name}")
