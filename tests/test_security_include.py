"""`include` reads rule files and nothing else (README `## Security`, `### include`).

Each case is a folder holding a root `main.rw` whose line 2 includes one target that must be
refused: a file outside the root's folder (absolute, through `../..`, through a symlink), the
kernel's files (/proc, /sys), devices, a FIFO, a socket, a directory, a file over the size
bound, and files that are no rule text (binary, a NUL, not UTF-8, text without an item). Every
target holds (or reaches) `SECRET`; the checker is driven as a user drives it: `engine check` as
a process over every case at once, and `engine lsp` over stdio (tests/test_lsp.py's client).
Each refusal is one located error at the `include`, and `SECRET` is in no output and no
published diagnostic.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from lsprotocol import types

import engine
from engine.language import load
from engine.language.load import MAX_BYTES
from tests.test_lsp import Editor, uri

REPO = Path(__file__).resolve().parent.parent
SECRET = "sk-secret123-include-never-shows-it"
RELU_TWICE = "use torch.ops.aten.relu\nrule relu_of_relu:\n    match relu(relu($x))\n" \
             "    replace with relu($x)\n"
OUTSIDE = f"use torch.ops.aten.relu\n# {SECRET}\nrule {SECRET}:\n"  # a rule file, and broken
BEYOND = "outside `{folder}`, the folder of the root file, and outside the rule library"
OUTSIDE_TREE = "it lies " + BEYOND
IN_PROC = "it lies in `/proc`, which holds no rule files"
NOT_REGULAR = "it is {}, not a regular file"
NO_RULE_FILE = ("it is no rule file: its first word (at {}) is not `include`, `use`, `rule`, "
                "`pattern` or `condition`")


def _symlink(target: str):
    return lambda folder: os.symlink(target, folder / "link.rw")


def _write(name: str, data: bytes):
    return lambda folder: (folder / name).write_bytes(data)


def _huge(folder: Path) -> None:
    with open(folder / "big.rw", "wb") as file:  # sparse: one block on disk
        file.write(f"use torch.ops.aten.relu  # {SECRET}\n".encode())
        file.truncate(MAX_BYTES + 1)


def _socket(folder: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(folder / "sock.rw"))  # the socket file stays after the close
    listener.close()


# name: (what main.rw includes, how the folder is made, the reason the error gives)
CASES = {
    "absolute_etc_passwd": ("/etc/passwd", None, OUTSIDE_TREE),
    "absolute_proc_environ": ("/proc/self/environ", None, IN_PROC),
    "symlink_to_proc_environ": ("link.rw", _symlink("/proc/self/environ"), IN_PROC),
    "dotdot_to_proc_environ": ("../" * 40 + "proc/self/environ", None, IN_PROC),
    "absolute_dev_zero": ("/dev/zero", None, OUTSIDE_TREE),
    "symlink_to_dev_zero": ("link.rw", _symlink("/dev/zero"),
                            "it resolves to `/dev/zero`, which lies " + BEYOND),
    "absolute_dev_urandom": ("/dev/urandom", None, OUTSIDE_TREE),
    "fifo": ("pipe.rw", lambda folder: os.mkfifo(folder / "pipe.rw"), NOT_REGULAR.format("a FIFO")),
    "socket": ("sock.rw", _socket, NOT_REGULAR.format("a socket")),
    "directory": ("folder.rw", lambda folder: (folder / "folder.rw").mkdir(),
                  NOT_REGULAR.format("a directory")),
    "symlink_out_of_the_tree": ("link.rw", lambda folder: os.symlink(
        folder.parent / "outside" / "secret.rw", folder / "link.rw"),
        "it resolves to `{base}/outside/secret.rw`, which lies " + BEYOND),
    "dotdot_out_of_the_tree": ("../../{base_name}/outside/secret.rw", None, OUTSIDE_TREE),
    "over_the_size_bound": ("big.rw", _huge, f"it is larger than 4 MiB ({MAX_BYTES + 1} bytes)"),
    "binary": ("binary.rw", _write("binary.rw", bytes(range(256)) + SECRET.encode()),
               "it holds a NUL byte (at 1:1); rule files are text"),
    "nul_in_text": ("nul.rw", _write("nul.rw", f"use torch.ops.aten.relu\n# {SECRET}\0\n".encode()),
                    f"it holds a NUL byte (at 2:{3 + len(SECRET)}); rule files are text"),
    "not_utf8": ("latin1.rw", _write("latin1.rw", f"use torch.ops.aten.relu\n# caf\xe9 {SECRET}\n"
                                     .encode("latin-1")), "it is not UTF-8 text (at 2:6)"),
    "text_with_a_secret": (".env", _write(".env", f"API_KEY={SECRET}\n".encode()),
                           NO_RULE_FILE.format("1:1")),
    "commented_text_with_a_secret": ("settings.rw", _write(
        "settings.rw", f"# settings\n\n  API_KEY={SECRET}\nuse x\n".encode()),
        NO_RULE_FILE.format("3:3")),
}
MAIN = 'use torch.ops.aten.relu\ninclude "{}"\n'
ERROR = re.compile(r"^(\w+)/main\.rw:(\d+):(\d+): error: cannot include `([^`]*)`: (.*)$",
                   re.MULTILINE)


def _passwd_line() -> str:
    """A line of /etc/passwd: what `include "/etc/passwd"` must not show (it holds no SECRET)."""
    lines = Path("/etc/passwd").read_text().splitlines() if Path("/etc/passwd").exists() else []
    return lines[0] if lines else SECRET


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Every case's folder, and `outside/secret.rw` beside them (a broken rule file quoting
    SECRET, were it ever read)."""
    base = tmp_path_factory.mktemp("include").resolve()
    (base / "outside").mkdir()
    (base / "outside" / "secret.rw").write_text(OUTSIDE)
    for name, (target, make, _) in CASES.items():
        folder = base / name
        folder.mkdir()
        (folder / "main.rw").write_text(MAIN.format(target.format(base_name=base.name)))
        if make is not None:
            make(folder)
    return base


@pytest.fixture(scope="module")
def secret_environment():
    """SECRET in the environment of every process started here: /proc/self/environ holds it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FX_INCLUDE_SECRET", SECRET)
        yield


@pytest.fixture(scope="module")
def checked(base, secret_environment) -> subprocess.CompletedProcess:
    """`engine check` over every case's root at once; a FIFO must not make it wait."""
    return subprocess.run(
        [sys.executable, "-m", "engine.frontends.cli", "check",
         *(f"{name}/main.rw" for name in CASES)],
        cwd=base, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def editor(secret_environment):
    editor = Editor()
    yield editor
    editor.stop()


def _reason(name: str, base: Path, folder: str) -> str:
    return CASES[name][2].format(folder=folder, base=base)


def test_check_shows_none_of_the_refused_files(checked):
    output = checked.stdout + checked.stderr
    assert checked.returncode == 1
    assert SECRET not in output and _passwd_line() not in output
    assert output.count(": error: ") == len(CASES)
    assert checked.stderr.rstrip().endswith(f"{len(CASES)} errors")


@pytest.mark.parametrize("name", CASES)
def test_check_refuses_it_at_the_include(name, checked, base):
    [error] = [match for match in ERROR.finditer(checked.stderr) if match[1] == name]
    _, line, column, path, reason = error.groups()
    assert (line, column) == ("2", "1")
    assert path.endswith(os.path.basename(CASES[name][0]))
    assert reason == _reason(name, base, name)
    # One line, then the include quoted (a long one, the part about the caret): nothing of the
    # target.
    quoted = checked.stderr[error.end():].split("\n")[1]
    include = (base / name / "main.rw").read_text().splitlines()[1]
    assert quoted.startswith("    include ")
    assert quoted.removeprefix("    ").removesuffix("...") in include


@pytest.mark.parametrize("name", CASES)
def test_the_language_server_refuses_it_at_the_include(name, editor, base):
    main = base / name / "main.rw"
    text = main.read_text()
    [[refused]] = editor.open(main, text)
    assert (refused.range.start.line, refused.range.start.character) == (1, 0)
    assert refused.message.startswith("cannot include `")
    assert refused.message.endswith(": " + _reason(name, base, str(base / name)))
    # Nothing leads to the file: no hover, no definition (a request: every publish is in).
    assert editor.hover(main, types.Position(1, 10)) is None
    assert editor.definition(main, types.Position(1, 10)) is None
    assert not [path for path, published in editor.published.items() if SECRET in repr(published)]
    # Published only for the roots: never for a refused file.
    assert {path for path in editor.published if path.startswith(uri(base))} <= {
        uri(base / case / "main.rw") for case in CASES}


def test_the_language_server_refuses_what_the_editor_holds_open_too(editor, tmp_path):
    """An included file open in the editor is held to the same rules: its text, not the
    disk's, is the one refused."""
    main, secrets = tmp_path / "main.rw", tmp_path / "secrets.rw"
    secrets.write_text("use torch.ops.aten.relu\n")  # on disk: a rule file
    editor.open(secrets, f"API_KEY={SECRET}\n")
    [[refused]] = editor.open(main, 'include "secrets.rw"\n')
    assert refused.message == f"cannot include `{secrets}`: {NO_RULE_FILE.format('1:1')}"
    assert not [path for path, published in editor.published.items() if SECRET in repr(published)]


def test_a_text_root_includes_relative_to_the_working_directory_and_stays_in_it(editor,
                                                                                 tmp_path):
    """A document never saved is a root given as text: its includes are read relative to the
    server's working directory (the repository here) and must stay in it."""
    tmp_path.joinpath("elsewhere.rw").write_text(RELU_TWICE)
    elsewhere = os.path.relpath(tmp_path / "elsewhere.rw", REPO)
    [[refused]] = editor.open("untitled:Untitled-9",
                              f'include "rules/autocast.rw"\ninclude "{elsewhere}"\n')
    assert refused.range.start.line == 1
    assert refused.message == (f"cannot include `{elsewhere}`: it lies outside the working "
                               "directory (the root is text), and outside the rule library")


# --- the same, in a process's own working directory ---------------------------------------------
@pytest.mark.parametrize("target, reason", [
    ("dev/zero", NOT_REGULAR.format("a character device")),
    ("dev/urandom", NOT_REGULAR.format("a character device")),
    ("proc/self/environ", IN_PROC),
    ("sys", "it lies in `/sys`, which holds no rule files")])
def test_with_the_whole_disk_as_the_folder_devices_and_kernel_files_are_refused(
        target, reason, monkeypatch):
    """`rules_from_text` in `/`: every file lies in the working directory, and still only
    regular files outside /proc and /sys are read."""
    monkeypatch.chdir("/")
    with pytest.raises(engine.RuleError) as caught:
        engine.rules_from_text(f'include "{target}"\n')
    assert str(caught.value).splitlines()[0] == (
        f"<text>:1:1: error: cannot include `{target}`: {reason}")


def test_a_text_root_is_refused_a_file_above_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    (tmp_path / "lib.rw").write_text(RELU_TWICE)
    (tmp_path / "work" / "lib.rw").write_text(RELU_TWICE)
    monkeypatch.chdir(tmp_path / "work")
    assert [rule.name for rule in engine.rules_from_text('include "lib.rw"\n').rules] == [
        "relu_of_relu"]
    with pytest.raises(engine.RuleError, match=r"^<text>:1:1: error: cannot include "
                                               r"`\.\./lib\.rw`: it lies outside the working "
                                               r"directory \(the root is text\)"):
        engine.rules_from_text('include "../lib.rw"\n')


# --- a file swapped between the check and the open ------------------------------------------------
def test_a_file_swapped_for_a_fifo_after_the_check_is_caught_without_waiting(tmp_path,
                                                                            monkeypatch):
    """The kind is checked again on the opened descriptor, opened without blocking: a FIFO that
    replaced a regular file after `os.stat` looked is refused at once, not waited on."""
    regular, fifo = tmp_path / "regular.rw", tmp_path / "pipe.rw"
    regular.write_text(RELU_TWICE)
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda path, *a, **k: real_stat(
        regular if str(path) == str(fifo) else path, *a, **k))
    outcome = []

    def read():
        try:
            load.read_rule_file(str(fifo))
        except load.NotARuleFile as error:
            outcome.append(error.reason)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert not reader.is_alive() and outcome == [NOT_REGULAR.format("a FIFO")]


def test_a_symlink_swapped_in_after_the_path_was_resolved_is_not_followed(tmp_path, monkeypatch):
    """The file is opened by its resolved path without following a symlink there: one put in
    its place (to a file outside the folder) after the path was resolved fails to open."""
    (tmp_path / "outside.rw").write_text(OUTSIDE)
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "main.rw").write_text('include "swapped.rw"\n')
    os.symlink(tmp_path / "outside.rw", tmp_path / "root" / "swapped.rw")
    real_realpath = os.path.realpath
    monkeypatch.setattr(os.path, "realpath", lambda path, *a, **k: (
        str(path) if str(path).endswith("swapped.rw") else real_realpath(path, *a, **k)))
    with pytest.raises(engine.RuleError) as caught:
        engine.load_rules(tmp_path / "root" / "main.rw")
    message = str(caught.value)
    assert message.splitlines()[0] == (
        f"{tmp_path}/root/main.rw:1:1: error: cannot read `{tmp_path}/root/swapped.rw`: "
        "Too many levels of symbolic links")
    assert SECRET not in message


# --- roots named by path --------------------------------------------------------------------------
@pytest.mark.parametrize("root, reason", [
    ("/dev/zero", NOT_REGULAR.format("a character device")),
    ("/proc/self/environ", IN_PROC)])
def test_a_root_named_by_path_is_held_to_the_same_kinds(root, reason):
    with pytest.raises(load.NotARuleFile) as caught:
        engine.load_rules(root)
    assert str(caught.value) == f"cannot read `{root}`: {reason}"


def test_check_of_a_kernel_file_as_the_root_shows_nothing_of_it(secret_environment):
    checked = subprocess.run([sys.executable, "-m", "engine.frontends.cli", "check",
                              "/proc/self/environ"], capture_output=True, text=True, timeout=300)
    assert checked.returncode == 1 and SECRET not in checked.stdout + checked.stderr
    assert checked.stderr.strip() == (
        f"error: NotARuleFile: cannot read `/proc/self/environ`: {IN_PROC}")


def test_a_root_shows_its_own_mistakes_with_their_lines(tmp_path):
    (tmp_path / "notes.rw").write_text("hello rules\n")
    with pytest.raises(engine.RuleError) as caught:
        engine.load_rules(tmp_path / "notes.rw")
    assert str(caught.value).splitlines()[:2] == [
        f"{tmp_path}/notes.rw:1:1: error: unexpected `hello`, expected one of `condition`, "
        "`include`, `pattern`, `rule`, `use`, the end of the file", "    hello rules"]


def test_a_root_over_the_size_bound_is_refused(tmp_path):
    path = tmp_path / "big.rw"
    path.write_text(RELU_TWICE)
    os.truncate(path, MAX_BYTES + 1)
    with pytest.raises(load.NotARuleFile, match=r"it is larger than 4 MiB \(4194305 bytes\)"):
        engine.load_rules(path)
    os.truncate(path, MAX_BYTES)  # at the bound: read (and reported, as a root, where the NUL is)
    with pytest.raises(engine.RuleError, match=r"big\.rw:5:1: error: the file holds a NUL byte"):
        engine.load_rules(path)


# --- what still works -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def legit(tmp_path_factory) -> Path:
    """Includes that stay in the root's folder (into a subfolder, back out of it with `..`,
    through a symlink in the folder, a file of comments only) or reach the rule library by its
    absolute path."""
    folder = tmp_path_factory.mktemp("legit").resolve()
    (folder / "sub").mkdir()
    (folder / "main.rw").write_text(
        f'include "sub/lib.rw"\ninclude "{REPO / "rules" / "export.rw"}"\ninclude "alias.rw"\n'
        'include "notes.rw"\n')
    (folder / "sub" / "lib.rw").write_text('include "../shared.rw"\nuse torch.ops.aten.relu\n')
    (folder / "shared.rw").write_text(RELU_TWICE)
    os.symlink(folder / "shared.rw", folder / "alias.rw")  # the same file again: read once
    (folder / "notes.rw").write_text("# Only comments: no rules, and nothing to refuse.\n\n")
    return folder


def test_includes_inside_the_folder_and_the_library_still_check(legit):
    checked = subprocess.run([sys.executable, "-m", "engine.frontends.cli", "check", "main.rw"],
                             cwd=legit, capture_output=True, text=True, timeout=300)
    assert (checked.returncode, checked.stderr) == (0, "")
    assert checked.stdout == "main.rw: 5 rules, no errors\n"
    assert [rule.name for rule in engine.load_rules(legit / "main.rw").rules] == [
        "relu_of_relu", "autocast_regions", "grad_mode_changes", "grad_mode_kept",
        "autocast_regions_stay"]


def test_an_included_rule_file_shows_its_own_mistakes_with_their_lines(tmp_path):
    """A file that passes is a rule file: a syntax error in it is located and quoted in it."""
    (tmp_path / "lib.rw").write_text("# a rule without its action\nuse torch.ops.aten.relu\n"
                                     "rule r:\n    match relu($x)\n")
    (tmp_path / "main.rw").write_text('include "lib.rw"\n')
    with pytest.raises(engine.RuleError) as caught:
        engine.load_rules(tmp_path / "main.rw")
    header, quoted = str(caught.value).splitlines()[:2]
    assert header.startswith(f"{tmp_path}/lib.rw:4:") and "unexpected end of file" in header
    assert quoted == "        match relu($x)"


def test_the_language_server_checks_the_same_includes(editor, legit):
    main = legit / "main.rw"
    [diagnostics] = editor.open(main, main.read_text())
    assert diagnostics == []
    export = editor.definition(main, types.Position(1, 12))
    assert export.uri == uri(REPO / "rules" / "export.rw")


def test_the_rule_library_is_the_bundled_rules_folder():
    assert load.library_folder() == os.path.realpath(engine.frontends.torch_export.bundled_rules(
        "export.rw").parent)
