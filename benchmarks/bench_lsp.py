"""Benchmark: how long an editor waits for diagnostics after each keystroke, from `engine lsp`.

Starts the language server as a process (as an editor does), speaks LSP to it over stdio with
pygls's client, opens each rule file, warms up, then times N round trips: a `didChange` with the
whole text, to the `publishDiagnostics` for that file. The changes alternate between the file
with a mistake added (`use torch.ops.aten.nope`) and the file as it is, so that every round trip
is a real check of the file and its includes; each answer is checked (one diagnostic, at the
added line; then none) before the times are printed. Prints, for each file and for the edits
that leave it as it is, those that leave the mistake, and both, the median, 90th percentile and
largest round trip in milliseconds and whether the median is under the 50 ms target.

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
        self.waiting: dict[str, asyncio.Future] = {}

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def published(params: types.PublishDiagnosticsParams) -> None:
            future = self.waiting.pop(params.uri, None)
            if future is not None and not future.done():
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

    async def round_trip(self, uri: str, send) -> tuple[float, list[types.Diagnostic]]:
        """Seconds from sending a notification to the file's diagnostics, and those."""
        future = asyncio.get_running_loop().create_future()
        self.waiting[uri] = future
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
                [types.TextDocumentContentChangeWholeDocument(text)])))


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


async def run(files: list[Path], warmup: int, changes: int) -> None:
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
    finally:
        await timer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=Path, nargs="+",
                        default=[Path("rules/export.rw"), Path("rules/attention.rw")])
    parser.add_argument("--changes", type=int, default=200, help="timed round trips a file")
    parser.add_argument("--warmup", type=int, default=20, help="untimed round trips first")
    options = parser.parse_args()
    asyncio.run(run(options.files, options.warmup, options.changes))


if __name__ == "__main__":
    main()
