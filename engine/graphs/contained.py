"""Running a graph without changing the caller's process: grad mode, autocast, random state.

Input: a call of a graph (a GraphModule read from text, or any graph a tool runs). Output: its
result, with torch's grad mode, autocast state (enabled, dtype, cache, nesting, for each device
type) and random generators as they were before the call, whatever the graph did to them: a
raw graph's `_set_grad_enabled(False)` marker, an `_enter_autocast` without its exit, or
`aten.rand`, which draws from the global generator. A graph's effect lies in what it returns
and the tensors it writes, nowhere else.

    with process_state_kept():
        outputs = module(*inputs)
"""

from __future__ import annotations

import contextlib
import threading

import torch
import torch.fx

_DEVICE_TYPES = ("cpu", "cuda")
_depth = threading.local()


@contextlib.contextmanager
def process_state_kept():
    """Restores grad mode, autocast and the random generators on exit (also after an error).
    Nested uses cost nothing: the outermost one restores."""
    if getattr(_depth, "value", 0):
        yield
        return
    _depth.value = 1
    grad = torch.is_grad_enabled()
    autocast = [(device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
                for device in _DEVICE_TYPES]
    cache = torch.is_autocast_cache_enabled()
    nesting = _autocast_nesting()
    cpu_rng = torch.random.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        _depth.value = 0
        torch._C._set_grad_enabled(grad)
        for device, enabled, dtype in autocast:
            torch.set_autocast_enabled(device, enabled)
            torch.set_autocast_dtype(device, dtype)
        torch.set_autocast_cache_enabled(cache)
        while _autocast_nesting() > nesting:
            if torch.autocast_decrement_nesting() == 0:
                torch.clear_autocast_cache()
        while _autocast_nesting() < nesting:
            torch.autocast_increment_nesting()
        torch.random.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def _autocast_nesting() -> int:
    depth = torch.autocast_increment_nesting() - 1
    torch.autocast_decrement_nesting()
    return depth


class ContainedGraphModule(torch.fx.GraphModule):
    """A GraphModule whose calls keep the caller's process state (`process_state_kept`): what
    `engine.parse_graph` returns, so that running graph text changes nothing but its outputs
    and the tensors it writes."""

    def __call__(self, *args, **kwargs):
        with process_state_kept():
            return super().__call__(*args, **kwargs)
