"""The rule library on tiny random Hugging Face models (tests/library/hf.py): exported,
rewritten with rules/cleanup.rw, activations.rw, attention.rw and norms.rw, every norm,
activation and attention the model writes out is one op, the logits are eager's within the
family's stated tolerance, and the program saves to `.pt2` and loads back; the README's table
is this run's (node counts and fusions exactly; the differences as the tolerance they stay
within, which holds on any machine and thread count)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="the HF model tests need `transformers` "
                                           "(the test extra: pip install .[test])")

from tests.library.hf import FAMILIES, ids, rewrite, row  # noqa: E402

README = (Path(__file__).resolve().parent.parent / "README.md").read_text().splitlines()


@pytest.fixture(scope="module", params=FAMILIES, ids=lambda family: family.name)
def rewritten(request):
    return rewrite(request.param)


def test_every_written_out_norm_activation_and_attention_is_one_op(rewritten):
    family = rewritten.family
    for kind, written in (("norms", family.norms), ("activations", family.activations),
                          ("attentions", family.attentions)):
        assert rewritten.fused(kind) == written, kind
        assert rewritten.left(kind) == 0, kind


def test_the_logits_are_eagers_also_after_a_pt2_round_trip(rewritten):
    with torch.no_grad():
        eager = rewritten.model(ids())
        for program in (rewritten.after, rewritten.round_trip):
            torch.testing.assert_close(program.module()(ids()), eager, rtol=0,
                                       atol=rewritten.family.tolerance)


def test_the_readme_table_row_is_this_run(rewritten):
    assert row(rewritten) in README


def test_the_dumps_before_and_after_parse_back_to_themselves(rewritten):
    import engine

    for program in (rewritten.before, rewritten.after):
        text = engine.dump(program)
        assert engine.dump(engine.parse_graph(text)) == text
