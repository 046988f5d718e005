"""`FX_REWRITE_EXPORT_RULES`, read when torch is imported.

A module of its own, outside the `engine` package: importing that package imports torch and
the whole engine, which must not happen while torch is being imported.

Input: the environment. Output: nothing, or the rules installed as torch.export's HOP passes
(`engine.frontends.torch_export`). torch calls `autoload` at the end of `import torch`: it is
registered under torch's entry-point group for out-of-tree extensions (`torch.backends`, see
pyproject.toml), which torch loads unless `TORCH_DEVICE_BACKEND_AUTOLOAD=0`. torch is still
being imported then, so nothing is imported here unless the variable is set, and even then the
passes are replaced only once torch.export's pass modules are first imported (an import hook),
so that `import torch` does the same work as before.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

VARIABLE = "FX_REWRITE_EXPORT_RULES"
_WATCHED = "torch._export.passes.replace_autocast_with_hop_pass"  # the last one torch imports


def autoload() -> None:
    value = os.environ.get(VARIABLE)
    if value in (None, "", "0"):
        return
    if _WATCHED in sys.modules:
        _install(value)
    else:
        sys.meta_path.insert(0, _InstallAfterImport(value))


def _install(value: str) -> None:
    from engine.frontends.torch_export import install_from_environment

    install_from_environment(value)


class _InstallAfterImport(importlib.abc.MetaPathFinder):
    """Lets torch import its pass module as usual, then installs the rules, once."""

    def __init__(self, value: str):
        self.value = value

    def find_spec(self, name, path, target=None):
        if name != _WATCHED:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            sys.modules[name] = module  # the import system sets it after; `_install` needs it
            _install(self.value)

        spec.loader.exec_module = exec_module
        return spec
