"""A GraphModule (or ExportedProgram) -> canonical text, for snapshots, `engine dump` and diffs.

Deterministic: the same graph always gives the same text, with no file paths, stack traces or
addresses. Each graph reads like a Python function whose values carry `meta["val"]` (or
Dynamo's `meta["example_value"]`) as a type (`f32[2, s0]`); nested GraphModules (submodules of outlined regions, `torch.cond` branches)
follow their parent, named by their attribute path. An ExportedProgram adds its signature.

    def forward(x: f32[2, 4]):
        sin: f32[2, 4] = aten.sin.default(x)
        submod_1 = get_attr(submod_1)
        getitem: f32[2, 4] = operator.getitem(wrap_with_autocast, 0)
        return (getitem,)
"""

from __future__ import annotations

import math
import re

import torch
import torch.fx
from torch._ops import HigherOrderOperator, OpOverload, OpOverloadPacket
from torch.export import ExportedProgram
from torch.fx.graph import dtype_abbrs

from .modules import held_graphs
from .values import MISSING, recorded

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def dump(module: torch.fx.GraphModule | ExportedProgram) -> str:
    """The text of a program or module; a module read from text with a signature
    (`meta["graph_signature"]`) prints it back."""
    if isinstance(module, ExportedProgram):
        return _dump_modules(module.graph_module) + "\n" + _dump_signature(module.graph_signature)
    signature = module.meta.get("graph_signature") if hasattr(module, "meta") else None
    if signature is not None:
        return _dump_modules(module) + "\n" + _dump_signature(signature)
    return _dump_modules(module)


def _dump_modules(root: torch.fx.GraphModule) -> str:
    sections: list[str] = []
    seen: set[int] = set()

    def visit(module: torch.fx.GraphModule, name: str) -> None:
        seen.add(id(module))
        sections.append(_dump_graph(module.graph, name))
        for target, child in held_graphs(module):
            if id(child) not in seen:
                visit(child, target if name == "forward" else f"{name}.{target}")

    visit(root, "forward")
    return "\n\n".join(sections) + "\n"


def _dump_graph(graph: torch.fx.Graph, name: str) -> str:
    inputs = []
    body = []
    for node in graph.nodes:
        if node.op == "placeholder":
            default = f" = {format_value(node.args[0])}" if node.args else ""
            inputs.append(f"{node.name}{_annotation(node)}{default}")
        elif node.op == "output":
            body.append(f"return {format_value(node.args[0])}")
        else:
            body.append(f"{node.name}{_annotation(node)} = {_call(node)}")
    lines = [f"def {name}({', '.join(inputs)}):"] + ["    " + line for line in body]
    return "\n".join(lines)


def _call(node: torch.fx.Node) -> str:
    args = [format_value(arg) for arg in node.args]
    args += [f"{key}={format_value(value)}" for key, value in node.kwargs.items()]
    if node.op == "get_attr":
        return f"get_attr({node.target})"
    if node.op == "call_method":
        return f"method {node.target}({', '.join(args)})"
    if node.op == "call_module":
        return f"module {node.target}({', '.join(args)})"
    return f"{format_target(node.target)}({', '.join(args)})"


def format_target(target) -> str:
    if isinstance(target, (OpOverload, OpOverloadPacket)):
        return str(target)
    if isinstance(target, HigherOrderOperator):
        return f"higher_order.{target.__name__}"
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", repr(target))
    module = {"_operator": "operator", "builtins": ""}.get(module, module)
    # torch.cat and its kind live on a private class torch puts at the top as `torch.cat`.
    name = name.removeprefix("_VariableFunctionsClass.")
    return f"{module}.{name}" if module else name


def format_value(value) -> str:
    if isinstance(value, torch.fx.Node):
        return value.name
    if isinstance(value, tuple):
        inner = ", ".join(format_value(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{format_value(k)}: {format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"float('{value}')"
    if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)):
        return str(value)
    if isinstance(value, slice):
        return f"slice({format_value(value.start)}, {format_value(value.stop)}, {format_value(value.step)})"
    if callable(value) and not isinstance(value, torch.nn.Module):
        return format_target(value)
    return _ADDRESS.sub("", repr(value))


def _annotation(node: torch.fx.Node) -> str:
    """The node's value type, from `meta["val"]` (export) or `meta["example_value"]` (Dynamo)."""
    value = recorded(node)
    return "" if value is MISSING else f": {format_type(value)}"


def format_type(value) -> str:
    """The type a `meta["val"]` stands for: `f32[2, s0]`, `Sym(s0)`, `(f32[2], i64[])`."""
    if isinstance(value, torch.Tensor):
        dims = ", ".join(str(dim) for dim in value.shape)
        return f"{dtype_abbrs.get(value.dtype, str(value.dtype))}[{dims}]"
    if isinstance(value, torch.SymFloat) and value.node.expr.is_number:
        return f"Sym({float(value.node.expr)!r})"  # a constant, as Python writes it (1e-05)
    if isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        return f"Sym({value})"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(format_type(v) for v in value)
        return f"({inner},)" if isinstance(value, tuple) and len(value) == 1 else (
            f"({inner})" if isinstance(value, tuple) else f"[{inner}]")
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    return type(value).__name__


def _dump_signature(signature) -> str:
    lines = ["signature:"]
    for spec in signature.input_specs:
        target = f" {spec.target}" if spec.target is not None else ""
        lines.append(f"    input {_arg_name(spec.arg)}: {spec.kind.name}{target}")
    for spec in signature.output_specs:
        target = f" {spec.target}" if spec.target is not None else ""
        lines.append(f"    output {_arg_name(spec.arg)}: {spec.kind.name}{target}")
    return "\n".join(lines) + "\n"


def _arg_name(arg) -> str:
    name = getattr(arg, "name", None)  # a constant output's is ""
    return name if name else format_value(getattr(arg, "value", arg))
