"""One graph's nodes -> its region tree.

Input: the nodes of one FX graph, in order, and the compiled region rules. Output: a list of
items, each a plain node or a matched `Region` (whose own items hold the regions nested in it),
plus the problems found: openers never closed, closers with no opener, regions that cross.
A single pass with a stack; each node costs one dict lookup unless its target opens or closes
a region. Brackets of every kind share the stack, so kinds must nest inside each other too.

A bracket whose opener matches no rule is transparent: its markers stay plain nodes in place,
and the regions inside it are still found. Only matched regions are outlined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator, Union

import torch.fx

from . import checked
from .graph_errors import Problem
from .match import Matcher, compile_call


@dataclass(frozen=True)
class CompiledRule:
    rule: checked.Rule
    opener: Matcher
    closer: Matcher


@dataclass
class BracketKind:
    """Every rule whose regions open with `opener` and close with `closer`, in file order."""

    opener: object
    closer: object
    link: int | None
    rules: list[CompiledRule] = field(default_factory=list)


@dataclass
class Region:
    rule: checked.Rule
    opener: torch.fx.Node
    closer: torch.fx.Node
    bindings: dict
    items: list["Item"]

    @cached_property
    def inside(self) -> frozenset[torch.fx.Node]:
        """The nodes the region's submodule will hold: all but `get_attr`s, which float."""
        return frozenset(node for node in self.nodes() if node.op != "get_attr")

    def nodes(self) -> Iterator[torch.fx.Node]:
        """The nodes strictly inside, nested markers included, in graph order."""
        for item in self.items:
            if isinstance(item, Region):
                yield item.opener
                yield from item.nodes()
                yield item.closer
            else:
                yield item


Item = Union[torch.fx.Node, Region]


class BracketIndex:
    """Region rules indexed by the targets that open and close their regions."""

    def __init__(self, rules: list[checked.Rule]):
        self.by_opener: dict[object, BracketKind] = {}
        self.by_closer: dict[object, BracketKind] = {}
        for rule in rules:
            pattern = rule.pattern
            kind = self.by_opener.get(pattern.opener.target)
            if kind is None:
                kind = BracketKind(pattern.opener.target, pattern.closer.target, pattern.link)
                self.by_opener[kind.opener] = kind
                self.by_closer.setdefault(kind.closer, kind)
            kind.rules.append(CompiledRule(rule, compile_call(pattern.opener),
                                           compile_call(pattern.closer)))

    def conflicts(self, rules: list[checked.Rule]) -> list[tuple[checked.Rule, str]]:
        """Rules whose brackets cannot share one stack with the others' (as rule, message)."""
        found = []
        for rule in rules:
            pattern = rule.pattern
            by_opener = self.by_opener[pattern.opener.target]
            by_closer = self.by_closer.get(pattern.closer.target)
            if (pattern.closer.target, pattern.link) != (by_opener.closer, by_opener.link):
                found.append((rule, f"opens regions with the same call as rule "
                                    f"`{by_opener.rules[0].rule.name}` but closes them differently"))
            elif by_closer is not by_opener:
                found.append((rule, f"closes regions with the same call as rule "
                                    f"`{by_closer.rules[0].rule.name}` but opens them differently"))
            elif pattern.opener.target in self.by_closer:
                found.append((rule, "opens regions with a call that closes other regions"))
        return found

    @property
    def markers(self) -> frozenset:
        return frozenset(self.by_opener) | frozenset(self.by_closer)


@dataclass
class _Frame:
    kind: BracketKind
    opener: torch.fx.Node
    match: CompiledRule | None
    bindings: dict
    items: list[Item] = field(default_factory=list)


def find_regions(nodes, index: BracketIndex) -> tuple[list[Item], list[Problem]]:
    top: list[Item] = []
    stack: list[_Frame] = []
    problems: list[Problem] = []
    by_opener, by_closer = index.by_opener, index.by_closer
    for node in nodes:
        if node.op == "call_function":
            target = node.target
            kind = by_opener.get(target)
            if kind is not None:
                stack.append(_open(kind, node))
                continue
            kind = by_closer.get(target)
            if kind is not None:
                _close(kind, node, stack, top, problems)
                continue
        (stack[-1].items if stack else top).append(node)
    for frame in stack:
        problems.append(Problem(f"`{frame.opener.name}` opens a region that is never closed",
                                (frame.opener,)))
    return top, problems


def _open(kind: BracketKind, node: torch.fx.Node) -> _Frame:
    for compiled in kind.rules:
        bindings: dict = {}
        if compiled.opener(node, bindings):
            if compiled.rule.pattern.binder is not None:
                bindings[compiled.rule.pattern.binder] = node
            return _Frame(kind, node, compiled, bindings)
    return _Frame(kind, node, None, {})


def _close(kind, node, stack: list[_Frame], top: list[Item], problems: list[Problem]) -> None:
    depth = _frame_closed_by(kind, node, stack)
    if depth is None:
        problems.append(Problem(f"`{node.name}` closes a region that is not open", (node,)))
        (stack[-1].items if stack else top).append(node)
        return
    if depth != len(stack) - 1:
        inner = stack[depth + 1]
        problems.append(Problem(
            f"regions cross: `{node.name}` closes the region of `{stack[depth].opener.name}` "
            f"while `{inner.opener.name}`, opened inside it, is still open",
            (node, stack[depth].opener, inner.opener)))
        del stack[depth]  # keep the inner regions open, so their closers report nothing more
        return
    _finish(stack.pop(), node, stack, top, problems)


def _frame_closed_by(kind: BracketKind, node: torch.fx.Node, stack: list[_Frame]) -> int | None:
    """Index in the stack of the frame this closer ends, or None."""
    if kind.link is None:
        depths = [i for i, frame in enumerate(stack) if frame.kind is kind]
        return depths[-1] if depths else None
    opened = node.args[kind.link] if len(node.args) > kind.link else None
    for depth in range(len(stack) - 1, -1, -1):
        if stack[depth].opener is opened and stack[depth].kind is kind:
            return depth
    return None


def _finish(frame: _Frame, closer: torch.fx.Node, stack: list[_Frame], top: list[Item],
            problems: list[Problem]) -> None:
    parent = stack[-1].items if stack else top
    bindings = dict(frame.bindings)
    if frame.match is not None and frame.match.closer(closer, bindings):
        # The markers disappear, so nothing but the closer may use the opener's value.
        strays = [(user, frame.opener) for user in frame.opener.users if user is not closer]
        strays += [(user, closer) for user in closer.users]
        for user, marker in strays:
            problems.append(Problem(
                f"`{user.name}` uses `{marker.name}`, a region marker that rule "
                f"`{frame.match.rule.name}` removes", (user, marker)))
        parent.append(Region(frame.match.rule, frame.opener, closer, bindings, frame.items))
        return
    # Not a match: the markers stay where they are, with what they held between them.
    parent.append(frame.opener)
    parent.extend(frame.items)
    parent.append(closer)
