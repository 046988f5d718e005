"""The drop-in: `torch.export.export` itself running rules/export.rw as its HOP passes, by a
context manager, a process-wide install, or FX_REWRITE_EXPORT_RULES read at `import torch`."""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch._export.passes.replace_autocast_with_hop_pass as autocast_pass
import torch._export.passes.replace_set_grad_with_hop_pass as set_grad_pass

import engine
from engine.frontends.torch_export import TORCH_PASSES, _rule_set, bundled_rules
from engine.graphs.equivalence import alpha_difference
from tests.autocast_models import CASES as AUTOCAST_CASES
from tests.grad_models import GRAD_CASES, MIXED_CASES
from tests.oracle import assert_behaves_like_eager, round_trip

REPO = Path(__file__).resolve().parent.parent
CASES = {case.name: case for case in GRAD_CASES + MIXED_CASES + AUTOCAST_CASES}
EXPORT = engine.load_rules(REPO / "rules" / "export.rw")


def passes() -> tuple:
    return (set_grad_pass.replace_set_grad_with_hop_pass,
            autocast_pass.replace_autocast_with_hop_pass)


def export(case, strict=False):
    model, args = case.build()
    with case.ambient():
        program = torch.export.export(copy.deepcopy(model), args, strict=strict,
                                      dynamic_shapes=case.dynamic_shapes)
    return model, args, program


@contextlib.contextmanager
def counting_rule_applications():
    """How many times the bundled rules' `apply` ran (torch.export calls it once an export)."""
    rules = _rule_set(bundled_rules())
    with mock.patch.object(rules, "apply", wraps=rules.apply) as spy:
        yield spy


AUTOCAST_IN_STRICT = ("segment_straddles_entry", "fifty_mixed_regions", "nested_three_deep",
                      "dynamic_batch")


@pytest.mark.parametrize("name", ["no_grad", "symint_inside_and_outside", "no_grad_in_cond_branch",
                                  "segment_straddles_entry", "fifty_mixed_regions",
                                  "nested_three_deep", "dynamic_batch", "region_in_cond_branch"])
@pytest.mark.parametrize("strict", [False, True], ids=["non-strict", "strict"])
def test_export_under_the_rules_is_torchs_export_and_runs_as_eager(name, strict):
    """Cases where torch's passes are right: the same program up to names, run as eager,
    saved and loaded, and on other shapes where the case is dynamic."""
    case = CASES[name]
    with counting_rule_applications() as applied, engine.torch_export_passes():
        model, args, program = export(case, strict)
    assert applied.call_count == 1
    _, _, theirs = export(case, strict)
    assert alpha_difference(program.graph_module, theirs.graph_module,
                            program.graph_signature, theirs.graph_signature) is None
    if strict and name in AUTOCAST_IN_STRICT:
        # torch's strict export records float32 for what autocast makes bfloat16 in its
        # `_assert_tensor_metadata` checks, and the program fails when it runs: ours as torch's.
        for failing in (program, theirs):
            with pytest.raises(RuntimeError, match="Tensor dtype mismatch"):
                failing.module()(*args)
        return
    assert_behaves_like_eager(program, model, args, case)
    loaded = round_trip(program)
    assert_behaves_like_eager(loaded, model, args, case)
    if case.other_args is not None:
        assert_behaves_like_eager(loaded, model, case.other_args(), case)


def test_the_drop_in_is_what_the_rules_make_of_the_capture():
    case = CASES["fifty_mixed_regions"]
    with engine.torch_export_passes():
        _, args, program = export(case)
    model, _ = case.build()
    expected = EXPORT.apply_program(engine.capture(model, args))
    # torch.export renames the submodules' placeholders after its passes (`arg0_1`)
    assert alpha_difference(program.graph_module, expected.graph_module) is None


@pytest.mark.parametrize("name", ["no_grad_inside_autocast", "segment_straddles_exit",
                                  "no_grad_autocast_enable_grad"])
def test_where_torch_loses_a_grad_mode_the_drop_in_keeps_it(name):
    case = CASES[name]
    model, args, theirs = export(case)
    with engine.torch_export_passes():
        _, _, ours = export(case)
    assert_behaves_like_eager(ours, model, args, case)
    with pytest.raises(AssertionError):
        assert_behaves_like_eager(theirs, model, args, case)


def test_torchs_passes_come_back_on_exit_also_after_an_error_and_when_nested():
    assert passes() == TORCH_PASSES
    with engine.torch_export_passes():
        outer = passes()
        assert engine.installed_torch_export_rules() == REPO / "rules" / "export.rw"
        with engine.torch_export_passes(REPO / "rules" / "set_grad.rw"):
            assert engine.installed_torch_export_rules() == REPO / "rules" / "set_grad.rw"
        assert passes() == outer
        with pytest.raises(RuntimeError, match="inside"):
            with engine.torch_export_passes():
                raise RuntimeError("inside")
        assert passes() == outer
    assert passes() == TORCH_PASSES
    assert engine.installed_torch_export_rules() is None


def test_a_bad_rule_file_fails_when_installed_not_in_the_middle_of_an_export(tmp_path):
    bad = tmp_path / "bad.rw"
    bad.write_text("rule r:\n    match nosuch($x)\n    replace with $x\n")
    with pytest.raises(engine.RuleError, match="bad.rw:2"):
        with engine.torch_export_passes(bad):
            pass
    assert passes() == TORCH_PASSES


def test_install_for_the_process_and_uninstall():
    with counting_rule_applications() as applied:
        engine.install_torch_export_passes()
        try:
            export(CASES["no_grad"])
            assert applied.call_count == 1
        finally:
            engine.uninstall_torch_export_passes()
        assert passes() == TORCH_PASSES
        export(CASES["no_grad"])
        assert applied.call_count == 1


SCRIPT = """
import sys, torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(4, 4))
    def forward(self, x):
        y = x @ self.w
        with torch.no_grad():
            z = y @ self.w
        return y + z
print("engine imported by import torch:", "engine" in sys.modules)
program = torch.export.export(M(), (torch.randn(2, 4),))
(hop,) = [n for n in program.graph.nodes
          if n.target is torch.ops.higher_order.wrap_with_set_grad_enabled]
print("stack trace on the HOP:", bool(hop.meta.get("stack_trace")))  # ours have one
if "engine" in sys.modules:
    print("rules:", sys.modules["engine"].installed_torch_export_rules())
"""


@pytest.mark.parametrize("value, expected", [
    (None, ["engine imported by import torch: False", "stack trace on the HOP: False"]),
    ("0", ["engine imported by import torch: False", "stack trace on the HOP: False"]),
    ("1", ["engine imported by import torch: False", "stack trace on the HOP: True",
           f"rules: {REPO / 'rules' / 'export.rw'}"]),
    (str(REPO / "rules" / "set_grad.rw"),
     ["engine imported by import torch: False", "stack trace on the HOP: True",
      f"rules: {REPO / 'rules' / 'set_grad.rw'}"]),
])
def test_the_environment_variable_installs_the_rules_without_a_change_to_the_program(
        value, expected, tmp_path):
    environment = {k: v for k, v in os.environ.items() if k != "FX_REWRITE_EXPORT_RULES"}
    if value is not None:
        environment["FX_REWRITE_EXPORT_RULES"] = value
    (tmp_path / "export_it.py").write_text(SCRIPT)  # a file: stack traces need its lines
    result = subprocess.run([sys.executable, "export_it.py"], capture_output=True, text=True,
                            cwd=tmp_path, env=environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected
