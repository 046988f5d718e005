"""Where an FX node's value lives: `meta["val"]` in export graphs, `meta["example_value"]` in
Dynamo's. Every stage that reads or records a value asks here; and whether one value can stand
in for another (`value_difference`)."""

from __future__ import annotations

import torch
import torch.fx
from torch.fx.experimental.symbolic_shapes import statically_known_true

MISSING = object()
_NUMBERS = (bool, int, float, complex, torch.SymInt, torch.SymFloat, torch.SymBool)  # what `recorded` gives for a node with no value, unless told otherwise


def recorded(node: torch.fx.Node, default=MISSING):
    """The node's recorded value (a fake tensor, a SymInt, a tuple of them...)."""
    meta = node.meta
    if "val" in meta:
        return meta["val"]
    return meta.get("example_value", default)


def nodes_in(value) -> list[torch.fx.Node]:
    """The nodes inside an argument value (a node, or lists, tuples and dicts of them), in
    order, with repeats: `nodes_in((node.args, node.kwargs))` are the values a node uses."""
    found: list[torch.fx.Node] = []
    torch.fx.map_arg(value, found.append)
    return found


def key_for(nodes) -> str:
    """The meta key a new node computed from `nodes` records its value under."""
    dynamo = any("val" not in n.meta and "example_value" in n.meta for n in nodes)
    return "example_value" if dynamo else "val"


def value_difference(before, after) -> str | None:
    """Why `after` cannot stand in for `before` (a clause: "which is not a tensor", "of another
    dtype"...), or None. A tensor must be replaced by a tensor of the same dtype, shape and
    device; a number (an int, a float, a SymInt) by anything but a tensor."""
    if isinstance(before, _NUMBERS):
        return "which is a tensor" if isinstance(after, torch.Tensor) else None
    if not isinstance(before, torch.Tensor):
        return None
    if not isinstance(after, torch.Tensor):
        return "which is not a tensor"
    for what, same in (("dtype", before.dtype == after.dtype),
                       ("shape", _same_sizes(before.shape, after.shape)),
                       ("device", before.device == after.device)):
        if not same:
            return f"of another {what}"
    return None


def _same_sizes(a, b) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, int) and isinstance(y, int):
            if x != y:
                return False
        elif str(x) != str(y) and not statically_known_true(x == y):
            return False
    return True
