"""rules/set_grad.rw and rules/export.rw against torch.export's own HOP passes.

- set_grad.rw against `replace_set_grad_with_hop_pass`, on the grad-mode models, mixed ones
  included (both leave autocast regions in place, re-entered where a grad marker cuts them);
- export.rw against both passes in torch.export's order, on every model, autocast ones too.

See tests/oracle.py for what each check requires; snapshots in snapshots/test_export_oracle/.
"""

from __future__ import annotations

import copy
from pathlib import Path
from unittest import mock

import pytest
import torch
from torch._export.passes.replace_autocast_with_hop_pass import replace_autocast_with_hop_pass
from torch._export.passes.replace_set_grad_with_hop_pass import replace_set_grad_with_hop_pass

import engine
from tests.autocast_models import CASES as AUTOCAST_CASES
from tests.grad_models import GRAD_CASES, MIXED_CASES
from tests.oracle import Case, assert_behaves_like_eager, check_against_torch, round_trip

RULES = Path(__file__).resolve().parent.parent / "rules"
SET_GRAD = engine.load_rules(RULES / "set_grad.rw")
EXPORT = engine.load_rules(RULES / "export.rw")
ALL_CASES = GRAD_CASES + MIXED_CASES + AUTOCAST_CASES


@pytest.mark.parametrize("case", GRAD_CASES + MIXED_CASES,
                         ids=[case.name for case in GRAD_CASES + MIXED_CASES])
def test_set_grad_rules_match_torch(case: Case, snapshot):
    check_against_torch(case, SET_GRAD, [replace_set_grad_with_hop_pass], snapshot,
                        "rules/set_grad.rw")


@pytest.mark.parametrize("case", ALL_CASES, ids=[case.name for case in ALL_CASES])
def test_export_rules_match_torch_export(case: Case, snapshot):
    check_against_torch(case, EXPORT, [replace_set_grad_with_hop_pass,
                                       replace_autocast_with_hop_pass], snapshot,
                        "rules/export.rw")


STAND_IN = [case for case in MIXED_CASES if case.name in (
    "no_grad_inside_autocast", "segment_straddles_entry", "fifty_mixed_regions")]


@pytest.mark.parametrize("case", STAND_IN, ids=[case.name for case in STAND_IN])
def test_rules_stand_in_for_torch_passes_inside_torch_export(case: Case):
    """The contract is torch's: `apply` can take the passes' place in torch.export itself."""
    import torch._export.passes.replace_autocast_with_hop_pass as autocast_pass
    import torch._export.passes.replace_set_grad_with_hop_pass as set_grad_pass

    autocast = engine.load_rules(RULES / "autocast.rw")
    model, args = case.build()
    with mock.patch.object(set_grad_pass, "replace_set_grad_with_hop_pass", SET_GRAD.apply), \
            mock.patch.object(autocast_pass, "replace_autocast_with_hop_pass", autocast.apply):
        program = torch.export.export(copy.deepcopy(model), args)
    assert_behaves_like_eager(round_trip(program), model, args, case)
