"""The names torch's HOP passes give, simulated for one graph level, so that ours are the same.

Input: the items of one graph level (plain nodes, regions, segments), the names of its
placeholders and what is done with each region or segment (outlined with which outputs, or
inlined). Output: the name of every node the builder makes at that level, and at a level torch
splits twice, where the fetches of submodules stand and what those submodules are called.

torch's passes split a graph (`split_module`) into partitions at markers: the split graph holds
a `call_module submod_N` for each partition and a `getitem` for each output of a partition with
several. Then each call, in order, becomes a HOP (a fetch `get_attr`, the HOP node, getitems)
or the partition's nodes copied back. Every node made asks the split graph's FX namespace for a
name, which that namespace gives unless taken; FX never frees a name, so the `call_module` and
`getitem` names stay taken after those nodes are gone (a copied `getitem` becomes `getitem_7`).

- One split (`SplitNames`): a level holding set-grad segments or autocast regions, not both.
  The builder asks it for each node's name as it makes the node, in torch's order.
- Two splits (`two_split_names`): a level holding both. torch's set-grad pass splits it at the
  set-grad markers (autocast regions are plain nodes to it), and its autocast pass splits the
  result at the autocast markers: a node's name is what the second split graph gives the name
  the first gave it. `split_module` moves the set-grad submodules' fetches to the start of the
  autocast partition using them, and inlining that partition renames their attributes to the
  first `submod_N` the module does not have. All of it is worked out before anything is built.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from ..matching.regions import Item, Region, Segment

# split_module records no use by these: a marker reading another (an exit its enter) makes no
# partition output.
GLOBAL_STATE = (torch.amp._enter_autocast, torch.amp._exit_autocast, torch._C._set_grad_enabled)

# What is done with a region or segment, as far as names go.
OUTLINE = "outline"
INLINE = "inline"


@dataclass(frozen=True)
class Plan:
    """A region's or segment's fate: outlined (its outputs, through which HOP) or inlined;
    anything else (kept, erased) is not simulated."""

    kind: str
    outputs: tuple = ()
    hop: object = None

    @property
    def hop_name(self) -> str:
        """What FX calls a node of the HOP: `wrap_with_autocast`."""
        return torch.fx.graph._snake_case(self.hop.__name__)


class SplitNames:
    """The FX namespace of one split graph: the names already taken (placeholders), each
    partition's `submod_N`, and the `getitem`s split_module made for each partition with
    several outputs, which the HOP pass renames to the outputs' names."""

    def __init__(self, built: Iterable[str], partitions: dict):
        self.namespace = torch.fx.graph._Namespace()
        for name in built:
            self.namespace.create_name(name, None)
        outputs = partition_outputs(partitions)
        self.numbers = sorted(set(partitions.values()))
        self.split_getitems: dict[int, list[str]] = {}
        for number in self.numbers:
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

    def hop_names(self, partition: int, outputs: list[str], hop_name: str) -> tuple:
        """A HOP's fetch, node and getitems, as torch names them: the fetch after the partition's
        submodule, the node after its only output (else the op), the getitems after the outputs
        (one output: a new `getitem`)."""
        fetch = self.take(f"submod_{partition}")
        node = self.take(outputs[0] if len(outputs) == 1 else hop_name)
        if len(outputs) == 1:
            return fetch, node, [self.take("getitem")]
        return fetch, node, [self.output_getitem(partition, index, name)
                             for index, name in enumerate(outputs)]


def number_partitions(items: Iterable[Item], splits_at: Callable[[Item], bool],
                      splits_after: bool) -> dict:
    """The partition torch's `sequential_split` puts each item in (placeholders, the output and
    `get_attr`s in none): a new one at each item `splits_at`, and, with `splits_after`, at the
    first item after one (autocast's split ends a partition at the exit marker)."""
    partitions, number, pending = {}, 0, False
    for item in items:
        starts = splits_at(item)
        if starts or pending:
            number += 1
            pending = False
        if isinstance(item, (Region, Segment)) or item.op not in ("placeholder", "output",
                                                                  "get_attr"):
            partitions[item] = number
        pending = pending or (starts and splits_after)
    return partitions


def partition_outputs(partitions: dict) -> dict[int, int]:
    """How many outputs split_module gives each partition: values made there and used in
    another partition or returned."""
    owner = {}
    for item, number in partitions.items():
        for node in (item.nodes() if isinstance(item, (Region, Segment)) else (item,)):
            owner[node] = number
    outputs: dict[int, int] = {}
    for node, number in owner.items():
        if any(owner.get(user, -1) != number for user in node.users
               if user.target not in GLOBAL_STATE):
            outputs[number] = outputs.get(number, 0) + 1
    return outputs


def fetch_order(nodes: Iterable[torch.fx.Node],
                is_module: Callable | None) -> list[torch.fx.Node]:
    """The submodule fetches (`get_attr`s of modules: `cond` branches) that nodes use, in the
    order split_module makes them at the top of their partition: by first use. `is_module`:
    None where the graph has no `get_attr`."""
    used: dict[torch.fx.Node, None] = {}
    if is_module is None:  # the graph fetches nothing
        return []

    def visit(arg: torch.fx.Node) -> torch.fx.Node:
        if arg.op == "get_attr" and is_module(arg):
            used.setdefault(arg, None)
        return arg

    for node in nodes:
        torch.fx.map_arg((node.args, node.kwargs), visit)
    return list(used)


def one_split_fetches(items: list[Item], partitions: dict, plan: Callable,
                      is_module: Callable) -> dict:
    """Where torch puts the submodule fetches of a level it splits once: at the top of each
    partition it copies back, first used first. Item -> [("attr", get_attr node)] to make
    just before it."""
    fetches = {}
    for _, group in _groups(items, partitions):
        if isinstance(group[0], Region) or (isinstance(group[0], Segment)
                                            and plan(group[0]).kind != INLINE):
            continue
        nodes = [node for item in group for node in
                 (_plain(item.items) if isinstance(item, Segment) else (item,))]
        order = fetch_order(nodes, is_module)
        if nodes and order:
            fetches[nodes[0]] = [("attr", node) for node in order]
    return fetches


def _plain(items: list[Item]) -> list[torch.fx.Node]:
    return [item for item in items if not isinstance(item, (Region, Segment))
            and item.op not in ("placeholder", "output", "get_attr")]


# --- two splits ------------------------------------------------------------------------------
@dataclass
class LevelNames:
    """A twice-split level's names, worked out before it is built."""

    copies: dict = field(default_factory=dict)  # old node -> the name of its copy
    made: dict = field(default_factory=dict)  # outlined item -> (fetch, HOP node, [getitems])
    attrs: dict = field(default_factory=dict)  # outlined item -> its submodule's attribute
    # item -> what torch fetches just before it: ("segment", outlined segment) or ("attr", a
    # module's get_attr node)
    fetch_first: dict = field(default_factory=dict)
    # old node -> its name after the set-grad pass: what an autocast submodule calls it
    body_names: dict = field(default_factory=dict)


class _Unsupported(Exception):
    """A level the two-split simulation does not cover (a cut bracket, a kept segment, a
    `get_attr` at the level): the builder names it as one split instead."""


def two_split_names(items: list[Item], placeholders: list[str], plan: Callable[[Item], Plan],
                    name_of: Callable[[torch.fx.Node], str],
                    is_module: Callable[[torch.fx.Node], bool]) -> LevelNames | None:
    """The names of a level that holds set-grad segments and autocast regions, or None where
    that is not simulated. `name_of`: a node's name in the graph torch splits; `is_module`:
    whether a `get_attr` fetches a module."""
    try:
        after_set_grad = _set_grad_pass(items, placeholders, plan, name_of, is_module)
        return _autocast_pass(items, placeholders, plan, after_set_grad, is_module)
    except _Unsupported:
        return None


@dataclass
class _AfterSetGrad:
    partitions: dict  # top-level item -> its partition in the set-grad split
    names: dict  # old node -> its name after the set-grad pass (outputs: their getitem's)
    made: dict  # outlined segment -> (fetch, HOP node, [getitems]) after the set-grad pass


def _set_grad_pass(items, placeholders, plan, name_of, is_module) -> _AfterSetGrad:
    partitions = number_partitions(items, lambda item: isinstance(item, Segment), False)
    split = SplitNames(placeholders, partitions)
    result = _AfterSetGrad(partitions, {}, {})

    def fetch(level_items):  # the modules a partition copied back uses, fetched at its top
        nodes = [node for item in level_items if not isinstance(item, Segment)
                 for node in ((item.opener, *item.nodes()) if isinstance(item, Region)
                              else (item,))]
        for node in fetch_order(nodes, is_module):
            split.take(_attr_candidate(node))

    def walk(level_items):
        for item in level_items:
            if isinstance(item, Segment):
                if item.continued:
                    raise _Unsupported
                fate = plan(item)
                if fate.kind == INLINE:
                    fetch(item.items)
                    walk(item.items)  # the marker is erased, the rest copied back
                elif fate.kind == OUTLINE:
                    result.made[item] = names = split.hop_names(
                        partitions[item], [name_of(value) for value in fate.outputs],
                        fate.hop_name)
                    result.names.update(zip(fate.outputs, names[2]))  # read through these now
                else:
                    raise _Unsupported
            elif isinstance(item, Region):
                # A piece of a cut bracket: split_module's re-entering markers take names of
                # their own kind only, which no node keeps (the autocast pass drops markers).
                ends = ((item.opener,) if item.first else (), (item.closer,) if item.last else ())
                for node in (*ends[0], *item.nodes(), *ends[1]):
                    _copy_name(result.names, node, split, name_of)
            elif item.op not in ("placeholder", "get_attr"):  # fetches: at their partition's top
                _copy_name(result.names, item, split, name_of)

    first = [item for item in items if not isinstance(item, Segment)]  # partition 0
    fetch(first)
    walk(items)
    return result


def _copy_name(names: dict, node: torch.fx.Node, split: SplitNames, name_of) -> None:
    if node.op == "output":
        return
    if node.op in ("get_attr", "call_module"):
        raise _Unsupported  # a fetch inside a region, a module call: not simulated
    names[node] = split.take(name_of(node))


def _attr_candidate(node: torch.fx.Node) -> str:
    """What a fetch split_module makes asks to be called: its attribute's name."""
    return torch.fx.graph._snake_case(node.target)


def _autocast_pass(items, placeholders, plan, before: _AfterSetGrad, is_module) -> LevelNames:
    walk = list(_walk(items, plan))
    partitions = number_partitions(walk, lambda item: isinstance(item, Region), True)
    split = SplitNames(placeholders, partitions)
    names = LevelNames(body_names=before.names)
    attributes = _Submodules(split.numbers)
    for number, group in _groups(walk, partitions):
        if isinstance(group[0], Region):
            region = group[0]
            fate = plan(region)
            if fate.kind != OUTLINE:
                raise _Unsupported
            names.made[region] = split.hop_names(
                number, [before.names[value] for value in fate.outputs], fate.hop_name)
            names.attrs[region] = f"submod_{number}"
            continue
        fetches = _fetches(group, is_module)
        names.fetch_first[group[0]] = fetches
        fetched_as = {}  # segment -> its fetch's name
        for kind, fetched in fetches:  # at the top of the partition, named after the attr
            if kind == "attr":
                names.copies[fetched] = split.take(_attr_candidate(fetched))
                continue
            first = before.partitions[fetched]  # its attribute after the set-grad pass
            fetched_as[fetched] = split.take(f"submod_{first}")
            names.attrs[fetched] = f"submod_{attributes.place(first)}"
        for item in group:
            if isinstance(item, Segment):
                _, node, getitems = before.made[item]
                names.made[item] = (fetched_as[item], split.take(node),
                                    [split.take(getitem) for getitem in getitems])
            else:
                names.copies[item] = split.take(before.names[item])
        attributes.free(number)
    return names


def _fetches(group: list[Item], is_module) -> list[tuple[str, object]]:
    """What a partition of the set-grad pass's graph fetches at its top, first used first: the
    submodule of each outlined segment (its HOP uses it) and the modules its nodes use."""
    fetches: dict = {}
    for item in group:
        if isinstance(item, Segment):
            fetches.setdefault(("segment", item), None)
        else:
            for node in fetch_order((item,), is_module):
                fetches.setdefault(("attr", node), None)
    return list(fetches)


def _walk(items, plan) -> Iterable[Item]:
    """The level as the autocast pass sees it: inlined segments' items in their place."""
    for item in items:
        if isinstance(item, Segment) and plan(item).kind == INLINE:
            yield from _walk(item.items, plan)
        else:
            yield item


def _groups(walk, partitions):
    """(number, items) for each partition, in order."""
    groups: list[tuple[int, list]] = []
    for item in walk:
        number = partitions.get(item)
        if number is None:
            continue
        if not groups or groups[-1][0] != number:
            groups.append((number, []))
        groups[-1][1].append(item)
    return groups


class _Submodules:
    """The split module's `submod_N` attributes, by number, as the autocast pass inlines its
    partitions: `node_inline_` gives a moved submodule whose name is taken the first free
    `submod_N` from 1, and deletes every unused submodule after it inlines, so an inlined
    partition's number is free again after its turn. A heap of freed numbers and a scan
    upwards find the first free one in logarithmic time (a scan from 1 each time is quadratic:
    8,000 links took 9.6 s, 3.6x the floor)."""

    def __init__(self, numbers: Iterable[int]):
        self.alive = set(numbers)
        self.freed: list[int] = []  # a heap; may hold numbers taken again since
        self.upward = 1  # every free number below it is in `freed`

    def place(self, number: int) -> int:
        """The number a submodule called `submod_{number}` is registered under."""
        if number in self.alive:
            number = self._first_free()
        self.alive.add(number)
        return number

    def free(self, number: int) -> None:
        self.alive.discard(number)
        if number >= 1:  # the search starts at `submod_1`
            heapq.heappush(self.freed, number)

    def _first_free(self) -> int:
        while self.freed and self.freed[0] in self.alive:
            heapq.heappop(self.freed)
        while self.upward in self.alive:
            self.upward += 1
        if self.freed and self.freed[0] < self.upward:
            return heapq.heappop(self.freed)
        return self.upward
