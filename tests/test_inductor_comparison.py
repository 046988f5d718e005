"""Our attention rules against the peer, Inductor's `fuse_attention`, on the same written-out
attention (tests/library/inductor.py): we fuse every family one sdpa computes, with eager's
numbers, and none of the near-misses; the README's table is what this run measures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.library.inductor import FAMILIES, TOLERANCE, inductor, ours, row

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.function.__name__)
def test_our_rules_fuse_what_one_sdpa_computes_and_keep_eagers_numbers(family):
    mine = ours(family)
    assert mine.fused == (1 if family.fusable else 0)
    assert mine.error <= TOLERANCE


@pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++")),
                    reason="Inductor compiles C++ on CPU and finds no C++ compiler")
@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.function.__name__)
def test_the_readme_table_row_is_what_inductor_and_our_rules_do(family):
    assert row(family, inductor(family), ours(family)) in README.splitlines()
