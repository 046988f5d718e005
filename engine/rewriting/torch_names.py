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


# --- two splits ------------------------------------------------------------------------------
@dataclass
class LevelNames:
    """A twice-split level's names, worked out before it is built."""

    copies: dict = field(default_factory=dict)  # old node -> the name of its copy
    made: dict = field(default_factory=dict)  # (item, "fetch"|"hop") or (item, "getitem", i)
    attrs: dict = field(default_factory=dict)  # outlined item -> its submodule's attribute
    fetch_first: dict = field(default_factory=dict)  # item -> segments fetched just before it
    attr_order: list = field(default_factory=list)  # attribute names as torch registers them
    # old node -> its name after the set-grad pass: what an autocast submodule calls it
    body_names: dict = field(default_factory=dict)


class _Unsupported(Exception):
    """A level the two-split simulation does not cover (a cut bracket, a kept segment, a
    `get_attr` at the level): the builder names it as one split instead."""


def two_split_names(items: list[Item], placeholders: list[str], plan: Callable[[Item], Plan],
                    name_of: Callable[[torch.fx.Node], str]) -> LevelNames | None:
    """The names of a level that holds set-grad segments and autocast regions, or None where
    that is not simulated. `name_of`: a node's name in the graph torch splits."""
    try:
        after_set_grad = _set_grad_pass(items, placeholders, plan, name_of)
        return _autocast_pass(items, placeholders, plan, after_set_grad)
    except _Unsupported:
        return None


@dataclass
class _AfterSetGrad:
    partitions: dict  # top-level item -> its partition in the set-grad split
    names: dict  # old node -> its name after the set-grad pass (outputs: their getitem's)
    made: dict  # (segment, role[, index]) -> name after the set-grad pass


def _set_grad_pass(items, placeholders, plan, name_of) -> _AfterSetGrad:
    partitions = number_partitions(items, lambda item: isinstance(item, Segment), False)
    split = SplitNames(placeholders, partitions)
    result = _AfterSetGrad(partitions, {}, {})

    def walk(level_items):
        for item in level_items:
            if isinstance(item, Segment):
                if item.continued:
                    raise _Unsupported
                fate = plan(item)
                if fate.kind == INLINE:
                    walk(item.items)  # the marker is erased, the rest copied back
                elif fate.kind == OUTLINE:
                    _made(result, item, fate, split.hop_names(
                        partitions[item], [name_of(value) for value in fate.outputs],
                        fate.hop_name))
                else:
                    raise _Unsupported
            elif isinstance(item, Region):
                # A piece of a cut bracket: split_module's re-entering markers take names of
                # their own kind only, which no node keeps (the autocast pass drops markers).
                ends = ((item.opener,) if item.first else (), (item.closer,) if item.last else ())
                for node in (*ends[0], *item.nodes(), *ends[1]):
                    _copy_name(result.names, node, split, name_of)
            elif item.op != "placeholder":
                _copy_name(result.names, item, split, name_of)

    walk(items)
    return result


def _made(result: _AfterSetGrad, segment, fate: Plan, names: tuple) -> None:
    fetch, node, getitems = names
    result.made[(segment, "fetch")] = fetch
    result.made[(segment, "hop")] = node
    for index, (value, name) in enumerate(zip(fate.outputs, getitems)):
        result.made[(segment, "getitem", index)] = name
        result.names[value] = name  # the value is read through this getitem from now on


def _copy_name(names: dict, node: torch.fx.Node, split: SplitNames, name_of) -> None:
    if node.op == "output":
        return
    if node.op in ("get_attr", "call_module"):
        raise _Unsupported  # their attributes move and are renamed too
    names[node] = split.take(name_of(node))


def _autocast_pass(items, placeholders, plan, before: _AfterSetGrad) -> LevelNames:
    walk = list(_walk(items, plan))
    partitions = number_partitions(walk, lambda item: isinstance(item, Region), True)
    split = SplitNames(placeholders, partitions)
    names = LevelNames(body_names=before.names)
    attributes = _Submodules(split.numbers)
    moved = []  # set-grad submodules, renamed as their partitions are inlined, in order
    for number, group in _groups(walk, partitions):
        if isinstance(group[0], Region):
            region = group[0]
            fate = plan(region)
            if fate.kind != OUTLINE:
                raise _Unsupported
            _record(names, region, split.hop_names(
                number, [before.names.get(value, value.name) for value in fate.outputs],
                fate.hop_name))
            names.attrs[region] = f"submod_{number}"
            names.attr_order.append(f"submod_{number}")
            continue
        segments = [item for item in group if isinstance(item, Segment)]
        names.fetch_first[group[0]] = segments
        for segment in segments:  # fetched at the top of the partition, named after the attr
            first = before.partitions[segment]  # its attribute after the set-grad pass
            names.made[(segment, "fetch")] = split.take(f"submod_{first}")
            attr = f"submod_{attributes.place(first)}"
            names.attrs[segment] = attr
            moved.append(attr)
        for item in group:
            if isinstance(item, Segment):
                names.made[(item, "hop")] = split.take(before.made[(item, "hop")])
                for index in range(len(plan(item).outputs)):
                    key = (item, "getitem", index)
                    names.made[key] = split.take(before.made[key])
            else:
                names.copies[item] = split.take(before.names[item])
        attributes.free(number)
    names.attr_order += moved
    return names


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


def _record(names: LevelNames, item, made: tuple) -> None:
    fetch, node, getitems = made
    names.made[(item, "fetch")] = fetch
    names.made[(item, "hop")] = node
    for index, name in enumerate(getitems):
        names.made[(item, "getitem", index)] = name


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
