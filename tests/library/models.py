"""Models that write out what the rule library fuses, as people write it."""

import math

import torch
import torch.nn.functional as F


class WrittenOutActivations(torch.nn.Module):
    """BERT's erf GELU, GPT-2's tanh GELU, SiLU and hardswish, each op by op."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        x = self.proj(x)
        a = x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
        b = 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
        c = x * torch.sigmoid(x)
        d = x * F.relu6(x + 3) / 6
        return a + b + c + d


def activations():
    return WrittenOutActivations(), (torch.randn(2, 8),)
