"""DAG matches -> the rewritten graph.

Input: one module and the matches found in its graph. Output: a new module (the input is not
touched) holding a copy of every node, except each match's removed interior nodes and erased
roots, and except each replaced root, in whose place its template's nodes are built.

Every new node gets its value's type (`meta["val"]`, or Dynamo's `meta["example_value"]`): the
node a root is replaced by takes the root's (it computes the same value); a template node that
repeats a matched node (same target, same arguments) takes that node's; any other is computed
with fake tensors, running its op on its inputs' fake values. An op packet in a template is
resolved to the overload the dispatcher would pick for those values, as torch.export needs.
Within one match, equal template calls are built once.
"""

from __future__ import annotations

import torch
import torch.fx
from torch._ops import OpOverloadPacket
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils import _pytree as pytree

from ..language import checked
from ..matching.dag import DagMatch
from .emit import GraphBuilder
from ..graphs.errors import GraphError, Problem
from ..graphs.values import MISSING, key_for, recorded

# What a replacement node takes over from the node whose value it computes.
_CARRIED_META = ("val", "example_value", "tensor_meta", "stack_trace", "nn_module_stack")


def rewrite_graph(module: torch.fx.GraphModule, matches: list[DagMatch],
                  replaced: dict[int, torch.nn.Module], path: str) -> torch.fx.GraphModule:
    builder = GraphBuilder(module, replaced)
    builder.graph._codegen = module.graph._codegen
    gone: set[torch.fx.Node] = set()
    roots: dict[torch.fx.Node, tuple[DagMatch, int]] = {}
    for match in matches:
        gone |= match.removed
        if isinstance(match.rule.action, checked.Erase):
            gone.update(match.roots)
        roots.update({root: (match, index) for index, root in enumerate(match.roots)})
    builds: dict[int, _Build] = {}
    overloads: dict[tuple, object] = {}  # shared by the whole graph: resolving is not cheap
    for node in module.graph.nodes:
        if node in gone or node.op == "get_attr":
            continue
        entry = roots.get(node)
        template = None
        if entry is not None:
            match, index = entry
            template = match.rule.action.template_for(index)
        if template is None:
            builder.copy(node)
            continue
        build = builds.get(id(match))
        if build is None:
            build = builds[id(match)] = _Build(builder, match, path, overloads)
        builder.env[node] = build.value(template, root=node)
    return builder.to_module(template=module)


def _root_name(root: torch.fx.Node | None, match: DagMatch) -> str:
    return (root or match.roots[0]).name


def _frozen(value):
    """A hashable stand-in for built arguments (nodes hash by identity)."""
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_frozen(v) for v in value))
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in value.items())
    try:
        hash(value)
    except TypeError:
        return (type(value), repr(value))
    return value


def _signature(value):
    """What picks an overload: for each argument, tensor or its Python type."""
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_signature(v) for v in value))
    if isinstance(value, dict):
        return tuple((k, _signature(v)) for k, v in value.items())
    return torch.Tensor if isinstance(value, torch.Tensor) else type(value)


class _Build:
    """The nodes one match's templates make, built once each."""

    def __init__(self, builder: GraphBuilder, match: DagMatch, path: str, overloads: dict):
        self.builder = builder
        self.match = match
        self.path = path
        self.overloads = overloads
        self.made: dict[tuple, torch.fx.Node] = {}
        # A matched node's arguments as built here: templates that repeat it reuse its meta.
        self.repeats = {}
        for node in match.removed | match.kept:
            try:
                args = torch.fx.map_arg((node.args, node.kwargs), builder.value)
            except KeyError:
                continue  # an argument among the removed nodes: no template can repeat it
            self.repeats[(node.op, node.target, _frozen(args))] = node

    def value(self, template: checked.TemplateArg, root: torch.fx.Node | None = None):
        if isinstance(template, checked.Const):
            return template.value
        if isinstance(template, checked.Value):
            bound = self.match.bindings[template.name]
            try:
                return torch.fx.map_arg(bound, self.builder.value)
            except KeyError:  # a node the graph has only after the root being replaced
                raise GraphError([Problem(
                    f"rule `{self.match.rule.name}` replaces `{_root_name(root, self.match)}` "
                    f"with a value that needs `${template.name}`, which the graph makes only "
                    "after it", (bound,) if isinstance(bound, torch.fx.Node) else (),
                    self.path)]) from None
        if isinstance(template, checked.ListTemplate):
            return list(self._spread(template.items))
        return self._node(template, root)

    def _spread(self, items):
        for item in items:
            if isinstance(item, checked.Splat):
                yield from torch.fx.map_arg(self.match.bindings[item.name], self.builder.value)
            else:
                yield self.value(item)

    def _node(self, template: checked.NodeTemplate, root: torch.fx.Node | None) -> torch.fx.Node:
        args = tuple(self._spread(template.args))
        kwargs = {}
        for name, arg in template.kwargs:
            if name is None:  # **$kw
                kwargs.update(torch.fx.map_arg(self.match.bindings[arg.name], self.builder.value))
            else:
                kwargs[name] = self.value(arg)
        target = template.target
        if isinstance(target, OpOverloadPacket):
            target = self._overload(target, args, kwargs, template)
        key = (template.op, target, _frozen((args, kwargs)))
        if key in self.made:
            return self.made[key]
        node = self.builder.graph.create_node(template.op, target, args, kwargs)
        source = root if root is not None else self.repeats.get(key)
        if source is not None:  # shared, as FX's own node_copy shares meta values
            meta = source.meta
            node.meta.update({k: meta[k] for k in _CARRIED_META if k in meta})
        else:
            self._propagate(node, template)
        self.made[key] = node
        return node

    # --- values --------------------------------------------------------------------------------
    def _fake(self, args, kwargs):
        """The arguments with nodes replaced by their fake values (None if one has none)."""
        values = torch.fx.map_arg((args, kwargs), recorded)
        missing = any(v is MISSING for v in pytree.tree_leaves(values))
        return (None, None) if missing else values

    def _overload(self, packet: OpOverloadPacket, args, kwargs, template) -> object:
        fake_args, fake_kwargs = self._fake(args, kwargs)
        key = (packet, _signature((fake_args, fake_kwargs)))
        if key in self.overloads:
            return self.overloads[key]
        try:
            if fake_args is None:
                raise RuntimeError("an argument has no recorded value")
            with self._mode(fake_args, fake_kwargs):
                name = torch._C._jit_resolve_packet(packet._qualified_op_name, *fake_args,
                                                    **fake_kwargs)
        except RuntimeError as error:
            self._fail(template, f"cannot tell which overload of `{packet}` to call: {error}")
        self.overloads[key] = getattr(packet, name)
        return self.overloads[key]

    def _propagate(self, node: torch.fx.Node, template: checked.NodeTemplate) -> None:
        fake_args, fake_kwargs = self._fake(node.args, node.kwargs)
        if fake_args is None:
            return  # an input without a recorded value (a traced graph): nor will this have one
        key = key_for(node.all_input_nodes)
        try:
            with self._mode(fake_args, fake_kwargs):
                if node.op == "call_method":
                    value = getattr(fake_args[0], node.target)(*fake_args[1:], **fake_kwargs)
                else:
                    value = node.target(*fake_args, **fake_kwargs)
        except Exception as error:  # the template does not fit the values it was given
            self._fail(template, f"`{node.format_node()}` fails on its inputs: {error}")
        node.meta[key] = value

    @staticmethod
    def _mode(fake_args, fake_kwargs):
        """The fake mode the inputs' values belong to (not whatever tracing is under way: a
        Dynamo backend runs inside a tracing context with a fake mode of its own)."""
        for leaf in pytree.tree_leaves((fake_args, fake_kwargs)):
            if isinstance(leaf, FakeTensor):
                return leaf.fake_mode
        return FakeTensorMode()

    def _fail(self, template, message: str):
        root = self.match.roots[0]
        raise GraphError([Problem(f"rule `{self.match.rule.name}` "
                                  f"({template.span.where}): {message}", (root,), self.path)])
