"""A DAG decision, cut out: the pattern's nodes and their replacement as two small graphs.

Input: a graph and one decision the engine took on it (`engine.rewriting.decide.DagDecision`:
the roots, the interior nodes that go or stay, what replaces each replaced root). Output: two
GraphModules over the same placeholders, one for each value from outside the match that the
matched nodes read (in order of first use): `before` computes the roots as the graph does;
`after` computes what the rewrite leaves in their place, building each planned template node
as the rewrite itself builds it (`engine.rewriting.replace`). Each returns its roots' values as
a tuple, so that running both on the same inputs compares a rule's two sides on one match.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.fx

from ..rewriting.decide import DagDecision
from ..rewriting.replace import build_planned


@dataclass
class Extracted:
    before: torch.fx.GraphModule
    after: torch.fx.GraphModule
    inputs: list[torch.fx.Node]  # the original graph's nodes each placeholder stands for
    built: list[torch.fx.Node]  # `after`'s nodes a template built (their meta is the plan's)


def extract(module: torch.fx.GraphModule, decision: DagDecision) -> Extracted:
    matched = set(decision.roots) | decision.removed | decision.kept
    order = [node for node in module.graph.nodes if node in matched]
    inputs: dict[torch.fx.Node, None] = {}
    for node in order:
        for used in node.all_input_nodes:
            if used not in matched:
                inputs.setdefault(used)
    before = _Side(list(inputs))
    for node in order:
        before.copy(node)
    after = _Side(list(inputs))
    for node in order:
        if node in decision.replaced:
            after.env[node] = after.build(decision.replaced[node])
        elif node not in decision.removed:
            after.copy(node)
    return Extracted(before.finish(decision.roots), after.finish(decision.roots), list(inputs),
                     list(after.planned.values()))


class _Side:
    """One of the two graphs: placeholders for the inputs, then copies or built nodes."""

    def __init__(self, inputs: list[torch.fx.Node]):
        self.graph = torch.fx.Graph()
        self.env: dict[torch.fx.Node, object] = {}
        self.planned: dict[int, torch.fx.Node] = {}  # id(Planned) -> the node built for it
        for node in inputs:
            placeholder = self.graph.placeholder(node.name)
            placeholder.meta = copy.copy(node.meta)
            self.env[node] = placeholder

    def copy(self, node: torch.fx.Node) -> None:
        self.env[node] = self.graph.node_copy(node, self.env.__getitem__)

    def value(self, node: torch.fx.Node):
        return self.env[node]

    def build(self, value):
        """A planned value, built as the rewrite builds it."""
        return build_planned(value, self, self.planned)

    def finish(self, roots) -> torch.fx.GraphModule:
        self.graph.output(tuple(self.env[root] for root in roots))
        return torch.fx.GraphModule(torch.nn.Module(), self.graph)
