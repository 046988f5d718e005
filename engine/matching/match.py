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
from ..language.schemas import SchemaParam, read_as

MISSING = object()  # a required argument a call does not give

Bindings = dict
Matcher = Callable[[torch.fx.Node, Bindings, list], bool]


def same_value(a: object, b: object) -> bool:
    """Equality for pattern purposes: nodes by identity, literals by kind and value. `2` is
    not `2.0` (`mul(int_tensor, 2)` stays an integer, with `2.0` it becomes a float) unless a
    schema reads both as floats (`engine.language.schemas.read_as`); `True` is not `1`; a
    list and a tuple of the same items are the same."""
    if isinstance(a, torch.fx.Node) or isinstance(b, torch.fx.Node):
        return a is b
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def targets_match(pattern: checked.NodePattern, node: torch.fx.Node) -> bool:
    """Op and target: an op packet matches each of its overloads; a method, its name; `$f(...)`
    any function (what `$f` binds is checked with the arguments)."""
    if node.op != pattern.op:
        return False
    if pattern.target_var is not None:
        return True
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
        for index, option in enumerate(pattern.options):
            if _attempt(lambda b, m, option=option: match_value(option, value, b, m),
                        bindings, matched):
                for name in pattern.nones(index):
                    bindings[name] = None
                return True
        return False
    if isinstance(pattern, checked.ListPattern):
        return isinstance(value, (list, tuple)) and _match_sequence(
            pattern.items, pattern.rest, value, bindings, matched)
    return isinstance(value, torch.fx.Node) and match_node(pattern, value, bindings, matched)


def match_node(pattern: checked.NodePattern, node: torch.fx.Node, bindings: Bindings,
               matched: list) -> bool:
    """Reference semantics: does `node` match `pattern`?"""
    if not targets_match(pattern, node):
        return False
    if pattern.target_var is not None and not match_value(pattern.target_var, node.target,
                                                          bindings, matched):
        return False
    if pattern.forms is not None:
        return _match_by_schema(pattern, node, bindings, matched)
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


def _match_by_schema(pattern: checked.NodePattern, node: torch.fx.Node, bindings: Bindings,
                     matched: list) -> bool:
    """Each argument by name, as the node's overload reads its call."""
    forms = [form for form in pattern.forms if form.overload is node.target]
    if not any(_attempt(lambda b, m, form=form: _match_form(form, pattern.more_kwargs, node, b,
                                                            m), bindings, matched)
               for form in forms):
        return False
    matched.append((node, pattern.shared))
    return True


def _match_form(form: checked.SchemaForm, more, node: torch.fx.Node, bindings: Bindings,
                matched: list) -> bool:
    others = {}
    for arg in form.args:
        param = arg.param
        value = argument_value(param, node.args, node.kwargs)
        if arg.pattern is not None:
            if value is MISSING or not match_value(arg.pattern, value, bindings, matched):
                return False
        elif value is not MISSING and not (param.has_default and
                                           same_value(value, param.default)):
            if more is None:
                return False  # an argument the pattern leaves out must have its default
            others[param.name] = value
    return _match_more_kwargs(more, others, bindings)


def argument_value(param: SchemaParam, args, kwargs):
    """What a call gives for a parameter (by position, by keyword, or its default), read as
    its type reads it; MISSING if it gives nothing and there is no default."""
    if param.position is not None and param.position < len(args):
        value = args[param.position]
    elif param.name in kwargs:
        value = kwargs[param.name]
    elif param.has_default:
        return param.default
    else:
        return MISSING
    return read_as(param.kind, value)


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
    if pattern.forms is not None:
        return _compile_by_schema(pattern)
    op, target = pattern.op, pattern.target
    any_target = pattern.target_var is not None  # `$f(...)`
    target_check = compile_value(pattern.target_var) if any_target else None
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
        if any_target:
            if node.op != op or not target_check(node_target, bindings, matched):
                return False
        elif node_target is not target and (
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


def _compile_by_schema(pattern: checked.NodePattern) -> Matcher:
    """A call read by its overload's schema: the node's target picks the forms (one, or two for
    `commutative`), a dict lookup; each argument is read where the call gives it."""
    by_overload: dict[object, list] = {}
    for form in pattern.forms:
        by_overload.setdefault(form.overload, []).append(
            _compile_form(form, pattern.more_kwargs))
    entry_shared = pattern.shared

    def matcher(node: torch.fx.Node, bindings: Bindings, matched: list) -> bool:
        forms = by_overload.get(node.target) if node.op == "call_function" else None
        if forms is None:
            return False
        args, kwargs = node.args, node.kwargs
        if len(forms) == 1:  # a failure's writes are the caller's to drop
            if not forms[0](args, kwargs, bindings, matched):
                return False
        elif not any(_attempt(lambda b, m, form=form: form(args, kwargs, b, m), bindings,
                              matched) for form in forms):
            return False
        matched.append((node, entry_shared))
        return True

    matcher.__qualname__ = f"match<{pattern.span.where}>"
    return matcher


def _compile_form(form: checked.SchemaForm, more):
    """(args, kwargs, bindings, matched) -> bool for one overload's reading of the call."""
    named = []  # (param, check) in the order the pattern binds
    defaults = []  # params left out: each must have its default, or go to `**`
    for arg in form.args:
        if arg.pattern is None:
            defaults.append(arg.param)
        else:
            named.append((arg.param, compile_value(arg.pattern)))
    more_binds = isinstance(more, checked.BindRest)
    more_same = isinstance(more, checked.SameRest)
    more_name = getattr(more, "name", None)

    def check(args, kwargs, bindings, matched) -> bool:
        for param, check_value in named:
            value = argument_value(param, args, kwargs)
            if value is MISSING or not check_value(value, bindings, matched):
                return False
        others = {}
        for param in defaults:
            value = argument_value(param, args, kwargs)
            if value is MISSING or (param.has_default and same_value(value, param.default)):
                continue
            if more is None:
                return False
            others[param.name] = value
        if more_binds:
            bindings[more_name] = others
        elif more_same:
            return same_value(bindings[more_name], others)
        return True

    return check


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
        options = [(compile_value(option), pattern.nones(index))
                   for index, option in enumerate(pattern.options)]

        def one_of(value, bindings, matched):
            for option, nones in options:
                if _attempt(lambda b, m, option=option: option(value, b, m), bindings, matched):
                    for name in nones:  # an optional call's variables, when it is absent
                        bindings[name] = None
                    return True
            return False

        return one_of
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
