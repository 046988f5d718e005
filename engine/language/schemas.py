"""Calls in rules against the torch schemas of their ops, before any graph is touched.

Input: an op (an `OpOverload`, or an `OpOverloadPacket` whose overloads are each tried), how
many positional arguments a pattern or template gives it, whether more may follow (`*$rest`),
and its keyword names. Output: None if some overload accepts that shape of call, else a
sentence saying why not. Callables without a schema (functions, methods) are not checked here.
`returns_one_tensor` tells from the schemas alone whether a call's value is a tensor.
"""

from __future__ import annotations

import torch
from torch._ops import OpOverload, OpOverloadPacket


def check_call(op: object, positional: int, more: bool, keywords: set[str]) -> str | None:
    if isinstance(op, OpOverload):
        problem = _check_overload(op, positional, more, keywords)
        return None if problem is None else f"`{op}` {problem}"
    if isinstance(op, OpOverloadPacket):
        problems = {name: _check_overload(getattr(op, name), positional, more, keywords)
                    for name in op.overloads()}
        if not problems or None in problems.values():
            return None
        name, problem = next(iter(problems.items()))
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
        return f"takes {len(takes)} positional argument{'s' * (len(takes) != 1)}, not {positional}"
    unknown = sorted(keywords - set(names))
    if unknown:
        return f"has no argument `{unknown[0]}`; it has {', '.join(names)}"
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
    if isinstance(op, OpOverloadPacket):
        overloads = [getattr(op, name) for name in op.overloads()]
    elif isinstance(op, OpOverload):
        overloads = [op]
    else:
        return False
    return bool(overloads) and all(
        len(o._schema.returns) == 1 and isinstance(o._schema.returns[0].type, torch.TensorType)
        for o in overloads)
