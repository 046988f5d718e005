"""The rules as torch.export's own HOP passes: a drop-in, so export code stays as it is.

Input: a rule file (default: the bundled `rules/export.rw`). Output: while installed,
`torch.export.export` runs the rules where it would run its two passes,
`replace_set_grad_with_hop_pass` and then `replace_autocast_with_hop_pass` (torch/export/_trace.py
imports both from their modules at each export, which is where they are replaced). The rules do
both passes' work in one: they take the first one's place, and the second passes its graph on.

Three ways in:
- `with engine.torch_export_passes(rules=...):` for a block; nests, and restores what was there
  before on exit, also when the block raises;
- `engine.install_torch_export_passes(rules=...)` for the rest of the process
  (`uninstall_torch_export_passes()` undoes it);
- the environment variable `FX_REWRITE_EXPORT_RULES` (`1` for the bundled rules, or a rule
  file's path), read when torch is imported (`engine_autoload`, beside the package), so that
  a program that never imports `engine` exports with the rules.
"""

from __future__ import annotations

import contextlib
import functools
from importlib import resources
from pathlib import Path

import torch._export.passes.replace_autocast_with_hop_pass as _autocast_pass
import torch._export.passes.replace_set_grad_with_hop_pass as _set_grad_pass

TORCH_PASSES = (_set_grad_pass.replace_set_grad_with_hop_pass,
                _autocast_pass.replace_autocast_with_hop_pass)


def bundled_rules(name: str = "export.rw") -> Path:
    """A rule file shipped with the package (`rules/` of the repository)."""
    return Path(str(resources.files("engine.rules").joinpath(name)))


@functools.lru_cache(maxsize=None)
def _rule_set(path: Path):
    from .api import load_rules

    return load_rules(path)


class _Passes:
    """One installation: the rules in the first pass's place, the second a no-op."""

    def __init__(self, rules: str | Path | None):
        self.path = Path(rules).resolve() if rules is not None else bundled_rules()
        self.rules = _rule_set(self.path)  # loaded now: a bad rule file fails here, not in export

    def set_grad_pass(self, gm, graph_signature):
        return self.rules.apply(gm, graph_signature)

    @staticmethod
    def autocast_pass(gm, graph_signature):
        return gm, graph_signature  # done by the rules in the first pass's place

    def install(self) -> tuple:
        """Put this installation in; the passes it replaces, to put back."""
        previous = (_set_grad_pass.replace_set_grad_with_hop_pass,
                    _autocast_pass.replace_autocast_with_hop_pass)
        _set_grad_pass.replace_set_grad_with_hop_pass = self.set_grad_pass
        _autocast_pass.replace_autocast_with_hop_pass = self.autocast_pass
        return previous


def _restore(previous: tuple) -> None:
    _set_grad_pass.replace_set_grad_with_hop_pass, \
        _autocast_pass.replace_autocast_with_hop_pass = previous


@contextlib.contextmanager
def torch_export_passes(rules: str | Path | None = None):
    """Within the block, `torch.export.export` runs `rules` (default: the bundled
    `rules/export.rw`) instead of its HOP passes; on exit, whatever was there before."""
    previous = _Passes(rules).install()
    try:
        yield
    finally:
        _restore(previous)


def install_torch_export_passes(rules: str | Path | None = None) -> None:
    """From now on in this process, `torch.export.export` runs `rules` instead of its passes."""
    _Passes(rules).install()


def uninstall_torch_export_passes() -> None:
    """torch's own passes again."""
    _restore(TORCH_PASSES)


def installed_torch_export_rules() -> Path | None:
    """The rule file `torch.export.export` runs now, or None when it runs torch's passes."""
    current = _set_grad_pass.replace_set_grad_with_hop_pass
    owner = getattr(current, "__self__", None)
    return owner.path if isinstance(owner, _Passes) else None


def install_from_environment(value: str | None) -> None:
    """`FX_REWRITE_EXPORT_RULES`: unset, empty or `0` leaves torch's passes; `1` installs the
    bundled rules; anything else is a rule file's path."""
    if value in (None, "", "0"):
        return
    install_torch_export_passes(None if value == "1" else value)
