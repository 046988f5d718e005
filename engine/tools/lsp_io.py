"""The language server's stdio: framing that survives bad input, one check for a burst of edits,
and checks beside the requests.

Input: the bytes an editor writes to the server's stdin. Output: each message handed to pygls's
protocol (which runs the features of `engine.tools.lsp`), replies on stdout, and the documents'
checks run when they are due. pygls's own loop reads a body of any length it is told (one
`Content-Length: 1000000000000` is a MemoryError), gives no reply to a body that is no JSON or
whose params do not fit (a negative position), and runs each check in the handler, so that a
burst of edits is checked edit by edit and a large document blocks every request. Here:

- Framing: a message's headers end at an empty line; its `Content-Length` must be a number of
  at most MAX_MESSAGE bytes. A header that is missing, malformed, negative or too large is
  answered with a JSON-RPC error (id null, -32700) and skipped: the reader looks for the next
  `Content-Length:` line and goes on from there. A body that is no JSON is answered with -32700,
  one that is no message with -32600, a request whose params do not fit its method with -32602
  (with its id): every request gets a reply.
- Checks: an edit marks its document due; nothing is checked while more messages wait, so a
  burst of a thousand edits is checked once, on its newest text (the older texts' checks never
  start: they are the cancelled ones). Checks run on a worker thread, one after another, so
  that requests on other documents are answered meanwhile; a request on a document whose
  check is due or running waits for it, so an answer never comes from an older text than the
  request saw.
- The end: when stdin ends (the editor is gone) or after `exit`, the server stops at once, a
  check running or not.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from typing import BinaryIO, Callable

from pygls.exceptions import JsonRpcInvalidParams, JsonRpcInvalidRequest, JsonRpcParseError

logger = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024 * 1024  # bytes of one message's body: a 5 MB rule file fits
# Searched, not matched: after a skipped message, the next header may follow the rest of its
# body on one line.
_CONTENT_LENGTH = re.compile(rb"content-length:[ \t]*(\S*)[ \t]*\r?\n?$", re.IGNORECASE)


class _Framing:
    """A message whose headers are wrong: told to the client, then skipped."""

    def __init__(self, problem: str):
        self.problem = problem


_END = object()  # stdin ended
_WAKE = object()  # a check finished


def read_messages(stdin: BinaryIO, put: Callable[[object], None]) -> None:
    """Each body from `stdin` (bytes), or a `_Framing` for a header that is wrong, then _END."""
    while True:
        length, problem, seen_any = None, None, False
        while True:  # the headers, up to an empty line
            line = stdin.readline(1024 * 64)
            if not line:
                put(_END)
                return
            if line in (b"\r\n", b"\n"):
                if seen_any:
                    break
                continue  # blank lines between messages
            seen_any = True
            match = _CONTENT_LENGTH.search(line)
            if match is None:
                continue  # another header (Content-Type), or the rest of a skipped body
            text = match.group(1).decode("ascii", "replace")
            if not text.isdigit():
                problem = f"Content-Length `{text[:40]}` is no number of bytes"
            elif int(text) > MAX_MESSAGE:
                problem = (f"Content-Length {text[:40]} is more than the {MAX_MESSAGE} bytes a "
                           "message may have")
            else:
                length, problem = int(text), None
        if problem is None and length is None:
            problem = "a message without a Content-Length header"
        if problem is not None:
            put(_Framing(problem))
            continue
        body = b""
        while len(body) < length:
            chunk = stdin.read(length - len(body))
            if not chunk:
                put(_END)
                return
            body += chunk
        put(body)


class Connection:
    """Runs a pygls server over stdio: messages from a reader thread, checks on a worker."""

    def __init__(self, server, stdin: BinaryIO, stdout: BinaryIO):
        from pygls.io_ import StdoutWriter

        self.server = server
        self.protocol = server.protocol
        self.protocol.set_writer(StdoutWriter(stdout))
        self.inbox: queue.Queue = queue.Queue()
        self.stdin = stdin
        self.waiting: list[tuple[set[str], object]] = []  # (paths it waits for, message)
        self.running: set[str] = set()  # paths being checked now
        self.done: queue.Queue = queue.Queue()  # checks finished, for the main thread

    # --- the loop --------------------------------------------------------------------------------
    def serve(self) -> None:
        threading.Thread(target=read_messages, args=(self.stdin, self.inbox.put),
                         daemon=True, name="lsp-reader").start()
        while True:  # until stdin ends, or `exit` raises SystemExit
            self.collect_checks()
            if self.inbox.empty():
                self.start_checks()
            try:
                item = self.inbox.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is _END:
                return
            if item is _WAKE:
                continue
            if isinstance(item, _Framing):
                self.reply_error(None, JsonRpcParseError(item.problem))
            else:
                self.receive(item)

    def receive(self, body: bytes) -> None:
        try:
            raw = json.loads(body)
        except ValueError as error:  # also bytes that are no UTF-8
            self.reply_error(None, JsonRpcParseError(f"the body is no JSON: {error}"))
            return
        if not isinstance(raw, dict) or raw.get("jsonrpc") != "2.0" or not (
                "method" in raw or "id" in raw):
            self.reply_error(raw.get("id") if isinstance(raw, dict) else None,
                             JsonRpcInvalidRequest("the body is no JSON-RPC 2.0 message"))
            return
        try:
            message = json.loads(body, object_hook=self.protocol.structure_message)
        except Exception as error:  # noqa: BLE001 - params that do not fit the method
            if "method" in raw and "id" in raw:
                self.reply_error(raw["id"], JsonRpcInvalidParams(
                    f"the params do not fit `{raw['method']}`: {str(error)[:200]}"))
            else:
                logger.warning("a notification whose params do not fit: %s", error)
            return
        paths = self.server.request_paths(message)
        if paths & (self.running | self.server.due_paths()):
            self.waiting.append((paths, message))  # answered after that document's check
        else:
            self.handle(message)

    def handle(self, message) -> None:
        try:
            self.protocol.handle_message(message)
        except Exception:  # noqa: BLE001 - pygls replies to requests itself; a notification
            logger.exception("a message could not be handled")

    def reply_error(self, msg_id, error) -> None:
        """A JSON-RPC error response; with `"id": null` where the id could not be read (pygls
        would leave a null id out, which JSON-RPC does not allow)."""
        if msg_id is not None:
            self.protocol._send_response(msg_id, None, error.to_response_error())
            return
        body = json.dumps({"jsonrpc": "2.0", "id": None,
                           "error": {"code": error.code, "message": error.message}}).encode()
        self.protocol.writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    # --- checks ----------------------------------------------------------------------------------
    def start_checks(self) -> None:
        """The due checks, one after another on a worker thread, unless one is running (then
        what fell due meanwhile waits for it: one worker, so that checks never race)."""
        if self.running:
            return
        jobs = self.server.take_due()
        if jobs:
            self.running.update(path for path, _ in jobs)
            threading.Thread(target=self.run_checks, args=(jobs,), daemon=True,
                             name="lsp-check").start()

    def run_checks(self, jobs: list) -> None:
        for path, job in jobs:
            try:
                result = job()
            except Exception:  # noqa: BLE001 - a checker bug must not stop the server
                logger.exception("checking %s failed", path)
                result = None
            self.done.put((path, result))
            self.inbox.put(_WAKE)

    def collect_checks(self) -> None:
        while True:
            try:
                path, result = self.done.get_nowait()
            except queue.Empty:
                break
            self.running.discard(path)
            self.server.checked(path, result)
        if not self.running and not self.server.due_paths():
            self.server.settled()
        ready = [(paths, message) for paths, message in self.waiting
                 if not paths & (self.running | self.server.due_paths())]
        self.waiting = [entry for entry in self.waiting if entry not in ready]
        for _, message in ready:
            self.handle(message)
