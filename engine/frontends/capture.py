"""A model -> its raw ExportedProgram, with the autocast and set-grad markers still in it.

`torch.export.export` rewrites `with torch.autocast(...)` and `with torch.no_grad()` blocks into
higher-order ops as it exports, with `replace_set_grad_with_hop_pass` and then
`replace_autocast_with_hop_pass`. `capture` switches both passes off for the duration of one
export, so the graph keeps the calls those passes would remove: the input our rules rewrite.
Raw programs run, but `torch.export.save` refuses them (the serializer rejects the markers).
"""

from __future__ import annotations

from unittest import mock

import torch
import torch._export.passes.replace_autocast_with_hop_pass as autocast_pass
import torch._export.passes.replace_set_grad_with_hop_pass as set_grad_pass
from torch.export import ExportedProgram


def _unchanged(gm, graph_signature):
    return gm, graph_signature


def capture(module: torch.nn.Module, args, kwargs=None, dynamic_shapes=None, *,
            strict: bool = False) -> ExportedProgram:
    """`torch.export.export` with torch's two HOP passes switched off."""
    with mock.patch.object(set_grad_pass, "replace_set_grad_with_hop_pass", _unchanged), \
            mock.patch.object(autocast_pass, "replace_autocast_with_hop_pass", _unchanged):
        return torch.export.export(module, tuple(args), kwargs=kwargs,
                                   dynamic_shapes=dynamic_shapes, strict=strict)
