"""Every file the engine writes is written whole (`engine.graphs.files`): a kill, a file-size
limit or a full disk part way through leaves the previous file as it was, never a part of the
new one. The commands run as users run them, in their own process."""

from __future__ import annotations

import errno
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from syrupy.data import Snapshot, SnapshotCollection

from engine.graphs import files
from engine.graphs.files import WriteError, write_atomic, writing
from tests.conftest import TextSnapshot
from tests.test_rule_fixtures import FAILING  # a case whose expectation --update rewrites

REPO = Path(__file__).resolve().parent.parent
CLEANUP = "rules/cleanup.rw"
ALGEBRA = "rules/algebra.rw"
LIMIT = 64  # bytes: smaller than anything a command below writes
OLD = "the previous contents\n"


def engine(*argv, limit: int | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.frontends.cli", *map(str, argv)],
                          cwd=REPO, capture_output=True, text=True, env=_env(),
                          preexec_fn=_file_size_limit(limit) if limit else None, **kwargs)


def _env() -> dict[str, str]:
    # No .pyc written under the limit (it would only fail quietly), no colour.
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"}


def _file_size_limit(size: int):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with EFBIG
    return limit


def temporary_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if re.fullmatch(r"\..+\.\w+\.tmp", p.name))


def assert_refused_and_kept(done: subprocess.CompletedProcess, target: Path, old: bytes | None):
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    kept = "the file there is as it was" if old is not None else "nothing was written"
    assert done.stderr.rstrip().splitlines()[-1] == \
        f"{target}: error: cannot write it: File too large; {kept}"
    if old is None:
        assert not target.exists()
    else:
        assert target.read_bytes() == old
    assert temporary_files(target.parent) == []


# --- a small program, for the commands under a file-size limit -----------------------------------
class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x):
        return self.linear(x).float() * 2


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("small") / "small.pt2"
    torch.export.save(torch.export.export(Small(), (torch.randn(2, 8),)), path)
    return path


@pytest.mark.parametrize("flag,name", [("-o", "out.pt2"), ("-o", "out.fxg"), ("--html", "r.html")])
def test_apply_under_a_file_size_limit_keeps_the_previous_file(small, tmp_path, flag, name):
    target = tmp_path / name
    target.write_text(OLD)
    done = engine("apply", CLEANUP, small, flag, target, limit=LIMIT)
    assert_refused_and_kept(done, target, OLD.encode())


def test_apply_under_a_file_size_limit_makes_no_new_file(small, tmp_path):
    target = tmp_path / "new.pt2"
    assert_refused_and_kept(engine("apply", CLEANUP, small, "-o", target, limit=LIMIT),
                            target, None)


def test_draw_under_a_file_size_limit_keeps_the_previous_file(small, tmp_path):
    target = tmp_path / "d.dot"
    target.write_text(OLD)
    done = engine("draw", CLEANUP, small, "-o", target, limit=LIMIT)
    assert_refused_and_kept(done, target, OLD.encode())


def test_the_same_commands_without_the_limit_write_the_files(small, tmp_path):
    """The control of the tests above: the limit is what stops them."""
    html, text = tmp_path / "r.html", tmp_path / "out.fxg"
    done = engine("apply", CLEANUP, small, "--html", html, "-o", text)
    assert done.returncode == 0, done.stderr
    assert html.read_text().startswith("<!DOCTYPE html>") and "def forward(" in text.read_text()
    assert engine("draw", small, "-o", tmp_path / "d.dot").returncode == 0
    assert (tmp_path / "d.dot").read_text().startswith("digraph")
    assert temporary_files(tmp_path) == []


# --- engine test --update -----------------------------------------------------------------------


def test_update_that_cannot_write_leaves_the_fixture_whole(tmp_path):
    fixture = tmp_path / "times_one.fxt"
    fixture.write_text(FAILING)
    done = engine("test", ALGEBRA, fixture, "--update", limit=LIMIT)
    assert_refused_and_kept(done, fixture, FAILING.encode())
    updated = engine("test", ALGEBRA, fixture, "--update")  # the control: it would change it
    assert updated.returncode == 0, updated.stderr
    assert fixture.read_text() != FAILING and "    return (x,)" in fixture.read_text()


# --- a program of ~130 MB, killed while it is written -------------------------------------------
WIDTH, LAYERS = 2896, 2  # 2 x 2896 x 2896 float32 weights: 67 MB


class Big(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(WIDTH, WIDTH) for _ in range(LAYERS))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x).float()
        return x


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """(the saved program, an input, what the model computes on it)."""
    torch.manual_seed(0)
    model, x = Big(), torch.randn(2, WIDTH)
    path = tmp_path_factory.mktemp("big") / "big.pt2"
    torch.export.save(torch.export.export(model, (x,)), path)
    with torch.no_grad():
        return path, x, model(x)


def kill_while_writing(argv, folder: Path, name: str) -> Path:
    """Runs the command and SIGKILLs it once its temporary file for `name` holds 1 MiB."""
    log = (folder / "stderr.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "engine.frontends.cli", *map(str, argv)],
                               cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            growing = [p for p in folder.glob(f".{name}.*.tmp") if _size(p) >= 1 << 20]
            if growing:
                process.kill()
                break
            assert process.poll() is None, "the command ended before it was seen writing"
            time.sleep(0.002)
        else:
            pytest.fail("the command never started writing")
    finally:
        process.kill()
        process.wait()
        log.close()
    assert process.returncode == -signal.SIGKILL
    return growing[0]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def assert_whole_program(path: Path, x, expected):
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(path).module()(x), expected)


def test_a_kill_while_saving_leaves_the_previous_program(big, small, tmp_path):
    source, x, expected = big
    model, out = tmp_path / "big.pt2", tmp_path / "out.pt2"
    shutil.copyfile(source, model)
    shutil.copyfile(small, out)  # the previous OUT: another program, whole
    before = out.read_bytes()
    stray = kill_while_writing(["apply", CLEANUP, model, "-o", out], tmp_path, "out.pt2")
    assert out.read_bytes() == before
    torch.export.load(out)
    # At most a temporary file is left, named after the target, smaller than a whole program.
    assert temporary_files(tmp_path) == [stray] and stray.name.startswith(".out.pt2.")
    assert 0 < stray.stat().st_size < source.stat().st_size


def test_a_kill_while_saving_over_the_model_itself_leaves_the_model(big, tmp_path):
    source, x, expected = big
    model = tmp_path / "big.pt2"
    shutil.copyfile(source, model)
    before = model.read_bytes()
    stray = kill_while_writing(["apply", CLEANUP, model, "-o", model], tmp_path, "big.pt2")
    assert model.read_bytes() == before
    assert temporary_files(tmp_path) == [stray]
    assert_whole_program(model, x, expected)


def test_saving_over_the_model_itself_writes_the_rewritten_model(big, tmp_path):
    """`-o MODEL`: the program is read whole before it is written over, and the file keeps its
    permission bits."""
    source, x, expected = big
    model = tmp_path / "big.pt2"
    shutil.copyfile(source, model)
    model.chmod(0o640)
    done = engine("apply", CLEANUP, model, "-o", model)
    assert done.returncode == 0, done.stderr
    assert "rule `drop_identity_conversions`: 2 matches" in done.stderr
    assert model.read_bytes() != source.read_bytes()
    assert_whole_program(model, x, expected)
    assert model.stat().st_mode & 0o777 == 0o640
    assert temporary_files(tmp_path) == []


# --- a full disk --------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB filesystem of its own (a tmpfs; mounting one needs root)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_leaves_the_previous_program(small_disk, tmp_path):
    torch.manual_seed(0)
    model = tmp_path / "wide.pt2"  # ~1 MB of weights: more than the disk holds
    torch.export.save(torch.export.export(torch.nn.Linear(512, 512), (torch.randn(2, 512),)),
                      model)
    out = small_disk / "out.pt2"
    out.write_text(OLD)
    done = engine("apply", CLEANUP, model, "-o", out)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.rstrip().splitlines()[-1] == \
        f"{out}: error: cannot write it: No space left on device; the file there is as it was"
    assert out.read_text() == OLD
    assert sorted(p.name for p in small_disk.iterdir()) == ["out.pt2"]


# --- write_atomic and writing -------------------------------------------------------------------
def test_write_atomic_writes_text_as_utf8_and_bytes_as_they_are(tmp_path):
    write_atomic(tmp_path / "a.txt", "naïve\n")
    write_atomic(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "a.txt").read_bytes() == "naïve\n".encode()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    assert temporary_files(tmp_path) == []


def test_an_existing_file_keeps_its_permission_bits(tmp_path):
    target = tmp_path / "kept.txt"
    target.write_text(OLD)
    target.chmod(0o604)
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o7777 == 0o604


def test_a_new_file_gets_what_open_would_give_it(tmp_path):
    previous = os.umask(0o027)
    try:
        write_atomic(tmp_path / "new.txt", "new\n")
        (tmp_path / "opened.txt").write_text("new\n")
    finally:
        os.umask(previous)
    assert (tmp_path / "new.txt").stat().st_mode & 0o7777 == 0o640
    assert (tmp_path / "opened.txt").stat().st_mode & 0o7777 == 0o640


def test_a_writer_that_raises_leaves_the_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "kept.txt"
    target.write_text(OLD)
    with pytest.raises(ValueError, match="the writer broke"):
        with writing(target) as file:
            file.write(b"half of it")
            assert len(temporary_files(tmp_path)) == 1  # the new contents go there, not here
            assert target.read_text() == OLD
            raise ValueError("the writer broke")
    assert target.read_text() == OLD
    assert temporary_files(tmp_path) == []


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_a_failed_write_is_told_and_leaves_the_file(tmp_path, monkeypatch, failing):
    """A disk that fills up may say so at the write, or only when the file is synced."""
    target = tmp_path / "kept.txt"
    target.write_text(OLD)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if failing == "write":
        opened = os.fdopen

        class FullFile:  # the temporary file, on a disk with no room for another byte
            def __init__(self, fd, mode):
                self.real = opened(fd, mode)

            def __getattr__(self, name):
                return getattr(self.real, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.real.close()

            write = full

        monkeypatch.setattr(files.os, "fdopen", FullFile)
    else:
        monkeypatch.setattr(files.os, failing, full)
    with pytest.raises(WriteError) as raised:
        write_atomic(target, "new\n")
    assert str(raised.value) == \
        f"{target}: error: cannot write it: No space left on device; the file there is as it was"
    assert raised.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert target.read_text() == OLD
    assert temporary_files(tmp_path) == []


def test_a_writer_in_cpp_sees_no_failure_until_it_has_finished(tmp_path, monkeypatch):
    """torch's archive writer aborts the process in its destructor after a write it saw fail;
    the failure is kept until the writer returns, then told."""
    target = tmp_path / "out.pt2"
    target.write_text(OLD)
    calls = []

    class Full:
        closed = False

        def write(self, data):
            calls.append(len(data))
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

        def flush(self):
            pass

        def seekable(self):
            return True

    deferred = files._Deferred(Full())
    assert deferred.write(b"abc") == 3 and deferred.write(b"de") == 2
    assert calls == [3]  # nothing more is tried after the first failure
    with pytest.raises(OSError, match="File too large"):
        deferred.raise_any()
    program = torch.export.export(Small(), (torch.randn(2, 8),))
    with pytest.raises(WriteError, match="File too large; the file there is as it was"):
        with writing(target) as file:
            monkeypatch.setattr(file, "file", Full())
            torch.export.save(program, file)
    assert target.read_text() == OLD


def test_a_link_is_followed_and_kept(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text(OLD)
    link = tmp_path / "link.txt"
    link.symlink_to(real.name)
    write_atomic(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"


def test_a_named_pipe_is_written_into_not_replaced(tmp_path):
    import threading

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    got = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()))
    reader.start()
    write_atomic(pipe, b"through the pipe")
    reader.join(timeout=10)
    assert got == [b"through the pipe"]
    assert pipe.is_fifo()


def test_a_folder_is_not_replaced(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(WriteError, match="it is a folder; nothing was written"):
        write_atomic(folder, "x")
    assert folder.is_dir() and temporary_files(tmp_path) == []


def test_a_missing_folder_is_told(tmp_path):
    target = tmp_path / "no" / "such.txt"
    with pytest.raises(WriteError) as raised:
        write_atomic(target, "x")
    assert str(raised.value) == \
        f"{target}: error: cannot write it: No such file or directory; nothing was written"


# --- snapshot updates ---------------------------------------------------------------------------
def test_snapshot_updates_are_written_whole(tmp_path, monkeypatch):
    location = tmp_path / "test_x.txt"
    location.write_text(OLD)

    def collection(text):
        made = SnapshotCollection(location=str(location))
        made.add(Snapshot(name="test_x", data=text))
        return made

    TextSnapshot.write_snapshot_collection(snapshot_collection=collection("new\n"))
    assert location.read_text() == "new\n"

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(WriteError, match="No space left on device; the file there is as it was"):
        TextSnapshot.write_snapshot_collection(snapshot_collection=collection("newer\n"))
    monkeypatch.undo()
    assert location.read_text() == "new\n"
    assert temporary_files(tmp_path) == []
