"""The rule library (rules/activations.rw, ...): on a model written as people write it, every
written-out op chain is fused and the numbers stay eager's; each rule is sound on drawn
instances and on the model (`engine verify`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import torch

import engine
from tests.library.models import activations

REPO = Path(__file__).resolve().parent.parent


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
    script = shutil.which("engine", path=str(Path(sys.executable).parent))
    result = subprocess.run([script, "verify", "rules/activations.rw",
                             "tests/library/models.py:activations"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "no findings in 4 rules"
    for rule in ("gelu_erf", "gelu_tanh", "silu", "hardswish"):
        line = next(line for line in lines if f"rule `{rule}`" in line)
        drawn = int(re.search(r"checked on (\d+) instances", line).group(1))
        assert drawn >= 20 and "1 match in 1 model" in line, line
