"""Ops, functions and methods -> what they do beyond computing on tensors.

Input: an object a name resolved to (an op overload or packet, a higher-order op, a function of
`operator`, `math` or torch) or a tensor method's or attribute's name. Output: None when it
only computes values, else a short phrase for the user ("prints", "reads or writes a file").

Rule files and graph text name only what computes. Some names compute nothing a graph may run
at all (`operator.call`, `Tensor.numpy`, `Tensor.untyped_storage`): `refusal` says why, and
nothing allows them. Others are ops whose effect lies outside tensors but that real graphs do
hold (`aten._print` under `with_effects`, a profiler range): `op_effect` says what the effect is,
and a user allows such an op by name (`allowed_effects`, the CLI's `--allow-effect`). Every
decision is read off the op itself: its schema (an op that returns nothing and writes no tensor
acts outside tensors; a `str` parameter naming a file or path reads or writes one), the
dispatcher (an op TorchScript's interpreter alone knows, `aten.save`, `aten.manual_seed`, is
none of torch's ops), its namespace (profiler, debug and collective ops) and, for higher-order
ops, a list of the ones that only call the graphs and ops they are given.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import operator

import torch
from torch._ops import HigherOrderOperator, OpOverload, OpOverloadPacket

# --- operator and math ------------------------------------------------------------------------
# `operator`'s functions that compute a value from values. Left out: `call`, `attrgetter`,
# `itemgetter`, `methodcaller` (they call or reach whatever they are given), `delitem` and
# `length_hint`; every dunder alias (`operator.__call__`).
PURE_OPERATOR = frozenset({
    "abs", "add", "and_", "concat", "contains", "countOf", "eq", "floordiv", "ge", "getitem",
    "gt", "iadd", "iand", "iconcat", "ifloordiv", "ilshift", "imatmul", "imod", "imul", "index",
    "indexOf", "inv", "invert", "ior", "ipow", "irshift", "is_", "is_not", "isub", "itruediv",
    "ixor", "le", "lshift", "lt", "matmul", "mod", "mul", "ne", "neg", "not_", "or_", "pos",
    "pow", "rshift", "setitem", "sub", "truediv", "truth", "xor",
})


def function_refusal(function: object) -> str | None:
    """Why an `operator` or `math` function may not be named, or None: math's functions all
    compute; operator's only those in PURE_OPERATOR."""
    home = getattr(function, "__module__", None) or ""
    name = getattr(function, "__name__", "")
    if home in ("operator", "_operator"):
        if getattr(operator, name, None) is function and name in PURE_OPERATOR:
            return None
        return "calls or reaches what it is given, where a graph computes values"
    if home == "math":
        return None if not name.startswith("_") and getattr(math, name, None) is function \
            else "is no function of math"
    return None


# --- tensor methods and attributes -------------------------------------------------------------
# Public tensor methods that leave tensor semantics: they reach memory or the file system
# (`numpy`, `tofile`, the storages, `data_ptr`, `share_memory_`), import by name (`type` with a
# string imports the dotted name), run Python they are given (`apply_`, `map_`, hooks), or run
# autograd on the caller's tensors (`backward`).
LEAVES_TENSORS = frozenset({
    "numpy", "tofile", "untyped_storage", "storage", "storage_type", "data_ptr",
    "share_memory_", "is_shared", "type", "apply_", "map_", "map2_", "register_hook",
    "register_post_accumulate_grad_hook", "retain_grad", "backward", "as_subclass",
    "record_stream", "set_", "module_load", "pin_memory", "new", "reinforce",
})
# Tensor attributes that are no data: the autograd graph, and deprecated ones that warn.
NOT_DATA = frozenset({"grad_fn", "volatile"})


@functools.cache
def tensor_methods() -> frozenset[str]:
    """The methods a graph may call on a tensor: torch's overridable tensor methods and ATen's
    tensor bindings (`TensorBase`), public, less LEAVES_TENSORS."""
    overridable = {getattr(f, "__name__", None)
                   for f in torch.overrides.get_overridable_functions()[torch.Tensor]}
    names = set()
    for name in dir(torch.Tensor):
        if name.startswith("_") or name in LEAVES_TENSORS:
            continue
        member = getattr(torch.Tensor, name, None)
        if callable(member) and (name in overridable or hasattr(torch._C.TensorBase, name)):
            names.add(name)
    return frozenset(names)


@functools.cache
def tensor_attributes() -> frozenset[str]:
    """The attributes `getattr` may read off a tensor: its public data properties (`T`, `mT`,
    `shape`, `dtype`, `device`, `real`, `grad`...), never a method (a bound method could be
    called) nor the autograd graph."""
    return frozenset(name for name in dir(torch.Tensor)
                     if not name.startswith("_") and name not in NOT_DATA
                     and not callable(getattr(torch.Tensor, name, None)))


def method_refusal(name: str) -> str | None:
    """Why a graph may not call the tensor method `name`, or None."""
    if name.startswith("_"):
        return "is private; a graph calls public tensor methods"
    if name in LEAVES_TENSORS:
        return "leaves tensor semantics: it reaches memory, files, imports or Python"
    if name not in tensor_methods():
        return "is no method of a tensor"
    return None


# --- ops -----------------------------------------------------------------------------------------
# Higher-order ops that call only the graphs and ops they are given and compute on tensors.
# Left out: `print`, `call_torchbind` (a script object's method), the compiled-code ones
# (`inductor_compiled_code`, `aoti_call_delegate`, `executorch_call_delegate`,
# `inline_asm_elementwise`, Triton kernels) and those that call Python they look up
# (`invoke_leaf_function`, `flat_apply`, `custom_function_call`, `dynamo_bypassing_wrapper`).
PURE_HOPS = frozenset({
    "associative_scan", "auto_functionalized", "auto_functionalized_v2",
    "autograd_function_apply", "cond", "flex_attention", "flex_attention_backward",
    "foreach_map", "graphsafe_run_with_rng_state", "hints_wrapper", "invoke_quant",
    "invoke_quant_packed", "invoke_subgraph", "local_map_hop", "map_impl", "out_dtype",
    "run_and_save_rng_state", "run_const_graph", "run_with_rng_state", "scan", "strict_mode",
    "tag_activation_checkpoint", "while_loop", "while_loop_stack_output", "with_effects", "wrap",
    "wrap_activation_checkpoint", "wrap_with_autocast", "wrap_with_set_grad_enabled",
    "_export_tracepoint",
})
# Namespaces whose ops act outside the graph's tensors.
EFFECT_NAMESPACES = {
    "profiler": "records a profile", "debugprims": "is a debugging op",
    "debug_mode_ops": "is a debugging op", "c10d": "communicates with other processes",
    "_c10d_functional": "communicates with other processes",
    "_c10d_functional_autograd": "communicates with other processes",
    "symm_mem": "communicates with other processes", "static_runtime": "is a runtime's op",
}
# Ops that return nothing and write no tensor, yet only check: they raise or do nothing.
_CHECKS = ("_assert", "sym_constrain_range", "_validate_", "_linalg_check_errors",
           "_propagate_xla_data", "_sink_tokens", "check_")
_FILE_WORDS = ("file", "path")
READS_FILES = "reads or writes a file"
TORCHSCRIPT = "is none of the dispatcher's ops: TorchScript's interpreter alone runs it"
NEVER_ALLOWED = (READS_FILES, TORCHSCRIPT)  # no allowing makes a rule or graph file do these


def op_name(op: object) -> str:
    """`aten._print`, `higher_order.print`: how a user names an op to allow it."""
    if isinstance(op, HigherOrderOperator):
        return f"higher_order.{op.name()}"
    packet = op.overloadpacket if isinstance(op, OpOverload) else op
    return packet._qualified_op_name.replace("::", ".")


def op_effect(op: object) -> str | None:
    """What an op does beyond computing tensors, or None."""
    if isinstance(op, HigherOrderOperator):
        return None if op.name() in PURE_HOPS else "is a higher-order op that runs code " \
            "the graph does not hold"
    return _packet_effect(op.overloadpacket if isinstance(op, OpOverload) else op)


@functools.cache
def _packet_effect(packet: OpOverloadPacket) -> str | None:
    qualified = packet._qualified_op_name
    namespace, name = qualified.split("::")
    if namespace in EFFECT_NAMESPACES:
        return EFFECT_NAMESPACES[namespace]
    overloads = packet.overloads()
    if not _in_dispatcher(qualified, ["" if o == "default" else o for o in overloads]):
        return TORCHSCRIPT
    for overload in overloads:
        schema = getattr(packet, overload)._schema
        if any(str(a.type).startswith("str") and any(w in a.name for w in _FILE_WORDS)
               for a in schema.arguments):
            return READS_FILES
        writes = any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments)
        if not schema.returns and not writes and not name.startswith(_CHECKS):
            return "prints" if "print" in name else \
                "returns nothing and writes no tensor: it acts outside the graph"
    return None


def _in_dispatcher(qualified: str, overloads=("",)) -> bool:
    """Whether the dispatcher holds the op (`aten::mul`) under one of these overload names
    (`default` is ""); asked each time, as ops are registered as a process runs."""
    for overload in overloads:
        try:
            torch._C._dispatch_find_schema_or_throw(qualified, overload)
            return True
        except RuntimeError:
            continue
    return False


def binding_effect(function: object) -> str | None:
    """The effect of one of ATen's Python bindings (`torch._print`), read off its op."""
    name = getattr(function, "__name__", "")
    if not name or name.startswith("__"):
        return None
    packet = getattr(torch.ops.aten, name, None)
    if not isinstance(packet, OpOverloadPacket):
        return None
    effect = op_effect(packet)
    return None if effect == TORCHSCRIPT else effect  # `torch.tensor`: no op of torch's behind it


# --- allowing effects --------------------------------------------------------------------------
_ALLOWED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "allowed_effects", default=frozenset())


def normal_op_name(name: str) -> str:
    """`torch.ops.aten._print`, `aten::_print`, `aten._print.default` -> `aten._print`."""
    name = name.replace("::", ".").removeprefix("torch.ops.")
    parts = name.split(".")
    return ".".join(parts[:2])


def is_allowed(op: object, effect: str) -> bool:
    return effect not in NEVER_ALLOWED and op_name(op) in _ALLOWED.get()


@contextlib.contextmanager
def allowed_effects(*names: str):
    """Within it, rule files and graph text may name these ops despite their effect:
    `with engine.allowed_effects("aten._print"): engine.parse_graph(text)`."""
    token = _ALLOWED.set(_ALLOWED.get() | {normal_op_name(n) for n in names})
    try:
        yield
    finally:
        _ALLOWED.reset(token)
