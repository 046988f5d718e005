"""Copying the nodes of one graph level into a new graph.

Input: the items of a region tree (plain nodes, regions, segments) of an old graph. Output: a
new `fx.Graph` holding copies of the plain nodes, the attributes its `get_attr` and
`call_module` nodes need, and the map from old nodes to new ones. Regions and segments are
handed to a callback (`engine.rewriting.actions`), which builds them, in this graph or with a child
builder for a submodule's graph.

`get_attr` nodes are not copied where they stand: they are created where first used, once per
graph, so a module attribute used only inside a region moves into that region's submodule and
one no longer used anywhere disappears (what torch's `split_module` does too).

Names: at a graph level that torch splits (one holding regions or segments), every node is named
as torch's split graph names it. torch builds that graph with a `call_module submod_N` for each
partition and a `getitem` for each output of a partition with several, and only then replaces
each call with a HOP or with the partition's nodes, in order. A node built later that asks for a
name one of those took gets another (a `getitem` copied after two split `getitem`s becomes
`getitem_2`; a fetch asking for `submod_1` gets the next number past the partitions' and the
earlier fetches'). The builder keeps a second FX namespace that holds those names too
(`_TorchNames`) and creates each node with the name it gives, in the order torch creates them.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.fx
from torch.fx._lazy_graph_module import _LazyGraphModule

from ..graphs.modules import fetch_attr
from ..matching.regions import Item, Region, Segment


_UNBUILT = object()


class GraphBuilder:
    def __init__(self, old_module: torch.fx.GraphModule, replaced: dict[int, torch.nn.Module],
                 parent: "GraphBuilder | None" = None):
        self.old_module = old_module
        self.replaced = replaced  # id(old nested module) -> its rewritten version
        self.graph = torch.fx.Graph()
        self.env: dict[torch.fx.Node, torch.fx.Node] = {}
        self.attrs: dict[str, object] = {}
        self.split_seen = False  # the first `emit` is the level torch splits, if anything is
        self.torch_names: _TorchNames | None = None  # at a level torch splits
        # Inside an outlined submodule, `call_module a.b` becomes `call_module a_b`, as in torch.
        self.flatten_module_calls = parent is not None
        if parent is None:
            nodes = old_module.graph.nodes
            self.positions = {node: index for index, node in enumerate(nodes)}
            # Attribute names the old graph uses; new submodules take other names.
            self.taken_names = {
                name for node in nodes if node.op in ("get_attr", "call_module")
                for name in (node.target.split(".")[0], node.target.replace(".", "_"))}
        else:
            self.positions = parent.positions
            self.taken_names = parent.taken_names

    def child(self) -> "GraphBuilder":
        """A builder for a submodule outlined from this graph level."""
        return GraphBuilder(self.old_module, self.replaced, parent=self)

    # --- values ------------------------------------------------------------------------------
    def value(self, old: torch.fx.Node):
        """What stands for `old` in the new graph: its copy, what replaced it (a node or a
        literal), or for a `get_attr`, a fetch made on first use."""
        new = self.env.get(old, _UNBUILT)
        if new is _UNBUILT:
            if old.op != "get_attr":  # the decisions are closed: this cannot happen
                raise AssertionError(f"internal error: `{old.name}` used before it was built")
            new = self.graph.create_node(
                "get_attr", old.target, name=self.name_for(self.graph._target_to_str(old.target)))
            new.meta = copy.copy(old.meta)
            self.attrs[old.target] = self._old_attr(old.target)
            self.env[old] = new
        return new

    def copy(self, old: torch.fx.Node) -> torch.fx.Node:
        new = self.copy_of(old, self.value)
        if old.op == "call_module":
            target = old.target.replace(".", "_") if self.flatten_module_calls else old.target
            new.target = target
            self.attrs[target] = self._old_attr(old.target)
        self.env[old] = new
        return new

    def copy_of(self, old: torch.fx.Node, value: Callable) -> torch.fx.Node:
        """A new node like `old` (`Graph.node_copy`), its arguments mapped by `value`, named as
        torch names its copy."""
        args = torch.fx.map_arg(old.args, value)
        kwargs = torch.fx.map_arg(old.kwargs, value)
        new = self.graph.create_node(old.op, old.target, args, kwargs, self.name_for(old.name),
                                     old.type)
        new.meta = copy.copy(old.meta)
        return new

    def name_for(self, candidate: str | None) -> str | None:
        """The name torch's split graph gives a node asking for `candidate` now; at a level torch
        does not split, `candidate` (FX then names the node as torch's copy is named)."""
        if self.torch_names is None or candidate is None:
            return candidate
        return self.torch_names.take(candidate)

    def _old_attr(self, target: str) -> object:
        value = fetch_attr(self.old_module, target)
        return self.replaced.get(id(value), value)

    # --- items -------------------------------------------------------------------------------
    def emit(self, items: list[Item], handler: Callable) -> None:
        """Copies items in order; each region or segment goes to
        `handler(builder, item, partition)`.

        The partition number follows torch's `sequential_split`: it grows at each region or
        segment and at the first node after a region, so submodule names match torch's.
        """
        partitions = self._partitions(items)
        if not self.split_seen:  # the graph level torch splits; not a region inlined into it
            self.split_seen = True
            if handler is not None and any(isinstance(item, (Region, Segment)) for item in items):
                self._split(items, partitions)
        for item in items:
            if isinstance(item, (Region, Segment)):
                handler(self, item, partitions[item])
            elif item.op != "get_attr" and item not in self.env:  # placeholders: by `_split`
                self.copy(item)

    @staticmethod
    def _partitions(items: list[Item]) -> dict:
        """The partition torch's `sequential_split` puts each item in (placeholders, the output
        and `get_attr`s in none): a new one at each region or segment and at the first item
        after a region."""
        partitions, partition, after_region = {}, 0, False
        for item in items:
            structured = isinstance(item, (Region, Segment))
            if after_region or structured:
                partition += 1
                after_region = False
            if structured or item.op not in ("placeholder", "output", "get_attr"):
                partitions[item] = partition
            after_region = after_region or isinstance(item, Region)
        return partitions

    # --- attributes --------------------------------------------------------------------------
    def fresh_attr_name(self, wanted: str) -> str:
        """`wanted` unless the old graph or this builder already uses it; then the next free one."""
        base, _, number = wanted.rpartition("_")
        index = int(number) if number.isdigit() else 0
        name = wanted
        while name in self.taken_names or name in self.attrs:
            index += 1
            name = f"{base}_{index}"
        return name

    def _split(self, items: list[Item], partitions: dict) -> None:
        """Names as torch's split graph of this level holds them before its HOP pass runs: the
        nodes built so far (placeholders), then each partition's `submod_N` and split getitems.
        The top level's placeholders are items: they are named first, as they stand."""
        placeholders = [item for item in items
                        if not isinstance(item, (Region, Segment)) and item.op == "placeholder"]
        for placeholder in placeholders:
            self.copy(placeholder)
        self.torch_names = _TorchNames(
            [node.name for node in self.graph.nodes], partitions)

    def to_module(self, template: torch.fx.GraphModule | None = None) -> torch.fx.GraphModule:
        """The new graph as a module, taking `template`'s meta and training flag if given.

        It is torch's `_LazyGraphModule`, as Dynamo and Inductor make: its Python code compiles
        on first use. Compiling costs more than rewriting; an exported program or an Inductor
        compile never needs this module's code; and `GraphModule` recompiles every child
        GraphModule each time an enclosing one compiles, so eager submodules would compile once
        per level of nesting.
        """
        module = _LazyGraphModule(self.attrs, self.graph)
        if template is not None:
            module.meta = copy.copy(template.meta)
            module.train(template.training)
        return module


class _TorchNames:
    """The FX namespace of torch's split graph of one level: what names are taken, and the
    `getitem`s split_module made for each partition with several outputs, which the HOP pass
    renames to the outputs' names."""

    def __init__(self, built: list[str], partitions: dict):
        self.namespace = torch.fx.graph._Namespace()
        for name in built:
            self.namespace.create_name(name, None)
        outputs = _partition_outputs(partitions)
        self.split_getitems: dict[int, list[str]] = {}
        for number in sorted(set(partitions.values())):
            self.namespace.create_name(f"submod_{number}", None)
            if outputs.get(number, 0) > 1:
                self.split_getitems[number] = [self.namespace.create_name("getitem", None)
                                               for _ in range(outputs[number])]

    def take(self, candidate: str) -> str:
        return self.namespace.create_name(candidate, None)

    def output_getitem(self, partition: int, index: int, candidate: str) -> str:
        """The name of output `index` of a HOP with several: torch renames split_module's getitem
        to `candidate`, which keeps its name if it already has that one."""
        split = self.split_getitems.get(partition, ())
        if index < len(split) and split[index] == candidate:
            return candidate
        return self.take(candidate)


def _partition_outputs(partitions: dict) -> dict[int, int]:
    """How many outputs split_module gives each partition: values made there and used in
    another partition or returned."""
    owner = {}
    for item, number in partitions.items():
        for node in (item.nodes() if isinstance(item, (Region, Segment)) else (item,)):
            owner[node] = number
    outputs: dict[int, int] = {}
    for node, number in owner.items():
        if any(owner.get(user, -1) != number for user in node.users):
            outputs[number] = outputs.get(number, 0) + 1
    return outputs
