"""The outline action: a region becomes a submodule called through a higher-order op.

Input: a region or segment, the rule chosen for it, and the builder of the graph it sits in.
Output, in that graph:

    submod = get_attr(submod_N)
    hop = hop(*template_args, submod, *inputs)
    out_0 = getitem(hop, 0) ...

and a new submodule holding the region's nodes (markers dropped), its nested regions outlined in
turn. What torch's `replace_*_with_hop_pass` build, built the way they build it: inputs in order
of first use inside the region, outputs in order of first use after it, placeholders named after
the values they receive, the HOP node named after its only output (else after the op), getitem
nodes named after the outputs they stand for, `meta["val"]` and `nn_module_stack` carried over.
One difference: a region without outputs gets `meta["val"] = None`, not `()`, because torch's
`.pt2` loader rejects a HOP with an empty output list.
"""

from __future__ import annotations

import copy
import operator

import torch
import torch.fx

from ..language import checked
from ..graphs.modules import fetch_attr
from .emit import GraphBuilder
from ..matching.guards import Context
from ..matching.regions import Region, Segment
from ..graphs.values import key_for, recorded


class Outliner:
    """Outlines regions; `markers` are the targets whose uses do not make a value an input."""

    def __init__(self, markers: frozenset):
        self.markers = markers

    def __call__(self, parent: GraphBuilder, region: Region | Segment, action: checked.Outline,
                 bindings: dict, partition: int, body_context: Context, handler) -> None:
        inputs, module_attrs = self._inputs(region, parent)
        outputs = self.outputs(region, parent.positions)

        body = parent.child()
        for value in inputs:
            placeholder = body.graph.placeholder(value.name)
            placeholder.meta = copy.copy(value.meta)
            body.env[value] = placeholder
        for attr in module_attrs:  # after the placeholders, as torch's split_module puts them
            body.value(attr)
        body.emit(region.items, handler, body_context)
        body.graph.output(tuple(body.env[value] for value in outputs))

        name = parent.fresh_attr_name(f"submod_{partition}")
        parent.attrs[name] = body.to_module()
        graph = parent.graph
        origin = region.origin
        get_attr = graph.get_attr(name)
        get_attr.meta["nn_module_stack"] = copy.copy(origin.meta.get("nn_module_stack", {}))
        leading = _instantiate(action.args, bindings, parent)
        call = graph.create_node(
            "call_function", action.hop,
            (*leading, get_attr, *(parent.value(value) for value in inputs)), {},
            name=outputs[0].name if len(outputs) == 1 else None)
        call.meta.update(_hop_meta(action.hop, origin, outputs))
        for index, value in enumerate(outputs):
            item = graph.create_node("call_function", operator.getitem, (call, index), {},
                                     name=value.name if len(outputs) > 1 else None)
            item.meta = copy.copy(value.meta)
            parent.env[value] = item

    # --- the region's interface ----------------------------------------------------------------
    def _inputs(self, region: Region | Segment, parent: GraphBuilder):
        """Values from outside that the region uses, in order of first use (torch's order).

        Module attributes (a `torch.cond` branch, say) are not passed in: the submodule holds
        them itself. Tensor attributes are passed like any other value.
        """
        inside = region.inside
        inputs: dict[torch.fx.Node, None] = {}
        module_attrs: dict[torch.fx.Node, None] = {}
        for node in region.nodes():
            if node.op == "call_function" and node.target in self.markers:
                continue
            for used in _used_nodes(node):
                if used in inside:
                    continue
                if used.op == "get_attr" and isinstance(
                        fetch_attr(parent.old_module, used.target), torch.nn.Module):
                    module_attrs.setdefault(used)
                else:
                    inputs.setdefault(used)
        return list(inputs), list(module_attrs)

    def outputs(self, region: Region | Segment, positions) -> list[torch.fx.Node]:
        """Values made inside that are used after it, in order of first use (torch's order)."""
        inside = region.inside
        first_use: dict[torch.fx.Node, tuple[int, int]] = {}
        for node in inside:
            for user in node.users:
                if user in inside or (user.op == "call_function" and user.target in self.markers):
                    continue
                key = (positions[user], _used_nodes(user).index(node))
                if node not in first_use or key < first_use[node]:
                    first_use[node] = key
        return sorted(first_use, key=first_use.__getitem__)


def _used_nodes(node: torch.fx.Node) -> list[torch.fx.Node]:
    """The nodes among a node's arguments, in order (args, then kwargs), with repeats."""
    found: list[torch.fx.Node] = []
    torch.fx.map_arg((node.args, node.kwargs), found.append)
    return found


def _instantiate(args: tuple[checked.TemplateArg, ...], bindings: dict, builder: GraphBuilder):
    """Template arguments -> values in the graph being built."""
    values: list = []
    for arg in args:
        if isinstance(arg, checked.Const):
            values.append(arg.value)
        elif isinstance(arg, checked.Value):
            values.append(bindings[arg.name])
        else:
            values.extend(bindings[arg.name])
    return tuple(torch.fx.map_arg(tuple(values), builder.value))


def _hop_meta(hop, origin: torch.fx.Node, outputs: list[torch.fx.Node]) -> dict:
    """`meta` of the HOP node. Its value goes under the key the graph uses: `val` in export
    graphs, `example_value` in Dynamo's (whose outputs carry no `val`)."""
    meta = {
        "nn_module_stack": copy.copy(origin.meta.get("nn_module_stack", {})),
        "torch_fn": (hop.__name__, f"{type(hop).__name__}.{hop.__name__}"),
    }
    key = key_for(outputs)
    meta[key] = tuple(recorded(value, None) for value in outputs) if outputs else None
    if "stack_trace" in origin.meta:
        meta["stack_trace"] = origin.meta["stack_trace"]
    return meta
