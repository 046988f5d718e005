"""DAG rules -> the matches they have in one graph.

Input: the nodes of a graph, the DAG rules compiled into an index, and the context (for `where`
guards). Output: the matches to apply, at most one per node. One scan in graph order: a node
costs a dict lookup by its target (an overload is looked up by its op packet) unless a rule's
root could be there; then each rule indexed there, in file order, tries to match it, and the
first whose pattern matches, whose guards hold and whose nodes no earlier match took, wins.

A match's interior nodes (the nested calls below its roots) must be used only inside the match,
unless the pattern says `shared`; as torch's subgraph rewriter and Inductor require. Roots after
the first are found among the users of the nodes the earlier roots bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.fx

from ..language import checked
from .guards import Context, holds
from .match import Matcher, compile_node, compile_value, index_key


@dataclass(frozen=True)
class _Root:
    name: str | None
    matcher: Matcher
    anchors: tuple[str, ...]  # variables bound before it, whose nodes' users it is among


@dataclass(frozen=True)
class CompiledDagRule:
    rule: checked.Rule
    roots: tuple[_Root, ...]
    template_vars: frozenset[str]  # what the templates use: such interior nodes stay


@dataclass
class DagMatch:
    rule: checked.Rule
    bindings: dict
    roots: list[torch.fx.Node]
    removed: set[torch.fx.Node]  # interior nodes that go with the match
    kept: set[torch.fx.Node] = field(default_factory=set)  # `shared` interiors used elsewhere


class DagIndex:
    """DAG rules by the targets their first root can have, in file order."""

    def __init__(self, rules: list[checked.Rule]):
        self.rules = [rule for rule in rules if rule.is_dag]
        self.by_target: dict[object, list[CompiledDagRule]] = {}
        for rule in self.rules:
            compiled = _compile(rule)
            for key in _root_keys(rule.pattern.roots[0][1]):
                entries = self.by_target.setdefault(key, [])
                if compiled not in entries:
                    entries.append(compiled)

    def __bool__(self) -> bool:
        return bool(self.rules)


def _compile(rule: checked.Rule) -> CompiledDagRule:
    roots, bound = [], []
    for name, pattern in rule.pattern.roots:
        anchors = tuple(v for v in _referenced(pattern) if v in bound)
        roots.append(_Root(name, _compile_root(pattern), anchors))
        bound += _bound(pattern) + ([name] if name else [])
    used = set()
    if isinstance(rule.action, checked.Replace):
        for _, template in rule.action.replacements:
            used |= {use.name for use in checked.template_uses(template)}
    return CompiledDagRule(rule, tuple(roots), frozenset(used))


def _compile_root(pattern) -> Matcher:
    """A root is a call pattern, or alternatives of them (matched as any argument is)."""
    return compile_node(pattern) if isinstance(pattern, checked.NodePattern) else \
        compile_value(pattern)


def _root_keys(pattern) -> list:
    if isinstance(pattern, checked.BindNode):
        return _root_keys(pattern.pattern)
    if isinstance(pattern, checked.OneOf):
        return [key for option in pattern.options for key in _root_keys(option)]
    if pattern.op == "call_method":
        return [("call_method", pattern.target)]
    return [index_key(pattern.target)]


def _referenced(pattern) -> list[str]:
    return checked.variables(pattern, (checked.Same, checked.SameRest))


def _bound(pattern) -> list[str]:
    return checked.variables(pattern, (checked.Bind, checked.BindRest, checked.BindNode))


def find_matches(nodes, index: DagIndex, context: Context) -> list[DagMatch]:
    matches: list[DagMatch] = []
    taken: set[torch.fx.Node] = set()
    by_target = index.by_target
    for node in nodes:
        op = node.op
        if op == "call_function":
            key = index_key(node.target)
        elif op == "call_method":
            key = ("call_method", node.target)
        else:
            continue
        candidates = by_target.get(key)
        if candidates is None or node in taken:
            continue
        for compiled in candidates:
            match = _try(compiled, node, taken, context)
            if match is not None:
                matches.append(match)
                taken.update(match.roots)
                taken.update(match.removed)
                break
    return matches


def _try(compiled: CompiledDagRule, node: torch.fx.Node, taken, context) -> DagMatch | None:
    bindings: dict = {}
    matched: list = []
    first = compiled.roots[0]
    if not first.matcher(node, bindings, matched):
        return None
    if first.name:
        bindings[first.name] = node
    roots = [node]
    for root in compiled.roots[1:]:
        found = _find_root(root, bindings, matched, taken, roots)
        if found is None:
            return None
        roots.append(found)
    rule = compiled.rule
    if not holds(rule.guards, bindings, context):
        return None
    inside = {n for n, _ in matched}
    reused = {bindings[v] for v in compiled.template_vars if isinstance(bindings.get(v), torch.fx.Node)}
    removed, kept = set(), set()
    for interior, shared in matched:
        if interior in roots:
            continue
        if interior in taken:
            return None
        exclusive = all(user in inside for user in interior.users)
        if not exclusive and not shared:
            return None  # an interior node also used outside the match
        (removed if exclusive and interior not in reused else kept).add(interior)
    if isinstance(rule.action, checked.Erase) and any(root.users for root in roots):
        return None  # erase takes only nodes nothing uses
    return DagMatch(rule, bindings, roots, removed, kept)


def _find_root(root: _Root, bindings, matched, taken, roots) -> torch.fx.Node | None:
    """A later root: among the users of the nodes its anchors bound, the first that matches."""
    seen = set()
    for anchor in root.anchors:
        value = bindings.get(anchor)
        for user in (value.users if isinstance(value, torch.fx.Node) else ()):
            if user in seen or user in taken or user in roots:
                continue
            seen.add(user)
            trial, mark = dict(bindings), len(matched)
            if root.matcher(user, trial, matched):
                bindings.update(trial)
                if root.name:
                    bindings[root.name] = user
                return user
            del matched[mark:]
    return None
