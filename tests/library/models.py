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


class WrittenOutAttention(torch.nn.Module):
    """Attention as people write it, one spelling an output: each is one sdpa call.

    q, k, v: (batch, heads, seq, d); `mask`: an additive float mask (1, 1, seq, seq); `keep`:
    a bool causal mask (seq, seq), True where a query may look; `bshd`: (batch, seq, heads, d)."""

    def forward(self, q, k, v, mask, keep, bshd):
        d = q.size(-1)
        scores = q @ k.transpose(-2, -1)
        h_q, h_k, h_v = bshd.permute(0, 2, 1, 3), bshd.transpose(1, 2), bshd.permute(0, 2, 1, 3)
        return (
            torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1) @ v,
            torch.softmax(torch.matmul(q, k.transpose(-1, -2)).div(8), dim=-1).matmul(v),
            (q @ k.mT * d ** -0.5 + mask).softmax(-1) @ v,
            torch.softmax(mask + 0.125 * (q @ k.permute(0, 1, 3, 2)), dim=3) @ v,
            torch.softmax((q / math.sqrt(d)) @ k.transpose(2, 3), dim=-1) @ v,
            torch.softmax(scores, dim=-1) @ v,
            torch.softmax((q @ k.transpose(-2, -1) / 2.0).masked_fill(~keep, float("-inf")),
                          dim=-1) @ v,
            torch.softmax(torch.where(keep, q @ k.transpose(-2, -1) / 2.0, float("-inf")),
                          dim=-1) @ v,
            # as HF's eager attention writes it: softmax in float32, cast back, dropout off
            F.dropout(torch.softmax(q @ k.transpose(2, 3) * 0.125 + mask, dim=-1,
                                    dtype=torch.float32).to(q.dtype), 0.1, training=False) @ v,
            torch.softmax(h_q @ h_k.transpose(-2, -1) / 4, dim=-1) @ h_v,
        )


def attention():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8) for _ in range(3))
    keep = torch.ones(5, 5, dtype=torch.bool).tril()
    mask = torch.zeros(1, 1, 5, 5).masked_fill(~keep, float("-inf"))
    return WrittenOutAttention(), (q, k, v, mask, keep, torch.randn(2, 5, 3, 8))


class AttentionNearMisses(torch.nn.Module):
    """Written-out attention that is not sdpa, or not only sdpa: none of it may be fused."""

    def forward(self, q, k, v, mask, keep, wide, k_one_head):
        scores = q @ k.transpose(-2, -1) / 2.0
        weights = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1)
        return (
            torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-2) @ v,  # softmax over queries
            (torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1) + mask) @ v,  # after softmax
            torch.softmax(q @ k.transpose(-2, -1) * mask, dim=-1) @ v,  # a mask multiplied in
            weights @ v, weights,  # the weights are returned too
            torch.softmax(q @ k.transpose(-2, -1) / 2.0 + wide, dim=-1) @ v,  # widens the scores
            torch.softmax(q @ k.transpose(-2, -1) / 2.0 + keep, dim=-1) @ v,  # a bool mask added
            torch.softmax(q @ k_one_head.transpose(-2, -1) / 2.0, dim=-1) @ v,  # heads broadcast
            torch.softmax(scores.masked_fill(~keep, -1e4), dim=-1) @ v,  # not -inf
        )


def attention_near_misses():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 3, 5, 8) for _ in range(3))
    keep = torch.ones(5, 5, dtype=torch.bool).tril()
    mask = torch.randn(1, 1, 5, 5)
    return AttentionNearMisses(), (q, k, v, mask, keep, torch.randn(2, 3, 5, 5),
                                   torch.randn(1, 1, 5, 8))


class WrittenOutNorms(torch.nn.Module):
    """RMSNorm as HF's Llama writes it, and LayerNorm written out three ways."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.rms_weight = torch.nn.Parameter(torch.rand(8, dtype=dtype) + 0.5)
        self.ln_weight = torch.nn.Parameter(torch.rand(8, dtype=dtype) + 0.5)
        self.ln_bias = torch.nn.Parameter(torch.randn(8, dtype=dtype))

    def forward(self, x):
        h = x.to(torch.float32)  # LlamaRMSNorm
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
        rms = self.rms_weight * h.to(x.dtype)
        mean = x.mean(-1, keepdim=True)
        centred = x - mean
        ln = centred / torch.sqrt((centred ** 2).mean(-1, keepdim=True) + 1e-5)
        ln = self.ln_weight * ln + self.ln_bias
        mean = x.mean(dim=2, keepdim=True)  # `x - mean` written twice, the last dim as 2
        twice = (x - mean) * torch.rsqrt(((x - mean) * (x - mean)).mean(dim=2, keepdim=True)
                                         + 1e-5)
        var = (x - x.mean(-1, keepdim=True)) / torch.sqrt(
            x.var(-1, keepdim=True, unbiased=False) + 1e-5) * self.ln_weight
        return rms, ln, twice, var


def norms():
    torch.manual_seed(0)
    return WrittenOutNorms(), (torch.randn(2, 4, 8),)


def norms_bfloat16():
    torch.manual_seed(0)
    return WrittenOutNorms(torch.bfloat16), (torch.randn(2, 4, 8, dtype=torch.bfloat16),)
