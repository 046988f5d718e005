"""The `engine` command: what it prints where, and its exit status (0 ok, 1 errors, 2 usage)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.frontends.cli import main

REPO = Path(__file__).resolve().parent.parent
RULES = str(REPO / "rules" / "autocast.rw")
EXAMPLE = str(REPO / "examples" / "models.py") + ":autocast_mlp"


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_apply_prints_the_rewritten_program_and_the_report(capsys):
    status, out, err = run(capsys, "apply", RULES, EXAMPLE)
    assert status == 0
    assert out.startswith("def forward(")
    assert "higher_order.wrap_with_autocast('cpu', torch.bfloat16, True, False, submod_2" in out
    assert "_enter_autocast" not in out
    assert "signature:" in out
    assert "rule `autocast_regions`: 2 matches" in err
    assert "examples/models.py:20 in forward" in err


def test_apply_diff_shows_before_and_after(capsys):
    status, out, _ = run(capsys, "apply", RULES, EXAMPLE, "--diff")
    assert status == 0
    assert out.splitlines()[0].endswith("(before)")
    assert any(line.startswith("-    _enter_autocast") for line in out.splitlines())
    # torch's name for the fetch: `submod_1` is the partition's call in its split graph
    assert any(line.startswith("+    submod_2 = get_attr(submod_1)") for line in out.splitlines())


def test_apply_saves_a_program_that_loads_and_runs(capsys, tmp_path):
    target = tmp_path / "out.pt2"
    status, _, err = run(capsys, "apply", RULES, EXAMPLE, "-o", str(target))
    assert status == 0 and f"saved {target}" in err
    from examples.models import autocast_mlp

    model, args = autocast_mlp()
    loaded = torch.export.load(target)
    torch.testing.assert_close(loaded.module()(*args), model(*args), rtol=0, atol=0)


def test_dump_prints_the_raw_graph(capsys):
    status, out, _ = run(capsys, "dump", EXAMPLE)
    assert status == 0
    assert "torch.amp.autocast_mode._enter_autocast('cpu', torch.bfloat16, True, False)" in out


def test_check_passes_good_rules(capsys):
    status, out, err = run(capsys, "check", RULES)
    assert (status, err) == (0, "")
    assert out == f"{RULES}: 1 rule, no errors\n"


@pytest.mark.parametrize("rules", ["autocast", "set_grad", "export"])
def test_check_verbose_describes_the_checked_rules(capsys, snapshot, monkeypatch, rules):
    monkeypatch.chdir(REPO)
    status, out, _ = run(capsys, "check", "--verbose", f"rules/{rules}.rw")
    assert status == 0
    assert out == snapshot


def test_check_reports_errors_on_stderr_and_exits_1(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    status, out, err = run(capsys, "check", "tests/diagnostics/unbound_variable.rw")
    assert (status, out) == (1, "")
    assert err.startswith("tests/diagnostics/unbound_variable.rw:8:37: error: ")
    assert "Traceback" not in err


def test_apply_with_bad_rules_exits_1_without_a_traceback(capsys):
    bad = str(REPO / "tests" / "diagnostics" / "unknown_name.rw")
    status, out, err = run(capsys, "apply", bad, EXAMPLE)
    assert (status, out) == (1, "")
    assert "unknown name `exit_autocast`" in err and "Traceback" not in err


def test_apply_to_an_unbalanced_graph_exits_1(capsys, tmp_path):
    model = tmp_path / "model.py"
    model.write_text(
        "import torch\n"
        "class NoExit(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        torch.amp.autocast_mode._enter_autocast('cpu', torch.bfloat16, True, False)\n"
        "        return x.sin()\n"
        "def make():\n"
        "    return NoExit(), (torch.randn(2, 2),)\n")
    status, out, err = run(capsys, "apply", RULES, f"{model}:make")
    assert (status, out) == (1, "")
    assert "opens a region that is never closed" in err and f"{model}:4 in forward" in err


@pytest.mark.parametrize("argv", [
    ["apply", RULES],                          # no model
    ["apply", RULES, "examples/models.py"],    # no :NAME
    ["apply", "no/such/rules.rw", EXAMPLE],
    ["apply", RULES, "no/such/model.py:make"],
    ["apply", RULES, str(REPO / "examples" / "models.py") + ":no_such_function"],
    ["check"],
    ["frobnicate"],
    [],
], ids=["no-model", "no-name", "no-rules-file", "no-model-file", "no-function", "check-nothing",
        "unknown-command", "no-command"])
def test_usage_errors_exit_2(capsys, argv):
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse's own usage errors
        status = exit.code
    assert status == 2
    assert capsys.readouterr().err


def test_every_command_has_help(capsys):
    for command in ([], ["apply"], ["check"], ["dump"]):
        with pytest.raises(SystemExit) as exit:
            main([*command, "--help"])
        assert exit.value.code == 0
        assert "usage: engine" in capsys.readouterr().out


def test_console_script_is_installed():
    script = shutil.which("engine", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run([script, "check", RULES], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
