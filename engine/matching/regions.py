"""One graph's nodes -> its region tree.

Input: the nodes of one FX graph, in order, and the region rules compiled into an index.
Output: a list of items, each a plain node, a bracketed `Region` or a `Segment` (whose own items
hold what is nested in them), plus the problems found: openers never closed, closers with no
opener, regions that cross. A single pass with one stack; each node costs one dict lookup unless
its target is a marker.

Two kinds of structure:
- Brackets (`opener ... closer`) must nest, whatever rule they belong to.
- Segments (`marker ...`) run from a marker to the next marker of the same kind, or to the end of
  the graph. Their marker sets a state that holds until the next one, as
  `torch._C._set_grad_enabled` does, so a segment is never cut short by a bracket; a marker
  cuts what is open where it stands instead: its kind's open segment and everything opened
  after that (with none open, every open bracket). A bracket it cuts is split into pieces, the
  one before the marker and one re-opened inside the new segment (as torch's `split_module`
  re-enters autocast in each partition); a segment of another kind it cuts goes on inside the
  new one as a *continuation*. So segments hold brackets, never the other way round, and a
  `no_grad` inside an autocast region comes out as eager runs it.

Which rule a region gets is decided later, when its context is known (`where` guards may read
it); here each keeps its candidates: the rules whose patterns it matches, in file order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator, Union

import torch.fx
from torch._ops import OpOverloadPacket

from ..language import checked
from ..language.names import op_key
from ..graphs.errors import Problem
from .match import Matcher, compile_node


@dataclass(frozen=True)
class CompiledRule:
    rule: checked.Rule
    opener: Matcher
    closer: Matcher | None


@dataclass
class BracketKind:
    """Every rule whose regions open with `opener` and close with `closer`, in file order."""

    opener: object
    closer: object
    link: int | None
    rules: list[CompiledRule] = field(default_factory=list)


@dataclass
class SegmentKind:
    """Every rule whose segments start at a call to `marker`, in file order."""

    marker: object
    rules: list[CompiledRule] = field(default_factory=list)


@dataclass(frozen=True)
class Candidate:
    """A rule whose patterns a region matched, and what they bound."""

    rule: checked.Rule
    bindings: dict


@dataclass
class Bracket:
    """One opener and its closer in the graph; segment markers may cut it into pieces."""

    kind: BracketKind
    opener: torch.fx.Node
    candidates: list[Candidate]  # by the opener; narrowed by the closer when it comes
    closer: torch.fx.Node | None = None


class _Structure:
    """What regions and segments share: items inside, the nodes those hold, the set of them."""

    items: list["Item"]

    def nodes(self) -> Iterator[torch.fx.Node]:
        """The graph's nodes strictly inside, nested markers included, in graph order."""
        return _nodes(self.items)

    @cached_property
    def inside(self) -> frozenset[torch.fx.Node]:
        """The nodes an outlined submodule holds: all but `get_attr`s, which float."""
        return frozenset(node for node in self.nodes() if node.op != "get_attr")


@dataclass(eq=False)
class Region(_Structure):
    """A bracket, or the piece of one between two cuts. `first`: this piece holds the opener
    node (else it re-opens the bracket); `last`: it holds the closer node (else it is cut)."""

    bracket: Bracket
    first: bool
    last: bool
    items: list["Item"]

    @property
    def opener(self) -> torch.fx.Node:
        return self.bracket.opener

    @property
    def closer(self) -> torch.fx.Node:
        return self.bracket.closer

    @property
    def candidates(self) -> list[Candidate]:
        return self.bracket.candidates

    @property
    def markers(self) -> tuple[torch.fx.Node, ...]:
        """The marker nodes of the graph that this piece holds."""
        return (self.opener,) * self.first + (self.closer,) * self.last

    @property
    def origin(self) -> torch.fx.Node:
        """The node a report or an error points at."""
        return self.opener


@dataclass(eq=False)
class Segment(_Structure):
    """From a marker to the next of its kind. `continued`: the marker is not here: it was set
    before a marker of another kind cut in, and its state goes on in this segment."""

    kind: SegmentKind
    marker: torch.fx.Node
    continued: bool
    candidates: list[Candidate]
    items: list["Item"]

    @property
    def markers(self) -> tuple[torch.fx.Node, ...]:
        return () if self.continued else (self.marker,)

    @property
    def origin(self) -> torch.fx.Node:
        return self.marker


Item = Union[torch.fx.Node, Region, Segment]
# Regions inside regions become submodules inside submodules, built and run by recursion (as
# torch's passes build them): past this depth, a located error rather than Python's stack.
MAX_DEPTH = 100


def _nodes(items: list[Item]) -> Iterator[torch.fx.Node]:
    for item in items:
        if isinstance(item, Region):
            yield from item.markers[:item.first]
            yield from item.nodes()
            yield from item.markers[item.first:]
        elif isinstance(item, Segment):
            yield from item.markers
            yield from item.nodes()
        else:
            yield item


class StructureIndex:
    """Region rules indexed by the targets of their markers.

    A marker `use`d as an op packet stands for each of its overloads, an overload only for
    itself, as in DAG patterns: every target a marker pattern can match is a key here, so that
    the scan still costs one dict lookup a node. Rules whose markers are one op (an overload
    and its packet alike) share a kind."""

    def __init__(self, rules: list[checked.Rule]):
        self.by_opener: dict[object, BracketKind] = {}  # each target an opener can have
        self.by_closer: dict[object, BracketKind] = {}
        self.segments: dict[object, SegmentKind] = {}
        self.bracket_kinds: dict[object, BracketKind] = {}  # by the opener's op
        self.segment_kinds: dict[object, SegmentKind] = {}  # by the marker's op
        for rule in rules:
            if rule.is_dag:
                continue
            pattern = rule.pattern
            closer = None if pattern.is_segment else compile_node(pattern.closer)
            compiled = CompiledRule(rule, compile_node(pattern.opener), closer)
            opener = op_key(pattern.opener.target)
            if pattern.is_segment:
                kind = self.segment_kinds.setdefault(opener, SegmentKind(opener))
                for target in _targets(pattern.opener.target):
                    self.segments.setdefault(target, kind)
            else:
                kind = self.bracket_kinds.get(opener)
                if kind is None:
                    kind = BracketKind(opener, op_key(pattern.closer.target), pattern.link)
                    self.bracket_kinds[opener] = kind
                for target in _targets(pattern.opener.target):
                    self.by_opener.setdefault(target, kind)
                for target in _targets(pattern.closer.target):
                    self.by_closer.setdefault(target, kind)
            kind.rules.append(compiled)

    def conflicts(self, rules: list[checked.Rule]) -> list[tuple[checked.Rule, str]]:
        """Rules whose markers cannot share one stack with the others' (as rule, message)."""
        closers = {}  # the closer's op -> the first kind closing with it
        for kind in self.bracket_kinds.values():
            closers.setdefault(kind.closer, kind)
        found = []
        for rule in rules:
            if rule.is_dag:
                continue
            pattern = rule.pattern
            opener = op_key(pattern.opener.target)
            role = "segment" if pattern.is_segment else "opener"
            others = self._roles(opener, closers) - {role}
            if pattern.is_segment:
                if others:
                    found.append((rule, "starts segments with a call that also delimits brackets"))
                continue
            by_opener = self.bracket_kinds[opener]
            closer = op_key(pattern.closer.target)
            by_closer = closers.get(closer)
            if (closer, pattern.link) != (by_opener.closer, by_opener.link):
                found.append((rule, f"opens regions with the same call as rule "
                                    f"`{by_opener.rules[0].rule.name}` but closes them "
                                    "differently"))
            elif by_closer is not by_opener:
                found.append((rule, f"closes regions with the same call as rule "
                                    f"`{by_closer.rules[0].rule.name}` but opens them differently"))
            elif "segment" in others:
                found.append((rule, "opens regions with a call that starts segments"))
            elif others:
                found.append((rule, "opens regions with a call that closes other regions"))
        return found

    def _roles(self, key, closers) -> set[str]:
        roles = {"opener"} if key in self.bracket_kinds else set()
        roles |= {"closer"} if key in closers else set()
        return roles | ({"segment"} if key in self.segment_kinds else set())

    @property
    def markers(self) -> frozenset:
        """Every target a marker node can have."""
        return frozenset(self.by_opener) | frozenset(self.by_closer) | frozenset(self.segments)


def _targets(target) -> list:
    """The node targets a marker pattern's target matches: an op packet's overloads (and the
    packet, should a graph name it), else the target itself."""
    if isinstance(target, OpOverloadPacket):
        return [target, *(getattr(target, name) for name in target.overloads())]
    return [target]


# --- the scan ------------------------------------------------------------------------------
@dataclass
class _OpenBracket:
    bracket: Bracket
    first: bool
    items: list[Item] = field(default_factory=list)


@dataclass
class _OpenSegment:
    kind: SegmentKind
    marker: torch.fx.Node
    continued: bool
    candidates: list[Candidate]
    items: list[Item] = field(default_factory=list)


class _Scanner:
    def __init__(self, index: StructureIndex):
        self.index = index
        self.stack: list[_OpenBracket | _OpenSegment] = []  # outermost first
        self.top: list[Item] = []
        self.problems: list[Problem] = []

    def items(self) -> list[Item]:
        return self.stack[-1].items if self.stack else self.top

    def scan(self, nodes) -> list[Item]:
        index = self.index
        for node in nodes:
            if node.op == "call_function":
                target = node.target
                if target in index.segments:
                    self.cut(index.segments[target], node)
                    continue
                kind = index.by_opener.get(target)
                if kind is not None:
                    if len(self.stack) == MAX_DEPTH:
                        self.problems.append(Problem(
                            f"`{node.name}` opens a region {MAX_DEPTH + 1} deep: regions and "
                            f"segments nest at most {MAX_DEPTH} deep", (node,)))
                    bracket = Bracket(kind, node, _candidates(kind.rules, node))
                    self.stack.append(_OpenBracket(bracket, first=True))
                    continue
                kind = index.by_closer.get(target)
                if kind is not None:
                    self.close_bracket(kind, node)
                    continue
            elif node.op == "output":
                self.end()
            self.items().append(node)
        self.end()
        return self.top

    def end(self) -> None:
        """The end of the graph: segments end; a bracket still open is an error."""
        for frame in self.stack:
            if isinstance(frame, _OpenBracket):
                opener = frame.bracket.opener
                self.problems.append(Problem(
                    f"`{opener.name}` opens a region that is never closed", (opener,)))
        self.stack = [frame for frame in self.stack if isinstance(frame, _OpenSegment)]
        self._close_from(0)

    # --- segments ----------------------------------------------------------------------------
    def cut(self, kind: SegmentKind, marker: torch.fx.Node) -> None:
        """A marker ends its kind's open segment, and whatever was opened after that (or, with
        none open, every open bracket); its segment starts; what it ended re-opens inside."""
        depth = next((d for d, frame in enumerate(self.stack)
                      if isinstance(frame, _OpenSegment) and frame.kind is kind), None)
        if depth is None:
            depth = next((d for d, frame in enumerate(self.stack)
                          if isinstance(frame, _OpenBracket)), len(self.stack))
        was_open = self._close_from(depth)
        candidates = _candidates(kind.rules, marker)
        self._check_marker_users(marker, candidates, ())
        self.stack.append(_OpenSegment(kind, marker, False, candidates))
        for frame in was_open:
            if isinstance(frame, _OpenBracket):
                self.stack.append(_OpenBracket(frame.bracket, first=False))
            elif frame.kind is not kind:
                self.stack.append(_OpenSegment(frame.kind, frame.marker, True, frame.candidates))

    def _close_from(self, depth: int) -> list[_OpenBracket | _OpenSegment]:
        """Closes the frames from `depth` up, each into the one below; returns them, outermost
        first."""
        closed = self.stack[depth:]
        del self.stack[depth:]
        for position in range(len(closed) - 1, -1, -1):
            frame = closed[position]
            parent = closed[position - 1].items if position > 0 else self.items()
            if isinstance(frame, _OpenBracket):
                parent.append(Region(frame.bracket, frame.first, False, frame.items))
            else:
                parent.append(Segment(frame.kind, frame.marker, frame.continued, frame.candidates,
                                      frame.items))
        return closed

    # --- brackets ----------------------------------------------------------------------------
    def close_bracket(self, kind: BracketKind, closer: torch.fx.Node) -> None:
        depth = self._bracket_closed_by(kind, closer)
        if depth is None:
            self.problems.append(Problem(f"`{closer.name}` closes a region that is not open",
                                         (closer,)))
            self.items().append(closer)
            return
        if depth != len(self.stack) - 1:  # cuts re-open brackets inside segments, so only
            inner = self.stack[depth + 1].bracket  # brackets can lie above a bracket
            bracket = self.stack[depth].bracket
            self.problems.append(Problem(
                f"regions cross: `{closer.name}` closes the region of `{bracket.opener.name}` "
                f"while `{inner.opener.name}`, opened inside it, is still open",
                (closer, bracket.opener, inner.opener)))
            del self.stack[depth]  # keep the inner regions open, so their closers report nothing more
            return
        frame = self.stack.pop()
        bracket = frame.bracket
        bracket.closer = closer
        bracket.candidates = [candidate for candidate in bracket.candidates
                              if _closes(candidate, closer, kind)]
        self._check_marker_users(bracket.opener, bracket.candidates, (closer,))
        self._check_marker_users(closer, bracket.candidates, ())
        self.items().append(Region(bracket, frame.first, True, frame.items))

    def _bracket_closed_by(self, kind: BracketKind, closer: torch.fx.Node) -> int | None:
        """Index in the stack of the bracket this closer ends, or None: the innermost of its
        kind (that its link names), searched from the top, so a well-nested closer costs one
        look however deep it is."""
        linked = kind.link is not None
        opened = closer.args[kind.link] if linked and len(closer.args) > kind.link else None
        for depth in range(len(self.stack) - 1, -1, -1):
            frame = self.stack[depth]
            if (isinstance(frame, _OpenBracket) and frame.bracket.kind is kind
                    and (not linked or frame.bracket.opener is opened)):
                return depth
        return None

    def _check_marker_users(self, marker, candidates, allowed) -> None:
        """A marker that a rule removes may only be used by its own closer."""
        if not candidates:
            return
        for user in marker.users:
            if user not in allowed:
                self.problems.append(Problem(
                    f"`{user.name}` uses `{marker.name}`, a region marker that rule "
                    f"`{candidates[0].rule.name}` removes", (user, marker)))


def _candidates(rules: list[CompiledRule], opener: torch.fx.Node) -> list[Candidate]:
    found = []
    for compiled in rules:
        bindings: dict = {}
        if compiled.opener(opener, bindings, []):
            if compiled.rule.pattern.binder is not None:
                bindings[compiled.rule.pattern.binder] = opener
            found.append(Candidate(compiled.rule, bindings))
    return found


def _closes(candidate: Candidate, closer: torch.fx.Node, kind: BracketKind) -> bool:
    compiled = next(c for c in kind.rules if c.rule is candidate.rule)
    return compiled.closer(closer, candidate.bindings, [])


def find_regions(nodes, index: StructureIndex) -> tuple[list[Item], list[Problem]]:
    scanner = _Scanner(index)
    items = scanner.scan(nodes)
    return items, scanner.problems
