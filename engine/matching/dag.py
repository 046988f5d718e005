"""DAG rules -> where their patterns match, structurally.

Input: DAG rules (compiled here into an index by the targets their first root can have) and a
node. Output: for each rule indexed at the node's target, in file order, the `Structural`
match of its pattern there, if it has one: what the variables bound, the roots (the node, then
each later root found among the users of the nodes the earlier roots bound), and every node the
pattern's calls matched, with whether it may be shared.

A node costs one dict lookup by its target (an overload is looked up by its op packet) unless a
rule's root could be there. Whether a structural match becomes a rewrite (guards, interior nodes
used elsewhere, nodes an earlier match took) is decided in `engine.rewriting.decide`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx

from ..language import checked
from ..language.describe import describe_condition, describe_pattern
from ..language.names import op_key
from .match import Matcher, compile_node, compile_value


@dataclass(frozen=True)
class _Root:
    name: str | None
    matcher: Matcher
    anchors: tuple[str, ...]  # variables bound before it, whose nodes' users it is among


@dataclass(frozen=True, eq=False)
class CompiledDagRule:
    rule: checked.Rule
    roots: tuple[_Root, ...]
    template_vars: tuple[str, ...]  # the variables its templates use, looked up once
    # Rules of one file whose one root is written alike match alike: the structural match at
    # a node is found once for them all (None: several roots, matched against what is taken).
    shape: tuple[str, str] | None = None
    first_guard: str | None = None  # its first `where` condition, as written


class Candidates(list):
    """The rules whose first root could match at a target, in file order, and for each the
    index just past its run: the rules after it of the same shape and first guard, which fail
    at a node wherever it fails structurally or at that guard."""

    def __init__(self, rules=()):
        super().__init__(rules)
        self.skip: list[int] = []

    def runs(self) -> None:
        self.skip = [0] * len(self)
        for index in range(len(self) - 1, -1, -1):
            rule = self[index]
            if index + 1 < len(self) and rule.shape is not None and _same_run(rule,
                                                                               self[index + 1]):
                self.skip[index] = self.skip[index + 1]
            else:
                self.skip[index] = index + 1


def _same_run(first: CompiledDagRule, second: CompiledDagRule) -> bool:
    return first.shape == second.shape and first.first_guard == second.first_guard


@dataclass
class Structural:
    """A rule's pattern matched at a node: its bindings, its roots (first the node), and every
    node its calls matched, each with whether the pattern marks it `shared` (roots included)."""

    compiled: CompiledDagRule
    bindings: dict
    roots: tuple[torch.fx.Node, ...]
    matched: list[tuple[torch.fx.Node, bool]]

    @property
    def rule(self) -> checked.Rule:
        return self.compiled.rule


class DagIndex:
    """DAG rules by the targets their first root can have, in file order."""

    def __init__(self, rules: list[checked.Rule]):
        self.rules = [rule for rule in rules if rule.is_dag]
        self.by_target: dict[object, Candidates] = {}
        order = {}
        for rule in self.rules:
            compiled = _compile(rule)
            order[compiled] = len(order)
            for key in _root_keys(rule.pattern.roots[0][1]):
                entries = self.by_target.setdefault(key, Candidates())
                if compiled not in entries:
                    entries.append(compiled)
        # Rules rooted at `$f(...)` are tried at every function call, in file order among the
        # others; a rule set without them pays nothing for them.
        self.any_op: Candidates | None = self.by_target.pop(_ANY_OP, None)
        if self.any_op:
            for key, entries in self.by_target.items():
                if not (isinstance(key, tuple) and key[0] == "call_method"):
                    entries.extend(self.any_op)
                    entries.sort(key=order.__getitem__)
        for entries in (*self.by_target.values(), self.any_op or Candidates()):
            entries.runs()

    def __bool__(self) -> bool:
        return bool(self.rules)

    def compiled(self, rule: checked.Rule) -> CompiledDagRule:
        """The compiled form of one of its rules."""
        return next(c for entries in (*self.by_target.values(), self.any_op or ())
                    for c in entries if c.rule is rule)

    def candidates(self, node: torch.fx.Node) -> Candidates | None:
        """The rules whose first root could match the node, in file order; None if no rule's."""
        op = node.op
        if op == "call_function":
            return self.by_target.get(op_key(node.target), self.any_op)
        if op == "call_method":
            return self.by_target.get(("call_method", node.target))
        return None


def _compile(rule: checked.Rule) -> CompiledDagRule:
    roots, bound = [], []
    for name, pattern in rule.pattern.roots:
        anchors = tuple(v for v in _referenced(pattern) if v in bound)
        roots.append(_Root(name, _compile_root(pattern), anchors))
        bound += _bound(pattern) + ([name] if name else [])
    used: dict[str, None] = {}
    if isinstance(rule.action, checked.Replace):
        for _, template in rule.action.replacements:
            used.update((use.name, None) for use in checked.template_uses(template))
    shape = first_guard = None
    if len(rule.pattern.roots) == 1:  # written alike in one file: the same `use` names
        name, pattern = rule.pattern.roots[0]
        shape = (rule.span.source.path, f"{name} = {describe_pattern(pattern)}")
        first_guard = describe_condition(rule.guards[0]) if rule.guards else None
    return CompiledDagRule(rule, tuple(roots), tuple(used), shape, first_guard)


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
    if pattern.target_var is not None:
        return [_ANY_OP]
    return [op_key(pattern.target)]


_ANY_OP = ("any call_function",)  # the key of rules rooted at `$f(...)`


def _referenced(pattern) -> list[str]:
    return checked.variables(pattern, (checked.Same, checked.SameRest))


def _bound(pattern) -> list[str]:
    return checked.variables(pattern, (checked.Bind, checked.BindRest, checked.BindNode))


def match_at(compiled: CompiledDagRule, node: torch.fx.Node, taken) -> Structural | None:
    """The rule's pattern with its first root at `node`; later roots are not looked for among
    the nodes in `taken`."""
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
    return Structural(compiled, bindings, tuple(roots), matched)


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
