"""Loading rule files: one file however it is named, text that is not text, includes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import engine
from engine.frontends.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("second", ["./rules/autocast.rw", "rules/../rules/autocast.rw",
                                    str(REPO / "rules" / "autocast.rw")])
def test_a_root_file_named_two_ways_is_one_file(second, monkeypatch):
    monkeypatch.chdir(REPO)
    rules = engine.load_rules("rules/export.rw", second)
    assert [rule.name for rule in rules.rules] == [
        "autocast_regions", "grad_mode_changes", "grad_mode_kept", "autocast_regions_stay"]


def test_check_accepts_a_root_that_an_include_also_names(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert main(["check", "rules/export.rw", "./rules/autocast.rw"]) == 0
    assert "4 rules, no errors" in capsys.readouterr().out


def test_a_file_included_through_a_symlink_is_read_once(tmp_path):
    (tmp_path / "real.rw").write_text((REPO / "rules" / "autocast.rw").read_text())
    os.symlink(tmp_path / "real.rw", tmp_path / "alias.rw")
    (tmp_path / "both.rw").write_text('include "real.rw"\ninclude "alias.rw"\n')
    assert [rule.name for rule in engine.load_rules(tmp_path / "both.rw").rules] == [
        "autocast_regions"]


def test_a_file_that_is_not_utf8_is_located(tmp_path):
    path = tmp_path / "latin1.rw"
    path.write_bytes("# caf\u00e9\nuse torch.ops.aten.relu\n# na\u00efve\n".encode("latin-1"))
    with pytest.raises(engine.RuleError) as caught:
        engine.load_rules(path)
    assert str(caught.value).splitlines()[0] == (
        f"{path}:1:6: error: the file is not UTF-8 text: byte 0xe9 cannot start a character "
        "here")
    assert len(caught.value.diagnostics) == 1


def test_a_nul_byte_is_located(tmp_path):
    path = tmp_path / "nul.rw"
    path.write_bytes(b"use torch.ops.aten.relu\nrule r:\x00\n")
    with pytest.raises(engine.RuleError) as caught:
        engine.load_rules(path)
    assert str(caught.value).splitlines()[0] == (
        f"{path}:2:8: error: the file holds a NUL byte; rule files are text")


def test_an_included_file_that_is_not_utf8_is_refused_at_the_include(tmp_path):
    (tmp_path / "bad.rw").write_bytes(b"\xff\xfe")
    (tmp_path / "main.rw").write_text('include "bad.rw"\n')
    with pytest.raises(engine.RuleError, match=r"main\.rw:1:1: error: cannot include `.*bad\.rw`: "
                                               r"it is not UTF-8 text \(at 1:1\)"):
        engine.load_rules(tmp_path / "main.rw")


def test_a_binary_rule_file_fails_through_the_cli_with_a_location(tmp_path, capsys):
    path = tmp_path / "binary.rw"
    path.write_bytes(bytes(range(256)))
    assert main(["check", str(path)]) == 1
    assert f"{path}:1:1: error: the file holds a NUL byte" in capsys.readouterr().err
