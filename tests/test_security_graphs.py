"""Graph text and fixtures run nothing but tensor computations: hostile graphs are refused where
they stand, and running a graph leaves the caller's process as it was.

Each file in tests/security/graphs/ tries one way out of the allowlist (a fetch through an
object's attributes, `operator.call`, a tensor method that reaches memory or files, an op that
prints or reseeds, a module outside torch); the lines that must be refused end in
`# <- refused`. The files run through every command that reads a graph, in a process of their
own, next to a module whose import would leave a marker file, and nothing may appear.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import engine

REPO = Path(__file__).resolve().parent.parent
HOSTILE = sorted((REPO / "tests" / "security" / "graphs").glob("*.fxg"))
RULES = str(REPO / "rules" / "algebra.rw")


def refused_lines(path: Path) -> list[int]:
    return [number for number, line in enumerate(path.read_text().splitlines(), start=1)
            if line.rstrip().endswith("# <- refused")]


def test_there_are_thirty_hostile_graphs_or_more():
    assert len(HOSTILE) >= 30
    assert all(refused_lines(path) for path in HOSTILE)


@pytest.mark.parametrize("path", HOSTILE, ids=[p.stem for p in HOSTILE])
def test_a_hostile_graph_is_refused_where_it_reaches_out(path):
    with pytest.raises(engine.GraphTextError) as caught:
        engine.load_graph(path)
    assert sorted({d.span.line for d in caught.value.diagnostics}) == refused_lines(path)
    first = str(caught.value).splitlines()[0]
    assert first.startswith(f"{path}:{refused_lines(path)[0]}:")
    assert ": error: " in first


def test_reading_hostile_graphs_imports_no_module():
    engine.load_graph(REPO / "tests" / "security" / "allowed_markers.fxg")  # warm up
    before = set(sys.modules)
    for path in HOSTILE:
        with pytest.raises(engine.GraphTextError):
            engine.load_graph(path)
    assert set(sys.modules) - before == set()


# In a process of its own, beside `hostile_marker.py` (its import writes IMPORTED), each hostile
# graph goes through each command that reads graph text, and each as a fixture through
# `engine test`; the process says what each command returned and what its process state was.
HARNESS = r"""
import contextlib, io, json, sys, torch
from engine.frontends.cli import main
rules, files = sys.argv[1], sys.argv[2:]
state = lambda: (torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"),
                 torch.random.get_rng_state().sum().item())
before = state()
results = {}
for path in files:
    fixture = path[:-4] + ".fxt"
    runs = {}
    for argv in (["dump", path], ["apply", rules, path], ["explain", rules, path],
                 ["verify", rules, path, "--examples", "2"], ["test", rules, fixture],
                 ["apply", rules, path, "-o", path + ".out.fxg"]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
            status = main(argv)
        runs[argv[0] + ("-o" if "-o" in argv else "")] = (status, err.getvalue(), out.getvalue())
    results[path] = runs
print(json.dumps({"results": results, "imported": "hostile_marker" in sys.modules,
                  "state_kept": state() == before}))
"""


def test_no_command_runs_a_hostile_graph(tmp_path):
    (tmp_path / "hostile_marker.py").write_text(
        "open(__file__.rsplit('/', 1)[0] + '/IMPORTED', 'w').write('imported')\n")
    for path in HOSTILE:
        text = path.read_text()
        (tmp_path / path.name).write_text(text)
        (tmp_path / f"{path.stem}.fxt").write_text(
            f"# --- case: {path.stem}\n{text}\n# --- expect: unchanged\n")
    files_before = sorted(os.listdir(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", HARNESS, RULES, *(str(tmp_path / p.name) for p in HOSTILE)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    for path, runs in report["results"].items():
        # Where `engine dump` tells the first mistake; in the fixture, the graph is a line lower.
        line, column = re.match(rf"{re.escape(path)}:(\d+):(\d+): ", runs["dump"][1]).groups()
        for command, (status, err, out) in runs.items():
            assert status == 1, (path, command, err)
            if command == "test":  # engine test prints each failing case on stdout
                said = out
                assert "0 passed, 1 failed" in out, (path, out)
                assert f"{path[:-4]}.fxt:{int(line) + 1}:{column}: error: " in out, (path, out)
            else:
                said = err
                assert err.startswith(f"{path}:"), (path, command, err)
            assert ": error: " in said and "Traceback" not in err + out, (path, command, said)
    assert not report["imported"]
    assert report["state_kept"]
    assert sorted(os.listdir(tmp_path)) == files_before  # no marker, no output, nothing


def test_the_fixture_of_the_issue_runs_nothing_through_engine_test(tmp_path):
    fixture = tmp_path / "innocent.fxt"
    text = (REPO / "tests" / "security" / "graphs" / "globals_exec.fxg").read_text()
    fixture.write_text(f"# --- case: innocent looking\n{text}\n# --- expect: unchanged\n")
    done = subprocess.run([sys.executable, "-m", "engine.frontends.cli", "test", RULES,
                           str(fixture)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    assert "0 passed, 1 failed" in done.stdout
    assert "`__reduce_ex__` is a dunder name" in done.stdout
    assert "`operator.call` calls or reaches what it is given" in done.stdout
    assert sorted(os.listdir(tmp_path)) == ["innocent.fxt"]


def test_running_a_graph_keeps_the_callers_grad_mode_autocast_and_random_state():
    module = engine.load_graph(REPO / "tests" / "security" / "allowed_markers.fxg")
    torch.manual_seed(0)
    rng, grad = torch.random.get_rng_state(), torch.is_grad_enabled()
    first = module(torch.ones(4))
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert torch.is_grad_enabled() == grad and not torch.is_autocast_enabled("cpu")
    assert torch.equal(module(torch.ones(4))[1], first[1])  # the same draw: the state is put back
    with torch.no_grad():
        module(torch.ones(4))
        assert not torch.is_grad_enabled()


def test_an_op_with_an_effect_is_named_where_it_is_allowed():
    text = ("def forward(x: f32[2]):\n"
            "    p = aten._print.default('from a graph')\n"
            "    return (x,)\n")
    with pytest.raises(engine.GraphTextError, match="--allow-effect aten._print"):
        engine.parse_graph(text)
    with engine.allowed_effects("aten._print"):
        module = engine.parse_graph(text)
    assert [n.target for n in module.graph.nodes][1] is torch.ops.aten._print.default
    with pytest.raises(engine.GraphTextError):  # only inside the block
        engine.parse_graph(text)
    with engine.allowed_effects("aten.from_file"):  # reading files is never allowed
        with pytest.raises(engine.GraphTextError, match="reads or writes a file"):
            engine.parse_graph("def forward():\n    f: u8[4] = aten.from_file.default('x')\n"
                               "    return (f,)\n")


def test_the_command_line_allows_an_effect_by_name(tmp_path):
    graph = tmp_path / "prints.fxg"
    graph.write_text("def forward(x: f32[2]):\n"
                     "    p: None = aten._print.default('from a graph')\n"
                     "    return (x,)\n")
    engine_command = [sys.executable, "-m", "engine.frontends.cli"]
    refused = subprocess.run([*engine_command, "dump", str(graph)], capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"{graph}:2:15: error: `torch.ops.aten._print.default` "
                                     "prints; a rule or graph file names it only where that "
                                     "is allowed: `--allow-effect aten._print`")
    allowed = subprocess.run([*engine_command, "dump", "--allow-effect", "aten._print",
                              str(graph)], capture_output=True, text=True, timeout=300)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout == graph.read_text()


def test_a_torch_submodule_not_loaded_is_unknown_and_not_imported():
    probe = ("import sys, engine\n"
             "from engine.language.names import ResolveError, resolve\n"
             "try:\n"
             "    resolve(('torch', 'utils', 'cpp_extension', 'load_inline'))\n"
             "except ResolveError as error:\n"
             "    print(error)\n"
             "print('torch.utils.cpp_extension' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.splitlines() == ["`torch.utils` has no `cpp_extension`", "False"]
