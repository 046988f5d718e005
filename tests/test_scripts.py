"""The scripts and benchmarks the README gives commands for, run as a user runs them (through
their process, at small sizes here): each prints its table and exits 0. The benchmarks check
their own results (ours against torch's, the same graph and numbers) before they print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(*argv: str, cwd: Path = REPO) -> list[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_bench_dag_prints_its_ratios_against_torchs_matchers():
    lines = run(sys.executable, "benchmarks/bench_dag.py", "--occurrences", "20",
                "--inductor-max", "20", "--replace-pattern-max", "20")
    header = next(index for index, line in enumerate(lines)
                  if line.split()[:2] == ["matches", "nodes"])
    row = lines[header + 1].split()
    assert row[:2] == ["20", "63"] and row[-1].endswith("x") and row[-3].endswith("x")


def test_bench_graph_text_prints_time_and_memory_against_torch_fx():
    lines = run(sys.executable, "benchmarks/bench_graph_text.py", "--nodes", "300")
    assert lines[-2].split()[:2] == ["nodes", "|"]
    row = lines[-1].split()
    assert row[0] == "302" and row[-2].endswith("x") and row[-1].endswith("x")


def test_bench_rule_sets_prints_each_set_against_twenty_rules():
    lines = run(sys.executable, "benchmarks/bench_rule_sets.py", "--nodes", "50", "--rules",
                "40", "--runs", "1")
    assert lines[-5].split()[:2] == ["rule", "set"]
    assert [line.split()[0] for line in lines[-4:]] == ["21", "40", "40", "40"]
    assert all(line.endswith("x") for line in lines[-4:])


def test_bench_hop_passes_prints_each_pass_against_torchs():
    lines = run(sys.executable, "benchmarks/bench_hop_passes.py", "--links", "3",
                "--torch-max", "3")
    for kind in ("autocast", "set_grad", "mixed", "side_by_side"):
        at = next(index for index, line in enumerate(lines) if line.startswith(f"{kind}:"))
        row = lines[at + 2].split()
        assert row[0] == "3" and row[-1].endswith("x"), lines[at:at + 3]


def test_bench_export_prints_export_times_with_torchs_passes_and_ours():
    lines = run(sys.executable, "benchmarks/bench_export.py", "--layers", "1", "--runs", "1")
    assert lines[-2].split()[:2] == ["layers", "nodes"]
    row = lines[-1].split()
    assert row[0] == "1" and row[-1].endswith("x") and "|" in row


def test_bench_lsp_prints_diagnostics_round_trips_from_the_server_process():
    lines = run(sys.executable, "benchmarks/bench_lsp.py", "--files", "rules/export.rw",
                "--changes", "4", "--warmup", "2", "--burst", "30", "--large", "40")
    assert lines[0].split()[:2] == ["file", "lines"]
    rows = [line.split() for line in lines[1:4]]
    assert [row[0] for row in rows] == ["rules/export.rw"] * 3
    assert all(row[-1] in ("yes", "NO") and float(row[-3]) > 0 for row in rows)
    assert lines[4].startswith("burst: 30 edits sent at once: ")
    # One publish when the whole burst arrived before the server was idle; more on a busy
    # machine, where it checked part of it (the benchmark then waited for the newest text's).
    assert re.search(r", [1-9]\d* publish\(es\) for the document after its open$", lines[4])
    assert lines[5].startswith("large: a document of 40 rules opened: a hover on another ")


STAND_IN = '''
import sys
import torch


def test_set_grad_export_runs_the_rules():
    class Model(torch.nn.Module):
        def forward(self, x):
            with torch.no_grad():
                return x.sin()

    torch.export.export(Model(), (torch.randn(2),))
    assert sys.modules["engine"].installed_torch_export_rules().name == "export.rw"


def test_set_grad_and_torchs_helpers():
    from torch._export.passes import replace_with_hop_pass_util
    try:
        replace_with_hop_pass_util._replace_with_hop_helper(None, None, None)
    except AssertionError as error:
        assert "ran, not the rules" in str(error)
    else:
        raise AssertionError("torch's helper ran")


def test_not_selected():
    raise AssertionError("outside the set-grad, autocast and split tests")
'''


def test_torch_pass_tests_runs_a_test_file_with_the_rules_installed(tmp_path):
    """A stand-in for PyTorch's test/export/test_passes.py (not in this repository)."""
    (tmp_path / "test_passes.py").write_text(STAND_IN)
    lines = run(str(REPO / "scripts" / "torch_pass_tests"), str(tmp_path / "test_passes.py"),
                cwd=tmp_path)
    assert "2 passed, 1 deselected" in lines[-1]
    assert any(line.endswith("export.rw ran 1 times as torch.export's HOP passes; torch's pass "
                             "helpers never ran") for line in lines)
