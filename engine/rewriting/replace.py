"""DAG decisions, carried out: one pass's rewrites in a copy of the graph.

Input: one module and the decisions of one pass over its graph (`engine.rewriting.decide`).
Output: a new module (the input is not touched) holding a copy of every node except the ones
the decisions remove, and, in each replaced root's place, what replaces it: an existing node, a
literal, or the planned nodes of its template (`engine.rewriting.templates`), each built once.
Nothing is decided here and nothing can be refused.
"""

from __future__ import annotations

import torch
import torch.fx

from .decide import DagDecision
from .emit import GraphBuilder
from .templates import Planned


def rewrite_graph(module: torch.fx.GraphModule, decisions: list[DagDecision],
                  replaced: dict[int, torch.nn.Module]) -> torch.fx.GraphModule:
    builder = GraphBuilder(module, replaced)
    builder.graph._codegen = module.graph._codegen
    gone: set[torch.fx.Node] = set()
    replacements: dict[torch.fx.Node, object] = {}
    for decision in decisions:
        gone |= decision.removed
        replacements.update(decision.replaced)
    built: dict[int, torch.fx.Node] = {}  # id(Planned) -> the node built for it
    for node in module.graph.nodes:
        if node in gone or node.op == "get_attr":
            continue
        if node in replacements:
            builder.env[node] = build_planned(replacements[node], builder, built)
        else:
            builder.copy(node)
    return builder.to_module(template=module)


def build_planned(value, builder: GraphBuilder, built: dict[int, torch.fx.Node]):
    """A planned value in the new graph: old nodes mapped to theirs, planned nodes made once.
    (`builder`: what has `.value(old node)` and `.graph`; `engine.tools.extract` passes its own.)"""
    if isinstance(value, torch.fx.Node):
        return builder.value(value)
    if isinstance(value, Planned):
        node = built.get(id(value))
        if node is None:
            args = tuple(build_planned(arg, builder, built) for arg in value.args)
            kwargs = {name: build_planned(arg, builder, built)
                      for name, arg in value.kwargs.items()}
            node = builder.graph.create_node(value.op, value.target, args, kwargs)
            node.meta.update(value.meta)
            built[id(value)] = node
        return node
    if isinstance(value, (list, tuple)):
        return type(value)(build_planned(item, builder, built) for item in value)
    if isinstance(value, dict):
        return {key: build_planned(item, builder, built) for key, item in value.items()}
    return value
