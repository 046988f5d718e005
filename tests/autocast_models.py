"""Models with `torch.autocast` regions, for the differential tests against torch's pass.

Each `Case` builds a fresh module and its inputs. `deviation` says why our output is meant to
differ from torch's for that model (torch is wrong there); the tests check that difference.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.export import Dim

from tests.oracle import COND_IN_REGION, ZERO_OUTPUTS, Case

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)
F16 = dict(device_type="cpu", dtype=torch.float16)
OFF = dict(device_type="cpu", enabled=False)


def x(*shape):
    return lambda: (torch.randn(*shape),)


# --- the models ---------------------------------------------------------------------------------
class SingleRegion(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        y = x.sin()
        with torch.autocast(**BF16):
            z = self.lin(y)
        return z.float().cos()


class NestedThreeDeep(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 8))

    def forward(self, x):
        with torch.autocast(**BF16):
            a = x @ self.w
            with torch.autocast(**OFF):
                b = a.float() + 1
                with torch.autocast(**BF16):
                    c = b @ self.w
            d = c + a
        return d.float()


class DisabledInsideEnabled(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 8))

    def forward(self, x):
        with torch.autocast(**BF16):
            a = x @ self.w
            with torch.autocast(**OFF):
                b = a.float() @ self.w
            c = a @ b
        return c, b


class BackToBack(nn.Module):
    def forward(self, x, w):
        with torch.autocast(**BF16):
            a = x @ w
        with torch.autocast(**F16):
            b = x @ w
        return a.float() + b.float()


class SplitByPlainOp(nn.Module):
    def forward(self, x, w):
        with torch.autocast(**BF16):
            a = x @ w
        b = a.float().relu()
        with torch.autocast(**BF16):
            c = b @ w
        return c


class SeveralOutputs(nn.Module):
    def forward(self, x, w):
        with torch.autocast(**BF16):
            a = x @ w
            b = a.sin()
            c = torch.mm(b, w)
        return a.float() * 2, c.float() - b.float()


class UnusedResults(nn.Module):
    def forward(self, x, w):
        with torch.autocast(**BF16):
            a = x @ w
            unused = a @ w  # noqa: F841
            b = a.cos()
        return b.float()


class ResultsOnlyFeedOutput(nn.Module):
    def forward(self, x, w):
        y = x * 2
        with torch.autocast(**BF16):
            a = y @ w
            b = a + 1
        return a, b


class RegionAroundSubmodule(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))

    def forward(self, x):
        with torch.autocast(**BF16):
            y = self.block(x)
        return y.float() + x


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        with torch.autocast(**BF16):
            y = self.lin(x).relu()
        return y.float()


class SubmoduleCalledTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Inner()

    def forward(self, x):
        return self.inner(self.inner(x) + x)


class BufferMutatedInRegion(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("total", torch.zeros(8, 8))

    def forward(self, x):
        with torch.autocast(**BF16):
            y = x @ x
            self.total.add_(y)
            z = y.relu()
        return z.float() + self.total


class Float16(nn.Module):
    def forward(self, x, w):
        with torch.autocast(**F16):
            y = torch.addmm(x, x, w)
        return y.float().sum(dim=0)


class DynamicBatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 4)

    def forward(self, x):
        with torch.autocast(**BF16):
            y = self.lin(x)
            n = y.shape[0]
        return y.float().sum(dim=1) * n


class RegionInCondBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 8))

    def forward(self, x):
        def true_fn(x):
            with torch.autocast(**BF16):
                y = x @ self.w
            return y.float()

        def false_fn(x):
            return x.cos()

        return torch.cond(x.sum() > 0, true_fn, false_fn, (x,))


class SiblingRegionsNested(nn.Module):
    def forward(self, x, w):
        with torch.autocast(**BF16):
            with torch.autocast(**OFF):
                a = x @ w
            b = a @ w
            with torch.autocast(**F16):
                c = b @ b.T  # not `w`: autocast's cast cache would hand back its bf16 copy
        return c.float() + a


class OutputsUsedOutOfOrder(nn.Module):
    def forward(self, x, w):
        with torch.autocast(**BF16):
            a = x @ w
            b = (a + 1).float()
            c = (a * 2).float()
        d = c.sin()
        e = b + d
        return e, a.float()


class InputsUsedOutOfOrder(nn.Module):
    def forward(self, a, b, c):
        with torch.autocast(**BF16):
            y = c @ b
            z = y @ a.T
        return z.float()


class CacheDisabled(nn.Module):
    def forward(self, x, w):
        with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
            y = x @ w
        return y.float()


class RegionFirstAndLast(nn.Module):
    def forward(self, x, w):
        with torch.autocast(**BF16):
            y = x @ w
        return y


class EmptyRegion(nn.Module):
    def forward(self, x):
        with torch.autocast(**BF16):
            pass
        return x.sin()


class UnusedRegion(nn.Module):
    def forward(self, x):
        with torch.autocast(**BF16):
            y = x @ x  # noqa: F841
        return x.sin()


class BufferMutationOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("total", torch.zeros(8, 8))

    def forward(self, x):
        with torch.autocast(**BF16):
            self.total.add_(x @ x)
        return x + 1


class ChunksAroundAutocast(nn.Module):
    """`getitem` nodes outside the regions and a region with several outputs (as
    ChunksAroundNoGrad in tests/grad_models.py)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 8) / 8)

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        with torch.autocast(**BF16):
            c, d = (a @ self.w[:4]).chunk(2, dim=1)
            e = b @ self.w[4:]
        f, g = (c * d).float().chunk(2, dim=0)
        with torch.autocast(**BF16):
            h = f @ self.w[:4]
        return f, g, e, h


class CondBeforeRegion(nn.Module):
    """A `cond` before a region: torch fetches its branches at the top of their partition and
    registers them after the region's submodule."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 8) / 8)

    def forward(self, x):
        z = torch.cond(x.sum() > 0, lambda a: a.sin(), lambda a: a.cos(), (x,))
        with torch.autocast(**BF16):
            u = z @ self.w
        return u.float() + x


class CondInsideRegion(nn.Module):
    def forward(self, x, w):
        with torch.autocast(**BF16):
            y = x @ w
            z = torch.cond(y.sum() > 0, lambda y: y.sin(), lambda y: y.cos(), (y,))
        return z.float()


CASES = [
    Case("chunks_around_autocast", ChunksAroundAutocast, x(4, 8)),
    Case("cond_before_region", CondBeforeRegion, x(4, 8)),
    Case("single_region", SingleRegion, x(4, 8)),
    Case("nested_three_deep", NestedThreeDeep, x(4, 8)),
    Case("disabled_inside_enabled", DisabledInsideEnabled, x(8, 8)),
    Case("back_to_back", BackToBack, lambda: (torch.randn(4, 8), torch.randn(8, 8))),
    Case("split_by_plain_op", SplitByPlainOp, lambda: (torch.randn(8, 8), torch.randn(8, 8))),
    Case("several_outputs", SeveralOutputs, lambda: (torch.randn(8, 8), torch.randn(8, 8))),
    Case("unused_results", UnusedResults, lambda: (torch.randn(8, 8), torch.randn(8, 8))),
    Case("results_only_feed_output", ResultsOnlyFeedOutput,
         lambda: (torch.randn(4, 8), torch.randn(8, 8))),
    Case("region_around_submodule", RegionAroundSubmodule, x(4, 8)),
    Case("submodule_called_twice", SubmoduleCalledTwice, x(4, 8)),
    Case("buffer_mutated_in_region", BufferMutatedInRegion, x(8, 8)),
    Case("float16", Float16, lambda: (torch.randn(8, 8), torch.randn(8, 8))),
    Case("dynamic_batch", DynamicBatch, x(4, 8), dynamic_shapes=({0: Dim("batch", min=2)},),
         other_args=x(7, 8)),
    Case("region_in_cond_branch", RegionInCondBranch, x(8, 8)),
    Case("sibling_regions_nested", SiblingRegionsNested,
         lambda: (torch.randn(8, 8), torch.randn(8, 8))),
    Case("outputs_used_out_of_order", OutputsUsedOutOfOrder,
         lambda: (torch.randn(8, 8), torch.randn(8, 8))),
    Case("inputs_used_out_of_order", InputsUsedOutOfOrder,
         lambda: (torch.randn(8, 8), torch.randn(8, 8), torch.randn(8, 8))),
    Case("cache_disabled", CacheDisabled, lambda: (torch.randn(4, 8), torch.randn(8, 8))),
    Case("region_first_and_last", RegionFirstAndLast, lambda: (torch.randn(4, 8), torch.randn(8, 8))),
    Case("empty_region", EmptyRegion, x(4, 8), deviation=ZERO_OUTPUTS),
    Case("unused_region", UnusedRegion, x(8, 8), deviation=ZERO_OUTPUTS),
    Case("buffer_mutation_only", BufferMutationOnly, x(8, 8), deviation=ZERO_OUTPUTS),
    Case("cond_inside_region", CondInsideRegion, lambda: (torch.randn(8, 8), torch.randn(8, 8)),
         deviation=COND_IN_REGION),
]
