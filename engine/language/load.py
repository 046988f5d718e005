"""Rule files -> checked rules, or every diagnostic at once.

Input: the paths (or `Source`s: path and text) of root `.rw` files. Output: a `CheckResult`:
the checked rules in rule order, the diagnostics of every file (syntax errors, and the checks
of every item that parsed), the symbol index and the sources read; never a traceback for anything a
file holds. `include "other.rw"` brings another file's rules in at that point, its path taken
relative to the including file; each file is read once however it is named (`rules/a.rw`,
`./rules/a.rw` and its absolute path are one file) and keeps its own `use` names. A root file
that is not UTF-8 text, or holds a NUL byte, is reported at the offending position.

What an include may read (`_Files.refusal`, `read_rule_file`, `included_text_refusal`): a
regular file of at most `MAX_BYTES`, whose real path (symlinks resolved) lies inside the folder
of the root file it was reached from (for a root given as text, the working directory) or in
the bundled rule library (`engine.rules`), never under /proc or /sys; UTF-8 text without a NUL
that begins (past blank lines and `#` comments) with an item's word: `include`, `use`, `rule`,
`pattern` or `condition`. Anything else is refused at the `include`, saying why and showing nothing of the
file: a rule file can name a secret, never print it. Roots read by path are held to the same
kind and size (an `OSError`), not to a folder.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from . import ast, checked
from .diagnostics import Diagnostic, Source, Span
from .sema import check_files
from .symbols import FILE, Symbol, SymbolIndex
from .syntax import parse_source


@dataclass
class CheckResult:
    """What checking a set of rule files found. The rules are usable only without diagnostics."""

    rules: list[checked.Rule]
    diagnostics: list[Diagnostic]
    symbols: SymbolIndex
    sources: dict[str, Source] = field(default_factory=dict)  # by the path shown in diagnostics


def check_paths(paths: list[str | Path]) -> CheckResult:
    """Root files by path (an unreadable root raises OSError: that is a usage error)."""
    files = _Files()
    for path in paths:
        files.add_path(str(path))
    return files.check()


def check_sources(sources: list[Source], open_texts: dict[str, str] | None = None) -> CheckResult:
    """Root files given as text. `open_texts` (by `file_key`): the text of files an editor holds
    open, read instead of the disk where an include names one."""
    files = _Files(open_texts or {})
    for source in sources:
        files.add_source(source)
    return files.check()


def file_key(path: str) -> str:
    """What tells two names of one file apart from two files: the real path. Names that are no
    files (`<text>`) stand for themselves."""
    return os.path.realpath(path) if os.path.exists(path) else path


def decode(path: str, data: bytes, what: str = "rule files") -> tuple[Source, Diagnostic | None]:
    """The file's text, and a diagnostic at its first byte that is NUL or not UTF-8 text;
    `what` the files are (`graph files`), for the message."""
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
        bad = -1
    except UnicodeDecodeError as error:
        text = data.decode("utf-8", errors="replace")
        bad = error.start
    source = Source(path, text)
    if nul != -1 and (bad == -1 or nul < bad):
        return source, _at_offset(source, data[:nul], "the file holds a NUL byte; "
                                                      f"{what} are text")
    if bad != -1:
        return source, _at_offset(source, data[:bad], f"the file is not UTF-8 text: byte "
                                                      f"0x{data[bad]:02x} cannot start a "
                                                      "character here")
    return source, None


def _at_offset(source: Source, data: bytes, message: str) -> Diagnostic:
    """At the position just after `data`, the bytes before the problem."""
    line, column = _position(data)
    return Diagnostic(Span(source, line, column, line, column + 1), message)


def _position(data: bytes) -> tuple[int, int]:
    """The (line, column) just after `data`, 1-based, columns in characters."""
    before = data.decode("utf-8", errors="replace")
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


# --- what an include may read ------------------------------------------------------------------
MAX_BYTES = 4 * 1024 * 1024  # 4 MiB: the largest rule file read; the bundled ones are < 11 KiB
SYSTEM_FOLDERS = ("/proc", "/sys")  # the kernel's files: never rule files, some never end
_ITEM_WORD = re.compile(r"(?:\s|#[^\n]*)*(?:(?:include|use|rule|pattern|condition)\b|\Z)")


class NotARuleFile(OSError):
    """A file refused before any of its text is read: `reason` says why (`it is a FIFO...`)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot read `{path}`: {reason}")
        self.reason = reason


@functools.cache
def library_folder() -> str:
    """The real path of the bundled rule library (`rules/` of the repository, `engine.rules`)."""
    return os.path.realpath(str(resources.files("engine.rules")))


def inside(real: str, folder: str) -> bool:
    """Whether the real path `real` is `folder` or lies under it."""
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


def _system_refusal(real: str) -> str | None:
    for folder in SYSTEM_FOLDERS:
        if inside(real, folder):
            return f"it lies in `{folder}`, which holds no rule files"
    return None


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _kind_refusal(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return f"it is {kind}, not a regular file"


def _too_big(size: int) -> str:
    return f"it is larger than {MAX_BYTES // 2**20} MiB ({size} bytes)"


def read_rule_file(path: str, allowed=None) -> bytes:
    """The bytes of the regular file `path`, at most `MAX_BYTES`, never under /proc or /sys.
    `NotARuleFile` says why not, before any byte is read; other `OSError`s (no such file)
    pass through. The kind is checked before opening (a device or a FIFO is never opened
    otherwise) and again on the opened descriptor, which is opened without following a
    symlink and without blocking: a file swapped for another between the check and the open
    is caught, a FIFO never waits for a writer. `allowed(real_path)` (a reason or None)
    checks where the file lies, on its real path and again on the descriptor's."""
    real = os.path.realpath(path)
    reason = _system_refusal(real) or (allowed and allowed(real))
    if reason is None:
        reason = _kind_refusal(os.stat(real).st_mode)
    if reason is not None:
        raise NotARuleFile(path, reason)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(real, flags)
    try:
        opened = _descriptor_path(descriptor) or real
        info = os.fstat(descriptor)
        reason = (_system_refusal(opened) or (allowed and allowed(opened))
                  or _kind_refusal(info.st_mode)
                  or (_too_big(info.st_size) if info.st_size > MAX_BYTES else None))
        if reason is not None:
            raise NotARuleFile(path, reason)
        chunks, size = [], 0
        while size <= MAX_BYTES:  # a file that grows past the bound while read is refused too
            chunk = os.read(descriptor, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_BYTES:
            raise NotARuleFile(path, _too_big(size))
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def _descriptor_path(descriptor: int) -> str | None:
    """Where an open descriptor's file really is (Linux: /proc/self/fd), or None."""
    try:
        return os.readlink(f"/proc/self/fd/{descriptor}")
    except OSError:
        return None


def included_text_refusal(data: bytes) -> str | None:
    """Why an included file's bytes are no rule file, naming nothing of them but a position:
    too big, a NUL, not UTF-8, or text that does not begin with an item's word."""
    if len(data) > MAX_BYTES:
        return _too_big(len(data))
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
        bad = -1
    except UnicodeDecodeError as error:
        text, bad = "", error.start
    if nul != -1 and (bad == -1 or nul < bad):
        return "it holds a NUL byte (at {}:{}); rule files are text".format(*_position(data[:nul]))
    if bad != -1:
        return "it is not UTF-8 text (at {}:{})".format(*_position(data[:bad]))
    if _ITEM_WORD.match(text) is None:
        line, column = _position(re.match(r"(?:\s|#[^\n]*)*", text).group().encode())
        return (f"it is no rule file: its first word (at {line}:{column}) is not `include`, "
                "`use`, `rule`, `pattern` or `condition`")
    return None


class _Files:
    """Every file reached from the roots through includes, parsed once each."""

    def __init__(self, open_texts: dict[str, str] | None = None):
        self.open_texts = open_texts or {}  # by file key: what an editor holds, not the disk
        self.parsed: dict[str, ast.RuleFile] = {}  # by file key
        self.shown: dict[str, str] = {}  # file key -> the path diagnostics show
        self.roots: list[str] = []  # file keys
        self.targets: dict[int, str] = {}  # id(ast.Include) -> key of the file it names
        self.diagnostics: list[Diagnostic] = []
        self.symbols = SymbolIndex()
        self.sources: dict[str, Source] = {}
        self.file_symbols: dict[str, Symbol] = {}  # by file key
        self.folders: dict[str, tuple[str, str]] = {}  # root key -> (real folder, its words)

    def add_path(self, path: str) -> None:
        """A root named by its path: read from the disk (a regular file of at most
        `MAX_BYTES`: else `NotARuleFile`), its mistakes shown wherever they are."""
        path = os.path.normpath(path)
        key = self._root(path)
        if key not in self.parsed:
            source, problem = decode(path, read_rule_file(path))
            self._add(key, source, problem, ())

    def add_source(self, source: Source) -> None:
        key = self._root(source.path)
        if key not in self.parsed:
            problem = decode(source.path, source.text.encode("utf-8", "surrogatepass"))[1]
            self._add(key, source, problem, ())

    def _root(self, path: str) -> str:
        """A root's key; its folder, the one its includes must stay in: where its path says
        (a bare name such as `<text>`: the working directory)."""
        key = file_key(path)
        self.roots.append(key)
        folder = os.path.dirname(path)
        shown = (f"`{folder or os.curdir}`, the folder of the root file" if folder
                 or os.path.exists(path) else "the working directory (the root is text)")
        self.folders.setdefault(key, (os.path.realpath(folder or os.curdir), shown))
        return key

    def _add(self, key: str, source: Source, problem: Diagnostic | None, chain) -> None:
        self.shown[key] = source.path
        self.sources[source.path] = source
        if problem is not None:
            self.diagnostics.append(problem)
            self.parsed[key] = ast.RuleFile(source.path, ())
            return
        file, syntax_errors = parse_source(source)
        self.parsed[key] = file
        self.diagnostics += syntax_errors
        for include in (item for item in file.items if isinstance(item, ast.Include)):
            self._include(source.path, include, chain + (key,))

    def _include(self, includer: str, include: ast.Include, chain: tuple[str, ...]) -> None:
        path = os.path.normpath(os.path.join(os.path.dirname(includer), include.path))
        key = file_key(path)
        reason = self.refusal(path, os.path.realpath(path), chain[0])
        if reason is None and key in chain:
            cycle = " -> ".join(self.shown[k] for k in chain[chain.index(key):]) + f" -> {path}"
            self.diagnostics.append(Diagnostic(include.span, f"include cycle: {cycle}"))
            return
        if reason is None and key not in self.parsed:
            try:
                reason = self._read_included(path, key, chain)
            except NotARuleFile as error:
                reason = error.reason
            except OSError as error:
                self.diagnostics.append(Diagnostic(
                    include.span, f"cannot read `{path}`: {error.strerror or error}"))
                return
        if reason is not None:
            self.diagnostics.append(Diagnostic(include.span, f"cannot include `{path}`: {reason}"))
            return
        self.targets[id(include)] = key
        target = self.sources[self.shown[key]]
        self.symbols.refer(include.span, self._file_symbol(key, target))

    def refusal(self, path: str, real: str, root: str) -> str | None:
        """Why an include from the files of `root` may not reach `real` (the real path of
        `path`), or None: it must lie in the root's folder or the rule library, not in
        /proc or /sys."""
        folder, shown = self.folders[root]
        system = _system_refusal(real)
        if system is not None:
            return system
        if inside(real, folder) or inside(real, library_folder()):
            return None
        via = f"it resolves to `{real}`, which lies" if real != os.path.abspath(path) else "it lies"
        return f"{via} outside {shown}, and outside the rule library"

    def _read_included(self, path: str, key: str, chain: tuple[str, ...]) -> str | None:
        """Reads and parses an included file, or says why it is no rule file (showing none of
        its text): the editor's text where it holds the file open, else the disk's."""
        text = self.open_texts.get(key)
        if text is None:
            data = read_rule_file(path, lambda real: self.refusal(path, real, chain[0]))
        else:
            data = text.encode("utf-8", "surrogatepass")
        reason = included_text_refusal(data)
        if reason is None:
            self._add(key, decode(path, data)[0], None, chain)
        return reason

    def _file_symbol(self, key: str, source: Source) -> Symbol:
        if key not in self.file_symbols:
            self.file_symbols[key] = Symbol(FILE, source.path, Span(source, 1, 1, 1, 1))
        return self.file_symbols[key]

    def check(self) -> CheckResult:
        """Every file's checks, syntax errors or not: what parsed is checked too, so that one
        broken line does not hide the mistakes of the others."""
        rules, diagnostics = check_files(list(self.parsed.values()), self.symbols)
        diagnostics = self.diagnostics + diagnostics
        if diagnostics:
            return CheckResult([], diagnostics, self.symbols, self.sources)
        ordered = self.rule_order({rule.name: rule for rule in rules})
        return CheckResult(ordered, [], self.symbols, self.sources)

    def rule_order(self, checked_rules: dict[str, checked.Rule]) -> list[checked.Rule]:
        """Rules in the order the files state them, an included file's where it is included."""
        ordered, walked = [], set()

        def walk(key: str) -> None:
            walked.add(key)
            for item in self.parsed[key].items:
                if isinstance(item, ast.Rule) and item.name in checked_rules:
                    ordered.append(checked_rules.pop(item.name))
                elif isinstance(item, ast.Include):
                    target = self.targets.get(id(item))
                    if target in self.parsed and target not in walked:
                        walk(target)

        for root in self.roots:
            if root not in walked:
                walk(root)
        return ordered
