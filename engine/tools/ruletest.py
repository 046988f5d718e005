"""Rule tests without Python: fixture files of graphs as text, in and expected.

Input: rule files and fixture files (`.fxt`). Output: for each case, pass or fail with the
reason (a unified diff of the dumps where the result is not the expected graph), and with
`update`, the fixture rewritten to what the rules now do (like `pytest --snapshot-update`, so
that a change of behaviour shows as a fixture diff in review).

A fixture holds cases; each starts with a `# --- case: TITLE` line and the input graph, as
`engine dump` prints it (`engine.parse_graph` reads it), then says what the rules make of it:

    # --- case: x * 1 is x
    def forward(x: f32[4, 4]):
        mul: f32[4, 4] = aten.mul.Tensor(x, 1)
        return (mul,)
    # --- expect
    def forward(x: f32[4, 4]):
        return (x,)
    # --- report
    times_one at mul

    # --- case: an integer tensor times 1.0 becomes a float one: not x
    ...
    # --- expect: unchanged

`# --- expect: error` is followed by the `GraphError` the rules must raise; `# --- report`
(optional) lists each match as `RULE at NODE`; `# --- no run` marks a case whose graphs cannot
run on random inputs. A case passes when the result is alpha-equivalent to the expected graph
(node names need not match), the report (if given) is the same, and, unless `no run`, the input
and the result compute the same values, dtypes and shapes on random inputs made from the
annotations (three seeds; integers in [0, 4), booleans; symbolic sizes at their hint).
Comment lines that end a section are the reader's: no part of a graph, error or report, and
`update` keeps them where they were.
"""

from __future__ import annotations

import dataclasses

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..graphs.dump import dump
from ..graphs.equivalence import alpha_difference
from ..graphs.errors import GraphError
from ..graphs.files import write_atomic
from ..graphs.parse import GraphTextError, parse_graph
from ..graphs.values import recorded
from ..language.load import decode
from .compare import (MAX_INPUT_ELEMENTS, Allowance, Comparison, Rejected, allowance_of_rules,
                      compare_graphs, random_like, too_large)

_DIRECTIVE = re.compile(r"^# --- (case: .*|expect(: unchanged|: error)?|report|no run)\s*$",
                        re.MULTILINE)
SEEDS = (0, 1, 2)


class FixtureError(Exception):
    """A fixture file whose layout is wrong; the message says where."""


@dataclass
class Case:
    title: str
    line: int  # of its `# --- case:` line
    source: str
    expect: str | None = None  # a graph text; None: unchanged
    source_line: int = 0  # the line of the file `source` begins at (0: the one after `line`)
    expect_line: int = 0  # the line of the file `expect` begins at
    error: str | None = None  # the GraphError expected, for `expect: error`
    report: list[str] | None = None
    run: bool = True
    # Comment lines after a section (`case`, `expect`, `report`, `no run`), kept by --update.
    comments: dict[str, str] = field(default_factory=dict)


@dataclass
class Fixture:
    path: Path
    preamble: str  # comments before the first case
    cases: list[Case] = field(default_factory=list)


@dataclass
class Outcome:
    fixture: Path
    case: Case
    problems: list[str]
    actual: str | None = None  # the result's dump (None on error)
    actual_error: str | None = None
    actual_report: list[str] | None = None

    @property
    def passed(self) -> bool:
        return not self.problems


def read_fixture(path: Path) -> Fixture:
    source, problem = decode(str(path), path.read_bytes(), "fixtures")
    if problem is not None:
        raise FixtureError(problem.render())
    text = source.text
    marks = list(_DIRECTIVE.finditer(text))
    fixture = Fixture(path, text[:marks[0].start()] if marks else text)
    for index, mark in enumerate(marks):
        body = text[mark.end():marks[index + 1].start() if index + 1 < len(marks) else len(text)]
        # The line of the file the section's text begins at (past the blank lines it strips).
        begins = text.count("\n", 0, mark.end()) + 1 + (len(body) - len(body.lstrip("\n")))
        body, comments = _split_comments(body)
        directive = mark.group(1)
        line = text.count("\n", 0, mark.start()) + 1
        section = directive.split(":")[0]
        if directive.startswith("case: "):
            fixture.cases.append(Case(directive[6:].strip(), line, body + "\n",
                                      source_line=begins))
        elif not fixture.cases:
            raise FixtureError(f"{path}:{line}: `# --- {directive}` before any `# --- case:`")
        case = fixture.cases[-1]
        if comments:
            case.comments[section] = comments
        if section == "case":
            continue
        if directive == "expect":
            case.expect, case.expect_line = body + "\n", begins
        elif directive == "expect: unchanged":
            case.expect = None
        elif directive == "expect: error":
            case.error = body
        elif directive == "report":
            case.report = [line for line in body.splitlines() if line.strip()]
        else:  # no run
            case.run = False
    return fixture


def _split_comments(body: str) -> tuple[str, str]:
    """A section's body, and the comment lines that end it: those belong to the reader (a note
    on the next case, say), not to the graph, error or report above them."""
    lines = body.strip("\n").splitlines()
    end = len(lines)
    while end and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    comments = "\n".join(lines[end:]).strip("\n")
    return "\n".join(lines[:end]), comments


def run_case(rules, fixture: Path, case: Case) -> Outcome:
    where = f"{fixture}:{case.line}"
    try:
        gm = parse_graph(_at_its_line(case.source, case.source_line or case.line + 1),
                         str(fixture))
    except GraphTextError as error:
        return Outcome(fixture, case, [f"{where}: the input does not parse:\n{error}"])
    try:
        result = rules.rewrite(gm, gm.meta.get("graph_signature"))
    except GraphError as error:
        outcome = Outcome(fixture, case, [], actual_error=str(error))
        if case.error is None:
            outcome.problems.append(f"{where}: the rules refused it:\n{error}")
        elif case.error.strip() != str(error).strip():
            outcome.problems.append(f"{where}: another error than expected:\n"
                                    + _diff(case.error + "\n", str(error) + "\n"))
        return outcome
    actual = dump(result.module)
    report = [f"{match.rule} at {match.node}" + (f" in {match.module}" if match.module else "")
              for match in result.report.matches]
    outcome = Outcome(fixture, case, [], actual, actual_report=report)
    if case.error is not None:
        outcome.problems.append(f"{where}: expected an error, the rules rewrote it")
        return outcome
    expected_text, expected_line = ((case.expect, case.expect_line) if case.expect is not None
                                    else (case.source, case.source_line))
    try:
        expected = parse_graph(_at_its_line(expected_text, expected_line or case.line + 1),
                               str(fixture))
    except GraphTextError as error:
        outcome.problems.append(f"{where}: the expected graph does not parse:\n{error}")
        return outcome
    difference = alpha_difference(result.module, expected)
    if difference is not None:
        outcome.problems.append(f"{where}: not the expected graph ({difference}):\n"
                                + _diff(dump(expected), actual))
    if case.report is not None and case.report != report:
        outcome.problems.append(f"{where}: another report:\n"
                                + _diff("\n".join(case.report) + "\n", "\n".join(report) + "\n"))
    if case.run and difference is None:
        problem = _input_too_large(fixture, case, gm)
        if problem is None:
            fired = {match.rule for match in result.report.matches}
            problem = _same_values(gm, result.module, _allowance(rules, fired))
            problem = None if problem is None else f"{where}: {problem}"
        if problem is not None:
            outcome.problems.append(problem)
    return outcome


def _at_its_line(text: str, line: int) -> str:
    """A section's graph text, put at the line of the fixture it begins at: its mistakes are
    told at the fixture's own lines (blank lines are nothing to graph text)."""
    return "\n" * (line - 1) + text


def _input_too_large(fixture: Path, case: Case, gm: torch.fx.GraphModule) -> str | None:
    """Where the case's graph asks for an input too large to make (`f32[s0*s0*...*s0]` at
    the hint), before any is allocated."""
    for node in gm.graph.find_nodes(op="placeholder"):
        elements = too_large(recorded(node, None))
        if elements is None:
            continue
        written = re.search(rf"\b{re.escape(node.name)}\s*:", case.source)
        offset = written.start() if written else 0
        line = (case.source_line or case.line + 1) + case.source.count("\n", 0, offset)
        column = offset - (case.source.rfind("\n", 0, offset) + 1) + 1
        return (f"{fixture}:{line}:{column}: the input `{node.name}` would have {elements} "
                f"elements; a case runs on inputs of at most {MAX_INPUT_ELEMENTS}: make it "
                "smaller or mark the case `# --- no run`")
    return None


def _diff(expected: str, actual: str) -> str:
    return "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                        "expected", "actual"))


# --- running both sides --------------------------------------------------------------------------
def _allowance(rules, fired: set[str]) -> Allowance:
    """What a case's values are held to: what the rules that fired in it promise in their
    `verify` clauses. Also, the result may be an input itself where the input graph made a copy
    (a rule for functional graphs), and random normal inputs never meet -0.0."""
    promised = allowance_of_rules([rule.promises for rule in rules.rules if rule.name in fired])
    return dataclasses.replace(promised, aliases=True, unsigned_zeros=True)


def _same_values(before: torch.fx.GraphModule, after: torch.fx.GraphModule,
                 allowance: Allowance) -> str | None:
    placeholders = [n for n in before.graph.nodes if n.op == "placeholder"]
    seen = Comparison(sides=("the input graph", "the result"))
    for seed in SEEDS:
        generator = torch.Generator().manual_seed(seed)
        inputs = [random_like(recorded(node, None), generator) for node in placeholders]
        try:
            difference = compare_graphs(before, after, inputs, allowance, seen,
                                        [node.name for node in placeholders])
        except Rejected as error:
            return f"the graphs do not run on random inputs ({error}); mark the case " \
                   "`# --- no run` if they cannot"
        if difference is not None:
            return f"with seed {seed}, {difference.message}"
    return None


# --- updating fixtures ---------------------------------------------------------------------------
def write_fixture(fixture: Fixture, outcomes: dict[int, Outcome]) -> None:
    """The fixture with each case's expectation replaced by what the rules now do."""
    parts = [fixture.preamble.rstrip("\n") + "\n\n" if fixture.preamble.strip() else ""]
    for index, case in enumerate(fixture.cases):
        outcome = outcomes[index]
        comments = dict(case.comments)

        def section(name: str, text: str) -> None:
            parts.append(text)
            if name in comments:
                parts.append(comments.pop(name) + "\n")

        section("case", f"# --- case: {case.title}\n{case.source.rstrip()}\n")
        if outcome.actual_error is not None:
            section("expect", f"# --- expect: error\n{outcome.actual_error.rstrip()}\n")
        elif outcome.actual is None:
            section("expect", "# --- expect: unchanged\n")  # the input did not parse: as is
        elif dump(parse_graph(case.source)) == outcome.actual:
            section("expect", "# --- expect: unchanged\n")
        else:
            section("expect", f"# --- expect\n{outcome.actual.rstrip()}\n")
        if outcome.actual_report:
            section("report", "# --- report\n" + "\n".join(outcome.actual_report) + "\n")
        if not case.run:
            section("no run", "# --- no run\n")
        parts += [text + "\n" for text in comments.values()]  # after a section now gone
        parts.append("\n")
    write_atomic(fixture.path, "".join(parts).rstrip("\n") + "\n")


def fixture_paths(paths: list[str]) -> list[Path]:
    """Fixture files, and every `.fxt` under each directory given."""
    found = []
    for path in map(Path, paths):
        found += sorted(path.rglob("*.fxt")) if path.is_dir() else [path]
    return found


def run_fixtures(rules, paths: list[Path], update: bool = False) -> tuple[list[Outcome], str]:
    """Every case of every fixture: the outcomes, and the text to print (each failure, then
    `N passed, M failed`). With `update`, each fixture is rewritten to what the rules do."""
    outcomes, lines = [], []
    for path in paths:
        fixture = read_fixture(path)
        results = {index: run_case(rules, path, case) for index, case in enumerate(fixture.cases)}
        outcomes += results.values()
        if update:
            write_fixture(fixture, results)
    for outcome in outcomes:
        if not outcome.passed:
            lines.append(f"FAIL {outcome.fixture}:{outcome.case.line}: {outcome.case.title}")
            lines += ["    " + line for problem in outcome.problems
                      for line in problem.splitlines()]
    passed = sum(outcome.passed for outcome in outcomes)
    summary = f"{passed} passed, {len(outcomes) - passed} failed"
    if update:
        summary += f"; {len(paths)} fixture{'s' * (len(paths) != 1)} updated"
    return outcomes, "\n".join(lines + [summary])
