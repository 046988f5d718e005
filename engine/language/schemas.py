"""Calls in rules against the torch schemas of their ops, before any graph is touched.

Input: an op (an `OpOverload`, or an `OpOverloadPacket` whose overloads are each tried), how
many positional arguments a pattern or template gives it, whether more may follow (`*$rest`),
and its keyword names. Output: None if some overload accepts that shape of call, else a
sentence saying why not. Callables without a schema (functions, methods) are not checked here.
`returns_one_tensor` tells from the schemas alone whether a call's value is a tensor;
`params_of` and `read_as` say how a call's arguments read by name, default and type, what
schema-aware patterns match against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch._ops import OpOverload, OpOverloadPacket

from .suggest import did_you_mean


def check_call(op: object, positional: int, more: bool, keywords: set[str]) -> str | None:
    if isinstance(op, OpOverload):
        problem = _check_overload(op, positional, more, keywords)
        return None if problem is None else f"`{op}` {problem}"
    if isinstance(op, OpOverloadPacket):
        problems = {name: _check_overload(getattr(op, name), positional, more, keywords)
                    for name in op.overloads()}
        if not problems or None in problems.values():
            return None
        # The overload nearest to taking it: one whose positional arguments fit, if any.
        name, problem = min(problems.items(), key=lambda item: "positional" in item[1])
        if len(problems) == 1:
            return f"`{op}.{name}` {problem}"
        return f"no overload of `{op}` takes this call (`{op}.{name}` {problem})"
    return None


def _check_overload(op: OpOverload, positional: int, more: bool, keywords: set[str]) -> str | None:
    """Why this overload does not take the call, as a phrase after its name; or None."""
    arguments = op._schema.arguments
    names = [argument.name for argument in arguments]
    takes = [argument for argument in arguments if not argument.kwarg_only]
    if positional > len(takes):
        words = f"takes {len(takes)} positional argument{'s' * (len(takes) != 1)}, not {positional}"
        keyword_only = [argument.name for argument in arguments if argument.kwarg_only]
        if keyword_only:
            words += f"; `{keyword_only[0]}` is keyword-only: write `{keyword_only[0]}=...`"
        return words
    unknown = sorted(keywords - set(names))
    if unknown:
        return (f"has no argument `{unknown[0]}`; it has {', '.join(names)}"
                + did_you_mean(unknown[0], names))
    twice = sorted(keywords & {argument.name for argument in takes[:positional]})
    if twice:
        return f"gets `{twice[0]}` twice, by position and by name"
    if not more:
        given = {argument.name for argument in takes[:positional]} | keywords
        missing = [argument.name for argument in arguments
                   if argument.name not in given and not argument.has_default_value()]
        if missing:
            return f"needs `{missing[0]}`"
    return None


def returns_one_tensor(op: object) -> bool:
    """Does every overload of the op return exactly one Tensor? (False without a schema.)"""
    overloads = _overloads(op)
    return bool(overloads) and all(
        len(o._schema.returns) == 1 and isinstance(o._schema.returns[0].type, torch.TensorType)
        for o in overloads)


# --- reading a call as its schema does ---------------------------------------------------------
@dataclass(frozen=True)
class SchemaParam:
    """One argument of an overload: where a call can give it, its default, and how a value
    given for it reads (`kind`): "float", where `2` is `2.0`; "ints", where `-1` is `[-1]`
    (an `int[1]` dim); None, as it is."""

    name: str
    position: int | None  # among the positional arguments; None: keyword-only
    has_default: bool
    default: object
    kind: str | None
    value_kind: str | None = None  # what a value given for it is (`bound_kind`)


def params_of(op: OpOverload) -> tuple[SchemaParam, ...]:
    params, position = [], 0
    for argument in op._schema.arguments:
        kind = _kind_of(argument.type)
        default = read_as(kind, argument.default_value) if argument.has_default_value() else None
        params.append(SchemaParam(argument.name, None if argument.kwarg_only else position,
                                  argument.has_default_value(), default, kind,
                                  _bound_kind_at(op, argument.type, position)))
        position += not argument.kwarg_only
    return tuple(params)


def _bound_kind_at(op: OpOverload, schema_type, position: int) -> str | None:
    """What a pattern binds at a parameter: at `mul`'s `other`, a tensor or a number (export
    writes `x * 0.5` so; its `self` is the tensor)."""
    if isinstance(schema_type, torch.TensorType) and takes_numbers_as_tensors(op) and position:
        return None
    return bound_kind(schema_type)


def _kind_of(schema_type) -> str | None:
    if isinstance(schema_type, torch.OptionalType):
        schema_type = schema_type.getElementType()
    if isinstance(schema_type, torch.FloatType):
        return "float"
    if isinstance(schema_type, torch.ListType) and isinstance(
            schema_type.getElementType(), (torch.IntType, torch.SymIntType)):
        return "ints"
    return None


def read_as(kind: str | None, value):
    """A value as a parameter of this kind reads it: an int for a float parameter is that
    float, an int for an int-list parameter is a list of one."""
    if kind == "float" and type(value) is int:
        return float(value)
    if kind == "ints" and type(value) is int:
        return [value]
    return value


def fits(op: OpOverload, positional: int, more: bool, keywords: set[str]) -> bool:
    """Can a call of this shape name this overload's arguments?"""
    return _check_overload(op, positional, more, keywords) is None


# --- kinds of values, as far as a rule can tell before any graph -------------------------------
TENSOR, SCALAR, LIST, STRING, NONE, ENUM, DEVICE, OP = (
    "a tensor", "a number", "a list", "a string", "None", "a dtype", "a device", "an op")


def literal_kind(value) -> str | None:
    """The kind of a literal: `2.0` is a number, `'cpu'` a string, `torch.float32` a dtype
    (schemas type dtypes, layouts and memory formats as ints)."""
    if isinstance(value, (bool, int, float)):
        return SCALAR
    if isinstance(value, str):
        return STRING
    if value is None:
        return NONE
    if isinstance(value, (list, tuple)):
        return LIST
    if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)):
        return ENUM
    if isinstance(value, torch.device):
        return DEVICE
    return None


def accepted_kinds(schema_type) -> frozenset[str] | None:
    """The kinds of value a parameter of this type takes; None when a rule cannot tell."""
    if isinstance(schema_type, torch.OptionalType):
        inner = accepted_kinds(schema_type.getElementType())
        return None if inner is None else inner | {NONE}
    if isinstance(schema_type, torch.TensorType):
        return frozenset({TENSOR})
    if isinstance(schema_type, (torch.IntType, torch.SymIntType)):
        return frozenset({SCALAR, ENUM})
    if isinstance(schema_type, (torch.NumberType, torch.FloatType, torch.BoolType,
                                torch.ComplexType)):
        return frozenset({SCALAR})
    if isinstance(schema_type, torch.StringType):
        return frozenset({STRING})
    if isinstance(schema_type, torch.DeviceObjType):
        return frozenset({DEVICE, STRING})
    if isinstance(schema_type, torch.ListType):
        ints = isinstance(schema_type.getElementType(), (torch.IntType, torch.SymIntType))
        return frozenset({LIST, SCALAR}) if ints else frozenset({LIST})
    return None


# The ops whose `Tensor` parameters also take a number, wrapped into a tensor when called
# (torch's `should_allow_numbers_as_tensors`): `x * 0.5` is exported as `mul.Tensor(x, 0.5)`.
NUMBERS_AS_TENSORS = frozenset({
    "add", "add_", "sub", "sub_", "subtract", "subtract_", "mul", "mul_", "multiply",
    "multiply_", "div", "div_", "divide", "divide_", "true_divide", "true_divide_",
    "floor_divide", "floor_divide_", "to", "_to_copy", "copy", "copy_", "_conj"})


def takes_numbers_as_tensors(op: OpOverload) -> bool:
    return op._schema.name.split("::")[-1] in NUMBERS_AS_TENSORS


def bound_kind(schema_type) -> str | None:
    """The kind of whatever a pattern binds at a parameter of this type (None: it varies)."""
    kinds = accepted_kinds(schema_type)
    if kinds == {TENSOR}:
        return TENSOR
    if kinds in ({SCALAR}, {SCALAR, ENUM}):
        return SCALAR
    return None


def returns_kind(op: object) -> str | None:
    """The kind of value every overload of the op returns, when they agree."""
    kinds = {_returned_kind(overload) for overload in _overloads(op)}
    return kinds.pop() if len(kinds) == 1 else None


def argument_problem(op: object, positional: list, keywords: dict,
                     more: bool) -> tuple[str, int | str] | None:
    """Why no overload of the op takes arguments of these kinds (None for a kind a rule cannot
    tell): a sentence, and the position or keyword of the argument it is about; None if one
    does. `more`: `*$xs` or `**$kw` may add arguments."""
    problems = []
    for overload in _overloads(op):
        if not fits(overload, len(positional), more, set(keywords)):
            continue
        problem = _kinds_problem(overload, positional, keywords)
        if problem is None:
            return None
        problems.append(problem)
    if not problems:
        return None  # the call's shape is wrong: check_call says so
    sentence, where = problems[0]
    if isinstance(op, OpOverloadPacket) and len(problems) > 1:
        sentence = f"no overload of `{op}` takes these arguments ({sentence})"
    return sentence, where


def call_returns_kind(op: object, positional: list, keywords: dict, more: bool) -> str | None:
    """The kind of value a call returns, from the overloads that can take its arguments."""
    kinds = {_returned_kind(overload) for overload in _overloads(op)
             if fits(overload, len(positional), more, set(keywords))
             and _kinds_problem(overload, positional, keywords) is None}
    return kinds.pop() if len(kinds) == 1 else None


def _returned_kind(overload: OpOverload) -> str | None:
    returns = overload._schema.returns
    return bound_kind(returns[0].type) if len(returns) == 1 else None


def _kinds_problem(overload: OpOverload, positional: list,
                   keywords: dict) -> tuple[str, int | str] | None:
    params = [a for a in overload._schema.arguments if not a.kwarg_only]
    by_name = {a.name: a for a in overload._schema.arguments}
    given = [(argument, kind, index) for index, (argument, kind) in
             enumerate(zip(params, positional))]
    given += [(by_name[name], kind, name) for name, kind in keywords.items()]
    for argument, kind, where in given:
        accepted = accepted_kinds(argument.type)
        if accepted == {TENSOR} and takes_numbers_as_tensors(overload):
            accepted = frozenset({TENSOR, SCALAR})
        if kind is not None and accepted is not None and kind not in accepted:
            wanted = str(argument.type).replace("number", "Scalar")
            return f"`{overload}` takes `{wanted}` for `{argument.name}`, not {kind}", where
    return None


def _overloads(op: object) -> list[OpOverload]:
    if isinstance(op, OpOverloadPacket):
        return [getattr(op, name) for name in op.overloads()]
    return [op] if isinstance(op, OpOverload) else []
