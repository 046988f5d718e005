"""The simulation of torch's names (engine/rewriting/torch_names.py), piece by piece.

The names themselves are checked against torch's passes by the oracles (tests/oracle.py) and the
random nestings (tests/test_region_properties.py); here, the parts whose fast form is easy to
get wrong, against the plain form torch's code spells out.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.rewriting.torch_names import _Submodules


def first_free_from_one(alive: set[int]) -> int:
    """`node_inline_`: `submod_1`, `submod_2`, ... until `hasattr(gm, name)` is false."""
    number = 1
    while number in alive:
        number += 1
    return number


steps = st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=60)


@given(first=st.integers(0, 1), partitions=st.integers(1, 30), steps=steps)
def test_submodule_numbers_are_node_inline_s(first, partitions, steps):
    numbers = range(first, partitions + 1)
    submodules, alive = _Submodules(numbers), set(numbers)
    for placing, number in steps:
        if placing:  # a moved submodule keeps its number unless the module has it
            want = number if number not in alive else first_free_from_one(alive)
            assert submodules.place(number) == want
            alive.add(want)
        elif number in alive:  # an inlined partition's submodule, deleted once unused
            submodules.free(number)
            alive.discard(number)
