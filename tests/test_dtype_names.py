"""Dtypes by their bare names in conditions, patterns and templates, with no `use`: torch's
(`float16`, `bfloat16`, `float32`, `half`...) and graph text's (`f16`, `bf16`, `f32`, `i64`),
the names a `verify dtypes(...)` clause takes; a file that binds such a name with `use` means
what it binds. The README's own example among them."""

from __future__ import annotations

import pytest
import torch

import engine

CONVERSION = """\
def forward(x: {dtype}[4]):
    c: f32[4] = aten._to_copy.default(x, dtype=torch.float32)
    return (c,)
"""


def fires(rules_text: str, dtype: str) -> bool:
    rules = engine.rules_from_text(rules_text)
    graph = engine.parse_graph(CONVERSION.format(dtype=dtype))
    return bool(rules.rewrite(graph).report.counts())


def rule(where: str, uses: str = "") -> str:
    """`_to_copy(x, dtype=torch.float32)` -> `prims.convert_element_type(x, torch.float32)`,
    every dtype by its bare name."""
    return (f"use torch.ops.aten._to_copy.default as to_copy\n"
            f"use torch.ops.prims.convert_element_type.default as convert\n{uses}"
            f"rule widen:\n    match to_copy($x, dtype=f32)\n    where {where}\n"
            f"    replace with convert($x, float32)\n    verify dtypes(float16, bf16)\n")


def test_the_readme_example_reads_bare_dtype_names():
    text = rule("dtype($x) in (float16, torch.bfloat16)")
    assert fires(text, "f16") and fires(text, "bf16")
    assert not fires(text, "f64")


@pytest.mark.parametrize("name, dtype", [("float16", "f16"), ("half", "f16"), ("f16", "f16"),
                                         ("bfloat16", "bf16"), ("bf16", "bf16"),
                                         ("float64", "f64"), ("double", "f64"),
                                         ("i64", "i64"), ("int64", "i64"), ("long", "i64")])
def test_torch_names_and_graph_text_abbreviations_are_both_dtypes(name, dtype):
    assert fires(rule(f"dtype($x) == {name}"), dtype)
    assert not fires(rule(f"dtype($x) == {name}"), "f32" if dtype != "f32" else "f64")


def test_bare_dtype_names_in_patterns_templates_and_promises():
    rules = engine.rules_from_text(rule("dtype($x) != float32"))
    graph = engine.parse_graph(CONVERSION.format(dtype="f16"))
    assert "prims.convert_element_type.default(x, torch.float32)" in engine.dump(
        rules.rewrite(graph).module)
    assert rules.rules[0].promises.dtypes == (torch.float16, torch.bfloat16)
    other = engine.parse_graph(CONVERSION.format(dtype="f16").replace(
        "f32[4] = aten._to_copy.default(x, dtype=torch.float32)",
        "f64[4] = aten._to_copy.default(x, dtype=torch.float64)"))
    assert not rules.rewrite(other).report.counts()  # the pattern's `f32` is float32 alone


def test_a_name_the_file_binds_means_what_it_binds():
    bound = rule("dtype($x) == float16", uses="use torch.float64 as float16\n")
    assert fires(bound, "f64") and not fires(bound, "f16")


def test_a_misspelt_dtype_is_an_unknown_name_with_a_suggestion():
    with pytest.raises(engine.RuleError) as caught:
        engine.rules_from_text(rule("dtype($x) == flaot16"))
    assert "unknown name `flaot16`; declare it with `use`" in str(caught.value)
    assert "float16" in str(caught.value)
