"""The `engine` command in colour: on a terminal, never through a pipe, never with NO_COLOR.

The real command runs as a process, its stdout and stderr each on a pseudo-terminal of its own
(or a pipe), and what it writes is compared: coloured on a terminal, and the same text as
through a pipe once the escapes are taken out; no escape at all through a pipe or under
NO_COLOR. `engine.frontends.colour` decides, and colours with Pygments' terminal formatter.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import tty
from pathlib import Path

import pytest
from pygments.console import ansiformat

from engine.frontends.colour import (DIAGNOSTICS, DIFF, GRAPH, JSON, REPORT, colour,
                                     wants_colour)

REPO = Path(__file__).resolve().parent.parent
ENGINE = str(Path(sys.executable).parent / "engine")
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
BAD_RULES = "tests/diagnostics/unbound_variable.rw"
RULES = "rules/algebra.rw"
GRAPH_TEXT = """\
def forward(x: f32[4, 8]):
    mul: f32[4, 8] = aten.mul.Tensor(x, 1)
    neg: f32[4, 8] = aten.neg.default(mul)
    neg_1: f32[4, 8] = aten.neg.default(neg)
    return (neg_1,)
"""

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs pseudo-terminals")


def run_engine(*argv: str, terminal: bool | str, **environ: str) -> tuple[int, str, str]:
    """(status, stdout, stderr) of `engine ARGV`; `terminal` True: both streams on terminals,
    False: both pipes, "stdout" or "stderr": that one on a terminal, the other a pipe."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(environ)
    # (reader, writer) for each stream: a pseudo-terminal's two ends, or a pipe's
    ends = [os.openpty() if terminal in (True, name) else os.pipe()
            for name in ("stdout", "stderr")]
    for _, writer in ends:
        if os.isatty(writer):
            tty.setraw(writer)  # bytes as written: no "\n" -> "\r\n"
    process = subprocess.Popen([ENGINE, *argv], stdin=subprocess.DEVNULL, stdout=ends[0][1],
                               stderr=ends[1][1], env=env, cwd=REPO)
    for _, writer in ends:
        os.close(writer)  # the child holds them now: its exit closes them
    written = _read_until_closed([reader for reader, _ in ends])
    status = process.wait(timeout=300)
    return status, *(written[reader].decode() for reader, _ in ends)


def _read_until_closed(readers: list[int]) -> dict[int, bytes]:
    # Both at once: a terminal holds a few KiB, and a child blocked on one would never close
    # the other.
    written = {reader: b"" for reader in readers}
    open_readers = list(readers)
    while open_readers:
        ready, _, _ = select.select(open_readers, [], [], 300)
        assert ready, "engine wrote nothing for 300 s"
        for reader in ready:
            try:
                chunk = os.read(reader, 65536)
            except OSError:  # EIO: a terminal's writing side is closed
                chunk = b""
            if chunk:
                written[reader] += chunk
            else:
                open_readers.remove(reader)
                os.close(reader)
    return written


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("graphs") / "negations.fxg"
    path.write_text(GRAPH_TEXT)
    return str(path)


def assert_coloured_as_piped(argv, coloured_streams):
    """On terminals: the streams named are coloured, and each is the piped text once the
    escapes are out; piped and with NO_COLOR on terminals: no escapes, the piped text."""
    piped = run_engine(*argv, terminal=False)
    on_terminal = run_engine(*argv, terminal=True)
    no_colour = run_engine(*argv, terminal=True, NO_COLOR="1")
    assert on_terminal[0] == piped[0] == no_colour[0]
    for index, name in ((1, "stdout"), (2, "stderr")):
        assert not ESCAPE.search(piped[index]), name
        assert no_colour[index] == piped[index], name
        assert ESCAPE.sub("", on_terminal[index]) == piped[index], name
        assert bool(ESCAPE.search(on_terminal[index])) == (name in coloured_streams), name
    return on_terminal


def test_check_colours_its_diagnostics_on_a_terminal():
    status, _, err = assert_coloured_as_piped(["check", BAD_RULES], {"stderr"})
    assert status == 1
    assert re.search(r"\x1b\[[0-9;]*merror\x1b\[[0-9;]*m:", err)  # `error` in its colour
    assert f"{BAD_RULES}:8:37" in ESCAPE.sub("", err)


def test_apply_diff_and_report_are_coloured_on_a_terminal(graph):
    status, out, err = assert_coloured_as_piped(["apply", RULES, graph, "--diff"],
                                                {"stdout", "stderr"})
    assert status == 0
    # a removed line in one colour, from its `-` on
    assert re.search(r"^\x1b\[[0-9;]*m-    mul: f32\[4, 8\] = aten.mul.Tensor\(x, 1\)\x1b", out,
                     re.MULTILINE)
    assert "rule `times_one`: 1 match" in ESCAPE.sub("", err)


def test_explain_is_coloured_on_a_terminal(graph):
    status, out, _ = assert_coloured_as_piped(["explain", RULES, graph], {"stdout"})
    assert status == 0
    assert "`neg`: not matched" in ESCAPE.sub("", out)


def test_each_stream_decides_for_itself(graph):
    piped = run_engine("apply", RULES, graph, terminal=False)
    graph_on_terminal = run_engine("apply", RULES, graph, terminal="stdout")
    report_on_terminal = run_engine("apply", RULES, graph, terminal="stderr")
    assert ESCAPE.search(graph_on_terminal[1]) and not ESCAPE.search(graph_on_terminal[2])
    assert ESCAPE.search(report_on_terminal[2]) and not ESCAPE.search(report_on_terminal[1])
    for status, out, err in (graph_on_terminal, report_on_terminal):
        assert (status, ESCAPE.sub("", out), ESCAPE.sub("", err)) == piped


def test_dump_colours_graph_text_on_a_terminal(graph):
    _, piped, _ = run_engine("dump", graph, terminal=False)
    _, on_terminal, _ = run_engine("dump", graph, terminal=True)
    assert ESCAPE.search(on_terminal) and ESCAPE.sub("", on_terminal) == piped == GRAPH_TEXT


def test_force_colour_colours_a_pipe():
    _, _, forced = run_engine("check", BAD_RULES, terminal=False, FORCE_COLOR="1")
    assert ESCAPE.search(forced)


class Terminal:
    def isatty(self) -> bool:
        return True


def test_the_decision_follows_no_color_and_force_color():
    assert wants_colour(Terminal(), {})
    assert wants_colour(Terminal(), {"NO_COLOR": ""})  # set but empty: no opinion
    assert not wants_colour(Terminal(), {"NO_COLOR": "1"})
    assert not wants_colour(Terminal(), {"NO_COLOR": "1", "FORCE_COLOR": "1"})
    assert not wants_colour(object(), {})  # a stream without isatty: not a terminal
    assert wants_colour(object(), {"FORCE_COLOR": "1"})


def test_without_pygments_there_is_no_colour(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygments", None)  # `import pygments` raises ImportError
    assert not wants_colour(Terminal(), {"FORCE_COLOR": "1"})


def test_diagnostics_and_diffs_in_their_colours():
    text = "a.rw:3:5: error: `$y` is not bound\n    replace with f($y)\n                   ^^\n1 error"
    coloured = colour(text, DIAGNOSTICS)
    assert ansiformat("**", "a.rw:3:5") in coloured  # the place in bold
    assert ansiformat("brightred", "error") in coloured
    assert ansiformat("green", "^^") in coloured  # the caret
    assert ansiformat("blue", "replace") in coloured  # the quoted line as a rule: a keyword
    assert ansiformat("red", "$y") in coloured  # a variable, in the quoted line
    assert ansiformat("green", "`$y`") in coloured
    diff = colour("--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n", DIFF)
    assert ansiformat("brightred", "-x") in diff and ansiformat("green", "+y") in diff


@pytest.mark.parametrize("kind, text", [
    (DIAGNOSTICS, "a.rw:3:5: error: `$y` is not bound\r\n    replace with f($y)\n    ^^\n1 error"),
    (REPORT, "rules/x.rw:2: rule `r`: 0 matches\n  `n`: not matched: ...\n      binds $x = `y`\n"),
    (DIFF, "--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y"),
    (GRAPH, "def forward(x: f32[2]):\n    return (x,)\n\n"),
    (JSON, '[{"rule": "r", "matched": true}]'),
], ids=["diagnostics", "report", "diff", "graph", "json"])
def test_colour_only_adds_escapes(kind, text):
    coloured = colour(text, kind)
    assert ESCAPE.search(coloured)
    assert ESCAPE.sub("", coloured) == text
