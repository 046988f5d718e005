"""Checked node patterns -> matchers over FX nodes.

Input: `checked.NodePattern`s (a call, its arguments, nested calls, alternatives, lists).
Output: functions `(node, bindings, matched) -> bool` that check a node against the pattern,
record what the variables bind in `bindings`, and append `(node, shared)` to `matched` for every
node the pattern's calls matched (the root last), so callers can tell the interior nodes and
which of them may be shared. Both are the caller's, to drop on failure; within a match,
alternatives and commutative calls backtrack their own writes.

Two implementations live side by side, as in tinygrad: the interpreter `match_node` is the
reference, short and obviously right; `compile_node` builds one closure per pattern with every
decision about the pattern's shape taken once, up front. The tests run both over the same
nodes and require the same answers.
"""

from __future__ import annotations

from typing import Callable

import torch.fx
from torch._ops import OpOverloadPacket

from ..language import checked

Bindings = dict
Matcher = Callable[[torch.fx.Node, Bindings, list], bool]


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


def targets_match(pattern: checked.NodePattern, node: torch.fx.Node) -> bool:
    """Op and target: an op packet matches each of its overloads; a method, its name."""
    if node.op != pattern.op:
        return False
    if pattern.op == "call_method":
        return node.target == pattern.target
    if node.target is pattern.target:
        return True
    return isinstance(pattern.target, OpOverloadPacket) and \
        getattr(node.target, "overloadpacket", None) is pattern.target


# --- the interpreter ---------------------------------------------------------------------------
def match_value(pattern: checked.ArgPattern, value: object, bindings: Bindings,
                matched: list) -> bool:
    if isinstance(pattern, checked.Anything):
        return True
    if isinstance(pattern, checked.Bind):
        bindings[pattern.name] = value
        return True
    if isinstance(pattern, checked.Same):
        return same_value(bindings[pattern.name], value)
    if isinstance(pattern, checked.Equals):
        return same_value(pattern.value, value)
    if isinstance(pattern, checked.BindNode):
        if not match_value(pattern.pattern, value, bindings, matched):
            return False
        bindings[pattern.name] = value
        return True
    if isinstance(pattern, checked.OneOf):
        return any(_attempt(lambda b, m, option=option: match_value(option, value, b, m),
                            bindings, matched) for option in pattern.options)
    if isinstance(pattern, checked.ListPattern):
        return isinstance(value, (list, tuple)) and _match_sequence(
            pattern.items, pattern.rest, value, bindings, matched)
    return isinstance(value, torch.fx.Node) and match_node(pattern, value, bindings, matched)


def match_node(pattern: checked.NodePattern, node: torch.fx.Node, bindings: Bindings,
               matched: list) -> bool:
    """Reference semantics: does `node` match `pattern`?"""
    if not targets_match(pattern, node):
        return False
    named = {name for name, _ in pattern.kwargs}
    if not (named <= set(node.kwargs) if pattern.more_kwargs else named == set(node.kwargs)):
        return False
    others = {name: value for name, value in node.kwargs.items() if name not in named}
    orders = [node.args]
    if pattern.commutative and len(node.args) == 2:
        orders.append((node.args[1], node.args[0]))

    def arguments(args):  # in the order the checker bound variables: args, kwargs, `**`
        return lambda b, m: (_match_sequence(pattern.args, pattern.rest, args, b, m) and all(
            match_value(p, node.kwargs[name], b, m) for name, p in pattern.kwargs) and
            _match_more_kwargs(pattern.more_kwargs, others, b))

    if not any(_attempt(arguments(args), bindings, matched) for args in orders):
        return False
    matched.append((node, pattern.shared))
    return True


def _match_more_kwargs(more, others: dict, bindings: Bindings) -> bool:
    if isinstance(more, checked.BindRest):
        bindings[more.name] = others
    elif isinstance(more, checked.SameRest):
        return same_value(bindings[more.name], others)
    return True


def _match_sequence(items, rest, values, bindings, matched) -> bool:
    fixed = len(items)
    if len(values) < fixed or (rest is None and len(values) != fixed):
        return False
    if not all(match_value(p, v, bindings, matched) for p, v in zip(items, values)):
        return False
    remaining = tuple(values[fixed:])
    if isinstance(rest, checked.BindRest):
        bindings[rest.name] = remaining
    elif isinstance(rest, checked.SameRest):
        return same_value(bindings[rest.name], remaining)
    return True


def _attempt(try_match, bindings: Bindings, matched: list) -> bool:
    """Runs `try_match` on copies; keeps its writes only if it matches (for backtracking)."""
    trial, mark = dict(bindings), len(matched)
    if try_match(trial, matched):
        bindings.update(trial)
        return True
    del matched[mark:]
    return False


# --- the compiler ------------------------------------------------------------------------------
def compile_node(pattern: checked.NodePattern) -> Matcher:
    """One closure for the whole pattern; the checks a pattern does not need are not run."""
    op, target = pattern.op, pattern.target
    packet = target if isinstance(target, OpOverloadPacket) else None
    keyword_names = frozenset(name for name, _ in pattern.kwargs)
    exact_keywords = pattern.more_kwargs is None
    more_keywords = _compile_more_kwargs(pattern.more_kwargs, keyword_names)
    arguments = _compile_sequence(pattern.args, pattern.rest)
    keyword_checks = [(name, compile_value(p)) for name, p in pattern.kwargs]
    commutative = pattern.commutative
    by_name = op == "call_method"
    entry_shared = pattern.shared

    def check_arguments(args, kwargs, bindings, matched) -> bool:
        if not arguments(args, bindings, matched):
            return False
        for name, check in keyword_checks:
            if not check(kwargs[name], bindings, matched):
                return False
        return more_keywords is None or more_keywords(kwargs, bindings)

    def matcher(node: torch.fx.Node, bindings: Bindings, matched: list) -> bool:
        node_target = node.target
        if node_target is not target and (
                node_target != target if by_name else
                packet is None or getattr(node_target, "overloadpacket", None) is not packet):
            return False
        if node.op != op:
            return False
        kwargs = node.kwargs
        if exact_keywords:
            if (kwargs.keys() != keyword_names) if kwargs or keyword_names else False:
                return False
        elif not keyword_names <= kwargs.keys():
            return False
        args = node.args
        if not commutative:  # a failure's writes are the caller's to drop
            if not check_arguments(args, kwargs, bindings, matched):
                return False
        elif not _attempt(lambda b, m: check_arguments(args, kwargs, b, m), bindings, matched):
            if not (len(args) == 2 and _attempt(
                    lambda b, m: check_arguments((args[1], args[0]), kwargs, b, m),
                    bindings, matched)):
                return False
        matched.append((node, entry_shared))
        return True

    matcher.__qualname__ = f"match<{pattern.span.where}>"
    return matcher


def compile_value(pattern: checked.ArgPattern) -> Callable[[object, Bindings, list], bool]:
    if isinstance(pattern, checked.Anything):
        return lambda value, bindings, matched: True
    if isinstance(pattern, checked.Bind):
        name = pattern.name

        def bind(value, bindings, matched):
            bindings[name] = value
            return True

        return bind
    if isinstance(pattern, checked.Same):
        name = pattern.name
        return lambda value, bindings, matched: same_value(bindings[name], value)
    if isinstance(pattern, checked.Equals):
        expected = pattern.value
        return lambda value, bindings, matched: same_value(expected, value)
    if isinstance(pattern, checked.BindNode):
        inner, name = compile_value(pattern.pattern), pattern.name

        def bind_node(value, bindings, matched):
            if not inner(value, bindings, matched):
                return False
            bindings[name] = value
            return True

        return bind_node
    if isinstance(pattern, checked.OneOf):
        options = [compile_value(option) for option in pattern.options]
        return lambda value, bindings, matched: any(
            _attempt(lambda b, m, option=option: option(value, b, m), bindings, matched)
            for option in options)
    if isinstance(pattern, checked.ListPattern):
        sequence = _compile_sequence(pattern.items, pattern.rest)
        return lambda value, bindings, matched: isinstance(value, (list, tuple)) and sequence(
            value, bindings, matched)
    node_matcher = compile_node(pattern)
    return lambda value, bindings, matched: isinstance(value, torch.fx.Node) and node_matcher(
        value, bindings, matched)


def _compile_more_kwargs(more, named: frozenset):
    """None when nothing is to be done with the keywords the pattern does not name (exact
    keywords, or `**_`); else what binds them (`**$kw`) or compares them with what did. It runs
    after the arguments, which may bind `$kw` first."""
    if more is None or isinstance(more, checked.AnyRest):
        return None
    name = more.name

    def others(kwargs) -> dict:
        return {key: value for key, value in kwargs.items() if key not in named}

    if isinstance(more, checked.BindRest):
        def bind_keywords(kwargs, bindings):
            bindings[name] = others(kwargs)
            return True

        return bind_keywords
    return lambda kwargs, bindings: same_value(bindings[name], others(kwargs))


def _compile_sequence(items, rest):
    fixed = len(items)
    exact = rest is None
    checks = [(i, compile_value(p)) for i, p in enumerate(items)
              if not isinstance(p, checked.Anything)]
    rest_check = _compile_rest(rest, fixed)

    def sequence(values, bindings, matched) -> bool:
        if (len(values) != fixed) if exact else (len(values) < fixed):
            return False
        for index, check in checks:
            if not check(values[index], bindings, matched):
                return False
        return rest_check is None or rest_check(values, bindings)

    return sequence


def _compile_rest(pattern, start: int):
    if pattern is None or isinstance(pattern, checked.AnyRest):
        return None
    name = pattern.name
    if isinstance(pattern, checked.BindRest):
        def bind_rest(values, bindings):
            bindings[name] = tuple(values[start:])
            return True

        return bind_rest
    return lambda values, bindings: same_value(bindings[name], tuple(values[start:]))
