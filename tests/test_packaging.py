"""A non-editable install carries the grammar, the bundled rules and the import-time hook: build
the wheel, install it apart, load rules from it. A plain install (`pip install .`, no extras)
brings what `engine verify` needs, and without hypothesis the command says what to install."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OURS = "fx-rewrite-engine"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "--wheel-dir", str(folder), str(REPO)],
                   check=True, capture_output=True)
    return next(folder.glob("*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel unpacked into a folder of its own: what `pip install .` puts in site-packages."""
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_wheel_ships_the_grammar_and_works_installed(wheel, installed, tmp_path):
    names = zipfile.ZipFile(wheel).namelist()
    assert "engine/grammar/rw.lark" in names
    assert {"engine/rules/export.rw", "engine/rules/autocast.rw", "engine/rules/set_grad.rw",
            "engine_autoload.py"} <= set(names)
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    assert "[torch.backends]\nfx_rewrite_engine_export = engine_autoload:autoload" in \
        zipfile.ZipFile(wheel).read(entry_points).decode()

    script = ("import engine; print(engine.__file__); "
              f"print(engine.load_rules({str(REPO / 'rules' / 'autocast.rw')!r})); "
              "from engine.frontends.torch_export import bundled_rules; "
              "print(engine.load_rules(bundled_rules()))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)})
    assert result.returncode == 0, result.stderr
    installed_at, rules, bundled = result.stdout.splitlines()
    assert installed_at == str(installed / "engine" / "__init__.py")
    assert rules == "RuleSet(autocast_regions)"
    assert bundled.startswith("RuleSet(autocast_regions, grad_mode_changes")


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)[0]).lower()


def _core(requirements) -> set[str]:
    """The distributions named by requirements that no extra asks for (other markers count as
    true: more allowed, never less)."""
    return {_name(r) for r in requirements or () if not re.search(r";.*\bextra\b", r)}


def _dependencies(wheel: Path) -> set[str]:
    """What a plain `pip install` of the wheel brings: its core requirements, theirs, and so on
    (as installed here)."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    todo = _core(line.split(":", 1)[1].strip() for line in lines
                 if line.startswith("Requires-Dist:"))
    found = set()
    while todo:
        name = todo.pop()
        found.add(name)
        try:
            todo |= _core(importlib.metadata.requires(name)) - found
        except importlib.metadata.PackageNotFoundError:  # a platform's only (triton...)
            pass
    return found


# Runs the CLI as an install with only these distributions would: importing a module of any
# other installed distribution fails as it would where that one is not installed.
ONLY = """
import importlib.metadata, json, re, sys
allowed = set(json.loads(sys.argv[1]))
owners = importlib.metadata.packages_distributions()

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        names = {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(top, ())}
        if names and not names & allowed:
            raise ModuleNotFoundError(f"No module named {top!r}", name=top)

sys.meta_path.insert(0, NotInstalled())
from engine.frontends.cli import main
sys.exit(main(sys.argv[2:]))
"""


def engine_with_only(distributions: set[str], installed: Path, *argv: str):
    return subprocess.run([sys.executable, "-c", ONLY, json.dumps(sorted(distributions)), *argv],
                          capture_output=True, text=True, cwd=installed,
                          env={**os.environ, "PYTHONPATH": str(installed)})


def test_a_plain_install_verifies_rules(wheel, installed):
    """`pip install .` is the install a rule author makes: `engine verify` runs on it."""
    dependencies = _dependencies(wheel)
    assert "hypothesis" in dependencies
    result = engine_with_only(dependencies | {OURS}, installed, "verify",
                              "engine/rules/algebra.rw", "--examples", "20")
    assert result.returncode == 0, result.stderr
    last = result.stdout.splitlines()[-1]
    assert re.fullmatch(r"no findings in \d+ rules", last), result.stdout


def test_verify_without_hypothesis_says_what_to_install(wheel, installed):
    result = engine_with_only(_dependencies(wheel) - {"hypothesis"} | {OURS}, installed,
                              "verify", "engine/rules/algebra.rw")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == ("engine verify: error: drawing instances needs hypothesis (No module "
                             "named 'hypothesis'); install it with `pip install hypothesis`\n")
