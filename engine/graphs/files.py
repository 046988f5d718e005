"""Writing a file whole: afterwards the target holds either all of the new contents or, after
any failure or kill, exactly what it held before.

Input: a target path and its new contents: text or bytes (`write_atomic`), or whatever a writer
puts into a binary file object (`writing`, for `torch.export.save` and the like). Output: the
target replaced in one step. The contents go into a temporary file in the target's own folder
(so on the same filesystem), named `.NAME.XXXXXXXX.tmp`; it is flushed and `fsync`ed, given the
target's permission bits (a new file gets what `open()` would give it: 0o666 less the umask),
then `os.replace`d over the target, and the folder is `fsync`ed so the new name survives a
power cut. On any failure (an exception from the writer, a full disk, a file-size limit) the
temporary file is removed and the target is untouched; a kill leaves at most the temporary
file, never a part-written target. A process still reading the old file keeps reading the old
file: the rename gives the name to a new inode and leaves the old one alone until it is closed.

A symbolic link is followed: the file it names is replaced and the link kept. A target that
exists and is not a regular file (`/dev/null`, a named pipe) is written into directly, as
`open()` would: there is no whole file there to keep. Replacing a file gives it a new inode, so
other hard links to it keep the old contents.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


class WriteError(OSError):
    """A file could not be written. The message names the file, why, and what is there now."""

    def __init__(self, path: str, cause: BaseException, existed: bool, replaced: bool = False):
        reason = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
        super().__init__(getattr(cause, "errno", None), reason, path)
        self.path, self.reason = path, reason
        if replaced:
            self.kept = "the new contents are in place, but its folder could not be synced"
        elif existed:
            self.kept = "the file there is as it was"
        else:
            self.kept = "nothing was written"

    def __str__(self) -> str:
        return f"{self.path}: error: cannot write it: {self.reason}; {self.kept}"


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Replaces the file at `path` by `data` (text is written as UTF-8), whole or not at all."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with writing(path) as file:
        file.write(raw)


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write the new contents of `path` into; when the block ends, they
    replace the file at `path` in one step. If the block raises, `path` is left as it was and
    the exception goes on (an `OSError` as a `WriteError` naming the file)."""
    shown = os.fspath(path)
    try:
        found = os.stat(shown)  # follows a link
    except FileNotFoundError:
        found = None
    except OSError as error:
        raise WriteError(shown, error, existed=False) from error
    if found is not None and stat.S_ISDIR(found.st_mode):
        raise WriteError(shown, IsADirectoryError(errno.EISDIR, "it is a folder"), existed=False)
    if found is not None and not stat.S_ISREG(found.st_mode):
        with _errors_named(shown, existed=True), open(shown, "wb") as file:
            yield file
        return
    target = Path(os.path.realpath(shown))
    folder = target.parent
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name[:200]}.", suffix=TEMP_SUFFIX,
                                    dir=folder)
    except OSError as error:
        raise WriteError(shown, error, existed=found is not None) from error
    deferred = None
    try:
        with os.fdopen(fd, "wb") as file:
            deferred = _Deferred(file)
            yield deferred
            deferred.raise_any()
            file.flush()
            _match_owner_and_mode(file.fileno(), found)
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException as error:
        with suppress(OSError):
            os.unlink(temp)
        failed = deferred.error if deferred is not None else None
        cause = failed if failed is not None and isinstance(error, Exception) else error
        if isinstance(cause, OSError) and not isinstance(cause, WriteError):
            raise WriteError(shown, cause, existed=found is not None) from cause
        raise
    try:
        _sync_folder(folder)
    except OSError as error:
        raise WriteError(shown, error, existed=True, replaced=True) from error


class _Deferred(io.RawIOBase):
    """The temporary file as the writer sees it: the first failed write is kept, and later
    writes are dropped, until the block ends and it is raised. A writer in C++ (torch's archive
    writer) that sees a write fail is left in a state its destructor aborts the process on;
    this one finishes its archive into nothing and returns, and the failure is told then."""

    def __init__(self, file: BinaryIO):
        super().__init__()
        self.file, self.error = file, None

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.file.seekable()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        if self.error is None:
            try:
                self.file.write(data)
            except OSError as error:
                self.error = error
        return size

    def flush(self) -> None:
        if self.error is None and not self.file.closed:
            try:
                self.file.flush()
            except OSError as error:
                self.error = error

    def close(self) -> None:  # the file is closed by `writing`, after its checks
        pass

    def raise_any(self) -> None:
        if self.error is not None:
            raise self.error


@contextmanager
def _errors_named(path: str, existed: bool) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        if isinstance(error, WriteError):
            raise
        raise WriteError(path, error, existed) from error


def _match_owner_and_mode(fd: int, found: os.stat_result | None) -> None:
    """The old file's permission bits (and owner, where we may set it); a new file's are those
    `open()` would give it."""
    if found is None:
        os.fchmod(fd, 0o666 & ~_umask())
        return
    if (found.st_uid, found.st_gid) != (os.geteuid(), os.getegid()):
        with suppress(OSError):  # only root may give a file away
            os.fchown(fd, found.st_uid, found.st_gid)
    os.fchmod(fd, stat.S_IMODE(found.st_mode))


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it."""
    with suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _sync_folder(folder: Path) -> None:
    """The folder's entries (the new name) to disk; a no-op where folders cannot be opened."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
