"""A module tree: fetching a graph's attributes, and the graphs a graph holds.

Input: a GraphModule. Output: the objects its `get_attr` and `call_module` targets name, and the
distinct GraphModules among them (a `torch.cond` branch, an outlined region's submodule), in
the order the graph first refers to them. Every stage that walks a module tree walks it here.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.fx

MISSING = object()


def fetch_attr(module: torch.nn.Module, target: str, default=MISSING) -> object:
    """The object a dotted `get_attr`/`call_module` target names; `default` if it has none
    (AttributeError when no default is given)."""
    value: object = module
    for part in target.split("."):
        value = getattr(value, part, MISSING)
        if value is MISSING:
            if default is MISSING:
                raise AttributeError(f"the module has no attribute `{target}`")
            return default
    return value


def held_graphs(module: torch.fx.GraphModule) -> Iterator[tuple[str, torch.fx.GraphModule]]:
    """(target, GraphModule) for each distinct GraphModule the graph fetches (`get_attr`) or
    calls (`call_module`), first reference first."""
    seen: set[int] = set()
    for node in module.graph.nodes:
        if node.op in ("get_attr", "call_module"):
            value = fetch_attr(module, node.target, None)
            if isinstance(value, torch.fx.GraphModule) and id(value) not in seen:
                seen.add(id(value))
                yield node.target, value
