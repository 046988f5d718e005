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
as torch's passes name it, worked out by `engine.rewriting.torch_names`: asked for as each node
is made, in torch's order, where torch splits the level once; all before building, where it
splits it twice (set-grad segments and autocast regions at one level), which also moves the
set-grad submodules' fetches to where torch puts them.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.fx
from torch.fx._lazy_graph_module import _LazyGraphModule

from ..graphs.modules import fetch_attr
from ..matching.regions import Item, Region, Segment
from .torch_names import (INLINE, LevelNames, SplitNames, number_partitions, one_split_fetches,
                          two_split_names)


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
        self.torch_names: SplitNames | None = None  # at a level torch splits once
        self.level_names: LevelNames | None = None  # at a level torch splits twice
        self.prefetched: dict = {}  # outlined item -> its fetch, made before its turn
        self.fetch_first: dict = {}  # item -> what torch fetches just before it
        # Submodules in the order torch registers them: its split module's partitions first,
        # then those copied back partitions brought (`node_inline_` registers them then).
        self.partition_modules: list[str] = []
        self.inlined_modules: list[str] = []
        # old node -> the name torch's graph of this level calls it by, where not its own (an
        # autocast submodule's nodes after the set-grad pass renamed them)
        self.source_names: dict[torch.fx.Node, str] = {}
        # Inside an outlined submodule, `call_module a.b` becomes `call_module a_b`, as in torch.
        self.flatten_module_calls = parent is not None
        if parent is None:
            nodes = old_module.graph.nodes
            self.positions = {node: index for index, node in enumerate(nodes)}
            # Attribute names the old graph uses; new submodules take other names.
            self.taken_names = {
                name for node in nodes if node.op in ("get_attr", "call_module")
                for name in (node.target.split(".")[0], node.target.replace(".", "_"))}
            self.has_fetches = any(node.op == "get_attr" for node in nodes)
        else:
            self.positions = parent.positions
            self.taken_names = parent.taken_names
            self.has_fetches = parent.has_fetches

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
            name = self.level_names.copies.get(old) if self.level_names is not None else None
            new = self.graph.create_node("get_attr", old.target, name=name or self.name_for(
                self.graph._target_to_str(old.target)))
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
        if self.level_names is not None and old in self.level_names.copies:
            name = self.level_names.copies[old]
        else:
            name = self.name_for(self.source_name(old))
        new = self.graph.create_node(old.op, old.target, args, kwargs, name, old.type)
        new.meta = copy.copy(old.meta)
        return new

    def name_for(self, candidate: str | None) -> str | None:
        """The name torch's split graph gives a node asking for `candidate` now; at a level torch
        does not split, `candidate` (FX then names the node as torch's copy is named)."""
        if self.torch_names is None or candidate is None:
            return candidate
        return self.torch_names.take(candidate)

    def source_name(self, old: torch.fx.Node) -> str:
        """What torch's graph of this level, before it is split, calls `old`."""
        return self.source_names.get(old, old.name)

    def body_source_names(self, item) -> dict:
        """The names the nodes of an outlined item have in torch's graph of its submodule: an
        autocast region's at a twice-split level, those the set-grad pass gave them."""
        if self.level_names is not None and isinstance(item, Region):
            return self.level_names.body_names
        return self.source_names

    def hop_names(self, item, partition: int, outputs, hop_name: str) -> tuple:
        """(fetch, HOP node, [getitems]): the names of the nodes outlining `item` makes, as torch
        gives them where it splits this level, else as FX would."""
        if self.level_names is not None and item in self.level_names.made:
            return self.level_names.made[item]
        wanted = [self.source_name(value) for value in outputs]
        if self.torch_names is not None:
            return self.torch_names.hop_names(partition, wanted, hop_name)
        if len(wanted) == 1:
            return f"submod_{partition}", wanted[0], ["getitem"]
        return f"submod_{partition}", hop_name, wanted

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
        partitions = number_partitions(items, _structured, splits_after=True)
        if not self.split_seen:  # the graph level torch splits; not a region inlined into it
            self.split_seen = True
            if handler is not None and any(map(_structured, items)):
                self._split(items, partitions, handler)
        for item in items:
            if item in self.fetch_first:
                self._fetch_first(self.fetch_first.pop(item))
            if isinstance(item, (Region, Segment)):
                handler(self, item, partitions[item])
            elif item.op != "get_attr" and item not in self.env:  # placeholders: by `_split`
                self.copy(item)

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

    def attr_name(self, item, wanted: str) -> str:
        """The attribute an outlined item's submodule is stored under."""
        if self.level_names is not None and item in self.level_names.attrs:
            return self.level_names.attrs[item]
        return self.fresh_attr_name(wanted)

    def _split(self, items: list[Item], partitions: dict, handler) -> None:
        """Names as torch's split graphs of this level hold them before its HOP passes run: the
        nodes built so far (placeholders), then each partition's `submod_N` and split getitems.
        The top level's placeholders are items: they are named first, as they stand."""
        placeholders = [item for item in items
                        if not isinstance(item, (Region, Segment)) and item.op == "placeholder"]
        for placeholder in placeholders:
            self.copy(placeholder)
        built = [node.name for node in self.graph.nodes]
        if _twice_split(items, handler.plan):
            self.level_names = two_split_names(
                items, built, handler.plan, self.source_name,
                self._fetches_module if self.has_fetches else None)
        if self.level_names is not None:
            self.fetch_first = self.level_names.fetch_first
        else:
            self.torch_names = SplitNames(built, partitions)
            if self.has_fetches:  # else nothing to move: no pass over the nodes' arguments
                self.fetch_first = one_split_fetches(items, partitions, handler.plan,
                                                     self._fetches_module)

    def _fetches_module(self, node: torch.fx.Node) -> bool:
        return isinstance(self._old_attr(node.target), torch.nn.Module)

    def _fetch_first(self, fetches) -> None:
        """Fetches torch makes at the top of a partition it copies back, made there."""
        for kind, fetched in fetches:
            if kind == "segment":
                name = self.level_names.attrs[fetched]
                self.prefetched[fetched] = self.graph.create_node(
                    "get_attr", name, name=self.level_names.made[fetched][0])
            elif fetched not in self.env:
                name = self.value(fetched).target
            else:
                continue
            self.inlined_modules.append(name)

    def to_module(self, template: torch.fx.GraphModule | None = None) -> torch.fx.GraphModule:
        """The new graph as a module, taking `template`'s meta and training flag if given.

        It is torch's `_LazyGraphModule`, as Dynamo and Inductor make: its Python code compiles
        on first use. Compiling costs more than rewriting; an exported program or an Inductor
        compile never needs this module's code; and `GraphModule` recompiles every child
        GraphModule each time an enclosing one compiles, so eager submodules would compile once
        per level of nesting.
        """
        module = _LazyGraphModule(self.attrs, self.graph)
        if self.inlined_modules:  # submodules in the order torch registers them
            first = self.partition_modules + self.inlined_modules
            order = {name: index for index, name in enumerate(first)}
            module._modules = dict(sorted(module._modules.items(),
                                          key=lambda item: order.get(item[0], len(order))))
        if template is not None:
            module.meta = copy.copy(template.meta)
            module.train(template.training)
        return module


def _structured(item: Item) -> bool:
    return isinstance(item, (Region, Segment))


def _twice_split(items: list[Item], plan) -> bool:
    """Whether torch splits this level twice: set-grad segments at it, autocast regions in it
    (in place of an inlined segment too)."""
    def regions(level_items):
        for item in level_items:
            if isinstance(item, Region):
                return True
            if isinstance(item, Segment) and plan(item).kind == INLINE and regions(item.items):
                return True
        return False

    return any(isinstance(item, Segment) for item in items) and regions(items)
