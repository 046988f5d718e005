"""Errors in the graphs rules are applied to, told in the model's own terms.

Input: problems found while reading a graph (a message and the nodes it is about). Output: a
`GraphError` whose message names each node, the module it sits in, and the line of the model's
source that made it, taken from the node's `stack_trace`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch.fx

_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)\n\s*(?P<code>[^\n]*)')


@dataclass(frozen=True)
class Problem:
    """A structural error in a graph: what is wrong and the nodes it is about."""

    message: str
    nodes: tuple[torch.fx.Node, ...]
    module: str = ""  # qualified name of the GraphModule, "" for the top


def source_line(node: torch.fx.Node) -> str | None:
    """`file:line in func: code` of the innermost frame of the node's stack trace."""
    trace = node.meta.get("stack_trace") or ""
    frames = list(_FRAME.finditer(trace))
    if not frames:
        return None
    last = frames[-1]
    return f"{last['file']}:{last['line']} in {last['func']}: {last['code'].strip()}"


def render_problem(problem: Problem) -> str:
    where = f" (in submodule `{problem.module}`)" if problem.module else ""
    lines = [f"error: {problem.message}{where}"]
    for node in problem.nodes:
        line = source_line(node)
        lines.append(f"    `{node.name}`: " + (f"from {line}" if line else "(no stack trace)"))
    return "\n".join(lines)


class GraphError(Exception):
    """A graph the rules cannot be applied to; nothing was changed. `str()` lists every problem."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(render_problem(p) for p in self.problems))
