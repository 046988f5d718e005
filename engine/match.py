"""Checked call patterns -> matchers over FX nodes.

Input: `checked.CallPattern`s. Output: functions `(node, bindings) -> bool` that check a node's
arguments against the pattern and record what the variables bind in `bindings` (a dict the
caller owns and drops on failure). Two implementations live side by side, as in tinygrad: the
interpreter `match_call` is the reference, short and obviously right; `compile_call` builds one
closure per pattern with every decision about the pattern's shape taken once, up front. The
tests run both over the same nodes and require the same answers.
"""

from __future__ import annotations

from typing import Callable

import torch.fx

from . import checked

Bindings = dict
Matcher = Callable[[torch.fx.Node, Bindings], bool]


def same_value(a: object, b: object) -> bool:
    """Equality for pattern purposes: nodes by identity, literals by value, True is not 1."""
    if isinstance(a, torch.fx.Node) or isinstance(b, torch.fx.Node):
        return a is b
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b  # 1 and 1.0 are the same number
    return type(a) is type(b) and a == b


# --- the interpreter -----------------------------------------------------------------------
def match_arg(pattern: checked.ArgPattern, value: object, bindings: Bindings) -> bool:
    if isinstance(pattern, checked.Anything):
        return True
    if isinstance(pattern, checked.Bind):
        bindings[pattern.name] = value
        return True
    if isinstance(pattern, checked.Same):
        return same_value(bindings[pattern.name], value)
    return same_value(pattern.value, value)


def match_call(pattern: checked.CallPattern, node: torch.fx.Node, bindings: Bindings) -> bool:
    """Reference semantics: does `node` call `pattern.target` with matching arguments?"""
    if node.op != "call_function" or node.target is not pattern.target:
        return False
    args = node.args
    fixed = len(pattern.args)
    if len(args) < fixed or (pattern.rest is None and len(args) != fixed):
        return False
    if set(node.kwargs) != {name for name, _ in pattern.kwargs}:
        return False
    for arg_pattern, value in zip(pattern.args, args):
        if not match_arg(arg_pattern, value, bindings):
            return False
    rest = tuple(args[fixed:])
    if isinstance(pattern.rest, checked.BindRest):
        bindings[pattern.rest.name] = rest
    elif isinstance(pattern.rest, checked.SameRest) and not same_value(bindings[pattern.rest.name], rest):
        return False
    return all(match_arg(p, node.kwargs[name], bindings) for name, p in pattern.kwargs)


# --- the compiler --------------------------------------------------------------------------
def compile_call(pattern: checked.CallPattern) -> Matcher:
    """One closure for the whole pattern; the checks a pattern does not need are not run."""
    target = pattern.target
    fixed = len(pattern.args)
    exact = pattern.rest is None
    keyword_names = frozenset(name for name, _ in pattern.kwargs)
    checks = [(i, _compile_arg(p)) for i, p in enumerate(pattern.args)
              if not isinstance(p, checked.Anything)]
    keyword_checks = [(name, _compile_arg(p)) for name, p in pattern.kwargs]
    rest_check = _compile_rest(pattern.rest, fixed)

    def matcher(node: torch.fx.Node, bindings: Bindings) -> bool:
        if node.target is not target or node.op != "call_function":
            return False
        args = node.args
        if (len(args) != fixed) if exact else (len(args) < fixed):
            return False
        kwargs = node.kwargs
        if (kwargs.keys() != keyword_names) if kwargs or keyword_names else False:
            return False
        for index, check in checks:
            if not check(args[index], bindings):
                return False
        if rest_check is not None and not rest_check(args, bindings):
            return False
        for name, check in keyword_checks:
            if not check(kwargs[name], bindings):
                return False
        return True

    matcher.__qualname__ = f"match<{pattern.span.where}>"
    return matcher


def _compile_arg(pattern: checked.ArgPattern) -> Callable[[object, Bindings], bool]:
    if isinstance(pattern, checked.Anything):
        return lambda value, bindings: True
    if isinstance(pattern, checked.Bind):
        name = pattern.name

        def bind(value, bindings):
            bindings[name] = value
            return True

        return bind
    if isinstance(pattern, checked.Same):
        name = pattern.name
        return lambda value, bindings: same_value(bindings[name], value)
    expected = pattern.value
    return lambda value, bindings: same_value(expected, value)


def _compile_rest(pattern: checked.RestPattern | None, start: int):
    if pattern is None or isinstance(pattern, checked.AnyRest):
        return None
    name = pattern.name
    if isinstance(pattern, checked.BindRest):
        def bind_rest(args, bindings):
            bindings[name] = tuple(args[start:])
            return True

        return bind_rest
    return lambda args, bindings: same_value(bindings[name], tuple(args[start:]))
