"""Benchmark: how long an editor waits for diagnostics after each keystroke, from `engine lsp`.

Starts the language server as a process (as an editor does), speaks LSP to it over stdio with
pygls's client, opens each rule file, warms up, then times N round trips: a `didChange` with the
whole text, to the `publishDiagnostics` for that file. The changes alternate between the file
with a mistake added (`use torch.ops.aten.nope`) and the file as it is, so that every round trip
is a real check of the file and its includes; each answer is checked (one diagnostic, at the
added line; then none) before the times are printed. Prints, for each file and for the edits
that leave it as it is, those that leave the mistake, and both, the median, 90th percentile and
largest round trip in milliseconds and whether the median is under the 50 ms target. Then a
burst (`--burst N` edits of one document sent at once: the time to the newest text's
diagnostics, and how many publishes came) and a large document (`--large N` rules: the time
to a hover on another document, answered while it is checked, and to its diagnostics).

    .venv/bin/python benchmarks/bench_lsp.py [--files rules/export.rw ...] [--changes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

REPO = Path(__file__).resolve().parent.parent
TARGET_MS = 50.0
MISTAKE = "\nuse torch.ops.aten.nope\n"


class Timer:
    """One `engine lsp` process and the diagnostics it publishes, awaited by URI."""

    def __init__(self):
        self.client = LanguageClient("bench-lsp", "v1")
        # By URI: the diagnostics awaited, and the version of the text they must be of.
        self.waiting: dict[str, tuple[asyncio.Future, int | None]] = {}
        self.publishes: dict[str, int] = {}  # by URI, after its open

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def published(params: types.PublishDiagnosticsParams) -> None:
            if params.uri in self.publishes:
                self.publishes[params.uri] += 1
            future, version = self.waiting.get(params.uri, (None, None))
            # A publish of an older text (the server checked part of a burst) is not the answer.
            if future is not None and version in (None, params.version):
                del self.waiting[params.uri]
                if not future.done():
                    future.set_result(list(params.diagnostics))

    async def start(self) -> None:
        await self.client.start_io(sys.executable, "-m", "engine.frontends.cli", "lsp",
                                   cwd=str(REPO))
        await self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(), root_uri=from_fs_path(str(REPO))))
        self.client.initialized(types.InitializedParams())

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()

    def expect(self, uri: str, version: int | None = None) -> asyncio.Future:
        """The diagnostics the server will publish for `uri` (of text `version`, if given)."""
        future = asyncio.get_running_loop().create_future()
        self.waiting[uri] = (future, version)
        return future

    async def round_trip(self, uri: str, send,
                         version: int | None = None) -> tuple[float, list[types.Diagnostic]]:
        """Seconds from sending a notification to the file's diagnostics, and those."""
        future = self.expect(uri, version)
        start = time.perf_counter()
        send()
        diagnostics = await asyncio.wait_for(future, 60)
        return time.perf_counter() - start, diagnostics

    async def open(self, uri: str, text: str) -> list[types.Diagnostic]:
        return (await self.round_trip(uri, lambda: self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "rw", 1, text)))))[1]

    async def change(self, uri: str, text: str, version: int):
        return await self.round_trip(uri, lambda: self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version=version, uri=uri),
                [types.TextDocumentContentChangeWholeDocument(text)])), version)


async def time_file(timer: Timer, path: Path, warmup: int,
                    changes: int) -> dict[str, list[float]]:
    """The round trips of `changes` edits after `warmup` untimed ones, in seconds, by what the
    edit left: the file as it is, or with the mistake (whose message looks for the nearest of
    aten's op names, which costs more)."""
    uri, text = from_fs_path(str(path.resolve())), path.read_text()
    assert await timer.open(uri, text) == [], f"{path} has errors"
    added_line = text.count("\n") + 1  # 0-based line of the `use` the mistake adds
    seconds: dict[str, list[float]] = {"as it is": [], "a mistake": []}
    for version in range(2, 2 + warmup + changes):
        broken = version % 2 == 0
        took, diagnostics = await timer.change(uri, text + MISTAKE if broken else text, version)
        if broken:
            assert [(d.range.start.line, d.message.split(";")[0]) for d in diagnostics] == [
                (added_line, "`torch.ops.aten` has no `nope`")], diagnostics
        else:
            assert diagnostics == [], diagnostics
        if version >= 2 + warmup:
            seconds["a mistake" if broken else "as it is"].append(took)
    seconds["both"] = seconds["as it is"] + seconds["a mistake"]
    return seconds


async def burst(timer: Timer, edits: int) -> tuple[float, int]:
    """`edits` changes sent at once: seconds to the diagnostics of the newest, and how many
    publishes came for the document (one where the whole burst arrived before the server was
    idle; more where the client wrote slower than the server checks)."""
    uri = "untitled:burst"
    await timer.open(uri, "use torch.ops.aten.add\n")
    timer.publishes[uri] = 0
    future = timer.expect(uri, 1 + edits)
    start = time.perf_counter()
    for version in range(2, 2 + edits):
        timer.client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=version, uri=uri),
            [types.TextDocumentContentChangeWholeDocument(
                f"use torch.ops.aten.add\nuse torch.ops.aten.nope{version}\n")]))
    diagnostics = await asyncio.wait_for(future, 120)
    took = time.perf_counter() - start
    assert [d.message for d in diagnostics] == [f"`torch.ops.aten` has no `nope{1 + edits}`"]
    return took, timer.publishes.get(uri, 0)


async def large(timer: Timer, rules: int) -> tuple[float, float]:
    """A document of `rules` rules opened, then a hover on another: seconds to the hover's
    answer and to the large document's diagnostics."""
    small, big = "untitled:small", "untitled:large"
    await timer.open(small, "use torch.ops.aten.add\n")
    text = "use torch.ops.aten.add\n\n" + "".join(
        f"rule r{i}:\n    match add($x, $y)\n    replace with add($y, $x)\n\n"
        for i in range(rules))
    future = timer.expect(big)
    start = time.perf_counter()
    timer.client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(big, "rw", 1, text)))
    hovered = await timer.client.text_document_hover_async(types.HoverParams(
        types.TextDocumentIdentifier(small), types.Position(0, 20)))
    answered = time.perf_counter() - start
    assert hovered is not None and await asyncio.wait_for(future, 600) == []
    return answered, time.perf_counter() - start


async def run(files: list[Path], warmup: int, changes: int, edits: int = 0,
              rules: int = 0) -> None:
    timer = Timer()
    await timer.start()
    print(f"{'file':<20} {'lines':>5} {'edit leaves':<11} {'changes':>7} {'median ms':>9} "
          f"{'p90 ms':>7} {'max ms':>7}  under {TARGET_MS:.0f} ms")
    try:
        for path in files:
            lines = path.read_text().count("\n")
            for kind, seconds in (await time_file(timer, path, warmup, changes)).items():
                seconds = sorted(seconds)
                median = statistics.median(seconds) * 1000
                p90 = seconds[min(len(seconds) - 1, int(0.9 * len(seconds)))] * 1000
                print(f"{str(path):<20} {lines:>5} {kind:<11} {len(seconds):>7} {median:>9.2f} "
                      f"{p90:>7.2f} {seconds[-1] * 1000:>7.2f}  "
                      f"{'yes' if median < TARGET_MS else 'NO'}", flush=True)
        if edits:
            took, publishes = await burst(timer, edits)
            print(f"burst: {edits} edits sent at once: the newest text's diagnostics after "
                  f"{took * 1000:.0f} ms, {publishes} publish(es) for the document after its "
                  "open", flush=True)
        if rules:
            answered, checked = await large(timer, rules)
            print(f"large: a document of {rules} rules opened: a hover on another document "
                  f"answered after {answered * 1000:.0f} ms, the large one's diagnostics after "
                  f"{checked * 1000:.0f} ms", flush=True)
    finally:
        await timer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=Path, nargs="+",
                        default=[Path("rules/export.rw"), Path("rules/attention.rw")])
    parser.add_argument("--changes", type=int, default=200, help="timed round trips a file")
    parser.add_argument("--warmup", type=int, default=20, help="untimed round trips first")
    parser.add_argument("--burst", type=int, default=1000, help="edits sent at once (0: none)")
    parser.add_argument("--large", type=int, default=3000,
                        help="rules of the large document (0: none)")
    options = parser.parse_args()
    asyncio.run(run(options.files, options.warmup, options.changes, options.burst,
                    options.large))


if __name__ == "__main__":
    main()
