"""Models with grad-mode changes, alone and mixed with autocast, for the differential tests.

`GRAD_CASES` have no autocast region: torch's set-grad pass alone is their oracle.
`MIXED_CASES` have both: torch.export's two passes in a row are their oracle.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.export import Dim

from tests.oracle import LOST_GRAD_SEGMENT, ZERO_OUTPUTS, Case

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


class WithWeight(nn.Module):
    def __init__(self, width: int = 8):
        super().__init__()
        self.w = nn.Parameter(torch.randn(width, width) / width)


# --- grad mode alone ------------------------------------------------------------------------------
class NoGrad(WithWeight):
    def forward(self, x):
        a = x @ self.w
        with torch.no_grad():
            b = a @ self.w
        return a + b


class EnableGradInsideNoGrad(WithWeight):
    def forward(self, x):
        with torch.no_grad():
            a = x @ self.w
            with torch.enable_grad():
                b = a @ self.w + x
            c = b * 2
        return a, b, c


class EnableGradUnderAmbientNoGrad(WithWeight):
    """Exported, rewritten and run under `torch.no_grad()`: the enable_grad segment is outlined."""

    def forward(self, x):
        a = x.sin()
        with torch.enable_grad():
            b = a @ self.w
        return a, b


class SetGradTrueWhenOn(WithWeight):
    def forward(self, x):
        with torch.set_grad_enabled(True):
            a = x @ self.w
        return a.sin()


class SetGradFalseContext(WithWeight):
    """`with torch.set_grad_enabled(False)` traces its marker twice: an empty segment first."""

    def forward(self, x):
        with torch.set_grad_enabled(False):
            b = x @ self.w
        return b + x


class GradNeverRestored(WithWeight):
    def forward(self, x):
        a = x @ self.w
        torch.set_grad_enabled(False)
        b = a @ self.w
        return a, b


class InPlaceUnderNoGrad(WithWeight):
    def __init__(self):
        super().__init__()
        self.register_buffer("steps", torch.zeros(8))

    def forward(self, x):
        with torch.no_grad():
            self.w.mul_(0.5)
            self.steps.add_(1)
            x.add_(1)
        return x @ self.w + self.steps


class ConstantsInSegment(WithWeight):
    def forward(self, x):
        with torch.no_grad():
            scale = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
            ones = torch.ones(8) * 2
            y = x * scale + ones
        return y @ self.w


class SymIntInsideAndOutside(WithWeight):
    def forward(self, x):
        with torch.no_grad():
            n = x.shape[0]
            y = x * n
        z = (x @ self.w) * n
        return y, z


class NoGradInCondBranch(WithWeight):
    def forward(self, x):
        def true_fn(x):
            with torch.no_grad():
                y = x @ self.w
            return y + x

        def false_fn(x):
            return x.cos() @ self.w

        return torch.cond(x.sum() > 0, true_fn, false_fn, (x,))


class ChunksAroundNoGrad(WithWeight):
    """`getitem` nodes outside the regions, and regions with several outputs: torch's split graph
    holds a `getitem` per output first, so the copies of these become `getitem_7` and on."""

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        with torch.no_grad():
            c, d = (a @ self.w[:4]).chunk(2, dim=1)
            e = b + 1
        f, g = (c * d).chunk(2, dim=0)
        with torch.no_grad():
            h = f.sum()
        return f, g, e, h


class CondAfterNoGrad(WithWeight):
    """A `cond` after a region: torch fetches its branches at the top of their partition."""

    def forward(self, x):
        with torch.no_grad():
            y = x @ self.w
        z = torch.cond(y.sum() > 0, lambda a: a.sin(), lambda a: a.cos(), (y,))
        return z + x


class CondBetweenRegions(WithWeight):
    """A `cond` between a no_grad block and an autocast region: fetched at the top of the
    autocast pass's partition, with the no_grad block's submodule."""

    def forward(self, x):
        with torch.no_grad():
            y = x @ self.w
        z = torch.cond(y.sum() > 0, lambda a: a.sin(), lambda a: a.cos(), (y,))
        with torch.autocast(**BF16):
            u = z @ self.w
        return u.float() + x


class ManySegments(WithWeight):
    def forward(self, x):
        for i in range(50):
            with torch.enable_grad() if i % 2 else torch.no_grad():
                x = (x @ self.w).tanh()
        return x


GRAD_CASES = [
    Case("cond_after_no_grad", CondAfterNoGrad, lambda: (torch.randn(4, 8),)),
    Case("chunks_around_no_grad", ChunksAroundNoGrad, lambda: (torch.randn(4, 8),)),
    Case("no_grad", NoGrad, lambda: (torch.randn(4, 8),)),
    Case("enable_grad_inside_no_grad", EnableGradInsideNoGrad, lambda: (torch.randn(4, 8),)),
    Case("enable_grad_under_ambient_no_grad", EnableGradUnderAmbientNoGrad,
         lambda: (torch.randn(4, 8),), grad_enabled=False),
    Case("set_grad_true_when_on", SetGradTrueWhenOn, lambda: (torch.randn(4, 8),)),
    Case("set_grad_false_context", SetGradFalseContext, lambda: (torch.randn(4, 8),),
         deviation=ZERO_OUTPUTS),
    Case("grad_never_restored", GradNeverRestored, lambda: (torch.randn(4, 8),)),
    Case("in_place_under_no_grad", InPlaceUnderNoGrad, lambda: (torch.randn(4, 8),)),
    Case("constants_in_segment", ConstantsInSegment, lambda: (torch.randn(4, 8),)),
    Case("symint_inside_and_outside", SymIntInsideAndOutside, lambda: (torch.randn(4, 8),),
         dynamic_shapes=({0: Dim("batch", min=2)},), other_args=lambda: (torch.randn(6, 8),)),
    Case("no_grad_in_cond_branch", NoGradInCondBranch, lambda: (torch.randn(4, 8),)),
    Case("fifty_segments", ManySegments, lambda: (torch.randn(4, 8),)),
]


# --- grad mode and autocast together ----------------------------------------------------------------
class AutocastInsideNoGrad(WithWeight):
    def forward(self, x):
        with torch.no_grad():
            with torch.autocast(**BF16):
                a = x @ self.w
            b = a.float() + x
        return b @ self.w


class NoGradInsideAutocast(WithWeight):
    """The issue's example: torch loses the no_grad segment."""

    def forward(self, x):
        with torch.autocast(**BF16):
            a = x @ self.w
            with torch.no_grad():
                b = a @ self.w
            c = a + b
        return c


class SegmentStraddlesExit(WithWeight):
    def forward(self, x):
        with torch.autocast(**BF16):
            a = x @ self.w
            torch.set_grad_enabled(False)
            b = a @ self.w
        c = b.float() * x
        torch.set_grad_enabled(True)
        d = c + x
        return a, b, c, d


class SegmentStraddlesEntry(WithWeight):
    def forward(self, x):
        torch.set_grad_enabled(False)
        a = x @ self.w
        with torch.autocast(**BF16):
            b = a @ self.w
            torch.set_grad_enabled(True)
            c = b @ self.w
        d = c.float() + x
        return a, b, c, d


class NoGradAutocastEnableGrad(WithWeight):
    def forward(self, x):
        with torch.no_grad():
            a = x @ self.w
            with torch.autocast(**BF16):
                b = a @ self.w
                with torch.enable_grad():
                    c = b @ self.w
                d = c + b
        return a, b, c, d


class MixedLoop(WithWeight):
    def forward(self, x):
        for i in range(50):
            if i % 3 == 0:
                with torch.no_grad():
                    x = x @ self.w
            elif i % 3 == 1:
                with torch.autocast(**BF16):
                    x = (x @ self.w).float()
            else:
                with torch.no_grad(), torch.autocast(**BF16):
                    x = (x @ self.w).float()
            x = x.tanh()
        return x


def exported_again() -> nn.Module:
    """A program exported again: its HOPs trace back to markers."""
    torch.manual_seed(1)
    return torch.export.export(NoGradAutocastEnableGrad(), (torch.randn(4, 8),)).module()


MIXED_CASES = [
    Case("autocast_inside_no_grad", AutocastInsideNoGrad, lambda: (torch.randn(4, 8),)),
    Case("no_grad_inside_autocast", NoGradInsideAutocast, lambda: (torch.randn(4, 8),),
         deviation=LOST_GRAD_SEGMENT),
    Case("segment_straddles_exit", SegmentStraddlesExit, lambda: (torch.randn(4, 8),),
         deviation=LOST_GRAD_SEGMENT),
    Case("segment_straddles_entry", SegmentStraddlesEntry, lambda: (torch.randn(4, 8),)),
    Case("no_grad_autocast_enable_grad", NoGradAutocastEnableGrad, lambda: (torch.randn(4, 8),),
         deviation=LOST_GRAD_SEGMENT),
    Case("fifty_mixed_regions", MixedLoop, lambda: (torch.randn(4, 8),)),
    Case("exported_again", exported_again, lambda: (torch.randn(4, 8),)),
    Case("cond_between_regions", CondBetweenRegions, lambda: (torch.randn(4, 8),)),
]
