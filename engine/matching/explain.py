"""Why a pattern does not match a node: the reference interpreter, telling its first failure.

Input: a checked node pattern, a node, bindings so far. Output: None when the node matches
(the bindings are then filled in, as `match_node` fills them), else a `Miss`: the part of the
rule that failed (its span), what it expected and what the graph holds, in words, and how far
the match got before it (`progress`, to rank near misses first). Its verdict is the same as
`match.match_node`'s on every node (the tests hold it to that); the compiled matchers are not
involved, and cost nothing more for it.

    explain_node(pattern, node, {})  ->  Miss(span=..., message="argument `other` of
        `aten.mul.Tensor`: expected the literal `1`, found `1.0`", progress=2, kind="argument")
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx
from torch._ops import OpOverloadPacket

from ..graphs.dump import format_target, format_value
from ..language import checked
from ..language.diagnostics import Span
from .match import MISSING, argument_value, same_value, targets_match

# What kind of failure a miss is.
TARGET = "target"  # another op, overload or kind of node
ARGUMENT = "argument"  # an argument is not what the pattern says
VARIABLE = "variable"  # a variable is already bound to something else
KEYWORDS = "keywords"  # keywords present that the pattern does not name, or missing
DEFAULT = "default"  # an argument the pattern leaves out is not its default
COUNT = "count"  # another number of arguments or list items


@dataclass(frozen=True)
class Miss:
    span: Span | None
    message: str
    progress: int
    kind: str


def explain_node(pattern: checked.NodePattern, node: torch.fx.Node,
                 bindings: dict) -> Miss | None:
    """None if `node` matches `pattern` (bindings filled in), else the first reason it does not."""
    return _Explainer().node(pattern, node, bindings)


def explain_value(pattern: checked.ArgPattern, value, bindings: dict) -> Miss | None:
    return _Explainer().value(pattern, value, bindings, "the value")


class _Explainer:
    def __init__(self, progress: int = 0):
        self.progress = progress

    def miss(self, pattern, message: str, kind: str) -> Miss:
        return Miss(getattr(pattern, "span", None), message, self.progress, kind)

    def ok(self) -> None:
        self.progress += 1
        return None

    # --- values ----------------------------------------------------------------------------------
    def value(self, pattern, value, bindings: dict, where: str) -> Miss | None:
        if isinstance(pattern, checked.Anything):
            return self.ok()
        if isinstance(pattern, checked.Bind):
            bindings[pattern.name] = value
            return self.ok()
        if isinstance(pattern, checked.Same):
            if same_value(bindings[pattern.name], value):
                return self.ok()
            return self.miss(pattern, f"{where}: `${pattern.name}` is already "
                                      f"{_shown(bindings[pattern.name])}, but this is "
                                      f"{_shown(value)}", VARIABLE)
        if isinstance(pattern, checked.Equals):
            if same_value(pattern.value, value):
                return self.ok()
            return self.miss(pattern, f"{where}: expected the literal "
                                      f"`{format_value(pattern.value)}`, found {_shown(value)}",
                             ARGUMENT)
        if isinstance(pattern, checked.BindNode):
            miss = self.value(pattern.pattern, value, bindings, where)
            if miss is None:
                bindings[pattern.name] = value
            return miss
        if isinstance(pattern, checked.OneOf):
            return self.alternatives(pattern, value, bindings, where)
        if isinstance(pattern, checked.ListPattern):
            if not isinstance(value, (list, tuple)):
                return self.miss(pattern, f"{where}: expected a list, found {_shown(value)}",
                                 ARGUMENT)
            return self.sequence(pattern.items, pattern.rest, value, bindings, where, pattern,
                                 "item")
        if not isinstance(value, torch.fx.Node):
            return self.miss(pattern, f"{where}: expected a call of "
                                      f"`{_callee(pattern)}`, found {_shown(value)}", ARGUMENT)
        return self.node(pattern, value, bindings)

    def alternatives(self, pattern: checked.OneOf, value, bindings: dict, where: str):
        def attempt_one(attempt, index, trial):
            miss = attempt.value(pattern.options[index], value, trial, where)
            if miss is None:
                trial.update(dict.fromkeys(pattern.nones(index)))
            return miss

        best = self.first_fit(range(len(pattern.options)), bindings, attempt_one)
        if best is None:
            return None
        return Miss(best.span, f"no alternative matches; the nearest: {best.message}",
                    best.progress, best.kind)

    def sequence(self, items, rest, values, bindings, where: str, pattern, word: str):
        fixed = len(items)
        if len(values) < fixed or (rest is None and len(values) != fixed):
            expected = f"{fixed}{' or more' if rest is not None else ''}"
            return self.miss(pattern, f"{where}: expected {expected} {word}s, found "
                                      f"{len(values)}", COUNT)
        for index, (item, value) in enumerate(zip(items, values), 1):
            miss = self.value(item, value, bindings, f"{word} {index} of {where}")
            if miss is not None:
                return miss
        remaining = tuple(values[fixed:])
        if isinstance(rest, checked.BindRest):
            bindings[rest.name] = remaining
        elif isinstance(rest, checked.SameRest) and not same_value(bindings[rest.name],
                                                                   remaining):
            return self.miss(rest, f"{where}: `*${rest.name}` is already "
                                   f"{_shown(bindings[rest.name])}, but the rest is "
                                   f"{_shown(remaining)}", VARIABLE)
        return self.ok()

    # --- nodes -----------------------------------------------------------------------------------
    def node(self, pattern: checked.NodePattern, node: torch.fx.Node, bindings: dict):
        if not targets_match(pattern, node):
            return self.miss(pattern, _other_target(pattern, node), TARGET)
        self.ok()
        if pattern.target_var is not None:
            miss = self.value(pattern.target_var, node.target, bindings, f"the op of `{node.name}`")
            if miss is not None:
                return miss
        if pattern.forms is not None:
            return self.by_schema(pattern, node, bindings)
        return self.raw(pattern, node, bindings)

    def by_schema(self, pattern: checked.NodePattern, node: torch.fx.Node, bindings: dict):
        forms = [form for form in pattern.forms if form.overload is node.target]
        if not forms:
            return self.miss(pattern, f"`{node.name}` calls `{format_target(node.target)}`, "
                                      "whose arguments the pattern's do not fit", TARGET)
        return self.first_fit(forms, bindings,
                              lambda attempt, form, trial: attempt.form(form, pattern, node, trial))

    def first_fit(self, options, bindings: dict, attempt_one) -> Miss | None:
        """Try each option on a copy of the bindings; keep the first that fits (None), or return
        the miss that got furthest."""
        misses = []
        for option in options:
            trial, attempt = dict(bindings), _Explainer(self.progress)
            miss = attempt_one(attempt, option, trial)
            if miss is None:
                bindings.update(trial)
                self.progress = attempt.progress
                return None
            misses.append(miss)
        return max(misses, key=lambda m: m.progress)

    def form(self, form: checked.SchemaForm, pattern, node, bindings) -> Miss | None:
        others = {}
        callee = format_target(form.overload)
        for arg in form.args:
            param = arg.param
            value = argument_value(param, node.args, node.kwargs)
            where = f"argument `{param.name}` of `{callee}`"
            if arg.pattern is not None:
                if value is MISSING:
                    return self.miss(arg.pattern, f"{where}: `{node.name}` does not give it",
                                     ARGUMENT)
                miss = self.value(arg.pattern, value, bindings, where)
                if miss is not None:
                    return miss
            elif value is not MISSING and not (param.has_default and
                                               same_value(value, param.default)):
                if pattern.more_kwargs is None:
                    default = format_value(param.default) if param.has_default else "none"
                    return self.miss(pattern, f"{where} is {_shown(value)}; the pattern leaves "
                                              f"it out, so it must be its default ({default}): "
                                              "name it, or add `**_`", DEFAULT)
                others[param.name] = value
        return self.more_keywords(pattern, others, bindings)

    def raw(self, pattern: checked.NodePattern, node: torch.fx.Node, bindings: dict):
        named = {name for name, _ in pattern.kwargs}
        given = set(node.kwargs)
        if not named <= given:
            missing = sorted(named - given)[0]
            return self.miss(pattern, f"`{node.name}` has no keyword `{missing}`", KEYWORDS)
        if pattern.more_kwargs is None and given != named:
            extra = sorted(given - named)[0]
            return self.miss(pattern, f"`{node.name}` has the keyword `{extra}`, which the "
                                      "pattern does not name: name it, or add `**_`", KEYWORDS)
        others = {name: value for name, value in node.kwargs.items() if name not in named}
        orders = [node.args]
        if pattern.commutative and len(node.args) == 2:
            orders.append((node.args[1], node.args[0]))
        return self.first_fit(orders, bindings, lambda attempt, args, trial: attempt.arguments(
            pattern, node, args, others, trial))

    def arguments(self, pattern, node, args, others, bindings) -> Miss | None:
        callee = _callee(pattern)
        miss = self.sequence(pattern.args, pattern.rest, args, bindings,
                             f"`{node.name}` (`{callee}`)", pattern, "argument")
        if miss is not None:
            return miss
        for name, item in pattern.kwargs:
            miss = self.value(item, node.kwargs[name], bindings,
                              f"keyword `{name}` of `{callee}`")
            if miss is not None:
                return miss
        return self.more_keywords(pattern, others, bindings)

    def more_keywords(self, pattern, others: dict, bindings: dict) -> Miss | None:
        more = pattern.more_kwargs
        if isinstance(more, checked.BindRest):
            bindings[more.name] = others
        elif isinstance(more, checked.SameRest) and not same_value(bindings[more.name], others):
            return self.miss(more, f"`**${more.name}` is already {_shown(bindings[more.name])}, "
                                   f"but here the other keywords are {_shown(others)}", VARIABLE)
        return self.ok()


def _callee(pattern) -> str:
    if isinstance(pattern, checked.NodePattern):
        if pattern.target_var is not None:
            return f"${pattern.target_var.name}"
        return pattern.target if pattern.op == "call_method" else format_target(pattern.target)
    if isinstance(pattern, checked.BindNode):
        return _callee(pattern.pattern)
    return "a call"


def _other_target(pattern: checked.NodePattern, node: torch.fx.Node) -> str:
    if node.op != pattern.op:
        kind = {"call_function": "a call", "call_method": "a method call"}.get(
            pattern.op, pattern.op)
        return f"expected {kind} of `{_callee(pattern)}`, found `{node.name}`, a `{node.op}` node"
    found = node.target if node.op == "call_method" else format_target(node.target)
    if isinstance(pattern.target, OpOverloadPacket) or not hasattr(node.target, "overloadpacket"):
        return f"expected a call of `{_callee(pattern)}`, found `{node.name}`, a call of `{found}`"
    if node.target.overloadpacket is getattr(pattern.target, "overloadpacket", None):
        return (f"`{node.name}` calls the overload `{found}`; the pattern names "
                f"`{_callee(pattern)}` only (`use` the packet to take every overload)")
    return f"expected a call of `{_callee(pattern)}`, found `{node.name}`, a call of `{found}`"


def _shown(value) -> str:
    if isinstance(value, torch.fx.Node):
        return f"`{value.name}`"
    return f"`{format_value(value)}`"
