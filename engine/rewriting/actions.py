"""Regions and segments -> what their rules say to build.

Input: one region or segment of a region tree, the builder of the graph it sits in, and the
context there. Output: nodes in that graph. The first candidate rule (in file order) whose
`where` guards hold in the context is the one applied:

- `outline with hop(...)`: a submodule called through `hop` (`engine.rewriting.outline`); a segment's
  body is built in the state its marker sets;
- `inline`: the markers go, the nodes stay, in the state of the surrounding body;
- `keep`: the region stays as it is, as one no rule takes;
- `erase`: the markers and the nodes go; an error if anything after uses a value made there.

A region kept, or that no rule takes, stays as it is, its markers copied. A piece of a bracket
that a segment marker cut gets copies of the bracket's opener and closer, re-entering and
leaving it as torch's `split_module` does; a continued segment gets a copy of the marker whose
state it carries on.
"""

from __future__ import annotations

from ..language import checked
from .emit import GraphBuilder
from ..graphs.errors import GraphError, Problem
from ..matching.guards import Context, holds
from .outline import Outliner
from ..matching.regions import Region, Segment


class Rewriter:
    """The handler `GraphBuilder.emit` hands regions and segments to."""

    def __init__(self, markers: frozenset, record, module_path: str):
        self.outliner = Outliner(markers)
        self.record = record  # callback(rule, item) for the report
        self.module_path = module_path

    def __call__(self, builder: GraphBuilder, item: Region | Segment, partition: int,
                 context: Context) -> None:
        inner = context
        if isinstance(item, Segment):
            inner = context.with_state(item.kind.marker, tuple(item.marker.args))
        choice = next((c for c in item.candidates if holds(c.rule.guards, c.bindings, context)),
                      None)
        if choice is not None:
            self.record(choice.rule, item)
        action = choice.rule.action if choice is not None else checked.Keep(None)
        if isinstance(action, checked.Keep):
            self._leave(builder, item, inner)
        elif isinstance(action, checked.Outline):
            self.outliner(builder, item, action, choice.bindings, partition, inner, self)
        elif isinstance(action, checked.Inline):
            builder.emit(item.items, self, context)
        else:
            self._erase(builder, item, choice.rule)

    def _leave(self, builder: GraphBuilder, item: Region | Segment, inner: Context) -> None:
        if isinstance(item, Segment):
            if item.continued:  # a fresh copy: the original marker lies in an earlier segment
                builder.graph.node_copy(item.marker, builder.value)
            else:
                builder.copy(item.marker)
            builder.emit(item.items, self, inner)
            return
        opened = builder.copy(item.opener) if item.first else \
            builder.graph.node_copy(item.opener, builder.value)
        builder.emit(item.items, self, inner)
        closed = builder.graph.node_copy(  # this piece's closer closes this piece's opener
            item.closer, lambda arg: opened if arg is item.opener else builder.value(arg))
        if item.last:
            builder.env[item.closer] = closed

    def _erase(self, builder: GraphBuilder, item: Region | Segment, rule: checked.Rule) -> None:
        used_after = self.outliner.outputs(item, builder.positions)
        if used_after:
            value = used_after[0]
            user = next(u for u in value.users if u not in item.inside)
            raise GraphError([Problem(
                f"rule `{rule.name}` erases `{item.origin.name}` and what follows it, but "
                f"`{user.name}` uses `{value.name}`, made there", (item.origin, user),
                self.module_path)])
