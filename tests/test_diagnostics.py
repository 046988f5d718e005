"""Bad rule files: one snippet a case in tests/diagnostics/, its rendered diagnostics snapshotted.

Every case must fail to load with a `RuleError` (never another exception), and every error must
read `file:line:col: error: ...` followed by the source line and a caret.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import engine

REPO = Path(__file__).resolve().parent.parent
CASES = sorted((REPO / "tests" / "diagnostics").glob("*.rw"))
HEADER = re.compile(r"^(tests/diagnostics/[\w/]+\.rw):(\d+):(\d+): (error|note): ", re.MULTILINE)


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_bad_rule_file_is_reported(path: Path, snapshot, monkeypatch):
    monkeypatch.chdir(REPO)  # diagnostics name the file as given: keep it relative
    relative = path.relative_to(REPO).as_posix()
    with pytest.raises(engine.RuleError) as caught:
        engine.load_rules(relative)
    text = str(caught.value)
    headers = HEADER.findall(text)
    assert headers and len(caught.value.diagnostics) == sum(1 for h in headers if h[3] == "error")
    for block in re.split(r"\n(?=tests/)", text.rsplit("\n", 1)[0]):
        header, quoted, caret = block.splitlines()
        file, line, column, _ = HEADER.match(header).groups()
        line, column = int(line), int(column)
        assert quoted == "    " + (REPO / file).read_text().splitlines()[line - 1]
        assert caret.startswith("    " + " " * (column - 1) + "^")
    assert text == snapshot


def test_all_errors_of_a_file_are_reported_together():
    with pytest.raises(engine.RuleError) as caught:
        engine.load_rules(REPO / "tests" / "diagnostics" / "syntax_several_errors.rw")
    assert [d.span.line for d in caught.value.diagnostics] == [2, 7, 11]
    with pytest.raises(engine.RuleError) as caught:
        engine.load_rules(REPO / "tests" / "diagnostics" / "several_check_errors.rw")
    assert len(caught.value.diagnostics) == 3


def test_errors_across_files_are_reported_together(tmp_path):
    first = tmp_path / "first.rw"
    second = tmp_path / "second.rw"
    first.write_text("use torch.amp.autocast_mode._enter_autocast as enter\nuse nope.x\n")
    second.write_text("use torch.ops.aten.nope\n")
    with pytest.raises(engine.RuleError) as caught:
        engine.load_rules(first, second)
    assert [d.span.where for d in caught.value.diagnostics] == [
        f"{first}:2:5", f"{second}:1:5"]


def test_rule_names_must_be_unique_across_files(tmp_path):
    text = (REPO / "rules" / "autocast.rw").read_text()
    (tmp_path / "a.rw").write_text(text)
    (tmp_path / "b.rw").write_text(text)
    with pytest.raises(engine.RuleError, match="rule `autocast_regions` is already defined"):
        engine.load_rules(tmp_path / "a.rw", tmp_path / "b.rw")
