"""What an op computes from recorded values: fake tensors in, a value (or its spec) out.

Input: an op (an overload, an `operator` or `math` function, a tensor method name), its
arguments as recorded values (fake tensors, SymInts, literals) and the graph it goes into.
Output: what it returns, run under the fake mode its inputs belong to, which is the graph's
(`mode_of`: that of the fake values its placeholders record); a call with no tensor input
(`zeros([4])`, `scalar_tensor(0.0)`) runs in the graph's mode too, so that its value combines
with the graph's values and the rewritten program keeps one fake mode, as torch.export
requires. Or, for an op packet, the overload the dispatcher picks. Both are cached by the
inputs' metadata (dtype, shape, strides, device, requires_grad, literal values): the
thousandth `clamp_min` on an `f32[8, 8]` costs a dict lookup, not a fake-tensor dispatch
(50 us). A cache hit gives the result's spec, not a tensor: a rewrite compares it with the
value of the node the template replaces (or repeats) and takes that node's value when they
agree. Inputs with symbolic sizes are never cached.

One `Evaluator` serves one rewrite, every graph and pass of it.
"""

from __future__ import annotations

import logging
import weakref

import torch
import torch.fx
from torch._ops import OpOverloadPacket
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils import _pytree as pytree

_LITERALS = (bool, int, float, str, type(None), torch.dtype, torch.device, torch.layout,
             torch.memory_format)


# Fake tensors log every op that fails on them, with its traceback, as an error; a template
# that fails is a GraphError naming the rule, and the log would only bury it. Held back while
# a template runs, and only then: nothing is set up at import.
_FAKE_TENSOR_LOG = logging.getLogger("torch._subclasses.fake_tensor")


class _HeldBack(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


_HELD_BACK = _HeldBack()


class Uncacheable(Exception):
    """Metadata that cannot be a cache key (symbolic sizes, objects without a value)."""


class Evaluator:
    def __init__(self):
        self.overloads: dict[tuple, object] = {}
        self.specs: dict[tuple, object] = {}
        self.tensor_specs: dict[int, tuple[torch.Tensor, object]] = {}
        # For a graph whose placeholders record no fake tensor: the node whose value gave its
        # mode (read again each time: a graph's values may be recorded anew, as verify does).
        self.sources: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.own_mode: FakeTensorMode | None = None  # for graphs that record no fake value

    def mode_of(self, graph: torch.fx.Graph | None) -> FakeTensorMode:
        """The fake mode of a graph's values: that of the first fake tensor its placeholders
        record (else any node's), as `torch._guards.detect_fake_mode` finds it; for a graph
        that records none, one mode of this evaluator's own, the same for every graph."""
        mode = None
        if graph is not None:
            mode = _placeholders_mode(graph)
            if mode is None:
                source = self.sources.get(graph)
                mode = _mode_of_node(source) if source is not None else None
            if mode is None:
                source = next((n for n in graph.nodes if _mode_of_node(n) is not None), None)
                if source is not None:
                    self.sources[graph] = source
                    mode = _mode_of_node(source)
        if mode is not None:
            return mode
        if self.own_mode is None:
            self.own_mode = FakeTensorMode()
        return self.own_mode

    def key(self, args, kwargs) -> object:
        """What the metadata of a call's arguments caches under (None: they cannot be)."""
        try:
            return self.spec_of(args), self.spec_of(kwargs)
        except Uncacheable:
            return None

    def overload(self, packet: OpOverloadPacket, args, kwargs, key,
                 mode: FakeTensorMode | None = None) -> object:
        """The overload of `packet` the dispatcher picks for these values (RuntimeError if
        none); `key` is `self.key(args, kwargs)`, `mode` the graph's (`mode_of`)."""
        key = (packet, key if key is not None else _signature((args, kwargs)))
        if key not in self.overloads:
            with _mode(args, kwargs, mode):
                name = torch._C._jit_resolve_packet(packet._qualified_op_name, *args, **kwargs)
            self.overloads[key] = getattr(packet, name)
        return self.overloads[key]

    def spec(self, op: str, target, args, kwargs, key,
             mode: FakeTensorMode | None = None) -> tuple[object, object]:
        """(spec, value) of what the call returns: the value only when it had to be run (a
        cache miss), else None; `key` is `self.key(args, kwargs)`, `mode` the graph's. Raises
        whatever the op raises on these inputs."""
        if key is not None:
            key = (op, target, key)
            if key in self.specs:
                return self.specs[key], None
        value = self.run(op, target, args, kwargs, mode)
        try:
            spec = self.spec_of(value)
        except Uncacheable:
            return None, value
        if key is not None:
            self.specs[key] = spec
        return spec, value

    def spec_of(self, value) -> object:
        """`spec_of`, remembered for each tensor (reading a fake tensor's metadata is slow,
        and a graph's values are read again and again)."""
        if isinstance(value, torch.Tensor):
            known = self.tensor_specs.get(id(value))
            if known is None:  # the tensor is kept with its spec, so its id stays its own
                known = self.tensor_specs[id(value)] = (value, spec_of(value))
            return known[1]
        if isinstance(value, (list, tuple)):
            return (type(value), tuple(self.spec_of(v) for v in value))
        if isinstance(value, dict):
            return (dict, tuple((k, self.spec_of(v)) for k, v in value.items()))
        return spec_of(value)

    @staticmethod
    def run(op: str, target, args, kwargs, mode: FakeTensorMode | None = None):
        """What the call returns, run under its inputs' fake mode, else `mode` (the graph's),
        else a new one. What it raises is the caller's to report (fake tensors' own log of
        it, a traceback on stderr, is held back)."""
        _FAKE_TENSOR_LOG.addFilter(_HELD_BACK)
        try:
            with _mode(args, kwargs, mode):
                if op == "call_method":
                    return getattr(args[0], target)(*args[1:], **kwargs)
                return target(*args, **kwargs)
        finally:
            _FAKE_TENSOR_LOG.removeFilter(_HELD_BACK)


def spec_of(value) -> object:
    """A hashable description of a value's metadata; Uncacheable when it has none."""
    if isinstance(value, torch.Tensor):
        shape, stride = tuple(value.shape), tuple(value.stride())
        if not all(type(n) is int for n in (*shape, *stride)):
            raise Uncacheable
        return ("tensor", value.dtype, shape, stride, value.device, value.requires_grad)
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(spec_of(v) for v in value))
    if isinstance(value, dict):
        return (dict, tuple((k, spec_of(v)) for k, v in value.items()))
    if isinstance(value, _LITERALS):
        return (type(value), value)
    raise Uncacheable


def _signature(value):
    """What picks an overload: for each argument, tensor or its Python type."""
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_signature(v) for v in value))
    if isinstance(value, dict):
        return tuple((k, _signature(v)) for k, v in value.items())
    return torch.Tensor if isinstance(value, torch.Tensor) else type(value)


def _mode(args, kwargs, mode: FakeTensorMode | None = None):
    """The fake mode the inputs' values belong to (not whatever tracing is under way: a Dynamo
    backend runs inside a tracing context with a fake mode of its own); for inputs with no
    fake tensor, `mode`, the graph's."""
    for leaf in pytree.tree_leaves((args, kwargs)):
        if isinstance(leaf, FakeTensor):
            return leaf.fake_mode
    return mode if mode is not None else FakeTensorMode()


def _placeholders_mode(graph: torch.fx.Graph) -> FakeTensorMode | None:
    """The fake mode of the first fake tensor a placeholder records (placeholders lead the
    graph: this reads them and stops). Read from the values, never from the modes active now,
    and without `detect_fake_mode`'s assertion that every value agrees."""
    for node in graph.nodes:
        if node.op != "placeholder":
            return None
        mode = _mode_of_node(node)
        if mode is not None:
            return mode
    return None


def _mode_of_node(node: torch.fx.Node) -> FakeTensorMode | None:
    value = node.meta.get("val", node.meta.get("example_value"))
    for leaf in pytree.tree_leaves(value):
        if isinstance(leaf, FakeTensor):
            return leaf.fake_mode
    return None
