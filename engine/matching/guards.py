"""`where` clauses: the context their built-ins read, and evaluation.

The built-ins are a small fixed set, declared in `engine.language.builtins` and resolved by name
in `engine.language.sema` (they are not `use`d names, and a rule file cannot add any):

- `grad_enabled()`: the grad mode that the nodes of the body a region sits in run under. At
  the top of a graph, `torch.is_grad_enabled()` when the rules are applied (what torch's
  set-grad pass compares with); inside an outlined segment, or one whose marker stays, the mode
  its `_set_grad_enabled` marker sets; inside an outlined bracket, the mode at its opener.
- `dtype($x)`, `shape($x)`, `rank($x)`, `device($x)`: of the tensor a node's value is (its
  `meta["val"]`, or Dynamo's `meta["example_value"]`). Of a value that is not a tensor, or a
  node without a recorded value, they are unknown, and a guard that reads one does not hold,
  whatever it compares. `shape` is a list, to compare with `shape($y)`.

`Context` carries the state of each segment kind (the arguments of its last marker) into the
bodies the driver builds; the built-ins read it.
"""

from __future__ import annotations

import operator
import weakref
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

import torch
import torch.fx
from torch._ops import OpOverload, OpOverloadPacket
from torch.fx.experimental.symbolic_shapes import statically_known_true

from ..graphs.values import MISSING, recorded
from ..language import checked
from .match import same_value

SET_GRAD_ENABLED = torch._C._set_grad_enabled
ENTER_AUTOCAST = torch.amp.autocast_mode._enter_autocast
EXIT_AUTOCAST = torch.amp.autocast_mode._exit_autocast
WRAP_WITH_AUTOCAST = torch.ops.higher_order.wrap_with_autocast


@dataclass(frozen=True)
class Enclosing:
    """A region around the place a rule is tried: the rule that took it (None: no rule did,
    and it stays as it is) and its opener's target and arguments."""

    rule: str | None
    opener: object
    args: tuple


@dataclass(frozen=True)
class Context:
    """What holds where a body runs: the ambient grad mode, each segment kind's state, and the
    regions around it (outermost first)."""

    ambient_grad: bool
    states: Mapping[object, tuple] = field(default_factory=lambda: MappingProxyType({}))
    regions: tuple[Enclosing, ...] = ()

    def with_state(self, marker_target: object, args: tuple) -> "Context":
        return Context(self.ambient_grad, MappingProxyType({**self.states, marker_target: args}),
                       self.regions)

    def within(self, rule: str | None, opener: torch.fx.Node) -> "Context":
        region = Enclosing(rule, opener.target, tuple(opener.args))
        return Context(self.ambient_grad, self.states, (*self.regions, region))

    def grad_enabled(self) -> bool:
        state = self.states.get(SET_GRAD_ENABLED)
        return bool(state[0]) if state else self.ambient_grad

    def autocast_enabled(self, device: str) -> bool:
        """Whether autocast is on for `device`: the innermost autocast region for it says;
        with none, `torch.is_autocast_enabled(device)` when the rules are applied."""
        for region in reversed(self.regions):
            if region.opener is ENTER_AUTOCAST and region.args[:1] == (device,):
                return bool(region.args[2])
        return torch.is_autocast_enabled(device)

    def inside(self, rule: str) -> bool:
        return any(region.rule == rule for region in self.regions)


def _tensor(value):
    """The fake tensor a node stands for, or None."""
    if isinstance(value, torch.fx.Node):
        value = recorded(value, None)
    return value if isinstance(value, torch.Tensor) else None


UNKNOWN = object()  # what a built-in gives of a value it cannot read


def _of_tensor(read):
    def builtin(context, value, *args):
        tensor = _tensor(value)
        if tensor is None or any(arg is UNKNOWN for arg in args):
            return UNKNOWN
        return read(tensor, *args)

    return builtin


def _size(tensor, dim):
    if type(dim) is not int or not -tensor.dim() <= dim < tensor.dim():
        return UNKNOWN
    return tensor.shape[dim]


def _norm_dim(tensor, dim):
    if type(dim) is not int or not -tensor.dim() <= dim < tensor.dim():
        return UNKNOWN
    return dim % tensor.dim()


def _is_last_dim(tensor, dim):
    dim = _norm_dim(tensor, dim)
    return UNKNOWN if dim is UNKNOWN else dim == tensor.dim() - 1


def _broadcasts_to(context, value, target):
    """Whether `value`'s shape broadcasts to `target`'s, which it leaves as it is: each of its
    sizes, matched from the last, is 1 or the target's. A symbolic size the shape
    constraints do not decide makes it unknown."""
    tensor, into = _tensor(value), _tensor(target)
    if tensor is None or into is None:
        return UNKNOWN
    if tensor.dim() > into.dim():
        return False
    verdict = True
    for size, target_size in zip(reversed(tensor.shape), reversed(into.shape)):
        if statically_known_true(size == 1) or statically_known_true(size == target_size):
            continue
        if not isinstance(size, int) or not isinstance(target_size, int):
            verdict = UNKNOWN
        else:
            return False
    return verdict


def _of_dtype(read):
    """A built-in of a dtype: UNKNOWN for anything else (a layout, a value not known)."""
    def builtin(context, dtype):
        return read(dtype) if isinstance(dtype, torch.dtype) else UNKNOWN

    return builtin


def _is_tensor(context, value):
    if isinstance(value, torch.fx.Node):
        value = recorded(value)
        return UNKNOWN if value is MISSING else isinstance(value, torch.Tensor)
    return isinstance(value, torch.Tensor)


def _under_autocast(context: Context, value) -> bool:
    """Whether the node making `value` runs with autocast on. Its recorded dtype may then not be
    the one it computes: torch traces a `torch.cond` branch without applying autocast."""
    if not isinstance(value, torch.fx.Node) or value.op == "placeholder":
        return False  # a literal, or a value made outside the graph
    maker = value.args[0] if value.target is operator.getitem else None
    if isinstance(maker, torch.fx.Node) and maker.target is WRAP_WITH_AUTOCAST:
        return bool(maker.args[2])
    opener = _autocast_openers(value.graph).get(value)  # markers around it in its graph
    if opener is not None:
        return bool(opener.args[2])
    for region in reversed(context.regions):  # the outlined region the graph is the body of
        if region.opener is ENTER_AUTOCAST:
            return bool(region.args[2])
    return False


_OPENERS: "weakref.WeakKeyDictionary[torch.fx.Graph, dict]" = weakref.WeakKeyDictionary()


def _autocast_openers(graph: torch.fx.Graph) -> dict:
    """Each node inside an autocast region of its graph -> the innermost region's opener; one
    pass a graph, remembered while the graph lives (a rewrite makes new graphs)."""
    if graph not in _OPENERS:
        openers, stack = {}, []
        for node in graph.nodes:
            if node.target is EXIT_AUTOCAST and node.args[0] in stack:
                del stack[stack.index(node.args[0]):]
            elif stack:
                openers[node] = stack[-1]
            if node.target is ENTER_AUTOCAST:
                stack.append(node)
        _OPENERS[graph] = openers
    return _OPENERS[graph]


def _is_literal(context, value):
    if isinstance(value, (list, tuple)):
        return all(_is_literal(context, item) for item in value)
    return not isinstance(value, torch.fx.Node)


# One evaluator for each built-in the language declares (`engine.language.builtins`):
# (context, *argument values) -> value, or UNKNOWN.
EVALUATORS: dict[str, Callable[..., object]] = {
    "grad_enabled": lambda context: context.grad_enabled(),
    "dtype": _of_tensor(lambda t: t.dtype),
    "shape": _of_tensor(lambda t: list(t.shape)),
    "size": _of_tensor(_size),
    "norm_dim": _of_tensor(_norm_dim),
    "is_last_dim": _of_tensor(_is_last_dim),
    "broadcasts_to": _broadcasts_to,
    "rank": _of_tensor(lambda t: t.dim()),
    "numel": _of_tensor(lambda t: t.numel()),
    "device": _of_tensor(lambda t: t.device.type),
    "is_floating": _of_dtype(lambda dtype: dtype.is_floating_point),
    "is_complex": _of_dtype(lambda dtype: dtype.is_complex),
    "is_signed": _of_dtype(lambda dtype: dtype.is_signed),
    "bits": _of_dtype(lambda dtype: dtype.itemsize * 8),
    "is_tensor": _is_tensor,
    "is_literal": _is_literal,
    "users": lambda context, value: len(value.users) if isinstance(value, torch.fx.Node)
    else UNKNOWN,
    "user_nodes": lambda context, value: list(value.users)
    if isinstance(value, torch.fx.Node) else UNKNOWN,
    "op": lambda context, value: value.target if isinstance(value, torch.fx.Node)
    else UNKNOWN,
    "is_pointwise": lambda context, op: torch.Tag.pointwise in op.tags
    if isinstance(op, OpOverload) else False,
    "is_view": lambda context, op: bool(op.is_view) if isinstance(op, OpOverload) else False,
    "top_level": lambda context: not context.regions,
    "inside": lambda context, rule: context.inside(rule),
    "autocast_enabled": lambda context, device: context.autocast_enabled(device)
    if isinstance(device, str) else UNKNOWN,
    "under_autocast": _under_autocast,
}


def holds(guards, bindings: dict, context: Context) -> bool:
    """Do all of a rule's `where` conditions hold for these bindings, in this context?"""
    return first_failing(guards, bindings, context) is None


def first_failing(guards, bindings: dict, context: Context) -> checked.Condition | None:
    """The first of a rule's `where` conditions that does not hold (false, or reading a
    value that cannot be read), or None."""
    for guard in guards:
        if truth(guard, bindings, context) is not True:
            return guard
    return None


def truth(condition, bindings: dict, context: Context) -> bool | None:
    """True, False, or None where a value it reads is unknown (three-valued: `not`, `and`,
    `or` keep an unknown unknown, and only True makes a rule apply)."""
    if isinstance(condition, checked.AllOf):  # one False decides, whatever the rest are
        return _decided((truth(item, bindings, context) for item in condition.items), False)
    if isinstance(condition, checked.AnyOf):  # one True decides
        return _decided((truth(item, bindings, context) for item in condition.items), True)
    if isinstance(condition, checked.Not):
        value = truth(condition.item, bindings, context)
        return None if value is None else not value
    if isinstance(condition, checked.Test):
        return _as_truth(operand_value(condition.value, bindings, context))
    if isinstance(condition, checked.Member):
        value = operand_value(condition.value, bindings, context)
        found = [_equal(value, operand_value(o, bindings, context)) for o in condition.options]
        result = True if True in found else (None if None in found else False)
        return result if result is None or not condition.negated else not result
    if isinstance(condition, checked.Named):
        return truth(condition.body, bindings, context)
    if isinstance(condition, checked.Every):
        return _every(condition, bindings, context)
    left = operand_value(condition.left, bindings, context)
    right = operand_value(condition.right, bindings, context)
    if condition.op in ("==", "!="):
        equal = _equal(left, right)
        return equal if equal is None or condition.op == "==" else not equal
    return _order(condition.op, left, right)


def _every(condition: checked.Every, bindings: dict, context: Context) -> bool | None:
    """`all(...)`: False at the first item it fails for, True if it holds for each (an empty
    list too); `any(...)`: the dual. A list that cannot be read is unknown."""
    values = operand_value(condition.values, bindings, context)
    if not isinstance(values, (list, tuple)):
        return None
    return _decided((truth(condition.body, {**bindings, condition.var: item}, context)
                     for item in values), not condition.every)


def _decided(values, decisive: bool) -> bool | None:
    """Three-valued `and` (decisive False) or `or` (decisive True) of lazily made truths: the
    first decisive one decides, and the rest are not made; else unknown if one was unknown."""
    result = not decisive
    for value in values:
        if value is decisive:
            return decisive
        if value is None:
            result = None
    return result


def _as_truth(value) -> bool | None:
    if value is UNKNOWN:
        return None
    if isinstance(value, torch.SymBool):
        return _known(value)
    return value if isinstance(value, bool) else None


def _symbolic(value) -> bool:
    return isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool))


def _known(expression) -> bool | None:
    """A symbolic truth, where the shapes' constraints decide it; else None."""
    if statically_known_true(expression):
        return True
    if statically_known_true(torch.sym_not(expression)):
        return False
    return None


def _equal(a, b) -> bool | None:
    """Equality for guards: numbers by value (`1 == 1.0`), booleans only with booleans,
    nodes by identity, lists item by item, symbolic sizes where the constraints decide."""
    if a is UNKNOWN or b is UNKNOWN:
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return False
        items = [_equal(x, y) for x, y in zip(a, b)]
        return False if False in items else (None if None in items else True)
    if _symbolic(a) or _symbolic(b):
        if isinstance(a, (bool, str, torch.fx.Node)) or isinstance(b, (bool, str, torch.fx.Node)):
            return False
        return _known(a == b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, OpOverloadPacket) and isinstance(b, OpOverload):
        a, b = b, a
    if isinstance(a, OpOverload) and isinstance(b, OpOverloadPacket):
        return a.overloadpacket is b  # an op is "in" its packet
    return same_value(a, b)


_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _order(op: str, a, b) -> bool | None:
    if a is UNKNOWN or b is UNKNOWN:
        return None
    numbers = (int, float, torch.SymInt, torch.SymFloat)
    if isinstance(a, bool) or isinstance(b, bool) or not (
            isinstance(a, numbers) and isinstance(b, numbers)):
        return None  # values that do not order, such as a dtype and a number
    result = _ORDER[op](a, b)
    return _known(result) if _symbolic(result) else bool(result)


_ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
               "//": operator.floordiv, "%": operator.mod}


def operand_value(operand, bindings: dict, context: Context):
    """What a value of a condition evaluates to (`UNKNOWN` for what cannot be read)."""
    if isinstance(operand, checked.Const):
        return operand.value
    if isinstance(operand, checked.BuiltinCall):
        args = [operand_value(arg, bindings, context) for arg in operand.args]
        return EVALUATORS[operand.name](context, *args)
    if isinstance(operand, checked.Index):
        value = operand_value(operand.value, bindings, context)
        index = operand_value(operand.index, bindings, context)
        if not isinstance(value, (list, tuple)) or type(index) is not int or not (
                -len(value) <= index < len(value)):
            return UNKNOWN
        return value[index]
    if isinstance(operand, checked.Items):
        return [operand_value(value, bindings, context) for value in operand.values]
    if isinstance(operand, checked.Arithmetic):
        values = [operand_value(o, bindings, context) for o in operand.operands]
        if any(v is UNKNOWN or isinstance(v, bool) or not isinstance(
                v, (int, float, torch.SymInt)) for v in values):
            return UNKNOWN
        if operand.op == "neg":
            return -values[0]
        if operand.op in ("/", "//", "%") and type(values[1]) in (int, float) and values[1] == 0:
            return UNKNOWN
        return _ARITHMETIC[operand.op](*values)
    return bindings[operand.name]
