"""A pytest plugin for `scripts/torch_pass_tests`: proof that the rules, not torch, ran.

Input: a pytest run of PyTorch's tests with FX_REWRITE_EXPORT_RULES set. Output: the same run,
in which torch's own HOP pass helpers raise if anything calls them (a silent fall-back to
torch's passes fails the test that hit it), and a last line counting how often the installed
rules ran as torch.export's passes (in its set-grad pass's place; the autocast pass's place
holds a no-op, the rules having done both).
"""

from __future__ import annotations

import engine
import torch._export.passes.replace_autocast_with_hop_pass as autocast_pass
import torch._export.passes.replace_set_grad_with_hop_pass as set_grad_pass
import torch._export.passes.replace_with_hop_pass_util as pass_util

# torch's split-and-replace machinery: under the rules none of it may run.
TORCH_HELPERS = {
    set_grad_pass: ("_replace_with_hop", "_remove_set_grad_and_inline",
                    "_sequential_split_and_maybe_inline_subgraphs"),
    autocast_pass: ("_replace_with_hop", "_split_autocast",
                    "_sequential_split_and_maybe_inline_subgraphs"),
    pass_util: ("_replace_with_hop_helper", "_sequential_split_and_maybe_inline_subgraphs_helper",
                "_replace_with_hop_pass_helper"),
}
runs = 0


def pytest_configure(config) -> None:
    rules = engine.installed_torch_export_rules()
    if rules is None:
        raise RuntimeError("FX_REWRITE_EXPORT_RULES is not set: torch.export runs its own passes")
    for module, names in TORCH_HELPERS.items():
        for name in names:
            setattr(module, name, _refuse(f"{module.__name__}.{name}"))
    installation = set_grad_pass.replace_set_grad_with_hop_pass.__self__
    installation.rules.apply = _counted(installation.rules.apply)


def _refuse(name: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"torch's own pass helper {name} ran, not the rules")
    return refuse


def _counted(apply):
    def run(*args, **kwargs):
        global runs
        runs += 1
        return apply(*args, **kwargs)
    return run


def pytest_terminal_summary(terminalreporter) -> None:
    terminalreporter.write_line(
        f"{engine.installed_torch_export_rules()} ran {runs} times as torch.export's HOP passes; "
        "torch's pass helpers never ran")
