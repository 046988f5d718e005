"""`engine test`: the fixtures of every rule file in rules/ pass through the command, and the
command itself tells failures with a diff, rewrites fixtures with --update, and exits 0, 1, 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.tools.ruletest import read_fixture

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "rules"
RULE_FILES = sorted((REPO / "rules").glob("*.rw"))


def engine_test(*argv, cwd=REPO) -> subprocess.CompletedProcess:
    script = shutil.which("engine", path=str(Path(sys.executable).parent))
    return subprocess.run([script, "test", *argv], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda path: path.stem)
def test_the_fixtures_of_each_rule_file_pass(rule_file):
    fixtures = FIXTURES / rule_file.stem
    result = engine_test(str(rule_file.relative_to(REPO)), str(fixtures.relative_to(REPO)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().splitlines()[-1].endswith("passed, 0 failed")


def test_each_rule_has_a_case_where_it_fires_and_one_where_it_does_not():
    import engine

    for rule_file in RULE_FILES:
        if rule_file.stem == "export":  # its rules are autocast.rw's and set_grad.rw's
            continue
        cases = [case for path in sorted((FIXTURES / rule_file.stem).glob("*.fxt"))
                 for case in read_fixture(path).cases]
        for rule in engine.load_rules(rule_file).rules:
            fires = [c for c in cases if any(line.startswith(f"{rule.name} at ")
                                             for line in c.report or ())]
            assert fires, f"{rule.name}: no case where it fires"
            assert len(fires) < len(cases), f"{rule.name}: no case where it does not fire"


FAILING = """\
# --- case: x * 1 is x
def forward(x: f32[4]):
    mul: f32[4] = aten.mul.Tensor(x, 1)
    return (mul,)
# --- expect
def forward(x: f32[4]):
    mul: f32[4] = aten.mul.Tensor(x, 1)
    return (mul,)
"""

UNSOUND = """\
use torch.ops.aten.mul.Tensor as mul
rule times_two_is_x:
    match mul($x, 2)
    replace with $x
"""


def test_a_failing_case_shows_a_diff_and_update_rewrites_the_fixture(tmp_path):
    fixture = tmp_path / "times_one.fxt"
    fixture.write_text(FAILING)
    result = engine_test("rules/algebra.rw", str(fixture))
    assert result.returncode == 1
    assert f"FAIL {fixture}:1: x * 1 is x" in result.stdout
    assert "-    mul: f32[4] = aten.mul.Tensor(x, 1)" in result.stdout
    assert "+    return (x,)" in result.stdout
    assert result.stdout.rstrip().endswith("0 passed, 1 failed")
    updated = engine_test("rules/algebra.rw", str(fixture), "--update")
    assert updated.returncode == 0
    assert fixture.read_text() == """\
# --- case: x * 1 is x
def forward(x: f32[4]):
    mul: f32[4] = aten.mul.Tensor(x, 1)
    return (mul,)
# --- expect
def forward(x: f32[4]):
    return (x,)
# --- report
times_one at mul
"""
    assert engine_test("rules/algebra.rw", str(fixture)).returncode == 0


def test_a_rule_that_changes_the_values_fails_its_fixture(tmp_path):
    rules = tmp_path / "unsound.rw"
    rules.write_text(UNSOUND)
    fixture = tmp_path / "unsound.fxt"
    fixture.write_text("""\
# --- case: x * 2 is not x, whatever the expectation says
def forward(x: f32[4]):
    mul: f32[4] = aten.mul.Tensor(x, 2)
    return (mul,)
# --- expect
def forward(x: f32[4]):
    return (x,)
""")
    result = engine_test(str(rules), str(fixture))
    assert result.returncode == 1
    assert "with seed 0, the value differs: at [0] the input graph gives" in result.stdout
    fixture.write_text(fixture.read_text() + "# --- no run\n")
    assert engine_test(str(rules), str(fixture)).returncode == 0


ROUNDED = """\
use torch.ops.aten.mul.Tensor as mul
use torch.ops.aten.div.Tensor as div
use torch.ops.aten.sqrt.default as sqrt
rule third:
    match div($x, 3.0)
    replace with mul($x, 0.333)
rule root_squared:
    match mul(sqrt($x), sqrt($x))
    replace with $x
"""

ROUNDED_CASES = """\
# --- case: x / 3 is about x * 0.333
def forward(x: f32[4]):
    div: f32[4] = aten.div.Tensor(x, 3.0)
    return (div,)
# --- expect
def forward(x: f32[4]):
    mul_tensor: f32[4] = aten.mul.Tensor(x, 0.333)
    return (mul_tensor,)
# --- case: sqrt(x)^2 is x where it is defined
def forward(x: f32[64]):
    sqrt: f32[64] = aten.sqrt.default(x)
    mul: f32[64] = aten.mul.Tensor(sqrt, sqrt)
    return (mul,)
# --- expect
def forward(x: f32[64]):
    return (x,)
"""


def test_values_are_held_to_what_the_fired_rules_promise(tmp_path):
    (tmp_path / "cases.fxt").write_text(ROUNDED_CASES)
    (tmp_path / "rules.rw").write_text(ROUNDED)
    result = engine_test("rules.rw", "cases.fxt", cwd=tmp_path)
    assert result.returncode == 1
    assert "cases.fxt:1: with seed 0, the value differs" in result.stdout
    assert ("cases.fxt:9: with seed 0, the value is finite where the input graph's is not"
            in result.stdout)
    promised = ROUNDED.replace("mul($x, 0.333)\n", "mul($x, 0.333)\n    verify tolerance(rtol=1e-2)\n")
    (tmp_path / "rules.rw").write_text(promised)
    result = engine_test("rules.rw", "cases.fxt", cwd=tmp_path)
    assert result.stdout.rstrip().endswith("1 passed, 1 failed"), result.stdout
    (tmp_path / "rules.rw").write_text(promised.rstrip("\n") + "\n    verify refines\n")
    result = engine_test("rules.rw", "cases.fxt", cwd=tmp_path)
    assert result.returncode == 0, result.stdout


def test_an_expected_error_and_a_report_are_checked(tmp_path):
    fixture = tmp_path / "errors.fxt"
    fixture.write_text("""\
# --- case: a tensor replaced by a number is refused
def forward(x: f32[4]):
    sin: f32[4] = aten.sin.default(x)
    return (sin,)
# --- expect: error
error: rule `r` (rules.rw:4:18) replaces `sin` (f32[4]) with 1.5, which is not a tensor
    `sin`: (no stack trace)
# --- case: the report must list the match
def forward(x: f32[4]):
    cos: f32[4] = aten.cos.default(x)
    return (cos,)
# --- expect: unchanged
# --- report
r at cos
""")
    (tmp_path / "rules.rw").write_text("use torch.ops.aten.sin\nrule r:\n    match sin($x)\n"
                                       "    replace with 1.5\n")
    result = engine_test("rules.rw", "errors.fxt", cwd=tmp_path)
    assert result.returncode == 1
    assert "FAIL errors.fxt:8: the report must list the match" in result.stdout
    assert "-r at cos" in result.stdout
    assert result.stdout.rstrip().endswith("1 passed, 1 failed")


def test_usage_errors_exit_2(tmp_path):
    assert engine_test("rules/algebra.rw").returncode == 2
    assert engine_test("rules/algebra.rw", str(tmp_path / "missing.fxt")).returncode == 2
    bad = tmp_path / "bad.fxt"
    bad.write_text("# --- expect\ndef forward(x: f32[4]):\n    return (x,)\n")
    result = engine_test("rules/algebra.rw", str(bad))
    assert result.returncode == 1 and "before any `# --- case:`" in result.stderr


def test_the_readme_excerpt_is_in_the_fixture_it_names():
    readme = (REPO / "README.md").read_text()
    excerpt = readme.split("From `tests/rules/algebra/times_one.fxt`:\n\n```\n")[1].split("```")[0]
    assert excerpt in (FIXTURES / "algebra" / "times_one.fxt").read_text()


def test_comments_after_a_section_are_the_reader_s_and_update_keeps_them(tmp_path):
    fixture = tmp_path / "notes.fxt"
    fixture.write_text("""\
# --- case: x * 1 is x
def forward(x: f32[4]):
    mul: f32[4] = aten.mul.Tensor(x, 1)
    return (mul,)
# the input: one multiplication
# --- expect: unchanged
# wrong on purpose: --update fixes it
# --- report
times_one at mul
# the next case is about literals
""")
    result = engine_test("rules/algebra.rw", str(fixture))
    assert result.returncode == 1
    assert "another report" not in result.stdout  # the comment is no report line
    assert engine_test("rules/algebra.rw", str(fixture), "--update").returncode == 0
    assert fixture.read_text() == """\
# --- case: x * 1 is x
def forward(x: f32[4]):
    mul: f32[4] = aten.mul.Tensor(x, 1)
    return (mul,)
# the input: one multiplication
# --- expect
def forward(x: f32[4]):
    return (x,)
# wrong on purpose: --update fixes it
# --- report
times_one at mul
# the next case is about literals
"""


def test_a_case_asking_for_a_huge_input_fails_at_its_placeholder_and_allocates_nothing(tmp_path):
    huge = tmp_path / "huge.fxt"
    huge.write_text("# --- case: nine sizes of 8 make 134 million elements\n"
                    "def forward(x: f32[4], y: f32[" + "*".join(["s0"] * 9) + "]):\n"
                    "    return (x, y)\n"
                    "# --- expect: unchanged\n")
    result = engine_test("rules/algebra.rw", str(huge))
    assert result.returncode == 1, result.stderr
    assert (f"{huge}:2:24: the input `y` would have 134217728 elements; a case runs on inputs "
            "of at most 4194304: make it smaller or mark the case `# --- no run`") in result.stdout
    assert "1 failed" in result.stdout


def test_a_fixture_that_is_not_utf8_is_told_at_its_first_bad_byte(tmp_path):
    from engine.tools.ruletest import FixtureError

    latin = tmp_path / "latin.fxt"
    latin.write_bytes("# --- case: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(FixtureError) as caught:
        read_fixture(latin)
    assert str(caught.value).startswith(f"{latin}:1:16: error: the file is not UTF-8 text")


def test_a_graph_that_does_not_parse_is_told_at_the_fixture_s_own_line(tmp_path):
    broken = tmp_path / "broken.fxt"
    broken.write_text("# Two cases; the second's input and the first's expected graph are wrong.\n"
                      "\n"
                      "# --- case: the expected graph misspells an op\n"
                      "def forward(x: f32[4]):\n"
                      "    add: f32[4] = aten.add.Tensor(x, x)\n"
                      "    return (add,)\n"
                      "# --- expect\n"
                      "\n"
                      "def forward(x: f32[4]):\n"
                      "    add: f32[4] = aten.add.Tensr(x, x)\n"
                      "    return (add,)\n"
                      "\n"
                      "# --- case: the input misspells a type, after a blank line\n"
                      "\n"
                      "def forward(x: f32[4]):\n"
                      "    add: f99[4] = aten.add.Tensor(x, x)\n"
                      "    return (add,)\n"
                      "# --- expect: unchanged\n")
    result = engine_test("rules/algebra.rw", str(broken))
    assert result.returncode == 1, result.stderr
    assert f"{broken}:10:19: error: `torch.ops.aten.add` has no overload `Tensr`" in result.stdout
    assert f"{broken}:16:10: error: " in result.stdout
    assert "0 passed, 2 failed" in result.stdout
