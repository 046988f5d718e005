"""A declarative rewrite engine for PyTorch FX graphs: rules in `.rw` files, applied in one pass.

    import engine
    rules = engine.load_rules("rules/autocast.rw")
    program = rules.apply_program(engine.capture(model, args))
    print(engine.dump(program))

The packages follow the pipeline, data flowing one way:

    language/   text -> AST with spans -> checked rules (names, variables, schemas, diagnostics)
    matching/   checked rules + a graph -> compiled matchers, region trees, DAG matches, guards
    rewriting/  matches -> decisions (rule, bindings, footprint) -> new graphs; the driver
    frontends/  the Python API, the command line, the torch.compile backend, model capture
    graphs/     what every stage shares about FX graphs: values, module trees, dumps, errors
    tools/      the rule author's tools beside the pipeline: explain
"""

import warnings

with warnings.catch_warnings():
    # torch warns at import when NumPy is absent; nothing here needs NumPy. Scoped, not global.
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import torch  # noqa: F401

from .frontends.api import check_rules, load_rules, rules_from_text
from .frontends.backend import backend
from .frontends.capture import capture
from .frontends.pt2 import Pt2Error, load_program
from .frontends.torch_export import (install_torch_export_passes, installed_torch_export_rules,
                                     torch_export_passes, uninstall_torch_export_passes)
from .graphs.dump import dump
from .graphs.errors import GraphError
from .graphs.parse import GraphTextError, load_graph, parse_graph
from .language.diagnostics import RuleError
from .language.effects import allowed_effects
from .rewriting.driver import Report, Rewrite, RuleSet

__all__ = [
    "allowed_effects",
    "GraphError",
    "GraphTextError",
    "Pt2Error",
    "Report",
    "Rewrite",
    "RuleError",
    "RuleSet",
    "backend",
    "capture",
    "check_rules",
    "dump",
    "load_graph",
    "load_program",
    "load_rules",
    "parse_graph",
    "rules_from_text",
    "install_torch_export_passes",
    "installed_torch_export_rules",
    "torch_export_passes",
    "uninstall_torch_export_passes",
]
