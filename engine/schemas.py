"""Calls in rules against the torch schemas of their ops, before any graph is touched.

Input: an op (an `OpOverload`, or an `OpOverloadPacket` whose overloads are each tried), how
many positional arguments a pattern or template gives it, whether more may follow (`*$rest`),
and its keyword names. Output: None if some overload accepts that shape of call, else a
sentence saying why not. Callables without a schema (functions, methods) are not checked here.
"""

from __future__ import annotations

from torch._ops import OpOverload, OpOverloadPacket


def check_call(op: object, positional: int, more: bool, keywords: set[str]) -> str | None:
    if isinstance(op, OpOverload):
        return _check_overload(op, positional, more, keywords)
    if isinstance(op, OpOverloadPacket):
        problems = [_check_overload(getattr(op, name), positional, more, keywords)
                    for name in op.overloads()]
        if not problems or any(problem is None for problem in problems):
            return None
        return f"no overload of `{op}` takes this call ({problems[0]} for `{op}.{op.overloads()[0]}`)"
    return None


def _check_overload(op: OpOverload, positional: int, more: bool, keywords: set[str]) -> str | None:
    arguments = op._schema.arguments
    names = [argument.name for argument in arguments]
    takes = [argument for argument in arguments if not argument.kwarg_only]
    if positional > len(takes):
        return f"`{op}` takes {len(takes)} positional argument{'s' * (len(takes) != 1)}, " \
               f"not {positional}"
    unknown = sorted(keywords - set(names))
    if unknown:
        return f"`{op}` has no argument `{unknown[0]}` (it has {', '.join(names)})"
    twice = sorted(keywords & {argument.name for argument in takes[:positional]})
    if twice:
        return f"`{twice[0]}` is given twice, by position and by name"
    if not more:
        given = {argument.name for argument in takes[:positional]} | keywords
        missing = [argument.name for argument in arguments
                   if argument.name not in given and not argument.has_default_value()]
        if missing:
            return f"`{op}` needs `{missing[0]}`"
    return None
