"""The outline action: a region becomes a submodule called through a higher-order op.

Input: a region's decision (its rule, bindings and interface, `engine.rewriting.decide`) and
the builder of the graph it sits in. Output, in that graph:

    submod = get_attr(submod_N)
    hop = hop(*template_args, submod, *inputs)
    out_0 = getitem(hop, 0) ...

and a new submodule holding the region's nodes (markers dropped), its nested regions carried
out in turn. What torch's `replace_*_with_hop_pass` build, built the way they build it:
placeholders named after the values they receive, the HOP node named after its only output
(else after the op), getitem nodes named after the outputs they stand for, `meta["val"]` and
`nn_module_stack` carried over. One difference: a region without outputs gets
`meta["val"] = None`, not `()`, because torch's `.pt2` loader rejects a HOP with an empty output
list.
"""

from __future__ import annotations

import copy
import operator

import torch
import torch.fx

from ..graphs.values import key_for, recorded
from ..language import checked
from .decide import RegionDecision
from .emit import GraphBuilder


def outline(parent: GraphBuilder, decision: RegionDecision, partition: int, handler) -> None:
    region, action, interface = decision.item, decision.action, decision.interface
    body = parent.child()
    body.source_names = parent.body_source_names(region)
    for value in interface.inputs:
        placeholder = body.graph.placeholder(body.source_name(value))
        placeholder.meta = copy.copy(value.meta)
        body.env[value] = placeholder
    for attr in interface.module_attrs:  # after the placeholders, as torch's split_module puts them
        body.value(attr)
    body.emit(region.items, handler)
    body.graph.output(tuple(body.env[value] for value in interface.outputs))

    name = parent.attr_name(region, f"submod_{partition}")
    parent.attrs[name] = submodule = body.to_module()
    handler.contexts[id(submodule)] = decision.body_context
    graph = parent.graph
    origin = region.origin
    outputs = interface.outputs
    fetch_name, call_name, getitem_names = parent.hop_names(
        region, partition, outputs, graph._target_to_str(action.hop))
    get_attr = parent.prefetched.pop(region, None)
    if get_attr is None:  # a partition of the split graph: torch registers those first
        get_attr = graph.create_node("get_attr", name, name=fetch_name)
        parent.partition_modules.append(name)
    get_attr.meta["nn_module_stack"] = copy.copy(origin.meta.get("nn_module_stack", {}))
    leading = _instantiate(action.args, decision.bindings, parent)
    call = graph.create_node(
        "call_function", action.hop,
        (*leading, get_attr, *(parent.value(value) for value in interface.inputs)), {},
        name=call_name)
    call.meta.update(_hop_meta(action.hop, origin, outputs))
    for index, (value, getitem_name) in enumerate(zip(outputs, getitem_names)):
        item = graph.create_node("call_function", operator.getitem, (call, index), {},
                                 name=getitem_name)
        item.meta = copy.copy(value.meta)
        parent.env[value] = item


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


def _hop_meta(hop, origin: torch.fx.Node, outputs) -> dict:
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
