"""Copying the nodes of one graph level into a new graph.

Input: the items of a region tree (plain nodes, regions, segments) of an old graph. Output: a
new `fx.Graph` holding copies of the plain nodes, the attributes its `get_attr` and
`call_module` nodes need, and the map from old nodes to new ones. Regions and segments are
handed to a callback (`engine.rewriting.actions`), which builds them, in this graph or with a child
builder for a submodule's graph.

`get_attr` nodes are not copied where they stand: they are created where first used, once per
graph, so a module attribute used only inside a region moves into that region's submodule and
one no longer used anywhere disappears (what torch's `split_module` does too).
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
        # torch names the nodes that call a HOP in its split graph: for naming as it does, the
        # partitions of that graph, and the fetches and lone getitems outlining built.
        self.split_seen = False
        self.split_partitions: dict = {}  # item -> its partition, at the level torch splits
        self.hop_attrs: list[tuple[torch.fx.Node, int]] = []
        self.hop_getitems: list[torch.fx.Node] = []
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
            new = self.graph.get_attr(old.target)
            new.meta = copy.copy(old.meta)
            self.attrs[old.target] = self._old_attr(old.target)
            self.env[old] = new
        return new

    def copy(self, old: torch.fx.Node) -> torch.fx.Node:
        new = self.graph.node_copy(old, self.value)
        if old.op == "call_module":
            target = old.target.replace(".", "_") if self.flatten_module_calls else old.target
            new.target = target
            self.attrs[target] = self._old_attr(old.target)
        self.env[old] = new
        return new

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
            self.split_partitions = partitions
        for item in items:
            if isinstance(item, (Region, Segment)):
                handler(self, item, partitions[item])
            elif item.op != "get_attr":
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

    def _name_getitems_as_torch_does(self) -> None:
        """A HOP with one output is read by a new `getitem` node, which torch creates in its
        split graph after split_module's own `getitem`s (one an output of each partition with
        several): it takes the name FX's namespace gives next (`getitem_2` after two)."""
        if not self.hop_getitems:
            return
        namespace = torch.fx.graph._Namespace()
        for number in range(_split_getitems(self.split_partitions)):
            namespace.create_name("getitem", None)
        lone = set(self.hop_getitems)
        for node in self.graph.nodes:
            if node not in lone and node.op != "get_attr":
                namespace.create_name(node.name, None)
        for node in self.hop_getitems:
            node._rename(namespace.create_name("getitem", None))

    def _name_fetches_as_torch_does(self) -> None:
        """torch fetches a partition's submodule `submod_K` with `graph.get_attr`, in a graph
        that still holds every partition's `call_module submod_N` node: the fetch gets the
        first name `submod_M`, M >= K, that no partition, node or earlier fetch has."""
        if not self.hop_attrs:
            return
        taken = set(self.split_partitions.values()) | {
            int(node.name[7:]) for node in self.graph.nodes if node.op != "get_attr"
            and node.name.startswith("submod_") and node.name[7:].isdigit()}
        next_free: dict[int, int] = {}  # a taken number -> a number at or past the next free one

        def first_free(number: int) -> int:
            path = []
            while number in taken:
                path.append(number)
                number = next_free.get(number, number + 1)
            for step in path:  # compress: the walk past a run of taken numbers is paid once
                next_free[step] = number
            return number

        for node, partition in self.hop_attrs:
            number = first_free(partition)
            taken.add(number)
            node._rename(f"submod_{number}")

    def to_module(self, template: torch.fx.GraphModule | None = None) -> torch.fx.GraphModule:
        """The new graph as a module, taking `template`'s meta and training flag if given.

        It is torch's `_LazyGraphModule`, as Dynamo and Inductor make: its Python code compiles
        on first use. Compiling costs more than rewriting; an exported program or an Inductor
        compile never needs this module's code; and `GraphModule` recompiles every child
        GraphModule each time an enclosing one compiles, so eager submodules would compile once
        per level of nesting.
        """
        self._name_fetches_as_torch_does()
        self._name_getitems_as_torch_does()
        module = _LazyGraphModule(self.attrs, self.graph)
        if template is not None:
            module.meta = copy.copy(template.meta)
            module.train(template.training)
        return module


def _split_getitems(partitions: dict) -> int:
    """How many `getitem` nodes split_module makes in its graph for these partitions: one for
    each output of a partition with several, an output being a value made there and used in
    another partition or returned."""
    owner = {}
    for item, number in partitions.items():
        for node in (item.nodes() if isinstance(item, (Region, Segment)) else (item,)):
            owner[node] = number
    outputs: dict[int, int] = {}
    for node, number in owner.items():
        if any(owner.get(user, -1) != number for user in node.users):
            outputs[number] = outputs.get(number, 0) + 1
    return sum(count for count in outputs.values() if count > 1)
