"""Rules as a `torch.compile` backend: Dynamo's graphs, rewritten, then compiled by another.

    model = torch.compile(model, backend=engine.backend("rules/export.rw"))

Input: the GraphModule Dynamo hands a backend (torch-level ops such as `call_method sin` and
`operator.add`, the same autocast and grad-mode markers as torch.export's raw graphs, fake
values in `meta["example_value"]`). Output: what the inner backend (default: inductor) makes of
the rewritten graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Union

import torch

from ..rewriting.driver import RuleSet
from .api import load_rules

Rules = Union[RuleSet, str, Path]


def backend(rules: Rules, inner: Union[str, Callable] = "inductor") -> Callable:
    """A backend for `torch.compile(..., backend=...)` that applies `rules` (a RuleSet or the
    path of a rule file), then passes the graph to `inner` (a backend or its registered name)."""
    rule_set = rules if isinstance(rules, RuleSet) else load_rules(rules)

    def compile_with_rules(gm: torch.fx.GraphModule, example_inputs):
        rewritten, _ = rule_set.apply(gm)
        compiler = torch._dynamo.lookup_backend(inner) if isinstance(inner, str) else inner
        return compiler(rewritten, example_inputs)

    compile_with_rules.__name__ = f"rules_then_{getattr(inner, '__name__', inner)}"
    return compile_with_rules
