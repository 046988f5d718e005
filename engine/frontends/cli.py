"""The command line: `engine apply`, `engine explain`, `engine test`, `engine verify`,
`engine check`, `engine dump`, `engine lsp`.

Input: argv. Output: text on stdout (dumps, diffs, check results), diagnostics and reports on
stderr, coloured where the stream is a terminal (`engine.frontends.colour`), and the exit status:
0 success, 1 errors in rules or graphs, 2 usage.

    engine apply RULES... MODEL [-o OUT.pt2] [--diff] [--explain]
    engine explain RULES... MODEL [--rule NAME] [--node NAME] [--all] [--json]
    engine test RULES... FIXTURES... [--update]
    engine verify RULES... [MODEL...] [--examples N] [--seed S]
    engine check RULES... [--verbose]
    engine dump MODEL
    engine draw [RULES...] MODEL -o OUT.svg|OUT.png|OUT.dot [--focus RULE] [--fold-above N]
    engine lsp

MODEL is `FILE.py:NAME`, a callable in a Python file that returns `(module, args)`,
`(module, args, kwargs)` or `(module, args, kwargs, dynamic_shapes)`, captured with torch's HOP
passes off; a saved `FILE.pt2`, an ExportedProgram as torch.export made it; or `FILE.fxg`, a
graph as text (what `engine dump` prints).
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import sys
import traceback
from pathlib import Path

import torch

from engine.frontends.colour import DIAGNOSTICS, DIFF, GRAPH, JSON, REPORT, paint

USAGE_ERROR = 2
FAILURE = 1
# Graphs as text (`engine dump` prints them, `engine.parse_graph` reads them): "FX graph".
GRAPH_TEXT = ".fxg"
TRUST_PT2 = ("load FILE.pt2 with torch.export.load, which runs any code the archive holds "
             "(pickles, AOTInductor code): only for a file you trust")


class UsageError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    options = parser.parse_args(argv)
    if options.command is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    try:
        from engine.language.effects import allowed_effects

        with allowed_effects(*getattr(options, "allow_effect", None) or ()):
            return options.run(options)
    except UsageError as error:
        print(paint(f"engine {options.command}: error: {error}", DIAGNOSTICS, sys.stderr),
              file=sys.stderr)
        return USAGE_ERROR
    except Exception as error:  # RuleError, GraphError, failures of the user's model
        if getattr(options, "traceback", False):
            traceback.print_exc()
        print(paint(_describe_failure(error), DIAGNOSTICS, sys.stderr), file=sys.stderr)
        return FAILURE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engine", description="Apply .rw rewrite rules to PyTorch FX graphs.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    apply = commands.add_parser(
        "apply", help="capture a model, apply rules, print the result",
        usage="engine apply [-h] [-o OUT.pt2] [--diff] [--explain] [--traceback] RULES... MODEL",
        description="Capture MODEL (FILE.py:NAME, with torch.export's HOP passes off) or load "
                    "it (FILE.pt2), apply the rule files, print the canonical dump of the result "
                    "and, on stderr, what each rule matched.")
    apply.add_argument("paths", nargs="+", metavar="RULES... MODEL",
                       help="rule files, then the model: FILE.py:NAME, FILE.pt2 or FILE.fxg")
    apply.add_argument("-o", "--output", metavar="OUT.pt2", help="save the rewritten program")
    apply.add_argument("--diff", action="store_true", help="print a unified before/after diff")
    apply.add_argument("--explain", action="store_true",
                       help="for each rule that matched nowhere, its nearest miss")
    apply.add_argument("--html", metavar="REPORT.html",
                       help="write a self-contained page for review: drawings, report, diff")
    apply.add_argument("--traceback", action="store_true", help="show Python tracebacks")
    apply.add_argument("--trust-pt2", action="store_true", help=TRUST_PT2)
    apply.set_defaults(run=_apply)

    explain = commands.add_parser(
        "explain", help="say why each rule does (not) match, node by node",
        usage="engine explain [-h] [--rule NAME] [--node NAME] [--all] [--json] RULES... MODEL",
        description="For each rule and each node where its pattern could start, say whether it "
                    "matched (and what it bound) or the first reason it did not, with the rule's "
                    "line and the model's.")
    explain.add_argument("paths", nargs="+", metavar="RULES... MODEL",
                         help="rule files, then the model: FILE.py:NAME, FILE.pt2 or FILE.fxg")
    explain.add_argument("--rule", metavar="NAME", help="only this rule")
    explain.add_argument("--node", metavar="NAME", help="only this node")
    explain.add_argument("--all", action="store_true",
                         help="also the nodes that call other ops")
    explain.add_argument("--json", action="store_true", help="the explanations as JSON")
    explain.add_argument("--traceback", action="store_true", help="show Python tracebacks")
    explain.add_argument("--trust-pt2", action="store_true", help=TRUST_PT2)
    explain.set_defaults(run=_explain)

    test = commands.add_parser(
        "test", help="run rule fixtures: graphs as text, in and expected",
        usage="engine test [-h] [--update] RULES... FIXTURES...",
        description="Apply the rule files to each case of each fixture (.fxt files, or the .fxt "
                    "files under a directory) and compare with the expected graph, the report "
                    "and the values on random inputs. Exit 0 if all pass, 1 if any fails.")
    test.add_argument("paths", nargs="+", metavar="RULES... FIXTURES...",
                      help="rule files (.rw), then fixtures (.fxt files or directories)")
    test.add_argument("--update", action="store_true",
                      help="write what the rules now do into the fixtures")
    test.set_defaults(run=_test)

    verify = commands.add_parser(
        "verify", help="check that each rule computes what it replaces",
        usage="engine verify [-h] [--examples N] [--seed S] RULES... [MODEL...]",
        description="Run each DAG rule's pattern and replacement on drawn inputs (hypothesis; "
                    "counterexamples shrunk), and on every match in the models; run each "
                    "model's program before and after the rules. Print each finding with a "
                    "counterexample and, for each rule, what it was checked on. Exit 1 on any "
                    "finding.")
    verify.add_argument("paths", nargs="+", metavar="RULES... [MODEL...]",
                        help="rule files (.rw), then models: FILE.py:NAME, FILE.pt2, FILE.fxg")
    verify.add_argument("--examples", type=int, default=200, metavar="N",
                        help="instances to draw for each DAG rule (default 200)")
    verify.add_argument("--seed", type=int, default=0, metavar="S",
                        help="the seed of the draws (default 0)")
    verify.add_argument("--traceback", action="store_true", help="show Python tracebacks")
    verify.add_argument("--trust-pt2", action="store_true", help=TRUST_PT2)
    verify.set_defaults(run=_verify)

    check = commands.add_parser(
        "check", help="check rule files and print their diagnostics",
        description="Parse and check rule files; print every diagnostic; exit 1 on any error.")
    check.add_argument("rules", nargs="+", metavar="RULES")
    check.add_argument("-v", "--verbose", action="store_true", help="print the checked rules")
    check.set_defaults(run=_check)

    dump = commands.add_parser(
        "dump", help="print the raw captured graph of a model",
        description="Capture FILE.py:NAME with torch.export (HOP passes off), markers included, "
                    "or load FILE.pt2, and print its canonical dump.")
    dump.add_argument("model", metavar="MODEL", help="FILE.py:NAME, FILE.pt2 or FILE.fxg")
    dump.add_argument("--traceback", action="store_true", help="show Python tracebacks")
    dump.add_argument("--trust-pt2", action="store_true", help=TRUST_PT2)
    dump.set_defaults(run=_dump)

    draw = commands.add_parser(
        "draw", help="draw a graph, or the graph before and after the rules",
        usage="engine draw [-h] -o OUT [--focus RULE] [--fold-above N] [RULES...] MODEL",
        description="Lay out MODEL's graph (with rule files: before and after, side by side, "
                    "regions, outlined submodules and matched nodes in each rule's colour) as "
                    "SVG or PNG, or write its DOT source (.dot).")
    draw.add_argument("paths", nargs="+", metavar="[RULES...] MODEL",
                      help="rule files (optional), then the model: FILE.py:NAME, FILE.pt2, FILE.fxg")
    draw.add_argument("-o", "--output", required=True, metavar="OUT",
                      help="OUT.svg, OUT.png, or OUT.dot (no layout program needed)")
    draw.add_argument("--focus", metavar="RULE",
                      help="only the nodes RULE took or made, and their neighbours")
    draw.add_argument("--fold-above", type=int, default=200, metavar="N",
                      help="in graphs of more than N nodes (default 200), fold runs of "
                           "unchanged nodes, and each region a rule took, into one box")
    draw.add_argument("--traceback", action="store_true", help="show Python tracebacks")
    draw.add_argument("--trust-pt2", action="store_true", help=TRUST_PT2)
    draw.set_defaults(run=_draw)

    for command in (apply, explain, test, verify, check, dump, draw):
        command.add_argument(
            "--allow-effect", action="append", metavar="OP",
            help="let rule files and graph text name OP (`aten._print`), an op whose effect "
                 "lies outside tensors (printing, profiling); repeatable")

    lsp = commands.add_parser(
        "lsp", help="run the language server for rule files (LSP on stdio)",
        description="Speak the Language Server Protocol on stdin and stdout: diagnostics, hover, "
                    "go to definition, completion and document symbols for .rw files. Needs "
                    "pygls: pip install .[lsp]")
    lsp.set_defaults(run=_lsp)
    return parser


# --- commands --------------------------------------------------------------------------------
def _apply(options) -> int:
    import engine

    *rule_paths, target = options.paths
    if not rule_paths:
        raise UsageError("expected rule files, then the model as FILE.py:NAME, FILE.pt2 or FILE.fxg")
    rules = engine.load_rules(*_existing(rule_paths))
    program = _capture(target, options.trust_pt2)
    if isinstance(program, torch.fx.GraphModule):  # a graph read from text
        result = rules.rewrite(program, program.meta.get("graph_signature"))
        rewritten, report = result.module, result.report
    else:
        rewritten, report = rules.rewrite_program(program)
    after = engine.dump(rewritten)
    if options.diff:
        before = engine.dump(program)
        diff = "".join(difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True),
            f"{target} (before)", f"{target} (after)"))
        sys.stdout.write(paint(diff, DIFF, sys.stdout))
    else:
        sys.stdout.write(paint(after, GRAPH, sys.stdout))
    print(paint(report.render(rules.rules), REPORT, sys.stderr), file=sys.stderr)
    if options.explain:
        from engine.tools.explain import render_near_misses

        near_misses = render_near_misses(rules.explain(program), rules, report)
        print(paint(near_misses, REPORT, sys.stderr), file=sys.stderr)
    if options.html:
        _write_html(options.html, rule_paths, rules, target, program, after)
    if options.output:
        from engine.graphs.files import write_atomic, writing

        if options.output.endswith(GRAPH_TEXT):
            write_atomic(options.output, after)
        elif isinstance(rewritten, torch.fx.GraphModule):
            raise UsageError(f"a graph read from text is written as text: -o FILE{GRAPH_TEXT}")
        else:
            with writing(options.output) as file:  # whole or not at all, even over MODEL
                torch.export.save(rewritten, file)
        print(f"saved {options.output}", file=sys.stderr)
    return 0


def _explain(options) -> int:
    import engine
    from engine.tools.explain import as_json, render

    *rule_paths, target = options.paths
    if not rule_paths:
        raise UsageError("expected rule files, then the model as FILE.py:NAME, FILE.pt2 or FILE.fxg")
    rules = engine.load_rules(*_existing(rule_paths))
    if options.rule and options.rule not in {rule.name for rule in rules.rules}:
        raise UsageError(f"no rule `{options.rule}` in {', '.join(rule_paths)}")
    explanations = rules.explain(_capture(target, options.trust_pt2), options.rule, options.node,
                                 options.all)
    if options.json:
        print(paint(as_json(explanations), JSON, sys.stdout))
    else:
        print(paint(render(explanations, rules), REPORT, sys.stdout))
    return 0


def _test(options) -> int:
    import engine
    from engine.tools.ruletest import FixtureError, fixture_paths, run_fixtures

    rule_paths = [p for p in options.paths if p.endswith(".rw")]
    fixtures = fixture_paths([p for p in options.paths if not p.endswith(".rw")])
    if not rule_paths or not fixtures:
        raise UsageError("expected rule files (.rw), then fixtures (.fxt files or directories)")
    missing = [str(p) for p in fixtures if not p.is_file()]
    if missing:
        raise UsageError(f"no such fixture: {missing[0]}")
    rules = engine.load_rules(*_existing(rule_paths))
    try:
        outcomes, text = run_fixtures(rules, fixtures, options.update)
    except FixtureError as error:
        print(f"error: {error}", file=sys.stderr)
        return FAILURE
    print(text)
    return 0 if options.update or all(o.passed for o in outcomes) else FAILURE


def _verify(options) -> int:
    import engine
    # hypothesis draws the instances: a dependency of the package, missing only from an install
    # made without its dependencies.
    try:
        from engine.tools.verify import verify
    except ImportError as error:
        if (error.name or "").split(".")[0] not in ("hypothesis", "sortedcontainers"):
            raise
        print(paint(f"engine verify: error: drawing instances needs hypothesis ({error}); "
                    "install it with `pip install hypothesis`", DIAGNOSTICS, sys.stderr),
              file=sys.stderr)
        return FAILURE

    rule_paths = [p for p in options.paths if p.endswith(".rw")]
    model_paths = [p for p in options.paths if not p.endswith(".rw")]
    if not rule_paths:
        raise UsageError("expected rule files (.rw), then models (FILE.py:NAME, FILE.pt2, "
                         "FILE.fxg)")
    if options.examples < 1:
        raise UsageError("--examples takes a number of instances, 1 or more")
    rules = engine.load_rules(*_existing(rule_paths))
    models = [(path, _capture(path, options.trust_pt2)) for path in model_paths]
    result = verify(rules, models, options.examples, options.seed)
    print(result.render())
    return 0 if result.sound else FAILURE


def _check(options) -> int:
    from engine.language.describe import describe_rule
    from engine.language.diagnostics import render_all
    from engine.frontends.api import check_rules

    rules, diagnostics = check_rules(*_existing(options.rules))
    if diagnostics:
        print(paint(render_all(diagnostics), DIAGNOSTICS, sys.stderr), file=sys.stderr)
        return FAILURE
    for rule in rules if options.verbose else ():
        print(describe_rule(rule))
    count = len(rules)
    print(f"{', '.join(options.rules)}: {count} rule{'s' if count != 1 else ''}, no errors")
    return 0


def _dump(options) -> int:
    import engine

    program = _capture(options.model, options.trust_pt2)
    sys.stdout.write(paint(engine.dump(program), GRAPH, sys.stdout))
    return 0


def _draw(options) -> int:
    import engine
    from engine.tools import draw

    *rule_paths, target = options.paths
    if Path(options.output).suffix.lower() not in draw.FORMATS:
        raise UsageError(f"-o takes {', '.join('FILE' + s for s in draw.FORMATS)}")
    if options.focus and not rule_paths:
        raise UsageError("--focus RULE needs rule files")
    rules = engine.load_rules(*_existing(rule_paths)) if rule_paths else None
    if options.focus and options.focus not in {rule.name for rule in rules.rules}:
        raise UsageError(f"no rule `{options.focus}` in {', '.join(rule_paths)}")
    module, signature = _module_of(_capture(target, options.trust_pt2))
    after, changes = None, None
    if rules is not None:
        result, changes = draw.traced_rewrite(rules, module, signature)
        after = result.module
    try:
        said = draw.write_drawing(options.output, module, after, changes,
                                  draw.Options(options.fold_above, options.focus))
    except (draw.LayoutEngineMissing, draw.DrawingLibraryMissing) as error:
        print(paint(f"engine draw: error: {error}", DIAGNOSTICS, sys.stderr), file=sys.stderr)
        return FAILURE
    print(said, file=sys.stderr)
    return 0


def _write_html(path: str, rule_paths: list[str], rules, target: str, program, after: str):
    """The review page of `engine apply --html`: the rewrite again, traced (the plain rewrite
    records less, to stay quick)."""
    import engine
    from engine.graphs.files import write_atomic
    from engine.tools.draw import traced_rewrite
    from engine.tools.explain import render_near_misses
    from engine.tools.report import build_report

    module, signature = _module_of(program)
    result, changes = traced_rewrite(rules, module, signature)
    misses = render_near_misses(rules.explain(program), rules, result.report)
    page = build_report(target, rule_paths, rules, module, result.module, result.report,
                        changes, (engine.dump(program), after), misses)
    write_atomic(path, page)
    print(f"wrote {path}", file=sys.stderr)


def _module_of(program):
    """(GraphModule, signature) of a program, or of a graph read from text."""
    if isinstance(program, torch.fx.GraphModule):
        return program, program.meta.get("graph_signature")
    return program.graph_module, program.graph_signature


def _lsp(options) -> int:
    # pygls is an extra: the rest of the command line runs without it.
    try:
        from engine.tools.lsp import serve
    except ImportError as error:
        if (error.name or "").split(".")[0] not in ("pygls", "lsprotocol", "cattrs", "attrs"):
            raise
        print(paint(f"engine lsp: error: the language server needs pygls ({error}); install "
                    "it with `pip install .[lsp]`", DIAGNOSTICS, sys.stderr), file=sys.stderr)
        return FAILURE
    serve()
    return 0


# --- helpers ---------------------------------------------------------------------------------
def _existing(paths: list[str]) -> list[str]:
    for path in paths:
        if not Path(path).is_file():
            raise UsageError(f"no such rule file: {path}")
    return paths


def _capture(target: str, trust_pt2: bool = False):
    """The program of MODEL: a saved .pt2 loaded (as data, `engine.frontends.pt2`, unless
    `trust_pt2`), a graph text read (a GraphModule), or FILE.py:NAME captured."""
    import engine

    if target.endswith(GRAPH_TEXT):
        if not Path(target).is_file():
            raise UsageError(f"no such graph text: {target}")
        return engine.load_graph(target)
    if target.endswith(".pt2"):
        if not Path(target).is_file():
            raise UsageError(f"no such program: {target}")
        return engine.load_program(target, trust=trust_pt2)
    module, args, kwargs, dynamic_shapes = load_model(target)
    return engine.capture(module, args, kwargs, dynamic_shapes)


def load_model(target: str):
    """`FILE.py:NAME` -> (module, args, kwargs, dynamic_shapes), from what NAME() returns."""
    file, sep, name = target.rpartition(":")
    if not sep or not file.endswith(".py") or not name:
        raise UsageError(f"expected FILE.py:NAME, FILE.pt2 or FILE.fxg, got `{target}`")
    path = Path(file)
    if not path.is_file():
        raise UsageError(f"no such model file: {file}")
    spec = importlib.util.spec_from_file_location(f"_engine_model_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    # Registered under its name, as an import would: torch.cond and Dynamo look modules up there.
    sys.modules[spec.name] = module
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise UsageError(f"{file} has no callable `{name}`")
    made = factory()
    if not isinstance(made, tuple) or not 2 <= len(made) <= 4:
        raise UsageError(f"`{name}()` must return (module, args[, kwargs[, dynamic_shapes]])")
    module, args, kwargs, dynamic_shapes = (*made, None, None)[:4]
    return module, tuple(args), kwargs, dynamic_shapes


def _describe_failure(error: Exception) -> str:
    from engine import GraphError, GraphTextError, RuleError
    from engine.frontends.pt2 import Pt2Error
    from engine.graphs.files import WriteError

    if isinstance(error, (RuleError, GraphError, GraphTextError, WriteError, Pt2Error)):
        return str(error)
    return f"error: {type(error).__name__}: {error}"


if __name__ == "__main__":
    sys.exit(main())
