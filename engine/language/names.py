"""Dotted names -> Python objects, through an allowlist of namespaces.

Input: a dotted path from a `use` declaration. Output: the object it names, or an error message.
A rule file never imports or runs arbitrary Python: a path must start at an allowed root, every
module met on the way must itself live in an allowed namespace, and the object found is checked
by what it is, not by how it was reached (`torch.os.system` is `posix.system`, and is refused).
"""

from __future__ import annotations

import functools
import math
import operator
import sys
import types
from dataclasses import dataclass

import torch
from torch._ops import HigherOrderOperator, OpOverload, OpOverloadPacket

from . import effects
from .suggest import Suggestions, did_you_mean

_MISSING = object()
ROOTS = {"torch": torch, "operator": operator, "math": math}
NAMESPACES = ("torch", "operator", "_operator", "math")
CONSTANT_TYPES = (torch.dtype, torch.layout, torch.memory_format, torch.device, bool, int, float, str)


@dataclass(frozen=True)
class Resolved:
    """What a name stands for: a callable (an op, a function) or a constant (a dtype, a number)."""

    dotted: str
    value: object
    kind: str  # "op" | "hop" | "function" | "constant"


class ResolveError(Exception):
    """A name that does not resolve or is not allowed; the message is for the user."""


def resolve(path: tuple[str, ...]) -> Resolved:
    dotted = ".".join(path)
    if path[0] not in ROOTS:
        raise ResolveError(
            f"`{path[0]}` is not an allowed namespace (allowed: {', '.join(sorted(ROOTS))})"
        )
    value: object = ROOTS[path[0]]
    for depth, part in enumerate(path[1:], start=2):
        if part.startswith("__") and part.endswith("__") and not _dunder_op(value, part):
            raise ResolveError(f"`{'.'.join(path[:depth])}` names a dunder attribute; a rule or "
                               "graph file names ops, functions and constants only")
        value = _attribute(value, part, ".".join(path[: depth - 1]))
        if isinstance(value, types.ModuleType) and not _allowed_module(value.__name__):
            raise ResolveError(
                f"`{'.'.join(path[:depth])}` is the module `{value.__name__}`, "
                "outside the allowed namespaces"
            )
    return Resolved(dotted, value, _kind(dotted, value))


def _dunder_op(namespace: object, part: str) -> bool:
    """Whether `namespace.part` is an op named like a dunder (`aten.__and__`, `aten.__lshift__`):
    an op namespace makes those from the dispatcher; any other dunder is Python's own."""
    if not isinstance(namespace, torch._ops._OpNamespace):
        return False
    try:
        return isinstance(getattr(namespace, part), OpOverloadPacket)
    except (AttributeError, RuntimeError):
        return False


def _attribute(value: object, part: str, where: str) -> object:
    if type(value) is types.ModuleType:  # not torch.ops's namespaces, which make ops on demand
        # What the module holds, or a submodule already loaded: never a module's lazy
        # `__getattr__` nor an import, so naming a name imports nothing.
        member = vars(value).get(part, _MISSING)
        if member is _MISSING:
            member = sys.modules.get(f"{value.__name__}.{part}", _MISSING)
        if member is not _MISSING:
            return member
    else:
        try:
            return getattr(value, part)
        except AttributeError:
            pass
        except Exception as error:  # an attribute that fails to load is reported, not raised
            raise ResolveError(f"`{where}.{part}` could not be looked up: {error}") from None
    if isinstance(value, OpOverloadPacket):
        overloads = value.overloads()
        raise ResolveError(f"`{where}` has no overload `{part}`; it has {', '.join(overloads)}"
                           + did_you_mean(part, overloads))
    if isinstance(value, torch._ops._OpNamespace) and value.name not in _namespaces():
        raise ResolveError(f"`{where}` is no op namespace"
                           + did_you_mean(value.name, _namespaces(), "`torch.ops.{}`"))
    raise ResolveError(f"`{where}` has no `{part}`" + did_you_mean(part, _names_in(value, part)))


def _names_in(value: object, part: str) -> Suggestions | list[str]:
    """The names an attribute of `value` could have: an op namespace's ops, `torch.ops`'s
    namespaces, or what `dir` lists (private names only for a private one)."""
    if isinstance(value, torch._ops._OpNamespace):
        return _op_suggestions(value.name)
    if isinstance(value, torch._ops._Ops):
        return _namespaces()
    if value is torch.ops.higher_order:
        return list(torch._ops._higher_order_ops)
    private = part.startswith("_")
    return [name for name in dir(value) if not name.startswith("__")
            and (private or not name.startswith("_"))]


# The registered ops, read from the dispatcher once per check (`forget_op_names` starts one):
# a file of a thousand misspelt ops asks for them a thousand times, and ops a module registers
# later are seen by the next check.
_op_names: list[str] | None = None
_suggestions: dict[str, Suggestions | list[str]] = {}  # by namespace; "": the namespaces


def forget_op_names() -> None:
    global _op_names
    _op_names = None
    _suggestions.clear()


def all_op_names() -> list[str]:
    """Every op the dispatcher knows, `namespace::name.overload`, as of this check."""
    global _op_names
    names = _op_names  # read once: the language server's worker may forget them meanwhile
    if names is None:
        names = _op_names = torch._C._dispatch_get_all_op_names()
    return names


def _op_suggestions(namespace: str) -> Suggestions:
    index = _suggestions.get(namespace)
    if index is None:
        prefix = f"{namespace}::"
        index = _suggestions[namespace] = Suggestions(
            name[len(prefix):].split(".")[0] for name in all_op_names()
            if name.startswith(prefix))
    return index


def _namespaces() -> list[str]:
    namespaces = _suggestions.get("")  # kept beside the suggestions, forgotten with them
    if namespaces is None:
        namespaces = _suggestions[""] = sorted(
            {name.split("::")[0] for name in all_op_names()} | {"higher_order"})
    return namespaces


def _kind(dotted: str, value: object) -> str:
    if isinstance(value, HigherOrderOperator):
        _check_effect(dotted, value)
        return "hop"
    if isinstance(value, (OpOverload, OpOverloadPacket)):
        _check_effect(dotted, value)
        return "op"
    if isinstance(value, CONSTANT_TYPES):
        return "constant"
    if isinstance(value, types.ModuleType):
        raise ResolveError(f"`{dotted}` is a module; name a callable or a constant in it")
    if callable(value) and not isinstance(value, type):
        name = getattr(value, "__name__", "?")
        if getattr(torch.Tensor, name, None) is value:  # `torch.Tensor.sin`: a tensor method
            refusal = effects.method_refusal(name)
            if refusal is not None:
                raise ResolveError(f"`{dotted}` {refusal}")
            return "function"
        home = getattr(value, "__module__", None) or ""
        if not _allowed_module(home):
            raise ResolveError(f"`{dotted}` is `{home}.{name}`, outside the allowed namespaces")
        refusal = effects.function_refusal(value)
        if refusal is not None:
            raise ResolveError(f"`{dotted}` {refusal}")
        if home.split(".")[0] == "torch":
            if not _computes(value):
                raise ResolveError(
                    f"`{dotted}` is not a tensor operation nor a graph marker, the only "
                    "functions a rule or graph file may name")
            effect = effects.binding_effect(value)
            if effect is not None and not effects.is_allowed(getattr(torch.ops.aten, name), effect):
                raise ResolveError(_effect_message(dotted, f"aten.{name}", effect))
        return "function"
    raise ResolveError(f"`{dotted}` is a {type(value).__name__}, not a callable or a constant")


def _check_effect(dotted: str, op: object) -> None:
    effect = effects.op_effect(op)
    if effect is not None and not effects.is_allowed(op, effect):
        raise ResolveError(_effect_message(dotted, effects.op_name(op), effect))


def _effect_message(dotted: str, name: str, effect: str) -> str:
    if effect in effects.NEVER_ALLOWED:
        return f"`{dotted}` {effect}; a rule or graph file may not name it"
    return (f"`{dotted}` {effect}; a rule or graph file names it only where that is allowed: "
            f"`--allow-effect {name}` on the command line, "
            f"`engine.allowed_effects(\"{name}\")` in Python")


# The torch functions a captured graph calls that are not computations on tensors: the markers
# of grad mode and autocast, and the checks and symbolic-size helpers torch.export emits.
GRAPH_FUNCTIONS = frozenset({
    torch._C._set_grad_enabled, torch.amp.autocast_mode._enter_autocast,
    torch.amp.autocast_mode._exit_autocast, torch._check, torch._check_is_size, torch._assert,
    torch._assert_async, torch._sym_sqrt, torch.sym_not, torch.sym_float, torch.sym_int,
    torch.sym_max, torch.sym_min, torch.sym_ite, torch.sym_sum,
})


def _computes(function: object) -> bool:
    """Whether a torch function is one a graph may call: a tensor function (what
    `__torch_function__` can override: torch.sin, torch.nn.functional.relu), one of ATen's
    bindings (torch.ones, torch.tensor, torch._C._nn.linear), or a graph marker. torch.load,
    torch.hub.load, torch.ops.load_library, torch.compile, torch.manual_seed are none of these:
    resolving them is refused, so no rule or graph text can run them."""
    try:
        return function in GRAPH_FUNCTIONS or function in _tensor_functions()
    except TypeError:  # unhashable
        return False


@functools.cache
def _tensor_functions() -> frozenset:
    overridable = torch.overrides.get_overridable_functions()
    functions = {function for functions in overridable.values() for function in functions}
    for binding in (torch._C._VariableFunctions, torch._C._nn, torch._C._fft, torch._C._linalg,
                    torch._C._special, torch._C._nested, torch._C._sparse):
        functions.update(getattr(binding, name) for name in dir(binding)
                         if not name.startswith("__"))
    return frozenset(functions)


def _allowed_module(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in NAMESPACES)


def op_key(target: object) -> object:
    """What an op is known by wherever overloads and packets meet: the op packet of an
    overload, else the target itself (a packet, a function, a method name)."""
    return target.overloadpacket if isinstance(target, OpOverload) else target
