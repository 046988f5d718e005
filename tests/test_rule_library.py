"""The rule library (rules/activations.rw, attention.rw, norms.rw): on models written as people
write them, every written-out op chain is fused and the numbers stay eager's, the near-misses
are left alone; each rule is sound on drawn instances and on the models (`engine verify`)."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import torch

import engine
from tests.library.models import activations, attention, attention_near_misses, norms, \
    norms_bfloat16

REPO = Path(__file__).resolve().parent.parent
SDPA = torch.ops.aten.scaled_dot_product_attention.default
# Instances `engine verify` draws for each rule: a fixed 40 in CI, its default 200 in
# scripts/nightly (VERIFY_EXAMPLES=200). The models' matches are checked either way.
EXAMPLES = int(os.environ.get("VERIFY_EXAMPLES", 40))


def rewritten(make, *rule_files):
    """The model, its inputs, and its exported program's module with the rules applied."""
    model, inputs = make()
    exported = torch.export.export(model, inputs)
    rules = engine.load_rules(*(REPO / "rules" / name for name in rule_files))
    module, _ = rules.apply(exported.module())
    return model, inputs, module


def calls(module, target) -> list[torch.fx.Node]:
    return [node for node in module.graph.nodes if node.target is target]


def engine_verify(*argv) -> list[str]:
    script = shutil.which("engine", path=str(Path(sys.executable).parent))
    result = subprocess.run([script, "verify", "--examples", str(EXAMPLES), *argv],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_written_out_activations_become_one_op_each_and_compute_the_same():
    model, inputs = activations()
    exported = torch.export.export(model, inputs)
    rewritten, report = engine.load_rules(REPO / "rules" / "activations.rw").apply(
        exported.module())
    targets = [str(node.target) for node in rewritten.graph.nodes if node.op == "call_function"]
    assert [t for t in targets if t.startswith("aten.gelu")] == ["aten.gelu.default"] * 2
    assert "aten.silu.default" in targets and "aten.hardswish.default" in targets
    for gone in ("aten.erf.default", "aten.tanh.default", "aten.sigmoid.default",
                 "aten.relu6.default", "aten.pow.Tensor_Scalar"):
        assert gone not in targets
    gelus = [n for n in rewritten.graph.nodes if n.target is torch.ops.aten.gelu.default]
    assert [n.kwargs.get("approximate", "none") for n in gelus] == ["none", "tanh"]
    x = torch.randn(2, 8)
    torch.testing.assert_close(rewritten(x), model(x))


def test_the_activation_rules_are_sound_on_drawn_instances_and_on_the_model():
    lines = engine_verify("rules/activations.rw", "tests/library/models.py:activations")
    assert lines[-1] == "no findings in 4 rules"
    for rule in ("gelu_erf", "gelu_tanh", "silu", "hardswish"):
        line = next(line for line in lines if f"rule `{rule}`" in line)
        drawn = int(re.search(r"checked on (\d+) instances", line).group(1))
        assert drawn >= EXAMPLES // 10 and "1 match in 1 model" in line, line


def test_each_spelling_of_attention_is_one_sdpa_call_and_computes_the_same():
    model, inputs, module = rewritten(attention, "cleanup.rw", "attention.rw")
    fused = calls(module, SDPA)
    assert len(fused) == len(model(*inputs)) == 10
    assert not calls(module, torch.ops.aten.softmax.int)
    assert not calls(module, torch.ops.aten.matmul.default)
    scales = [node.kwargs["scale"] for node in fused]
    assert scales[:6] == [1 / math.sqrt(8), 1 / 8, 8 ** -0.5, 0.125, 1 / math.sqrt(8), 1.0]
    masks = [node.kwargs["attn_mask"] for node in fused]
    assert [mask.name if mask is not None else None for mask in masks[:4]] == \
        [None, None, "mask", "mask"]
    assert masks[6].target is torch.ops.aten.logical_not.default  # masked_fill(~keep)
    assert masks[7].name == "keep"  # where(keep, ...)
    for ours, eager in zip(module(*inputs), model(*inputs)):
        torch.testing.assert_close(ours, eager)


def test_attention_near_misses_are_left_as_they_are():
    model, inputs, module = rewritten(attention_near_misses, "cleanup.rw", "attention.rw")
    assert not calls(module, SDPA)
    assert len(calls(module, torch.ops.aten.softmax.int)) == 8


def test_written_out_norms_become_one_op_each_and_compute_the_same():
    model, inputs, module = rewritten(norms, "cleanup.rw", "norms.rw")
    rms = calls(module, torch.ops.aten.rms_norm.default)
    layer = calls(module, torch.ops.aten.layer_norm.default)
    assert [node.args[2].name for node in rms] == ["rms_weight"]
    assert [(n.args[2] and n.args[2].name, n.args[3] and n.args[3].name) for n in layer] == [
        ("ln_weight", "ln_bias"), (None, None), ("ln_weight", None)]
    for gone in ("rsqrt", "sqrt", "var", "pow"):
        assert not [n for n in module.graph.nodes if str(n.target).startswith(f"aten.{gone}.")]
    for ours, eager in zip(module(*inputs), model(*inputs)):
        torch.testing.assert_close(ours, eager)


def test_hf_round_trip_rms_norm_keeps_its_casts_and_the_weight_after_them():
    model, inputs, module = rewritten(norms_bfloat16, "cleanup.rw", "norms.rw")
    (rms,) = calls(module, torch.ops.aten.rms_norm.default)
    assert rms.args[0].target is torch.ops.aten.to.dtype and rms.args[2] is None
    (cast,) = rms.users
    assert cast.target is torch.ops.aten.to.dtype and cast.args[1] is torch.bfloat16
    (weighted,) = cast.users
    assert weighted.target is torch.ops.aten.mul.Tensor
    for ours, eager in zip(module(*inputs), model(*inputs)):
        torch.testing.assert_close(ours, eager, rtol=2e-2, atol=2e-2)


def test_the_attention_and_norm_rules_are_sound_on_drawn_instances_and_on_the_models():
    lines = engine_verify("rules/cleanup.rw", "rules/attention.rw", "rules/norms.rw",
                          "tests/library/models.py:attention",
                          "tests/library/models.py:attention_near_misses",
                          "tests/library/models.py:norms",
                          "tests/library/models.py:norms_bfloat16")
    assert lines[-1] == "no findings in 14 rules"
    for model in ("attention", "norms", "norms_bfloat16"):
        assert (f"tests/library/models.py:{model}: the program computes the same before and "
                f"after the rules (outputs, inputs written in place, gradients; 3 seeds)") in lines
    assert "tests/library/models.py:attention_near_misses: the rules change nothing" in lines
    for rule in ("attention_divided", "attention_multiplied", "attention_query_divided",
                 "attention_unscaled", "attention_masked_fill", "attention_where", "layer_norm",
                 "layer_norm_var", "layer_norm_weight", "layer_norm_bias", "rms_norm",
                 "rms_norm_weight"):
        line = next(line for line in lines if f"rule `{rule}`" in line)
        assert re.search(r"\d+ match(es)? in \d+ models?", line), line
