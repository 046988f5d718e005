"""Models for `engine verify` (tests/test_verify.py and the README): each NAME() returns
(module, args)."""

import torch
from torch import nn


class DisabledInsideEnabled(nn.Module):
    """A float32 matmul inside a bfloat16 autocast region: autocast(enabled=False) keeps it in
    float32. Inline that inner region and it runs in bfloat16."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 8))

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a = x @ self.w
            with torch.autocast("cpu", enabled=False):
                b = a.float() @ self.w
            c = a @ b
        return c.float(), b


def disabled_inside_enabled():
    torch.manual_seed(0)
    return DisabledInsideEnabled(), (torch.randn(8, 8),)


class Scaled(nn.Module):
    """x * 1 and a copy that nothing writes to: what rules/algebra.rw folds."""

    def forward(self, x):
        return (x * 1).clone() + x.neg().neg()


def scaled():
    return Scaled(), (torch.randn(4, 4),)


class GradSegments(nn.Module):
    """A no_grad block with an autocast region inside, then grad mode back on: what
    rules/set_grad.rw outlines."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        y = self.lin(x).relu()
        with torch.no_grad():
            z = y * 2
            with torch.autocast("cpu", dtype=torch.bfloat16):
                z = self.lin(z)
        return y + z.float()


def grad_segments():
    torch.manual_seed(0)
    return GradSegments(), (torch.randn(4, 8),)


class RegionInCondBranch(nn.Module):
    """An autocast region inside a torch.cond branch, then `.float()`: torch records the
    matmul as float32 (it traces the branch without autocast), though it computes bfloat16."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 8))

    def forward(self, x):
        def true_fn(x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = x @ self.w
            return y.float()

        def false_fn(x):
            return x.cos()

        return torch.cond(x.sum() > 0, true_fn, false_fn, (x,))


def region_in_cond_branch():
    torch.manual_seed(0)
    return RegionInCondBranch(), (torch.ones(8, 8),)
