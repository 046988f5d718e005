"""Matches -> decisions: which rule each region and node gets, and its footprint.

Input: the region tree of a graph (`engine.matching.regions`) or its nodes with the DAG index
(`engine.matching.dag`), and the context they stand in. Output: decisions, as data, and the
problems that forbid them; nothing is built here, and everything that could go wrong while
building is found here, so that a rewrite either builds all it decided or nothing.

Regions. Each region or segment gets the first of its candidate rules (file order) whose
`where` guards hold where it stands; the candidates before it are rejected with the guard that
failed. Its decision says what happens (`outline`, `inline`, `keep`, `erase`), the context its
nodes run under, and, for an outline, its interface: the values it takes in (in order of first
use inside, torch's order), the module attributes it holds, the values used after it (in order
of first use after). Erasing a region whose values are used after it is a problem.

DAG nodes. One scan in graph order. At a node, each rule indexed there (file order) whose
pattern matches structurally is decided on; the first accepted wins, and the nodes it takes
cannot be taken by a later match of the pass. A match is rejected when a `where` guard fails, an
interior node (matched by a nested call, not a root) is used outside the match without being
`shared`, an interior node was taken by an earlier match, or `erase` would drop a root something
uses. An accepted match has a closed footprint:
- kept: interior nodes that stay, because something that stays uses them: a user outside the
  match (`shared`), a template (`$y` bound to an interior), a root the action leaves in place,
  or another kept node;
- removed: the other interior nodes, and erased roots;
- replaced: each replaced root with what replaces it (`engine.rewriting.templates`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.fx

from ..graphs.errors import Problem
from ..graphs.modules import fetch_attr
from ..graphs.values import nodes_in
from ..language import checked
from ..matching.dag import DagIndex, Structural, match_at
from ..matching.guards import Context, first_failing
from ..matching.regions import Item, Region, Segment
from .evaluate import Evaluator
from .templates import TemplateError, TemplatePlanner

# Why a candidate was not taken.
GUARD = "guard"  # a `where` guard does not hold
TAKEN = "taken"  # a node of the match was taken by an earlier match of the pass
USED_OUTSIDE = "used outside"  # an interior node has a user outside the match
ERASE_USED = "erase used"  # `erase` would drop a root that something uses


@dataclass(frozen=True)
class Rejection:
    """A rule whose pattern matched at `node`, and why it was not applied there."""

    rule: checked.Rule
    node: torch.fx.Node
    reason: str  # GUARD, TAKEN, USED_OUTSIDE, ERASE_USED
    message: str
    nodes: tuple[torch.fx.Node, ...] = ()  # the nodes the reason is about
    guard: checked.Guard | None = None


# --- regions -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interface:
    """What an outlined region exchanges with the graph around it."""

    inputs: tuple[torch.fx.Node, ...]
    module_attrs: tuple[torch.fx.Node, ...]  # `get_attr`s of modules it holds (cond branches)
    outputs: tuple[torch.fx.Node, ...]


@dataclass(eq=False)
class RegionDecision:
    item: Region | Segment
    rule: checked.Rule | None  # None: no rule takes it; it stays as it is
    bindings: dict
    action: checked.Action
    context: Context  # where it stands: its rules' guards were read here
    body_context: Context  # what the nodes inside run under
    interface: Interface | None = None  # for an outline
    rejected: tuple[Rejection, ...] = ()


@dataclass
class RegionDecisions:
    """One graph's region decisions, in the order a rewrite meets them (outer first)."""

    module: torch.fx.GraphModule
    path: str
    markers: frozenset
    positions: dict[torch.fx.Node, int]
    decisions: dict[Region | Segment, RegionDecision] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def __getitem__(self, item: Region | Segment) -> RegionDecision:
        return self.decisions[item]


def decide_regions(items: list[Item], module: torch.fx.GraphModule, context: Context,
                   markers: frozenset, path: str) -> RegionDecisions:
    """Decisions for every region and segment of one graph's region tree."""
    positions = {node: index for index, node in enumerate(module.graph.nodes)}
    decided = RegionDecisions(module, path, markers, positions)
    _decide_items(items, context, decided)
    return decided


def _decide_items(items: list[Item], context: Context, decided: RegionDecisions) -> None:
    for item in items:
        if isinstance(item, (Region, Segment)):
            _decide_region(item, context, decided)


def _decide_region(item: Region | Segment, context: Context, decided: RegionDecisions) -> None:
    inner = context
    if isinstance(item, Segment):
        inner = context.with_state(item.kind.marker, tuple(item.marker.args))
    rejected, choice = [], None
    for candidate in item.candidates:
        failing = first_failing(candidate.rule.guards, candidate.bindings, context)
        if failing is None:
            choice = candidate
            break
        rejected.append(Rejection(candidate.rule, item.origin, GUARD,
                                  "a `where` guard does not hold", guard=failing))
    action = choice.rule.action if choice is not None else checked.Keep(None)
    if not isinstance(action, checked.Inline):  # inlined, its nodes no longer stand inside it
        opener = item.opener if isinstance(item, Region) else item.marker
        inner = inner.within(choice.rule.name if choice else None, opener)
    decision = RegionDecision(item, choice.rule if choice else None,
                              choice.bindings if choice else {}, action, context,
                              context if isinstance(action, checked.Inline) else inner,
                              rejected=tuple(rejected))
    decided.decisions[item] = decision
    if isinstance(action, checked.Outline):
        decision.interface = _interface(item, decided)
    elif isinstance(action, checked.Erase):
        _check_erase(item, choice.rule, decided)
        return  # the nodes inside go: nothing in them is decided
    _decide_items(item.items, decision.body_context, decided)


def _interface(region: Region | Segment, decided: RegionDecisions) -> Interface:
    inputs, module_attrs = _inputs(region, decided)
    return Interface(tuple(inputs), tuple(module_attrs), tuple(outputs_of(region, decided)))


def _inputs(region: Region | Segment, decided: RegionDecisions):
    """Values from outside that the region uses, in order of first use (torch's order).

    Module attributes (a `torch.cond` branch, say) are not passed in: the submodule holds them
    itself. Tensor attributes are passed like any other value.
    """
    inside = region.inside
    inputs: dict[torch.fx.Node, None] = {}
    module_attrs: dict[torch.fx.Node, None] = {}
    for node in region.nodes():
        if node.op == "call_function" and node.target in decided.markers:
            continue
        for used in nodes_in((node.args, node.kwargs)):
            if used in inside:
                continue
            if used.op == "get_attr" and isinstance(
                    fetch_attr(decided.module, used.target), torch.nn.Module):
                module_attrs.setdefault(used)
            else:
                inputs.setdefault(used)
    return list(inputs), list(module_attrs)


def outputs_of(region: Region | Segment, decided: RegionDecisions) -> list[torch.fx.Node]:
    """Values made inside that are used after it, in order of first use (torch's order)."""
    inside = region.inside
    first_use: dict[torch.fx.Node, tuple[int, int]] = {}
    for node in inside:
        for user in node.users:
            if user in inside or (user.op == "call_function" and user.target in decided.markers):
                continue
            key = (decided.positions[user], nodes_in((user.args, user.kwargs)).index(node))
            if node not in first_use or key < first_use[node]:
                first_use[node] = key
    return sorted(first_use, key=first_use.__getitem__)


def _check_erase(item: Region | Segment, rule: checked.Rule, decided: RegionDecisions) -> None:
    used_after = outputs_of(item, decided)
    if used_after:
        value = used_after[0]
        user = next(u for u in value.users if u not in item.inside)
        decided.problems.append(Problem(
            f"rule `{rule.name}` erases `{item.origin.name}` and what follows it, but "
            f"`{user.name}` uses `{value.name}`, made there", (item.origin, user), decided.path))


# --- DAG matches ---------------------------------------------------------------------------------
@dataclass(eq=False)
class DagDecision:
    """An accepted match and its footprint."""

    rule: checked.Rule
    bindings: dict
    roots: tuple[torch.fx.Node, ...]
    removed: frozenset[torch.fx.Node]  # interior nodes that go, and erased roots
    kept: frozenset[torch.fx.Node]  # matched interior nodes that stay
    replaced_roots: frozenset[torch.fx.Node] = frozenset()
    template_vars: tuple[str, ...] = ()  # the variables its templates use
    replaced: dict[torch.fx.Node, object] = field(default_factory=dict)  # root -> replacement


@dataclass
class DagPass:
    """What one scan of a graph decided."""

    decisions: list[DagDecision] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def decide_dag_pass(module: torch.fx.GraphModule, index: DagIndex, context: Context,
                    path: str, evaluator: Evaluator, every_rejection: bool = False) -> DagPass:
    """The matches one pass over the graph applies, each with its footprint and its plan.

    At a node, rules of one shape (one root, written alike in one file) share the structural
    match, found once; and a run of them that also begin with the same guard is passed over
    as a whole where that guard fails: 2,000 rules `$f($x, $y) where dtype($x) == ... and ...`
    cost one match and one guard a node. With `every_rejection` (`engine explain`), each rule
    is tried and each rejection kept."""
    result = DagPass()
    taken: set[torch.fx.Node] = set()
    for node in module.graph.nodes:
        candidates = index.candidates(node)
        if candidates is None or node in taken:
            continue
        shapes: dict = {}  # shape -> its structural match here, or None
        position, count = 0, len(candidates)
        while position < count:
            compiled = candidates[position]
            shape = compiled.shape
            if shape is None:
                found = match_at(compiled, node, taken)
            elif shape in shapes:
                found = shapes[shape] and replace(shapes[shape], compiled=compiled)
            else:
                found = shapes[shape] = match_at(compiled, node, taken)
            if found is None:
                position = position + 1 if every_rejection else candidates.skip[position]
                continue
            verdict = _footprint(found, taken, context)
            if isinstance(verdict, Rejection):
                if every_rejection:
                    result.rejections.append(verdict)
                elif verdict.guard is not None and compiled.rule.guards and \
                        verdict.guard is compiled.rule.guards[0]:
                    position = candidates.skip[position]  # the run's first guard fails
                    continue
                position += 1
                continue
            result.decisions.append(verdict)
            taken.update(verdict.roots)
            taken.update(verdict.removed)
            break
    if result.decisions:
        positions = {node: index for index, node in enumerate(module.graph.nodes)}
        if any(decision.kept for decision in result.decisions):
            _release_shared(result.decisions, positions)
        for decision in result.decisions:
            _plan_replacements(decision, positions, evaluator, path, result.problems)
    return result


def _release_shared(decisions: list[DagDecision], positions: dict) -> None:
    """A `shared` interior kept for its users outside its match goes after all, if every one
    of those users goes with the pass (two rewrites of the users of one transpose, say), and
    so, in turn, does what only it used. Nodes a template names stay."""
    gone = {node for d in decisions for node in (*d.removed, *d.replaced_roots)}
    named = {node for d in decisions for name in d.template_vars
             for node in nodes_in(d.bindings[name]) if node not in gone}
    keepers: dict[torch.fx.Node, list[DagDecision]] = {}
    for decision in decisions:
        for node in decision.kept:
            keepers.setdefault(node, []).append(decision)
    for node in sorted(keepers, key=positions.__getitem__, reverse=True):  # users first
        if node not in named and all(user in gone for user in node.users):
            gone.add(node)
            for decision in keepers[node]:
                decision.kept = decision.kept - {node}
            decision.removed = decision.removed | {node}  # the last to keep it removes it


def _footprint(found: Structural, taken, context: Context) -> DagDecision | Rejection:
    rule, bindings, roots = found.rule, found.bindings, found.roots
    failing = first_failing(rule.guards, bindings, context)
    if failing is not None:
        return Rejection(rule, roots[0], GUARD, "a `where` guard does not hold", guard=failing)
    inside = {node for node, _ in found.matched}
    interior: dict[torch.fx.Node, bool] = {}  # node -> used outside the match (it is shared)
    for node, shared in found.matched:
        if node in roots or node in interior:
            continue
        if node in taken:
            return Rejection(rule, roots[0], TAKEN, f"`{node.name}` was taken by an earlier match",
                             (node,))
        outside = next((user for user in node.users if user not in inside), None)
        if outside is not None and not shared:
            return Rejection(rule, roots[0], USED_OUTSIDE,
                             f"`{node.name}` is also used by `{outside.name}`, outside the match",
                             (node, outside))
        interior[node] = outside is not None
    erase = isinstance(rule.action, checked.Erase)
    if erase:
        used = next((root for root in roots if root.users), None)
        if used is not None:
            user = next(iter(used.users))
            return Rejection(rule, roots[0], ERASE_USED,
                             f"`erase` would drop `{used.name}`, which `{user.name}` uses",
                             (used, user))
    replaced = frozenset(roots[index] for index, _ in rule.action.replacements) if isinstance(
        rule.action, checked.Replace) else frozenset()
    staying = [] if erase else [root for root in roots if root not in replaced]
    kept = _kept(found, interior, staying)
    removed = frozenset(interior.keys() - kept) | (frozenset(roots) if erase else frozenset())
    return DagDecision(rule, bindings, roots, removed, frozenset(kept), replaced,
                       found.compiled.template_vars)


def _kept(found: Structural, interior: dict, staying: list) -> set[torch.fx.Node]:
    """The interior nodes that something staying still uses, directly or through each other:
    a user outside the match, a template, a root the action leaves in place (`staying`)."""
    staying += [node for node, used_outside in interior.items() if used_outside]
    for name in found.compiled.template_vars:
        value = found.bindings[name]
        if isinstance(value, torch.fx.Node):
            if value in interior:
                staying.append(value)
        else:
            staying += [node for node in nodes_in(value) if node in interior]
    kept = {node for node in staying if node in interior}
    while staying:
        for node in staying.pop().all_input_nodes:
            if node in interior and node not in kept:
                kept.add(node)
                staying.append(node)
    return kept


def _plan_replacements(decision: DagDecision, positions, evaluator, path, problems) -> None:
    action = decision.rule.action
    if not isinstance(action, checked.Replace):
        return
    planner = TemplatePlanner(decision.rule, decision.bindings,
                              decision.removed | decision.kept, positions, evaluator, path)
    for index, template in action.replacements:
        root = decision.roots[index]
        try:
            decision.replaced[root] = planner.replacement(template, root)
        except TemplateError as error:
            problems.append(error.problem)
            return
