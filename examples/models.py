"""Example models for `engine apply` and `engine dump`: each function returns (module, args).

    engine apply rules/autocast.rw examples/models.py:autocast_mlp --diff
"""

import torch
from torch import nn


class AutocastMLP(nn.Module):
    """A bf16 MLP block whose normalisation runs in float32, as mixed-precision code does."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = torch.relu(self.up(x))
            y = self.down(hidden)
            with torch.autocast("cpu", enabled=False):
                y = self.norm(y.float() + x)
        return y


def autocast_mlp():
    torch.manual_seed(0)
    return AutocastMLP(), (torch.randn(4, 16),)


class TwoBlocks(nn.Module):
    """Two autocast regions split by a plain op; the second feeds the output directly."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(16, 16)
        self.second = nn.Linear(16, 16)

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a = self.first(x)
        b = a.float().tanh()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            c = self.second(b)
        return c, b


def two_blocks():
    torch.manual_seed(0)
    return TwoBlocks(), (torch.randn(4, 16),)
