"""A non-editable install carries the grammar: build the wheel, install it apart, parse a rule."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_grammar_and_works_installed(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "--wheel-dir", str(tmp_path / "wheel"), str(REPO)],
                   check=True, capture_output=True)
    wheel = next((tmp_path / "wheel").glob("*.whl"))
    assert "engine/grammar/rw.lark" in zipfile.ZipFile(wheel).namelist()

    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    script = ("import engine; print(engine.__file__); "
              f"print(engine.load_rules({str(REPO / 'rules' / 'autocast.rw')!r}))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)})
    assert result.returncode == 0, result.stderr
    installed_at, rules = result.stdout.splitlines()
    assert installed_at == str(target / "engine" / "__init__.py")
    assert rules == "RuleSet(autocast_regions)"
