"""A declarative rewrite engine for PyTorch FX graphs: rules in `.rw` files, applied in one pass.

    import engine
    rules = engine.load_rules("rules/autocast.rw")
    program = rules.apply_program(engine.capture(model, args))
    print(engine.dump(program))

The pipeline, one module a stage: `syntax` (text -> AST) -> `sema` (AST -> checked rules) ->
`match` and `regions` (compiled matchers, region trees) -> `outline` (the action) -> `driver`
(modules, signatures, reports) -> `cli`.
"""

import warnings

with warnings.catch_warnings():
    # torch warns at import when NumPy is absent; nothing here needs NumPy. Scoped, not global.
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import torch  # noqa: F401

from .backend import backend
from .capture import capture
from .diagnostics import RuleError
from .driver import Report, Rewrite, RuleSet
from .dump import dump
from .graph_errors import GraphError
from .load import check_rules, load_rules, rules_from_text

__all__ = [
    "GraphError",
    "Report",
    "Rewrite",
    "RuleError",
    "RuleSet",
    "backend",
    "capture",
    "check_rules",
    "dump",
    "load_rules",
    "rules_from_text",
]
