"""Bad rule files: one snippet a case in tests/diagnostics/, its rendered diagnostics snapshotted.

Every case must fail to load with a `RuleError` (never another exception), and every error must
read `file:line:col: error: ...` followed by the source line and a caret.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- many errors, long lines: the cost of telling them -----------------------------------------
def test_thousands_of_misspelt_ops_are_all_counted_each_suggested_and_a_hundred_shown(
        tmp_path, monkeypatch):
    from engine.language import suggest

    read = torch._C._dispatch_get_all_op_names
    ops = sorted({name.split("::")[1].split(".")[0] for name in read()
                  if name.startswith("aten::")})
    misspelt = [op + op[-1] for op in ops
                if len(op) >= 4 and op[0] != "_" and op + op[-1] not in ops][:500]
    path = tmp_path / "misspelt.rw"
    path.write_text("".join(f"use torch.ops.aten.{misspelt[i % 500]}\n" for i in range(2000)))
    reads, measured = [], []
    distance = suggest._distance
    monkeypatch.setattr(torch._C, "_dispatch_get_all_op_names",
                        lambda: reads.append(1) or read())
    monkeypatch.setattr(suggest, "_distance", lambda a, b: measured.append(1) or distance(a, b))
    with pytest.raises(engine.RuleError) as caught:
        engine.load_rules(path)
    assert len(caught.value.diagnostics) == 2000
    assert all("; did you mean `" in d.message for d in caught.value.diagnostics)
    text = str(caught.value)
    assert text.endswith("\n2000 errors, the first 100 shown")
    assert text.count(": error: ") == 100
    # The dispatcher is read once for the check, and a misspelling is measured against the
    # few names of its length and letters, once however often it is made.
    assert len(reads) == 1
    assert len(measured) < 500 * len(ops) / 20


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_index_suggests_what_measuring_every_name_suggests(data):
    from engine.language.suggest import Suggestions, _distance

    names = data.draw(st.lists(st.text("abcdeflmnop_1", min_size=1, max_size=14), max_size=40))
    word = data.draw(st.one_of(st.text("abcdeflmnop_1", max_size=14),
                               st.sampled_from(names or ["x"]).map(lambda n: n[::-1])))
    limit = min(3, max(1, len(word) // 4))
    near = sorted((_distance(word.lower(), n.lower()), n) for n in set(names) if n != word)
    near = [(d, n) for d, n in near if d <= limit]
    expected = [n for d, n in near if d == near[0][0]][:3] if near and len(word) >= 3 else []
    assert Suggestions(names).closest(word) == expected


def test_a_long_line_shows_the_part_about_the_caret(tmp_path):
    path = tmp_path / "long.rw"
    path.write_text(" " * 1000 + "use torch.ops.aten.nope\n")
    with pytest.raises(engine.RuleError) as caught:
        engine.load_rules(path)
    _, quoted, caret = str(caught.value).splitlines()[:3]
    assert len(quoted) <= 4 + 3 + 120 + 3 and quoted.startswith("    ...")
    column = caret.index("^")
    line = path.read_text().splitlines()[0]
    start = caught.value.diagnostics[0].span.column - 1
    assert quoted[column:column + 8] == line[start:start + 8]


@pytest.mark.parametrize("kind", ["pattern", "condition"])
def test_uses_nested_past_the_bound_are_told_once_at_the_use(tmp_path, kind):
    """A chain of 150 named patterns (or conditions), each using the one before: the checker
    expands at most 100 inside one another (a chain of 400 was a RecursionError), and tells it
    once, at the use that would go deeper, however many definitions reach it."""
    lines = ["use torch.ops.aten.relu.default as relu",
             "pattern p0($x) = relu($x)" if kind == "pattern" else "condition p0($x) = rank($x) == 2"]
    lines += [f"{kind} p{i}($x) = p{i - 1}($x)" for i in range(1, 150)]
    lines += ["rule r:", "    match relu(p149($x))" if kind == "pattern" else "    match relu($x)"]
    lines += [] if kind == "pattern" else ["    where p149($x)"]
    lines += ["    replace with $x"]
    path = tmp_path / "chain.rw"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(engine.RuleError) as caught:
        engine.load_rules(path)
    (only,) = caught.value.diagnostics
    assert only.message == ("named patterns and conditions are used inside one another more "
                            "than 100 deep here")
    assert only.span.source.line(only.span.line).startswith(f"{kind} p")
