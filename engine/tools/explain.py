"""Why (not) a match: each rule, at each node where its pattern could start, with the reason.

Input: a `RuleSet` and a module (a GraphModule or an ExportedProgram's). Output: one
`Explanation` for each rule and each node its root could match (same op packet or method; with
`all_nodes`, every call): matched, with what each variable bound (and, for a region, its nodes);
or not, with the first reason, the part of the rule it is about (a span, rendered with a caret as
diagnostics are) and the model's own source line. The reasons:

- the pattern: the reference interpreter's first failure (`engine.matching.explain`): another
  op or overload, an argument that is not the literal, a variable bound to something else,
  keywords present or missing, an argument left out that is not its default; a later root no
  user matches; a region's closer that closes another opener;
- the decision (`engine.rewriting.decide`): a `where` condition that does not hold, with the
  values it read; an interior node used outside the match (its user named); a node an earlier
  match or rule took (named); `erase` of a root something uses; a region an earlier rule took.

Region rules are explained on the graphs as given; DAG rules on the graphs the region rules
make, as their first pass sees them. Nothing here is on the rewrite's path: the compiled
matchers run as before, and explaining costs only when asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch
import torch.fx

from ..graphs.dump import format_value
from ..graphs.errors import source_line
from ..graphs.modules import held_graphs
from ..language import checked
from ..language.describe import describe_condition
from ..language.diagnostics import Span
from ..matching.dag import match_at
from ..matching.explain import Miss, explain_node, explain_value
from ..matching.guards import UNKNOWN, operand_value, truth
from ..matching.match import targets_match
from ..matching.regions import Region, Segment
from ..rewriting.decide import decide_dag_pass
from ..rewriting.evaluate import Evaluator

MATCHED = "matched"
GUARD, TAKEN, LATER_ROOT, CLOSER, STRUCTURE = "guard", "taken", "later root", "closer", "structure"


@dataclass
class Explanation:
    rule: checked.Rule
    node: str
    module: str  # the module path, "" for the top graph
    matched: bool
    reason: str  # MATCHED, a `matching.explain` kind, or a decision's
    message: str
    span: Span | None  # the part of the rule the reason is about
    source: str | None  # the model's line that made the node
    bindings: dict[str, str] = field(default_factory=dict)
    progress: int = 0  # how far the match got: near misses first
    region: list[str] = field(default_factory=list)  # a region's nodes

    def as_data(self) -> dict:
        span = None if self.span is None else {
            "file": self.span.source.path, "line": self.span.line, "column": self.span.column,
            "end_line": self.span.end_line, "end_column": self.span.end_column}
        return {"rule": self.rule.name, "rule_at": self.rule.where, "node": self.node,
                "module": self.module, "matched": self.matched, "reason": self.reason,
                "message": self.message, "span": span, "source": self.source,
                "bindings": self.bindings, "progress": self.progress, "region": self.region}


def explain(rules, gm: torch.fx.GraphModule, rule: str | None = None, node: str | None = None,
            all_nodes: bool = False) -> list[Explanation]:
    """Every explanation, rule by rule in file order, matches first, then near misses."""
    chosen = [r for r in rules.rules if rule is None or r.name == rule]
    found: list[Explanation] = []
    phase = rules.apply_regions(gm, strict=False)
    if any(not r.is_dag for r in chosen):
        _regions(rules, phase.plan, chosen, phase.problems, node, all_nodes, found, set())
    if any(r.is_dag for r in chosen):
        module = phase.module if phase.module is not None else gm
        _dags(rules, module, "", phase.context, phase.contexts, chosen, node, all_nodes, found,
              set())
    order = {r.name: index for index, r in enumerate(rules.rules)}
    found.sort(key=lambda e: (order[e.rule.name], not e.matched, -e.progress))
    return found


# --- region rules ------------------------------------------------------------------------------
def _regions(rules, plan, chosen, problems, node_name, all_nodes, found, seen) -> None:
    if id(plan.module) in seen:
        return
    seen.add(id(plan.module))
    for child in plan.children:
        _regions(rules, child, chosen, problems, node_name, all_nodes, found, seen)
    pieces = _pieces(plan.items)
    for rule in (r for r in chosen if not r.is_dag):
        opener = rule.pattern.opener
        for node in plan.module.graph.nodes:
            if node_name is not None and node.name != node_name:
                continue
            if not (targets_match(opener, node) or all_nodes and node.op == "call_function"):
                continue
            found.append(_region(rule, node, plan, pieces.get(node, []), problems))


def _pieces(items) -> dict[torch.fx.Node, list]:
    """Each marker node's regions or segments in the tree (a cut bracket has several pieces)."""
    found: dict[torch.fx.Node, list] = {}
    for item in items:
        if isinstance(item, Region):
            found.setdefault(item.opener, []).append(item)
        elif isinstance(item, Segment) and not item.continued:
            found.setdefault(item.marker, []).append(item)
        if isinstance(item, (Region, Segment)):
            for marker, more in _pieces(item.items).items():
                found.setdefault(marker, []).extend(more)
    return found


def _region(rule, node, plan, pieces, problems) -> Explanation:
    pattern = rule.pattern
    bindings: dict = {}
    miss = explain_node(pattern.opener, node, bindings)
    if miss is not None:
        return _missed(rule, node, plan.path, miss)
    if pattern.binder:
        bindings[pattern.binder] = node
    if not pieces or plan.decisions is None:
        about = [p.message for p in problems if node in p.nodes and p.module == plan.path]
        message = about[0] if about else "it opens no region in this graph"
        return _explanation(rule, node, plan.path, False, STRUCTURE, message,
                            pattern.opener.span, bindings, 1)
    item = pieces[0]
    if isinstance(item, Region) and all(c.rule is not rule for c in item.candidates):
        closer = item.closer
        miss = explain_node(pattern.closer, closer, dict(bindings)) if closer else None
        message = (f"its closer `{closer.name}` does not close it: {miss.message}"
                   if miss else "it is not closed as the rule's closer says")
        return _explanation(rule, node, plan.path, False, CLOSER, message,
                            miss.span if miss else pattern.closer.span, bindings, 1)
    decision = plan.decisions.decisions.get(item)
    cut = f"; cut by segment markers into {len(pieces)} pieces" if len(pieces) > 1 else ""
    if decision is None:
        return _explanation(rule, node, plan.path, False, TAKEN, "it lies in a region an "
                            "earlier rule erases", rule.span, bindings, 1)
    if decision.rule is rule:
        nodes = [n.name for piece in pieces for n in piece.nodes()]
        return _explanation(rule, node, plan.path, True, MATCHED, cut.removeprefix("; "),
                            rule.span, decision.bindings, 2, nodes)
    rejected = next((r for r in decision.rejected if r.rule is rule), None)
    if rejected is not None:
        return _guard(rule, node, plan.path, rejected.guard, bindings, decision.context, 1)
    taker = decision.rule.name if decision.rule else "none"
    return _explanation(rule, node, plan.path, False, TAKEN,
                        f"rule `{taker}`, earlier in file order, took the region{cut}",
                        rule.span, bindings, 1)


# --- DAG rules ---------------------------------------------------------------------------------
def _dags(rules, module, path, context, contexts, chosen, node_name, all_nodes, found,
          seen) -> None:
    if id(module) in seen:
        return
    seen.add(id(module))
    for target, child in held_graphs(module):
        _dags(rules, child, f"{path}.{target}" if path else target,
              contexts.get(id(child), context), contexts, chosen, node_name, all_nodes, found,
              seen)
    dag_rules = [r for r in chosen if r.is_dag]
    decided = decide_dag_pass(module, rules.dags, context, path, Evaluator(),
                              every_rejection=True)
    for node in module.graph.nodes:
        if node_name is not None and node.name != node_name:
            continue
        candidates = rules.dags.candidates(node) or []
        for rule in dag_rules:
            compiled = next((c for c in candidates if c.rule is rule), None)
            if compiled is None and not (all_nodes and node.op in ("call_function",
                                                                  "call_method")):
                continue
            found.append(_dag(rule, compiled or rules.dags.compiled(rule), node, path,
                              decided, context))


def _dag(rule, compiled, node, path, decided, context) -> Explanation:
    name, first = rule.pattern.roots[0]
    bindings: dict = {}
    miss = (explain_node(first, node, bindings) if isinstance(first, checked.NodePattern)
            else explain_value(first, node, bindings))
    if miss is not None:
        return _missed(rule, node, path, miss)
    structural = match_at(compiled, node, set())
    if structural is None:
        return _later_root(rule, node, path, bindings)
    bindings = structural.bindings
    for decision in decided.decisions:
        if decision.rule is rule and decision.roots[0] is node:
            return _explanation(rule, node, path, True, MATCHED, "", rule.span,
                                decision.bindings, 3)
    rejection = next((r for r in decided.rejections if r.rule is rule and r.node is node), None)
    if rejection is not None:
        if rejection.reason == "guard":
            return _guard(rule, node, path, rejection.guard, bindings, context, 2)
        return _explanation(rule, node, path, False, rejection.reason, rejection.message,
                            rule.pattern.roots[0][1].span, bindings, 2)
    taker = next((d for d in decided.decisions if node in d.roots or node in d.removed), None)
    if taker is not None:
        where = "" if taker.roots[0] is node else f" at `{taker.roots[0].name}`"
        return _explanation(rule, node, path, False, TAKEN,
                            f"rule `{taker.rule.name}`'s match{where} took `{node.name}` first",
                            rule.span, bindings, 2)
    return _explanation(rule, node, path, False, TAKEN, "an earlier match of the pass took a "
                        "node it needs", rule.span, bindings, 2)


def _later_root(rule, node, path, bindings) -> Explanation:
    """The first root matched; a later one found no user to match among what the earlier
    bound: the nearest miss among those users."""
    best: Miss | None = None
    bound = dict(bindings)
    name, first = rule.pattern.roots[0]
    if name:
        bound[name] = node
    roots = {node}
    for root_name, pattern in rule.pattern.roots[1:]:
        users = [u for value in bound.values() if isinstance(value, torch.fx.Node)
                 for u in value.users if u not in roots]
        for user in users:
            trial = dict(bound)
            miss = (explain_node(pattern, user, trial) if isinstance(pattern, checked.NodePattern)
                    else explain_value(pattern, user, trial))
            if miss is None:
                bound = trial
                roots.add(user)
                if root_name:
                    bound[root_name] = user
                break
            if best is None or miss.progress > best.progress:
                best = miss
        else:
            message = "no user of what the first root bound matches the next root"
            if best is not None:
                message += f"; the nearest: {best.message}"
            return _explanation(rule, node, path, False, LATER_ROOT, message,
                                best.span if best else pattern.span, bindings,
                                1 + (best.progress if best else 0))
    return _explanation(rule, node, path, False, LATER_ROOT, "its later roots are taken",
                        rule.span, bindings, 1)


# --- conditions --------------------------------------------------------------------------------
def _guard(rule, node, path, guard, bindings, context, progress) -> Explanation:
    leaf, within, seen = _failing_leaf(guard, bindings, context)
    inside = "".join(f"in {_inside(part, seen)}: " for part in within)
    return _explanation(rule, node, path, False, GUARD,
                        f"the condition does not hold: {inside}"
                        f"{_with_values(leaf, seen, context)}",
                        leaf.span, bindings, progress)


def _failing_leaf(condition, bindings, context, within=()):
    """The innermost part of a condition that makes it fail, the named conditions and
    quantifiers (outermost first) it is inside, and the bindings it fails with (a
    quantifier's variable bound to the item it fails for)."""
    if isinstance(condition, checked.Named):
        return _failing_leaf(condition.body, bindings, context, (*within, condition))
    if isinstance(condition, checked.AllOf):
        return _failing_leaf(next(item for item in condition.items
                                  if truth(item, bindings, context) is not True),
                             bindings, context, within)
    if isinstance(condition, checked.Every) and condition.every:
        values = operand_value(condition.values, bindings, context)
        for item in values if isinstance(values, (list, tuple)) else ():
            bound = {**bindings, condition.var: item}
            if truth(condition.body, bound, context) is not True:
                return _failing_leaf(condition.body, bound, context, (*within, condition))
    return condition, within, bindings


def _inside(part, bindings) -> str:
    if isinstance(part, checked.Every):
        return (f"`{describe_condition(part)}`, for ${part.var} = "
                f"{_shown(bindings[part.var])}")
    return f"condition `{describe_condition(part)}`"


def _with_values(condition, bindings, context) -> str:
    text = f"`{describe_condition(condition)}`"
    if isinstance(condition, checked.Guard):
        left = operand_value(condition.left, bindings, context)
        right = operand_value(condition.right, bindings, context)
        return f"{text}: {_shown(left)} vs {_shown(right)}"
    if isinstance(condition, checked.Member):
        value = operand_value(condition.value, bindings, context)
        return f"{text}: it is {_shown(value)}"
    if isinstance(condition, checked.Test):
        return f"{text} is {_shown(operand_value(condition.value, bindings, context))}"
    return text


def _shown(value) -> str:
    if value is UNKNOWN:
        return "unknown (it cannot be read here)"
    if isinstance(value, torch.fx.Node):
        return f"`{value.name}`"
    return format_value(value)


# --- rendering ---------------------------------------------------------------------------------
def _missed(rule, node, path, miss: Miss) -> Explanation:
    return _explanation(rule, node, path, False, miss.kind, miss.message, miss.span, {},
                        miss.progress)


def _explanation(rule, node, path, matched, reason, message, span, bindings, progress,
                 region=()) -> Explanation:
    shown = {name: _shown(value) for name, value in bindings.items()}
    return Explanation(rule, node.name, path, matched, reason, message, span,
                       source_line(node), shown, progress, list(region))


def render(explanations: list[Explanation], rules) -> str:
    """For people: grouped by rule in file order, matches, then near misses, then far ones."""
    lines = []
    by_rule: dict[str, list[Explanation]] = {}
    for explanation in explanations:
        by_rule.setdefault(explanation.rule.name, []).append(explanation)
    for rule in rules.rules:
        group = by_rule.get(rule.name, [])
        if not group:
            continue
        matched = sum(e.matched for e in group)
        lines.append(f"{rule.where}: rule `{rule.name}`: {matched} matched, "
                     f"{len(group) - matched} not")
        for e in group:
            where = f" in `{e.module}`" if e.module else ""
            verdict = "matched" if e.matched else "not matched"
            lines.append(f"  `{e.node}`{where}: {verdict}" + (f": {e.message}" if e.message
                                                              else ""))
            if e.bindings:
                lines.append("      binds " + ", ".join(f"${k} = {v}"
                                                       for k, v in e.bindings.items()))
            if e.region:
                lines.append(f"      region: {', '.join(e.region)}")
            if e.source:
                lines.append(f"      from {e.source}")
            if e.span is not None and not e.matched:
                lines.extend("      " + line for line in _caret(e.span))
    total = len(explanations)
    matched = sum(e.matched for e in explanations)
    lines.append(f"{len(by_rule)} rule{'s' * (len(by_rule) != 1)}, {total} place"
                 f"{'s' * (total != 1)}: {matched} matched, {total - matched} not")
    return "\n".join(lines)


def render_near_misses(explanations: list[Explanation], rules, report) -> str:
    """For `engine apply --explain`: each rule that matched nowhere, and its nearest miss."""
    counts = report.counts()
    lines = []
    for rule in rules.rules:
        if counts[rule.name]:
            continue
        misses = [e for e in explanations if e.rule is rule and not e.matched]
        if not misses:
            lines.append(f"{rule.where}: rule `{rule.name}` matched nowhere: no node calls "
                         "its root's op")
            continue
        nearest = max(misses, key=lambda e: e.progress)
        where = f" in `{nearest.module}`" if nearest.module else ""
        lines.append(f"{rule.where}: rule `{rule.name}` matched nowhere; nearest, at "
                     f"`{nearest.node}`{where}: {nearest.message}")
        if nearest.span is not None:
            lines.extend("    " + line for line in _caret(nearest.span))
    return "\n".join(lines)


def _caret(span: Span) -> list[str]:
    text = span.source.line(span.line)
    width = (span.end_column if span.end_line == span.line else len(text) + 1) - span.column
    return [f"{span.where}:", f"    {text}", "    " + " " * (span.column - 1) + "^" * max(1, width)]


def as_json(explanations: list[Explanation]) -> str:
    return json.dumps([e.as_data() for e in explanations], indent=2)
