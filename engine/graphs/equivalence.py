"""Alpha-equivalence of GraphModules: the oracle's notion of "the same graph".

Input: two GraphModules (and optionally their export signatures). Output: None when they are
identical up to a consistent renaming of nodes and of submodule attributes, nested submodules
included; else a sentence naming the first difference. Nodes are compared in order, by op,
target, arguments (through the node correspondence built so far), and the type of
`meta["val"]`. `get_attr` nodes are compared where they are used, by what they fetch, not where
they stand: where a pass puts them is not part of a graph's meaning.
"""

from __future__ import annotations

import torch
import torch.fx

from .dump import format_type, format_value
from .modules import fetch_attr


class _Mismatch(Exception):
    pass


class _Comparison:
    def __init__(self):
        self.nodes: dict[torch.fx.Node, torch.fx.Node] = {}
        self.modules: set[tuple[int, int]] = set()

    def modules_equal(self, a: torch.fx.GraphModule, b: torch.fx.GraphModule, path: str) -> None:
        if (id(a), id(b)) in self.modules:
            return
        self.modules.add((id(a), id(b)))
        left = [node for node in a.graph.nodes if node.op != "get_attr"]
        right = [node for node in b.graph.nodes if node.op != "get_attr"]
        for x, y in zip(left, right):
            self.node_equal(a, b, x, y, path)
        if len(left) != len(right):
            extra = (left if len(left) > len(right) else right)[min(len(left), len(right))]
            raise _Mismatch(f"in `{path}`: one graph has {len(left)} nodes (without get_attr), "
                            f"the other {len(right)}; the first unmatched is `{extra.format_node()}`")

    def node_equal(self, a, b, x: torch.fx.Node, y: torch.fx.Node, path: str) -> None:
        where = f"in `{path}`: `{x.name}` vs `{y.name}`"
        if x.op != y.op:
            raise _Mismatch(f"{where}: op {x.op} vs {y.op}")
        if x.op == "call_module":
            self.value_equal(a, b, fetch_attr(a, x.target), fetch_attr(b, y.target),
                             f"{path}.{x.target}")
        elif x.op != "placeholder" and x.target != y.target:
            raise _Mismatch(f"{where}: target {format_value(x.target)} vs {format_value(y.target)}")
        self.args_equal(a, b, (x.args, x.kwargs), (y.args, y.kwargs), where, path)
        types = format_type(x.meta.get("val")), format_type(y.meta.get("val"))
        if ("val" in x.meta) != ("val" in y.meta) or types[0] != types[1]:
            raise _Mismatch(f"{where}: meta['val'] {types[0]} vs {types[1]}")
        self.nodes[x] = y

    def args_equal(self, a, b, u, v, where: str, path: str) -> None:
        if isinstance(u, torch.fx.Node) and isinstance(v, torch.fx.Node):
            if u.op == "get_attr" and v.op == "get_attr":
                self.value_equal(a, b, fetch_attr(a, u.target), fetch_attr(b, v.target),
                                 f"{path}.{u.target}")
            elif self.nodes.get(u) is not v:
                raise _Mismatch(f"{where}: argument `{u.name}` vs `{v.name}`")
            return
        if type(u) is not type(v):
            raise _Mismatch(f"{where}: argument {format_value(u)} vs {format_value(v)}")
        if isinstance(u, (tuple, list)):
            if len(u) != len(v):
                raise _Mismatch(f"{where}: {format_value(u)} vs {format_value(v)}")
            for p, q in zip(u, v):
                self.args_equal(a, b, p, q, where, path)
        elif isinstance(u, dict):
            if list(u) != list(v):
                raise _Mismatch(f"{where}: keywords {list(u)} vs {list(v)}")
            for key in u:
                self.args_equal(a, b, u[key], v[key], where, path)
        elif u != v:
            raise _Mismatch(f"{where}: argument {format_value(u)} vs {format_value(v)}")

    def value_equal(self, a, b, u, v, path: str) -> None:
        """What two `get_attr`s or `call_module`s fetch: graphs compared, tensors by value."""
        if isinstance(u, torch.fx.GraphModule) and isinstance(v, torch.fx.GraphModule):
            self.modules_equal(u, v, path)
        elif isinstance(u, torch.Tensor) and isinstance(v, torch.Tensor):
            if u.dtype != v.dtype or u.shape != v.shape or not torch.equal(u, v):
                raise _Mismatch(f"`{path}`: tensors differ")
        elif type(u) is not type(v) or (not isinstance(u, torch.nn.Module) and u != v):
            raise _Mismatch(f"`{path}`: {type(u).__name__} vs {type(v).__name__}")


def alpha_difference(a: torch.fx.GraphModule, b: torch.fx.GraphModule,
                     signature_a=None, signature_b=None) -> str | None:
    """None if alpha-equivalent (signatures too, when given), else the first difference."""
    comparison = _Comparison()
    try:
        comparison.modules_equal(a, b, "forward")
        if signature_a is not None or signature_b is not None:
            _signatures_equal(comparison, a, b, signature_a, signature_b)
    except _Mismatch as mismatch:
        return str(mismatch)
    return None


def _signatures_equal(comparison: _Comparison, a, b, signature_a, signature_b) -> None:
    names_a = {node.name: node for node in a.graph.nodes}
    names_b = {node.name: node for node in b.graph.nodes}
    for side in ("input_specs", "output_specs"):
        specs_a, specs_b = getattr(signature_a, side), getattr(signature_b, side)
        if len(specs_a) != len(specs_b):
            raise _Mismatch(f"signature: {len(specs_a)} vs {len(specs_b)} {side}")
        for x, y in zip(specs_a, specs_b):
            same_kind = (x.kind, x.target, getattr(x, "persistent", None)) == (
                y.kind, y.target, getattr(y, "persistent", None))
            name_x, name_y = getattr(x.arg, "name", None), getattr(y.arg, "name", None)
            if name_x is None or name_y is None:
                same_arg = x.arg == y.arg
            else:
                node_x, node_y = names_a.get(name_x), names_b.get(name_y)
                same_arg = node_x is not None and comparison.nodes.get(node_x) is node_y
            if not (same_kind and same_arg):
                raise _Mismatch(f"signature {side}: {x} vs {y}")


def dag_difference(a: torch.fx.GraphModule, b: torch.fx.GraphModule) -> str | None:
    """None if the two graphs compute the same DAG, whatever order their nodes stand in.

    Nodes are paired from the outputs back to the placeholders (which pair by position) by op,
    target, arguments, and value type where both record one (torch's subgraph rewriter records
    none for the nodes it makes); the nodes no output reaches (asserts, say) must agree as a
    multiset of (op, target). For rewrites that place new nodes differently, as torch's
    matchers do. Nested graphs are not looked into.
    """
    pairs: dict[torch.fx.Node, torch.fx.Node] = {}
    placeholders = zip((n for n in a.graph.nodes if n.op == "placeholder"),
                       (n for n in b.graph.nodes if n.op == "placeholder"))
    pairs.update(placeholders)
    work = [(a.graph.output_node(), b.graph.output_node())]
    while work:
        x, y = work.pop()
        if x in pairs:
            if pairs[x] is not y:
                return f"`{x.name}` pairs with both `{pairs[x].name}` and `{y.name}`"
            continue
        if (x.op, x.target) != (y.op, y.target):
            return f"`{x.format_node()}` vs `{y.format_node()}`"
        if "val" in x.meta and "val" in y.meta and \
                format_type(x.meta["val"]) != format_type(y.meta["val"]):
            return f"`{x.name}` vs `{y.name}`: meta['val'] differs"
        pairs[x] = y
        left, right = [], []
        shape_x = torch.fx.map_arg((x.args, x.kwargs), lambda n: left.append(n) or None)
        shape_y = torch.fx.map_arg((y.args, y.kwargs), lambda n: right.append(n) or None)
        if shape_x != shape_y or len(left) != len(right):
            return f"`{x.format_node()}` vs `{y.format_node()}`: arguments differ"
        work.extend(zip(left, right))
    rest_a = sorted(str((n.op, n.target)) for n in a.graph.nodes if n not in pairs)
    rest_b = sorted(str((n.op, n.target)) for n in b.graph.nodes if n not in pairs.values())
    if rest_a != rest_b:
        return f"nodes no output reaches differ: {rest_a[:3]} vs {rest_b[:3]}"
    return None
