"""rules/autocast.rw against torch's own `replace_autocast_with_hop_pass`, model by model.

See tests/oracle.py for what each check requires; the before/after dump of each model is
snapshotted in snapshots/test_autocast_oracle/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from torch._export.passes.replace_autocast_with_hop_pass import replace_autocast_with_hop_pass

import engine
from tests.autocast_models import CASES
from tests.oracle import Case, check_against_torch

RULES = engine.load_rules(Path(__file__).resolve().parent.parent / "rules" / "autocast.rw")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_autocast_rules_match_torch(case: Case, snapshot):
    check_against_torch(case, RULES, [replace_autocast_with_hop_pass], snapshot,
                        "rules/autocast.rw")
