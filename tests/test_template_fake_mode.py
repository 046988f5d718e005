"""Templates that make a tensor from no tensor (`zeros`, `full`, `scalar_tensor`...) are
evaluated in the fake mode of the graph they go into, so that they combine with the graph's
values, and the rewritten program's values share one fake mode (torch.export checks it); a
template that cannot be evaluated is a GraphError naming the rule and node, never a traceback.
Driven through `engine apply` and `engine verify` as a rule author does, and through the API."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor

import engine
from engine.frontends.cli import main

REPO = Path(__file__).resolve().parent.parent
USES = """\
use torch.ops.aten.neg
use torch.ops.aten.sub
use torch.ops.aten.mul
use torch.ops.aten.zeros
use torch.ops.aten.full
use torch.ops.aten.scalar_tensor
"""
NEG_GRAPH = """\
def forward(x: f32[4]):
    neg: f32[4] = aten.neg.default(x)
    return (neg,)
"""
MODEL = """\
import torch


class Neg(torch.nn.Module):
    def forward(self, x):
        return -x


def neg():
    return Neg(), (torch.randn(4),)
"""


def rule(template: str) -> str:
    return (f"{USES}rule neg_by_constants:\n    match neg($x)\n    where shape($x) == [4]\n"
            f"    replace with {template}\n")


def engine_command(*argv) -> subprocess.CompletedProcess:
    script = shutil.which("engine", path=str(Path(sys.executable).parent))
    return subprocess.run([script, *argv], capture_output=True, text=True, cwd=REPO)


def engine_apply(capsys, *argv) -> tuple[int, str, str]:
    """`engine apply ...` as tests/test_cli.py runs it: its status, stdout and stderr."""
    status = main(["apply", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def files(tmp_path):
    (tmp_path / "neg.fxg").write_text(NEG_GRAPH)
    (tmp_path / "models.py").write_text(MODEL)
    return tmp_path


def test_a_constant_made_by_a_template_combines_with_the_graphs_values(files, capsys):
    (files / "rules.rw").write_text(rule("sub(zeros([4]), $x)"))
    status, out, err = engine_apply(capsys, str(files / "rules.rw"), str(files / "neg.fxg"))
    assert status == 0, err
    assert "aten.zeros.default([4])" in out
    assert re.search(r"aten\.sub\.Tensor\(zeros\w*, x\)", out), out
    assert "rule `neg_by_constants`: 1 match" in err


@pytest.mark.parametrize("template", ["sub(zeros([4]), $x)", "mul($x, scalar_tensor(-1.0))",
                                      "sub(full([4], 0.0), $x)"])
def test_an_exported_program_rewritten_with_constants_saves_loads_and_runs(files, capsys,
                                                                           template):
    """The program torch.export checks: every value in one fake mode, the graph's."""
    (files / "rules.rw").write_text(rule(template))
    saved = files / "out.pt2"
    status, _, err = engine_apply(capsys, str(files / "rules.rw"),
                                  f"{files / 'models.py'}:neg", "-o", str(saved))
    assert status == 0, err
    assert "Traceback" not in err and "AssertionError" not in err
    x = torch.randn(4)
    loaded = torch.export.load(saved)
    torch.testing.assert_close(loaded.module()(x), -x)


class Neg(torch.nn.Module):
    def forward(self, x):
        return -x


def test_the_rewritten_graph_has_one_fake_mode():
    program = torch.export.export(Neg(), (torch.randn(4),))
    rules = engine.rules_from_text(rule("mul($x, scalar_tensor(-1.0))"))
    rewritten = rules.apply_program(program)
    modes = {id(node.meta["val"].fake_mode) for node in rewritten.graph.nodes
             if isinstance(node.meta.get("val"), FakeTensor)}
    assert len(modes) == 1
    assert any(node.target is torch.ops.aten.scalar_tensor.default
               for node in rewritten.graph.nodes)


def test_a_template_that_fails_on_its_inputs_is_a_located_graph_error(files):
    """The whole of stderr: the GraphError, not fake tensors' log of the failure."""
    (files / "rules.rw").write_text(rule("sub(zeros([5]), $x)"))
    result = engine_command("apply", str(files / "rules.rw"), f"{files / 'models.py'}:neg")
    assert result.returncode == 1
    first, *rest = result.stderr.splitlines()
    assert first.startswith(f"error: rule `neg_by_constants` ({files / 'rules.rw'}:10:18) "
                            "`aten.sub.Tensor(aten.zeros.default([5]), x)` fails on its "
                            "inputs: "), result.stderr
    assert rest == [f"    `neg`: from {files / 'models.py'}:6 in forward: return -x"], \
        result.stderr


def test_verify_checks_a_rule_whose_template_makes_a_constant(tmp_path):
    """Before, every drawn instance was refused ("Mixing fake modes"): unchecked."""
    (tmp_path / "rules.rw").write_text(
        f"{USES}use torch.ops.aten.neg.default as neg_tensor\n"
        "rule neg_as_zero_minus:\n    match neg_tensor($x)\n"
        "    replace with sub(scalar_tensor(0.0, dtype=dtype($x)), $x)\n"
        "    verify unsigned_zeros\n")
    result = engine_command("verify", str(tmp_path / "rules.rw"), "--examples", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    checked = re.search(r"checked on (\d+) instances \(30 drawn: (\d+) rejected by the ops, "
                        r"\d+ turned down by the guards\)", result.stdout)
    assert checked and int(checked.group(1)) > 0, result.stdout
