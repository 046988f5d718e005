"""Applying a rule set to a GraphModule, its nested GraphModules, or an ExportedProgram.

Input: checked rules and a module. Output: a new module (the input is never changed), the
export signature with its outputs renamed to follow, and a report of what each rule did.

Region and segment rules first. Every graph of the module tree (the top graph and every
GraphModule it fetches or calls, such as `torch.cond` branches) is read into a region tree, and
each tree's regions are decided on (`engine.rewriting.decide`); every problem of the whole tree
is collected, and if there is any, `GraphError` is raised and nothing was built. Building then
copies each graph that changes once, bottom-up, into a fresh graph, carrying out the decisions.

DAG rules then, on every graph of the resulting tree, bottom-up: each pass decides the matches
of one graph in one scan, footprints and replacements included, and only then copies the graph
once with them applied, until a pass finds none (a bound on the number of passes stops rules
that keep firing, with an error naming them).

Unchanged modules are reused as they are. New ones are torch's `_LazyGraphModule`s: each
compiles its Python code once, the first time it is called or its code is read, and not at all
when nobody needs it (an ExportedProgram wraps the graph in a module of its own, Inductor traces
it again): compiling a graph costs more than rewriting it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.fx
from torch._export.verifier import SpecViolationError
from torch.export import ExportedProgram
from torch.export.graph_signature import ExportGraphSignature

from ..language import checked
from ..graphs.errors import GraphError, Problem, source_line
from ..graphs.modules import held_graphs
from ..matching.dag import DagIndex
from ..matching.guards import Context
from ..matching.regions import Item, Region, Segment, StructureIndex, find_regions
from .actions import Rewriter
from .decide import RegionDecisions, decide_dag_pass, decide_regions
from .evaluate import Evaluator
from .emit import GraphBuilder
from .replace import rewrite_graph


@dataclass(frozen=True)
class Match:
    """One rewrite: the rule, the module it happened in, the marker node of the region."""

    rule: str
    module: str
    node: str
    source: str | None
    note: str = ""  # for a piece of a cut bracket, or a segment carried on


@dataclass
class Report:
    matches: list[Match] = field(default_factory=list)

    def counts(self) -> Counter:
        return Counter(match.rule for match in self.matches)

    def render(self, rules: list[checked.Rule]) -> str:
        counts = self.counts()
        lines = []
        for rule in rules:
            lines.append(f"{rule.where}: rule `{rule.name}`: {counts[rule.name]} "
                         f"match{'es' if counts[rule.name] != 1 else ''}")
            for match in self.matches:
                if match.rule == rule.name:
                    where = f" in `{match.module}`" if match.module else ""
                    origin = f" from {match.source}" if match.source else ""
                    note = f" ({match.note})" if match.note else ""
                    lines.append(f"    `{match.node}`{note}{where}{origin}")
        return "\n".join(lines)


@dataclass
class Rewrite:
    """What `RuleSet.rewrite` returns."""

    module: torch.fx.GraphModule
    signature: ExportGraphSignature | None
    report: Report


@dataclass
class _Plan:
    """One module of the tree: its region tree and the plans of the modules it holds."""

    module: torch.fx.GraphModule
    path: str
    items: list[Item]
    decisions: RegionDecisions | None  # None: no region or segment here
    children: list["_Plan"]

    @property
    def changes(self) -> bool:
        return self.decisions is not None or any(child.changes for child in self.children)


@dataclass
class RegionPhase:
    """What the region rules did to a module tree: the plan (each graph's region tree and
    decisions), the problems, the module built (None while there are problems), the context of
    each outlined submodule, and the report."""

    plan: _Plan
    problems: list[Problem]
    context: Context
    module: torch.fx.GraphModule | None = None
    contexts: dict[int, Context] = field(default_factory=dict)
    report: Report = field(default_factory=Report)


class RuleSet:
    """Checked rules, compiled; apply them with `apply`, `apply_program` or `rewrite`."""

    def __init__(self, rules: list[checked.Rule], max_passes: int = 32):
        self.rules = list(rules)
        self.index = StructureIndex(self.rules)
        self.dags = DagIndex(self.rules)
        self.max_passes = max_passes  # DAG passes over one graph before giving up

    def __repr__(self) -> str:
        return f"RuleSet({', '.join(rule.name for rule in self.rules)})"

    # --- the API torch's passes have -----------------------------------------------------------
    def apply(self, gm: torch.fx.GraphModule, graph_signature: ExportGraphSignature | None = None):
        """`(gm, signature) -> (new_gm, new_signature)`, the contract of torch's HOP passes."""
        result = self.rewrite(gm, graph_signature)
        return result.module, result.signature

    def apply_program(self, program: ExportedProgram) -> ExportedProgram:
        """A new ExportedProgram with the rules applied; it passes torch's verifier and saves."""
        return self.rewrite_program(program)[0]

    def rewrite_program(self, program: ExportedProgram) -> tuple[ExportedProgram, Report]:
        result = self.rewrite(program.graph_module, program.graph_signature)
        if result.module is program.graph_module:
            return program, result.report
        with warnings.catch_warnings():
            # Copying the module call graph trips a deprecation warning inside torch itself.
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            try:  # an ExportedProgram runs torch.export's verifier as it is made
                return program._update(result.module, result.signature), result.report
            except SpecViolationError as error:
                raise GraphError([Problem(f"the rewritten program fails torch.export's "
                                          f"verifier: {error}", ())]) from error

    def explain(self, gm: torch.fx.GraphModule | ExportedProgram, rule: str | None = None,
                node: str | None = None, all_nodes: bool = False) -> list:
        """Why each rule does (not) match at each node its root could match: a list of
        `engine.tools.explain.Explanation`s. Nothing is rewritten."""
        from ..tools.explain import explain  # a tool beside the pipeline, read when asked

        if isinstance(gm, ExportedProgram):
            gm = gm.graph_module
        with _collector_paused():
            return explain(self, gm, rule, node, all_nodes)

    def verify(self, models=(), examples: int = 200, seed: int = 0) -> list:
        """Whether each rule computes what it replaces (`engine verify`): the findings, a list
        of `engine.tools.verify.Finding`s, empty when none. `models`: ExportedPrograms or
        GraphModules, or (label, model) pairs, to check every match on and to run before and
        after; DAG rules are checked on `examples` drawn instances each as well."""
        from ..tools.verify import verify  # a tool beside the pipeline, read when asked

        labelled = [model if isinstance(model, tuple) else (f"model {index}", model)
                    for index, model in enumerate(models)]
        return verify(self, labelled, examples, seed).findings

    def rewrite(self, gm: torch.fx.GraphModule,
                graph_signature: ExportGraphSignature | None = None,
                observe: Callable | None = None,
                observe_regions: Callable | None = None) -> Rewrite:
        """`observe(module, decisions)`, if given, sees each DAG pass's decisions and the graph
        they were taken on (what `engine verify` cuts matches out of); `observe_regions(phase)`
        the `RegionPhase` (what `engine draw` reads which rule outlined what)."""
        with _collector_paused():
            return self._rewrite(gm, graph_signature, observe, observe_regions)

    def _rewrite(self, gm, graph_signature, observe=None, observe_regions=None) -> Rewrite:
        regions = self.apply_regions(gm)
        if observe_regions is not None:
            observe_regions(regions)
        module, report = regions.module, regions.report
        if self.dags:
            module = self._rewrite_dags(module, "", report, regions.context, {}, Evaluator(),
                                        regions.contexts, observe)
        signature = graph_signature
        if graph_signature is not None and module is not gm:
            signature = _follow_outputs(graph_signature, module)
            if "graph_signature" in module.meta:  # a graph read from text carries its own
                module.meta["graph_signature"] = signature
        return Rewrite(module, signature, report)

    def apply_regions(self, gm: torch.fx.GraphModule, strict: bool = True) -> "RegionPhase":
        """The region and segment rules over the module tree: matched, decided, and (without
        problems) built. `strict`: raise `GraphError` on problems; else return them, unbuilt
        (what `explain` reads)."""
        context = Context(ambient_grad=torch.is_grad_enabled())
        problems: list[Problem] = []
        plan = self._plan(gm, "", context, problems, {})
        phase = RegionPhase(plan, problems, context)
        if problems:
            if strict:
                raise GraphError(problems)
            return phase
        _report_regions(plan, phase.report, set())
        phase.module = self._build(plan, {}, phase.contexts)
        return phase

    # --- matching and deciding -----------------------------------------------------------------
    def _plan(self, module, path: str, context: Context, problems: list[Problem],
              seen: dict[int, _Plan]) -> _Plan:
        """The module's region tree and its decisions, and its children's; every problem of
        the whole tree goes to `problems`.

        Every graph of the tree starts in the same context: nested graphs such as `torch.cond`
        branches are judged against the ambient grad mode, as torch's passes judge them.
        """
        if id(module) in seen:
            return seen[id(module)]
        items, found = find_regions(module.graph.nodes, self.index)
        problems.extend(dataclasses.replace(problem, module=path) for problem in found)
        children = [self._plan(child, f"{path}.{target}" if path else target, context,
                               problems, seen)
                    for target, child in held_graphs(module)]
        decisions = None
        if not found and any(isinstance(item, (Region, Segment)) for item in items):
            decisions = decide_regions(items, module, context, self.index.markers, path)
            problems.extend(decisions.problems)
        plan = _Plan(module, path, items, decisions, children)
        seen[id(module)] = plan
        return plan

    # --- building ------------------------------------------------------------------------------
    def _build(self, plan: _Plan, built: dict[int, torch.nn.Module], contexts: dict):
        """The rewritten module of `plan`, children first; `built` maps old module ids to new."""
        for child in plan.children:
            if id(child.module) not in built:
                built[id(child.module)] = self._build(child, built, contexts)
        if not plan.changes:
            return plan.module
        builder = GraphBuilder(plan.module, built)
        builder.graph._codegen = plan.module.graph._codegen
        if plan.decisions is None:  # only its children changed
            builder.emit(plan.items, None)
        else:
            builder.emit(plan.items, Rewriter(plan.decisions, contexts))
        return builder.to_module(template=plan.module)

    # --- DAG rules -------------------------------------------------------------------------------
    def _rewrite_dags(self, module, path: str, report: Report, context: Context,
                      done: dict[int, torch.nn.Module], evaluator: Evaluator, contexts: dict,
                      observe: Callable | None = None):
        """`module` with the DAG rules applied to it and the graphs it holds, to a fixpoint.
        A submodule a region was outlined into is in that region's context; any other nested
        graph (a `cond` branch) in its parent's."""
        if id(module) in done:
            return done[id(module)]
        replaced = {}
        for target, child in held_graphs(module):
            new = self._rewrite_dags(child, f"{path}.{target}" if path else target, report,
                                     contexts.get(id(child), context), done, evaluator, contexts,
                                     observe)
            if new is not child:
                replaced[id(child)] = new
        current = module
        for passes in itertools.count(1):
            decided = decide_dag_pass(current, self.dags, context, path, evaluator)
            if decided.problems:
                raise GraphError(decided.problems)
            if not decided.decisions:
                break
            if passes > self.max_passes:
                raise GraphError([_still_firing(decided.decisions, self.max_passes, path)])
            if observe is not None:
                observe(current, decided.decisions)
            for decision in decided.decisions:
                root = decision.roots[0]
                report.matches.append(Match(decision.rule.name, path, root.name,
                                            source_line(root)))
            current = rewrite_graph(current, decided.decisions, replaced)
            replaced = {}  # the first copy took the rewritten children in
        if current is module and replaced:
            current = rewrite_graph(module, [], replaced)
        done[id(module)] = current
        return current


def _still_firing(matches, max_passes: int, path: str) -> Problem:
    counts = Counter(match.rule.name for match in matches)
    rules = ", ".join(f"`{name}` ({count} match{'es' * (count != 1)})"
                      for name, count in counts.items())
    return Problem(f"DAG rules still match after {max_passes} passes over one graph; each "
                   f"undoes or feeds another. Firing in the last pass: {rules}",
                   tuple(match.roots[0] for match in matches[:3]), path)


def _report_regions(plan: _Plan, report: Report, reported: set[int]) -> None:
    """What each region rule matched, children first, each module once, in graph order."""
    reported.add(id(plan.module))
    for child in plan.children:
        if id(child.module) not in reported:
            _report_regions(child, report, reported)
    for decision in (plan.decisions.decisions.values() if plan.decisions else ()):
        if decision.rule is not None:
            node = decision.item.origin
            report.matches.append(Match(decision.rule.name, plan.path, node.name,
                                        source_line(node), _note(decision.item)))


def _note(item: Region | Segment) -> str:
    if isinstance(item, Segment):
        return "carried on past a marker of another kind" if item.continued else ""
    if item.first and item.last:
        return ""
    return "re-entered after a segment marker" if not item.first else "cut by a segment marker"


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector, off for the duration of one rewrite.

    A rewrite allocates hundreds of thousands of long-lived objects (nodes, their dicts) and
    frees almost none; automatic collections during it re-traverse the whole heap over and
    over, which made a 56,000-node rewrite take twice as long a node as a 5,600-node one.
    The previous state is restored on the way out, exceptions included.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _follow_outputs(signature: ExportGraphSignature,
                    new: torch.fx.GraphModule) -> ExportGraphSignature:
    """A new signature whose output specs name the new graph's output nodes (a rewrite keeps
    the outputs in their places, renaming some); inputs unchanged."""
    new_outputs = new.graph.output_node().args[0]
    specs = []
    for spec, new_value in zip(signature.output_specs, new_outputs, strict=True):
        if isinstance(new_value, torch.fx.Node) and getattr(spec.arg, "name", None) != new_value.name:
            spec = dataclasses.replace(spec, arg=dataclasses.replace(spec.arg, name=new_value.name))
        specs.append(spec)
    return ExportGraphSignature(input_specs=list(signature.input_specs), output_specs=specs)
