"""Region decisions, carried out: what each region or segment becomes in the new graph.

Input: one region or segment of a region tree, its decision (`engine.rewriting.decide`), and
the builder of the graph it sits in. Output: nodes in that graph. Nothing is decided here and
nothing can be refused: every choice and every problem was settled before building began.

- `outline with hop(...)`: a submodule called through `hop` (`engine.rewriting.outline`);
- `inline`: the markers go, the nodes stay;
- `keep`, or no rule: the region stays as it is, its markers copied;
- `erase`: the markers and the nodes go.

A piece of a bracket that a segment marker cut gets copies of the bracket's opener and closer,
re-entering and leaving it as torch's `split_module` does; a continued segment gets a copy of
the marker whose state it carries on.
"""

from __future__ import annotations

from ..language import checked
from ..matching.regions import Region, Segment
from .decide import RegionDecisions
from .emit import GraphBuilder
from .outline import outline
from .torch_names import INLINE, OUTLINE, Plan


class Rewriter:
    """The handler `GraphBuilder.emit` hands regions and segments to."""

    def __init__(self, decisions: RegionDecisions, contexts: dict):
        self.decisions = decisions
        # id(outlined submodule) -> the context its nodes run in: DAG rules read it there
        self.contexts = contexts

    def __call__(self, builder: GraphBuilder, item: Region | Segment, partition: int) -> None:
        decision = self.decisions[item]
        action = decision.action
        if isinstance(action, checked.Keep):
            self._leave(builder, item)
        elif isinstance(action, checked.Outline):
            outline(builder, decision, partition, self)
        elif isinstance(action, checked.Inline):
            builder.emit(item.items, self)
        # erase: nothing of it is built

    def plan(self, item: Region | Segment) -> Plan:
        """What becomes of `item`, as far as the names torch would give go."""
        decision = self.decisions[item]
        if isinstance(decision.action, checked.Outline):
            return Plan(OUTLINE, decision.interface.outputs, decision.action.hop)
        if isinstance(decision.action, checked.Inline):
            return Plan(INLINE)
        return Plan(type(decision.action).__name__.lower())

    def _leave(self, builder: GraphBuilder, item: Region | Segment) -> None:
        if isinstance(item, Segment):
            if item.continued:  # a fresh copy: the original marker lies in an earlier segment
                builder.copy_of(item.marker, builder.value)
            else:
                builder.copy(item.marker)
            builder.emit(item.items, self)
            return
        opened = builder.copy(item.opener) if item.first else \
            builder.copy_of(item.opener, builder.value)
        builder.emit(item.items, self)
        closed = builder.copy_of(  # this piece's closer closes this piece's opener
            item.closer, lambda arg: opened if arg is item.opener else builder.value(arg))
        if item.last:
            builder.env[item.closer] = closed


