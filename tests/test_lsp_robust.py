"""The language server under hostile and heavy input, spoken to over stdio byte by byte: bad
framing (huge, negative, malformed, missing `Content-Length`), bodies that are no JSON or whose
params do not fit, hover on a path never opened, a burst of edits, a large document checked
while other requests come, and a client that goes away (`engine/tools/lsp_io.py`)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60
BIG_RULES = 3000  # a document whose check takes seconds


class Raw:
    """An `engine lsp` process and the messages it writes, read on a thread."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-m", "engine.frontends.cli", "lsp"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, cwd=REPO)
        self.messages: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.next_id = 0

    def _read(self):
        stdout = self.process.stdout
        while True:
            length = None
            while True:
                line = stdout.readline()
                if not line:
                    return
                if line == b"\r\n":
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            self.messages.put(json.loads(stdout.read(length)))

    def write(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def request(self, method: str, params) -> int:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        return self.next_id

    def notify(self, method: str, params) -> None:
        self.send({"method": method, "params": params})

    def until(self, accept, timeout: float = TIMEOUT) -> tuple[dict, list[dict]]:
        """The first message `accept` takes, and those that came before it."""
        before, deadline = [], time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if accept(message):
                return message, before
            before.append(message)

    def reply(self, msg_id) -> dict:
        return self.until(lambda m: m.get("id") == msg_id and "method" not in m)[0]

    def initialize(self) -> None:
        self.reply(self.request("initialize", {"processId": None, "rootUri": None,
                                               "capabilities": {}}))
        self.notify("initialized", {})

    def open(self, uri: str, text: str, version: int = 1) -> None:
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "rw", "version": version, "text": text}})

    def published(self, uri: str) -> list:
        message, _ = self.until(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                                and m["params"]["uri"] == uri)
        return message["params"]["diagnostics"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def raw():
    server = Raw()
    server.initialize()
    yield server
    server.stop()


def hover(raw: Raw, uri: str, line: int = 0, character: int = 20) -> int:
    return raw.request("textDocument/hover", {"textDocument": {"uri": uri},
                                              "position": {"line": line, "character": character}})


def errors_then_answers(raw: Raw, framing: bytes) -> tuple[dict, list[dict]]:
    """`framing` written, then eight requests: the error reply and the eight replies."""
    raw.write(framing)
    error, _ = raw.until(lambda m: "error" in m and m.get("id") is None)
    ids = [raw.request("textDocument/documentSymbol", {"textDocument": {"uri": "untitled:a"}})
           for _ in range(8)]
    return error, [raw.reply(msg_id) for msg_id in ids]


@pytest.mark.parametrize("framing", [
    b"Content-Length: 1000000000000\r\n\r\n",
    b"Content-Length: -5\r\n\r\n",
    b"Content-Length: twelve\r\n\r\n",
    b"Content-Type: application/json\r\n\r\n{}",
    b"Content-Length: 99999999999999999999999999999\r\n\r\n{\"jsonrpc\": \"2.0\"}",
], ids=["huge", "negative", "no number", "missing", "huge with a body"])
def test_a_framing_error_is_answered_and_the_next_requests_are_too(raw, framing):
    error, replies = errors_then_answers(raw, framing)
    assert error["error"]["code"] == -32700 and error["id"] is None
    assert all(reply.get("result") is None and "error" not in reply for reply in replies)
    assert raw.process.poll() is None


def test_a_body_that_is_no_json_gets_a_parse_error(raw):
    error, replies = errors_then_answers(raw, b"Content-Length: 9\r\n\r\n{not json")
    assert error["error"]["code"] == -32700 and "no JSON" in error["error"]["message"]
    assert len(replies) == 8


def test_a_negative_position_gets_an_error_reply_with_its_id(raw):
    raw.open("untitled:a", "use torch.ops.aten.add\n")
    raw.published("untitled:a")
    msg_id = hover(raw, "untitled:a", line=-1, character=-4)
    reply = raw.reply(msg_id)
    assert reply["error"]["code"] == -32602
    assert raw.reply(hover(raw, "untitled:a"))["result"]["contents"]  # and on it goes


def test_hover_on_a_path_never_opened_reads_nothing(raw, tmp_path):
    fifo = tmp_path / "never.rw"
    os.mkfifo(fifo)  # reading it would block the server: the reply proves it was not read
    reply = raw.reply(hover(raw, fifo.as_uri()))
    assert reply["result"] is None and "error" not in reply


def test_a_burst_of_edits_is_checked_once_on_the_newest_text(raw):
    raw.open("untitled:b", "use torch.ops.aten.add\n")
    raw.published("untitled:b")
    # The burst comes while the worker checks a large document (seconds), so that all of it has
    # arrived before the server could check `b`: however slow the writer, `b` waits for one
    # check of its newest text.
    raw.open("untitled:big", big_document())
    for version in range(2, 1002):
        raw.notify("textDocument/didChange", {
            "textDocument": {"uri": "untitled:b", "version": version},
            "contentChanges": [{"text": f"use torch.ops.aten.add\nuse torch.ops.aten.nope{version}\n"}]})
    msg_id = raw.request("textDocument/documentSymbol", {"textDocument": {"uri": "untitled:b"}})
    symbols, before = raw.until(lambda m: m.get("id") == msg_id)
    assert [s["name"] for s in symbols["result"]] == ["add"]  # of the newest text, checked
    published = [m["params"] for m in before
                 if m.get("method") == "textDocument/publishDiagnostics"]
    assert sorted((p["uri"], p["version"], [d["message"] for d in p["diagnostics"]])
                  for p in published) == [
        ("untitled:b", 1001, ["`torch.ops.aten` has no `nope1001`"]), ("untitled:big", 1, [])]
    # No more publishes follow: one check served the burst (give it a moment to show any).
    time.sleep(1.0)
    later = [m for m in list(raw.messages.queue) if m.get("method", "").endswith("Diagnostics")]
    assert later == []


def test_each_publish_names_the_version_of_the_text_it_checked(raw):
    raw.open("untitled:v", "use torch.ops.aten.add\n", version=7)
    message, _ = raw.until(lambda m: m.get("method") == "textDocument/publishDiagnostics")
    assert (message["params"]["uri"], message["params"]["version"]) == ("untitled:v", 7)
    raw.notify("textDocument/didChange", {
        "textDocument": {"uri": "untitled:v", "version": 9},
        "contentChanges": [{"text": "use torch.ops.aten.nope\n"}]})
    message, _ = raw.until(lambda m: m.get("method") == "textDocument/publishDiagnostics")
    assert message["params"]["version"] == 9
    assert [d["message"].split(";")[0] for d in message["params"]["diagnostics"]] == [
        "`torch.ops.aten` has no `nope`"]


def big_document() -> str:
    return "use torch.ops.aten.add\n\n" + "".join(
        f"rule r{i}:\n    match add($x, $y)\n    replace with add($y, $x)\n\n"
        for i in range(BIG_RULES))


def test_a_large_document_is_checked_while_other_requests_are_answered(raw):
    raw.open("untitled:small", "use torch.ops.aten.add\n")
    raw.published("untitled:small")
    raw.open("untitled:big", big_document())
    started = time.monotonic()
    msg_id = hover(raw, "untitled:small")
    reply, before = raw.until(lambda m: m.get("id") == msg_id)
    answered = time.monotonic() - started
    assert reply["result"]["contents"]
    assert not any(m.get("method", "").endswith("Diagnostics") for m in before)
    assert raw.published("untitled:big") == []
    assert answered < time.monotonic() - started  # the hover came first


def test_the_server_exits_when_its_client_goes_away_mid_check():
    server = Raw()
    try:
        server.initialize()
        server.open("untitled:big", big_document())
        time.sleep(0.5)  # the check has begun
        started = time.monotonic()
        server.process.stdin.close()
        server.process.wait(timeout=TIMEOUT)
        assert time.monotonic() - started < 2.0
    finally:
        server.stop()
