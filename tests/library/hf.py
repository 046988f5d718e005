"""Tiny random Hugging Face models, exported and rewritten with the rule library.

Each family as `transformers` builds it from a small config (2 layers, hidden size 32, random
weights, eager attention), wrapped to take token ids and return logits (or the last hidden
state). `rewrite(family)` exports it, applies rules/cleanup.rw, activations.rw, attention.rw and
norms.rw to the ExportedProgram, and counts what is left written out: the norms, activations
and attentions the model writes op by op before and after.

`python -m tests.library.hf` prints the table the README shows.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
RULE_FILES = ("cleanup.rw", "activations.rw", "attention.rw", "norms.rw")
LAYERS = 2


class Logits(torch.nn.Module):
    """A causal LM as a function of token ids: its logits, no cache."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(ids, use_cache=False).logits


class Encoded(torch.nn.Module):
    """An encoder as a function of token ids: its last hidden state."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(ids).last_hidden_state


def _decoder(config_class, model_class, dtype):
    config = config_class(vocab_size=64, hidden_size=32, intermediate_size=64,
                          num_hidden_layers=LAYERS, num_attention_heads=4,
                          num_key_value_heads=2, max_position_embeddings=64)
    return Logits(_built(model_class, config, dtype))


def _built(model_class, config, dtype=torch.float32):
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return model_class(config).to(dtype).eval()


def llama(dtype=torch.float32):
    from transformers import LlamaConfig, LlamaForCausalLM
    return _decoder(LlamaConfig, LlamaForCausalLM, dtype)


def mistral():
    from transformers import MistralConfig, MistralForCausalLM
    return _decoder(MistralConfig, MistralForCausalLM, torch.float32)


def qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM
    return _decoder(Qwen2Config, Qwen2ForCausalLM, torch.float32)


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(vocab_size=64, n_embd=32, n_layer=LAYERS, n_head=4, n_positions=64,
                        bos_token_id=0, eos_token_id=0)
    return Logits(_built(GPT2LMHeadModel, config))


def bert():
    from transformers import BertConfig, BertModel
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=LAYERS,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
    return Encoded(_built(BertModel, config))


@dataclass(frozen=True)
class Family:
    name: str
    build: object  # () -> module
    norms: int  # written out in the model: RMSNorms (a LayerNorm is nn.LayerNorm already)
    activations: int  # written out: GPT-2's tanh GELU (the others call one op already)
    attentions: int
    # The largest difference from eager's logits allowed, rewritten and after a `.pt2` round
    # trip (the README's table says this bound, not the difference, which moves with the
    # kernels and thread counts): float32's here are 1e-7 or so, bfloat16's 2e-3.
    tolerance: float = 1e-5


FAMILIES = (
    Family("Llama", llama, 2 * LAYERS + 1, 0, LAYERS),
    Family("Llama, bfloat16", lambda: llama(torch.bfloat16), 2 * LAYERS + 1, 0, LAYERS,
           tolerance=2e-2),
    Family("Mistral", mistral, 2 * LAYERS + 1, 0, LAYERS),
    Family("Qwen2", qwen2, 2 * LAYERS + 1, 0, LAYERS),
    Family("GPT-2", gpt2, 0, LAYERS, LAYERS),
    Family("BERT", bert, 0, 0, LAYERS),
)

FUSED = {  # what each kind is fused to
    "norms": (torch.ops.aten.rms_norm.default,),
    "activations": (torch.ops.aten.gelu.default,),
    "attentions": (torch.ops.aten.scaled_dot_product_attention.default,),
}
WRITTEN_OUT = {  # an op each written-out one has, and the fused form does not
    "norms": torch.ops.aten.rsqrt.default,
    "activations": torch.ops.aten.pow.Tensor_Scalar,  # x^3 (BERT's pooler has a tanh of its own)
    "attentions": torch.ops.aten.softmax.int,
}


def ids() -> torch.Tensor:
    return torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))


@dataclass
class Rewritten:
    family: Family
    model: torch.nn.Module
    before: torch.export.ExportedProgram
    after: torch.export.ExportedProgram

    def count(self, program, targets) -> int:
        targets = targets if isinstance(targets, tuple) else (targets,)
        return sum(1 for node in program.graph.nodes if node.target in targets)

    def fused(self, kind: str) -> int:
        return self.count(self.after, FUSED[kind]) - self.count(self.before, FUSED[kind])

    def left(self, kind: str) -> int:
        return self.count(self.after, WRITTEN_OUT[kind])

    def error(self, program) -> float:
        with torch.no_grad():
            ours, eager = program.module()(ids()), self.model(ids())
        return (ours.float() - eager.float()).abs().max().item()

    @functools.cached_property
    def round_trip(self) -> torch.export.ExportedProgram:
        buffer = io.BytesIO()
        torch.export.save(self.after, buffer)
        buffer.seek(0)
        return torch.export.load(buffer)


def rewrite(family: Family) -> Rewritten:
    import engine

    model = family.build()
    before = torch.export.export(model, (ids(),))
    rules = engine.load_rules(*(REPO / "rules" / name for name in RULE_FILES))
    return Rewritten(family, model, before, rules.apply_program(before))


def short(number: float) -> str:
    """1e-05 as 1e-5."""
    mantissa, exponent = f"{number:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def within(done: Rewritten, program) -> str:
    """The tolerance the difference from eager stays within (the same on every machine), or
    what it is where it does not."""
    error, tolerance = done.error(program), done.family.tolerance
    return f"≤ {short(tolerance)}" if error <= tolerance else f"**{error:.2g}**"


def fused(done: Rewritten, kind: str, written: int, what: str) -> str:
    return f"{done.fused(kind)} of {written} {what}" if written else "none written out"


def row(done: Rewritten) -> str:
    family = done.family
    return (f"| {family.name} | {len(done.before.graph.nodes)} → {len(done.after.graph.nodes)} "
            f"| {fused(done, 'norms', family.norms, 'RMSNorm')} "
            f"| {fused(done, 'activations', family.activations, 'tanh GELU')} "
            f"| {fused(done, 'attentions', family.attentions, 'attention')} "
            f"| {within(done, done.after)} | {within(done, done.round_trip)} |")


def table() -> str:
    rows = ["| model | nodes before → after | norms fused | activations fused | "
            "attentions fused | difference from eager | after `.pt2` save and load |",
            "|---|---|---|---|---|---|---|"]
    rows += [row(rewrite(family)) for family in FAMILIES]
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
