"""A DAG decision's templates -> what will be built, before anything is.

Input: a rule's replacement templates, the bindings of its match (nodes of the old graph,
literals), the nodes the match touches. Output: for each replaced root, its replacement as data:
an old node (`replace with $x`), a literal, or a `Planned` node: op, target (an op packet
resolved to the overload the dispatcher picks for these arguments, as torch.export needs),
arguments (old nodes, other planned nodes, literals) and the `meta` it will carry. Equal calls
within one match are planned once. Or the problems that make the replacement wrong: a template
that fails on its inputs' values, a value the graph makes only after the root it would replace,
a literal or other non-tensor in place of a tensor, a captured value whose dtype, shape or
device differs from the root's.

Every planned node gets its value (`meta["val"]`, or Dynamo's `meta["example_value"]`): the one
that replaces a root takes the root's (it computes the same value); one that repeats a matched
node (same target, same arguments) takes that node's; any other is computed with fake tensors,
in the graph's fake mode (`Evaluator.mode_of`), a call with no tensor input (`zeros([4])`) too.
Whatever evaluating a template raises is a `TemplateError` naming the rule and the node.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.fx
from torch._ops import OpOverloadPacket

from ..graphs.dump import format_type, format_value
from ..graphs.errors import Problem
from ..graphs.values import MISSING, key_for, nodes_in, recorded, value_difference
from ..language import checked
from .evaluate import Evaluator, Uncacheable

# What a replacement node takes over from the node whose value it computes.
CARRIED_META = ("val", "example_value", "tensor_meta", "stack_trace", "nn_module_stack")


@dataclass(eq=False)
class Planned:
    """A node a rewrite will build. Arguments hold old nodes (mapped to their copies when
    built), other planned nodes and literals."""

    op: str
    target: object
    args: tuple
    kwargs: dict
    meta: dict = field(default_factory=dict)

    def format(self) -> str:
        args = [_format(arg) for arg in self.args]
        args += [f"{name}={_format(value)}" for name, value in self.kwargs.items()]
        return f"{format_value(self.target)}({', '.join(args)})"


class TemplateError(Exception):
    """A template that cannot be built as written; the message names rule and node."""

    def __init__(self, problem: Problem):
        super().__init__(problem.message)
        self.problem = problem


class TemplatePlanner:
    """Plans one match's replacements. `evaluator` computes values and overloads, cached
    across matches; `positions` orders the old graph's nodes."""

    def __init__(self, rule: checked.Rule, bindings: dict, matched: frozenset[torch.fx.Node],
                 positions: dict, evaluator: Evaluator, path: str):
        self.rule = rule
        self.bindings = bindings
        self.positions = positions
        self.evaluator = evaluator
        self.path = path
        self.made: dict[tuple, Planned] = {}
        self.matched = matched
        self._repeats: dict | None = None

    def replacement(self, template: checked.TemplateArg, root: torch.fx.Node):
        """What replaces `root`: an old node, a literal, or a `Planned` node; TemplateError if
        the template cannot stand in its place."""
        self.root = root
        value = self._value(template, top=True)
        self._fits(value, template)
        return value

    # --- building the plan ---------------------------------------------------------------------
    def _value(self, template, top: bool = False):
        if isinstance(template, checked.Const):
            return template.value
        if isinstance(template, checked.Value):
            return self._bound(template)
        if isinstance(template, checked.ListTemplate):
            return list(self._spread(template.items))
        if isinstance(template, checked.BuiltinCall):
            return self._builtin(template)
        if isinstance(template, checked.Index):
            return self._index(template)
        if isinstance(template, checked.Arithmetic):
            return self._arithmetic(template)
        return self._node(template, top)

    def _arithmetic(self, template: checked.Arithmetic):
        """Arithmetic on numbers, folded into a literal (`1.0 / $s` is a float in the graph);
        on a symbolic size, an `operator` node, so that it stays symbolic."""
        values = [self._value(operand) for operand in template.operands]
        function = _ARITHMETIC[template.op]
        if all(_is_number(value) for value in values):
            if template.op in ("/", "//", "%") and values[1] == 0:
                raise self._error(template.span, f"divides by zero ({_format(values[0])} "
                                                 f"{template.op} {_format(values[1])}): a guard "
                                                 "should say it is not")
            return function(*values)
        if template.op == "/" or not all(type(value) is int or isinstance(value, Planned)
                                         for value in values):
            raise self._error(template.span, f"arithmetic takes numbers (a symbolic size only "
                                             f"with integers), not "
                                             f"{', '.join(_format(value) for value in values)}")
        return self._symbolic(function, tuple(values),
                              function(*(_recorded(value) for value in values)))

    # --- values computed before building: `size($x, -1)`, `shape($x)[-1]` ---------------------
    def _builtin(self, call: checked.BuiltinCall):
        """A built-in's value where the rule applies: a number, a list, a dtype; a size that is
        symbolic becomes a `sym_size` node, so that it stays symbolic in the graph."""
        node = self._value(call.args[0])
        if call.name == "bits":  # of a dtype
            if not isinstance(node, torch.dtype):
                raise self._error(call.span, f"`bits` needs a dtype; `{_format(node)}` is not "
                                             "one here")
            return node.itemsize * 8
        tensor = recorded(node) if isinstance(node, torch.fx.Node) else MISSING
        if not isinstance(tensor, torch.Tensor):
            raise self._error(call.span, f"`{call.name}` needs a tensor; `{_format(node)}` is "
                                         "not one here")
        if call.name == "shape":
            return [self._size(node, tensor, dim) for dim in range(tensor.dim())]
        if call.name in ("size", "norm_dim"):
            dim = self._value(call.args[1])
            if type(dim) is not int or not -tensor.dim() <= dim < tensor.dim():
                raise self._error(call.span, f"`{call.name}` of a tensor of rank {tensor.dim()} "
                                             f"has no dim {_format(dim)}")
            dim %= tensor.dim()
            return dim if call.name == "norm_dim" else self._size(node, tensor, dim)
        if call.name == "numel":
            count = tensor.numel()
            return count if type(count) is int else self._symbolic(
                torch.ops.aten.sym_numel.default, (node,), count)
        if call.name == "rank":
            return tensor.dim()
        if call.name == "dtype":
            return tensor.dtype
        return tensor.device.type  # device

    def _size(self, node, tensor, dim: int):
        size = tensor.shape[dim]
        return size if type(size) is int else self._symbolic(torch.ops.aten.sym_size.int,
                                                             (node, dim), size)

    def _symbolic(self, target, args, value) -> Planned:
        key = ("call_function", target, _frozen((args, {})))
        if key not in self.made:
            self.made[key] = Planned("call_function", target, args, {},
                                     {key_for([self.root]): value})
        return self.made[key]

    def _index(self, template: checked.Index):
        value, index = self._value(template.value), self._value(template.index)
        if not isinstance(value, (list, tuple)) or type(index) is not int or not (
                -len(value) <= index < len(value)):
            raise self._error(template.span, f"{_format(value)} has no item {_format(index)}")
        return value[index]

    def _bound(self, use):
        value = self.bindings[use.name]
        for node in (value,) if isinstance(value, torch.fx.Node) else nodes_in(value):
            if self.positions[node] >= self.positions[self.root]:
                raise self._error(use.span, f"replaces `{self.root.name}` with a value that needs "
                                            f"`${use.name}`, which the graph makes only after it",
                                  node)
        return value

    def _spread(self, items):
        for item in items:
            if isinstance(item, checked.Splat):
                yield from self._bound(item)
            else:
                yield self._value(item)

    def _node(self, template: checked.NodeTemplate, top: bool) -> Planned:
        args = tuple(self._spread(template.args))
        kwargs = {}
        for name, arg in template.kwargs:
            if name is None:  # **$kw
                kwargs.update(self._bound(arg))
            else:
                kwargs[name] = self._value(arg)
        target = template.target
        if isinstance(target, checked.Value):  # `$f(...)`: the op the pattern bound
            target = self.bindings[target.name]
        fake = _recorded((args, kwargs))
        metadata = self.evaluator.key(*fake) if fake is not MISSING else None
        if isinstance(target, OpOverloadPacket):
            target = self._overload(target, fake, metadata, template)
        key = (template.op, target, _frozen((args, kwargs)))
        planned = self.made.get(key)
        if planned is None:
            planned = self.made[key] = Planned(template.op, target, args, kwargs)
            source = self.root if top else self.repeats().get(key)
            self._value_of(planned, fake, metadata, source, template)
        return planned

    def repeats(self) -> dict:
        """The matched nodes by their calls: a template call that repeats one may take its
        value. Made when first asked (most templates are a call or two above the root)."""
        if self._repeats is None:
            self._repeats = {(n.op, n.target, _frozen((n.args, n.kwargs))): n
                             for n in self.matched}
        return self._repeats

    # --- values --------------------------------------------------------------------------------
    def _mode(self):
        """The fake mode of the graph the rewrite builds into: its values'."""
        return self.evaluator.mode_of(self.root.graph)

    def _overload(self, packet: OpOverloadPacket, fake, metadata, template) -> object:
        try:
            if fake is MISSING:
                raise RuntimeError("an argument has no recorded value")
            return self.evaluator.overload(packet, *fake, metadata, self._mode())
        except Exception as error:
            raise self._error(template.span, f"cannot tell which overload of `{packet}` to "
                                             f"call: {error}") from None

    def _value_of(self, planned: Planned, fake, metadata, source, template) -> None:
        """The planned node's value, computed from its inputs' (never taken on trust). Where it
        is what `source` (the root it replaces, a matched node it repeats) holds, it takes
        that node's value and meta, as FX's own node_copy shares them."""
        if fake is MISSING:  # an input without a recorded value (a traced graph)
            if source is not None:
                planned.meta.update({k: source.meta[k] for k in CARRIED_META
                                     if k in source.meta})
            return
        mode = self._mode()
        try:
            spec, value = self.evaluator.spec(planned.op, planned.target, *fake, metadata, mode)
            if source is not None and spec is not None and self._same_spec(spec, source):
                planned.meta.update({k: source.meta[k] for k in CARRIED_META
                                     if k in source.meta})
                return
            if value is None:
                value = self.evaluator.run(planned.op, planned.target, *fake, mode)
        except Exception as error:  # the template does not fit the values it was given
            raise self._error(template.span, f"`{planned.format()}` fails on its inputs: "
                                             f"{error}") from None
        if source is self.root:
            planned.meta.update({k: self.root.meta[k] for k in ("stack_trace", "nn_module_stack")
                                 if k in self.root.meta})
        planned.meta[key_for([self.root])] = value

    def _same_spec(self, spec, node: torch.fx.Node) -> bool:
        try:
            return spec == self.evaluator.spec_of(recorded(node))
        except Uncacheable:
            return False

    def _fits(self, value, template) -> None:
        """A replacement must be the kind of value the root is: a tensor for a tensor, of the
        same dtype, shape and device."""
        before = recorded(self.root)
        after = _recorded(value)
        if before is MISSING or after is MISSING or after is before:
            return  # a traced graph without values, or the very value the root has
        difference = value_difference(before, after)
        if difference is not None:
            if isinstance(value, Planned):
                shown = f"`{value.format()}` ({format_type(after)})"
            else:
                shown = (f"`{value.name}` ({format_type(after)})" if isinstance(
                    value, torch.fx.Node) else _format(value))
            raise self._error(template.span, f"replaces `{self.root.name}` "
                                             f"({format_type(before)}) with {shown}, "
                                             f"{difference}")

    def _error(self, span, message: str, *nodes: torch.fx.Node) -> TemplateError:
        where = span.where if span is not None else self.rule.where
        return TemplateError(Problem(f"rule `{self.rule.name}` ({where}) {message}",
                                     (self.root, *nodes), self.path))


_ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
               "//": operator.floordiv, "%": operator.mod, "neg": operator.neg}


def _is_number(value) -> bool:
    return type(value) in (int, float)


def _recorded(value):
    """The value a node, a planned node or a literal stands for, containers mapped through
    (MISSING if any node in it has no recorded value)."""
    if isinstance(value, (torch.fx.Node, Planned)):  # a planned node's meta reads as a node's
        return recorded(value)
    if isinstance(value, (list, tuple)):
        values = []
        for item in value:
            item = _recorded(item)
            if item is MISSING:
                return MISSING
            values.append(item)
        return type(value)(values)
    if isinstance(value, dict):
        values = {k: _recorded(v) for k, v in value.items()}
        return MISSING if any(v is MISSING for v in values.values()) else values
    return value


def _format(value) -> str:
    if isinstance(value, Planned):
        return value.format()
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_format(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return format_value(value)


def _frozen(value):
    """A hashable stand-in for arguments: nodes and planned nodes by identity, numbers with
    their type (a call with `1` is not one with `True` or `1.0`)."""
    kind = type(value)
    if kind is torch.fx.Node or kind is Planned:
        return value
    if isinstance(value, (list, tuple)):
        return (kind, tuple(map(_frozen, value)))
    if isinstance(value, dict):
        return (dict, tuple((k, _frozen(v)) for k, v in value.items()))
    try:
        hash(value)
    except TypeError:
        return (kind, repr(value))
    return (kind, value)
