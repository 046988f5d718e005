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

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

import torch
import torch.fx

from ..language import checked
from .match import same_value
from ..graphs.values import recorded

SET_GRAD_ENABLED = torch._C._set_grad_enabled


@dataclass(frozen=True)
class Context:
    """What holds where a body runs: the ambient grad mode and each segment kind's state."""

    ambient_grad: bool
    states: Mapping[object, tuple] = field(default_factory=lambda: MappingProxyType({}))

    def with_state(self, marker_target: object, args: tuple) -> "Context":
        return Context(self.ambient_grad, MappingProxyType({**self.states, marker_target: args}))

    def grad_enabled(self) -> bool:
        state = self.states.get(SET_GRAD_ENABLED)
        return bool(state[0]) if state else self.ambient_grad


def _tensor(value):
    """The fake tensor a node stands for, or None."""
    if isinstance(value, torch.fx.Node):
        value = recorded(value, None)
    return value if isinstance(value, torch.Tensor) else None


UNKNOWN = object()  # what a built-in gives of a value it cannot read


def _of_tensor(read):
    def builtin(context, value):
        tensor = _tensor(value)
        return UNKNOWN if tensor is None else read(tensor)

    return builtin


# One evaluator for each built-in the language declares (`engine.language.builtins`):
# (context, *argument values) -> value.
EVALUATORS: dict[str, Callable[..., object]] = {
    "grad_enabled": lambda context: context.grad_enabled(),
    "dtype": _of_tensor(lambda t: t.dtype),
    "shape": _of_tensor(lambda t: list(t.shape)),
    "rank": _of_tensor(lambda t: t.dim()),
    "device": _of_tensor(lambda t: t.device.type),
}

_ORDER = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
          ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def holds(guards, bindings: dict, context: Context) -> bool:
    """Do all of a rule's `where` guards hold for these bindings, in this context?"""
    return first_failing(guards, bindings, context) is None


def first_failing(guards, bindings: dict, context: Context) -> checked.Guard | None:
    """The first of a rule's `where` guards that does not hold, or None."""
    for guard in guards:
        if not _guard_holds(guard, bindings, context):
            return guard
    return None


def _guard_holds(guard: checked.Guard, bindings: dict, context: Context) -> bool:
    left = operand_value(guard.left, bindings, context)
    right = operand_value(guard.right, bindings, context)
    if left is UNKNOWN or right is UNKNOWN:
        return False
    if guard.op in _ORDER:
        try:
            return bool(_ORDER[guard.op](left, right))
        except TypeError:  # values that do not compare, such as a dtype and a number
            return False
    return same_value(left, right) == (guard.op == "==")


def operand_value(operand, bindings: dict, context: Context):
    """What one side of a guard evaluates to (`UNKNOWN` for what a built-in cannot read)."""
    if isinstance(operand, checked.Const):
        return operand.value
    if isinstance(operand, checked.BuiltinCall):
        args = [operand_value(arg, bindings, context) for arg in operand.args]
        return EVALUATORS[operand.name](context, *args)
    return bindings[operand.name]
