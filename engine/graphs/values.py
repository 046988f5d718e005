"""Where an FX node's value lives: `meta["val"]` in export graphs, `meta["example_value"]` in
Dynamo's. Every stage that reads or records a value asks here."""

from __future__ import annotations

import torch.fx

MISSING = object()  # what `recorded` gives for a node with no value, unless told otherwise


def recorded(node: torch.fx.Node, default=MISSING):
    """The node's recorded value (a fake tensor, a SymInt, a tuple of them...)."""
    meta = node.meta
    if "val" in meta:
        return meta["val"]
    return meta.get("example_value", default)


def key_for(nodes) -> str:
    """The meta key a new node computed from `nodes` records its value under."""
    dynamo = any("val" not in n.meta and "example_value" in n.meta for n in nodes)
    return "example_value" if dynamo else "val"
