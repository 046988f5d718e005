"""A non-editable install carries the grammar, the bundled rules and the import-time hook: build
the wheel, install it apart, load rules from it."""

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
    names = zipfile.ZipFile(wheel).namelist()
    assert "engine/grammar/rw.lark" in names
    assert {"engine/rules/export.rw", "engine/rules/autocast.rw", "engine/rules/set_grad.rw",
            "engine_autoload.py"} <= set(names)
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    assert "[torch.backends]\nfx_rewrite_engine_export = engine_autoload:autoload" in \
        zipfile.ZipFile(wheel).read(entry_points).decode()

    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    script = ("import engine; print(engine.__file__); "
              f"print(engine.load_rules({str(REPO / 'rules' / 'autocast.rw')!r})); "
              "from engine.frontends.torch_export import bundled_rules; "
              "print(engine.load_rules(bundled_rules()))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)})
    assert result.returncode == 0, result.stderr
    installed_at, rules, bundled = result.stdout.splitlines()
    assert installed_at == str(target / "engine" / "__init__.py")
    assert rules == "RuleSet(autocast_regions)"
    assert bundled.startswith("RuleSet(autocast_regions, grad_mode_changes")
