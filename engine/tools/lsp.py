"""The language server for rule files: `engine lsp`, the Language Server Protocol on stdio.

Input: an editor's messages (`engine.tools.lsp_io` reads them, pygls decodes and answers):
documents opened and edited, and requests at positions in them. Output: diagnostics after
every change, once a burst of them is over (the checker
of `engine check`, its messages, every one at once; includes read relative to the file, from
the editor where it holds them open, else from disk, under `engine.language.load`'s rules of
what an include may read: a refused file is an error at the `include`, and nothing of it is
published, hovered or gone to; an included file's diagnostics go to that file), hover (what
a name resolves to, with the torch schema of each overload), go to definition (rules, `use`
names, variables to where they are bound, `include` paths), completion (op names after `use`,
declared names in patterns, bound variables in guards and templates, built-ins in `where`) and
document symbols (uses, patterns, rules).

The answers are pure functions of a `CheckResult` (its `SymbolIndex`) and a position:
`diagnostics_by_path`, `hover_at`, `definition_at`, `completions_at`, `document_symbols`; the
`RulesServer` below only keeps the open documents' results and wires those to the protocol.
Positions: spans are 1-based and count code points; LSP positions are 0-based and count the
code units the client asked for (UTF-16 unless it said otherwise), so every range passes
through the negotiated `PositionCodec`.
"""

from __future__ import annotations

import functools
import gc
import inspect
import os
import re

import torch
from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import PositionCodec
from pygls.workspace.position_codec import ServerTextPosition, ServerTextRange
from torch._ops import HigherOrderOperator, OpOverload, OpOverloadPacket

from engine.language import load, symbols
from engine.language.builtins import BUILTINS
from engine.language.diagnostics import Diagnostic, Source, Span
from engine.language.load import CheckResult
from engine.language.names import NAMESPACES, ROOTS

SERVER_NAME = "engine-rules"


# --- positions ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _lines(text: str) -> list[str]:
    # Lines as the parser counts them (by "\n" alone), so that span lines index them.
    return text.split("\n")


def lsp_range(span: Span, codec: PositionCodec) -> types.Range:
    """A span (1-based, code points, end exclusive) as an LSP range in the client's units."""
    server_range = ServerTextRange(ServerTextPosition(span.line - 1, span.column - 1),
                                   ServerTextPosition(span.end_line - 1, span.end_column - 1))
    return codec.range_to_client_units(_lines(span.source.text), server_range)


def span_position(text: str, position: types.Position, codec: PositionCodec) -> tuple[int, int]:
    """An LSP position in `text` as a span's (line, column): 1-based, in code points."""
    at = codec.position_from_client_units(_lines(text), types.Position(position.line,
                                                                       position.character))
    return at.line + 1, at.character + 1


def path_uri(path: str) -> str:
    """The URI of a checked file; a document that is no file keeps its URI as its path."""
    if _URI.match(path):
        return path
    return from_fs_path(os.path.abspath(path)) or path


_URI = re.compile(r"^[a-zA-Z][\w+.-]+:")  # `untitled:`, not a Windows drive (`C:`)


def uri_path(uri: str) -> str:
    """The file a URI names; a URI that is no file (`untitled:`) stands for itself."""
    path = to_fs_path(uri) if uri.startswith("file:") else None
    return os.path.normpath(path) if path else uri


# --- checking: open documents from the editor, the rest from disk ------------------------------
def check_document(path: str, text: str, open_texts: dict[str, str]) -> CheckResult:
    """One document as the root, its includes resolved relative to its path; included files the
    editor holds open (`open_texts`, by file key) are read from it, not the disk."""
    return load.check_sources([Source(path, text)], open_texts)


# --- diagnostics -------------------------------------------------------------------------------
_SEVERITIES = {"error": types.DiagnosticSeverity.Error,
               "warning": types.DiagnosticSeverity.Warning}


def diagnostics_by_path(result: CheckResult,
                        codec: PositionCodec) -> dict[str, list[types.Diagnostic]]:
    """Every file the check read, with its diagnostics (none: an empty list, which clears)."""
    by_path: dict[str, list[types.Diagnostic]] = {path: [] for path in result.sources}
    for diagnostic in result.diagnostics:
        by_path.setdefault(diagnostic.span.source.path, []).append(
            lsp_diagnostic(diagnostic, codec))
    return by_path


def lsp_diagnostic(diagnostic: Diagnostic, codec: PositionCodec) -> types.Diagnostic:
    notes = [types.DiagnosticRelatedInformation(
        types.Location(path_uri(note.span.source.path), lsp_range(note.span, codec)),
        note.message) for note in diagnostic.notes]
    return types.Diagnostic(
        range=lsp_range(diagnostic.span, codec), message=diagnostic.message,
        severity=_SEVERITIES.get(diagnostic.severity, types.DiagnosticSeverity.Error),
        source="engine", related_information=notes or None)


# --- hover -------------------------------------------------------------------------------------
def hover_at(result: CheckResult, path: str, line: int, column: int,
             codec: PositionCodec) -> types.Hover | None:
    occurrence = result.symbols.at(path, line, column)
    if occurrence is None:
        return None
    return types.Hover(
        contents=types.MarkupContent(types.MarkupKind.Markdown, describe(occurrence.symbol)),
        range=lsp_range(occurrence.span, codec))


def describe(symbol: symbols.Symbol) -> str:
    """What a symbol is, as markdown."""
    if symbol.kind == symbols.USE:
        return describe_resolved(symbol.name, symbol.detail)
    if symbol.kind == symbols.BUILTIN:
        return f"```\n{symbol.detail.signature}\n```\nbuilt-in: {symbol.detail.summary}"
    if symbol.kind == symbols.VARIABLE:
        what = {"value": "binds a value", "rest": "binds the remaining positional arguments",
                "keywords": "binds keyword arguments"}.get(symbol.detail, symbol.detail)
        kind, _, name = (symbol.container or "").rpartition(" ")  # "pattern p", "condition c", "r"
        return (f"`{symbol.name}`: variable of {kind or 'rule'} `{name}`, {what}; "
                f"bound at {_where(symbol.span)}")
    if symbol.kind == symbols.RULE:
        return f"rule `{symbol.name}`, {_where(symbol.span)}"
    if symbol.kind in (symbols.PATTERN, symbols.CONDITION):
        return f"```rw\n{symbol.span.source.line(symbol.span.line).strip()}\n```\n" \
               f"{symbol.kind}, {_where(symbol.span)}"
    if symbol.kind == symbols.FILE:
        return f"rule file `{symbol.name}`"
    return f"`{symbol.name}`"


def describe_resolved(name: str, resolved) -> str:
    """A `use`d name: what it stands for and, for an op, each overload's schema."""
    value = resolved.value
    head = f"`{name}`: `{resolved.dotted}`"
    if isinstance(value, OpOverloadPacket):
        overloads = value.overloads()
        schemas = [str(getattr(value, overload)._schema) for overload in overloads]
        return (f"{head}, op packet of {len(overloads)} overload"
                f"{'s' * (len(overloads) != 1)}\n```\n" + "\n".join(schemas) + "\n```")
    if isinstance(value, OpOverload):
        return f"{head}, op overload\n```\n{value._schema}\n```"
    if isinstance(value, HigherOrderOperator):
        return (f"{head}, higher-order op: no schema; `outline with` calls it as "
                f"`{value.name()}(*ARGS, submodule, *inputs)`")
    if resolved.kind == "function":
        return f"{head}, function\n```\n{_signature(value)}\n```"
    return f"{head}, constant `{value!r}`"


def _signature(function) -> str:
    name = f"{getattr(function, '__module__', '') or ''}.{getattr(function, '__name__', '?')}"
    try:
        return f"{name}{inspect.signature(function)}"
    except (TypeError, ValueError):  # a builtin without a text signature
        return f"{name}(...)"


def _where(span: Span) -> str:
    return f"{os.path.basename(span.source.path)}:{span.line}:{span.column}"


# --- go to definition --------------------------------------------------------------------------
def definition_at(result: CheckResult, path: str, line: int, column: int,
                  codec: PositionCodec) -> types.Location | None:
    """Where the symbol under the position is defined: a rule's or a `use`'s name, the first
    binding of a variable, the start of an included file. Built-ins have no place."""
    occurrence = result.symbols.at(path, line, column)
    if occurrence is None or occurrence.symbol.span is None:
        return None
    span = occurrence.symbol.span
    return types.Location(path_uri(span.source.path), lsp_range(span, codec))


# --- document symbols --------------------------------------------------------------------------
_SYMBOL_KINDS = {symbols.USE: types.SymbolKind.Variable, symbols.RULE: types.SymbolKind.Function,
                 symbols.PATTERN: types.SymbolKind.Struct,
                 symbols.CONDITION: types.SymbolKind.Interface}


def document_symbols(result: CheckResult, path: str,
                     codec: PositionCodec) -> list[types.DocumentSymbol]:
    found = []
    for symbol in result.symbols.definitions(path):
        where = lsp_range(symbol.span, codec)
        detail = symbol.detail.dotted if symbol.kind == symbols.USE else symbol.kind
        found.append(types.DocumentSymbol(name=symbol.name, kind=_SYMBOL_KINDS[symbol.kind],
                                          range=where, selection_range=where, detail=detail))
    return found


# --- completion --------------------------------------------------------------------------------
_USE_LINE = re.compile(r"^\s*use\s+([\w.]*)$")
_PARTIAL = re.compile(r"[$\w]*$")  # the word being typed, a variable's `$` included
_VARIABLE = re.compile(r"\$(\w+)")
# The words that open a part of a file; a word followed by `(` is a call (`where` can be a
# `use`d name, as in rules/attention.rw).
_CLAUSE = re.compile(r"(?<![\w.$])(rule|pattern|condition|use|include|match|where|replace|"
                     r"outline|verify|inline|keep|erase)\b(?!\s*\()")
_TEMPLATE_CLAUSES = ("replace", "outline")


def completions_at(result: CheckResult, path: str, text: str, line: int, column: int,
                   codec: PositionCodec) -> list[types.CompletionItem]:
    """What may be written at a position (1-based, code points), from the text before it."""
    lines = _lines(text)
    before = lines[line - 1][:column - 1] if line <= len(lines) else ""
    partial = _PARTIAL.search(before).group()
    replace = _typed_range(lines, line, column, len(partial), codec)
    use = _USE_LINE.match(before)
    if use:
        parent = tuple(use.group(1).split(".")[:-1])
        return [_item(name, kind, replace, detail) for name, kind, detail in names_under(parent)]
    clause, clause_text = _clause_before(lines, line, before)
    if clause in ("match", "pattern"):
        return declared_names(result, path, replace)
    if clause in ("where", "condition"):  # a condition's variables are its parameters
        return (bound_variables(clause_text, replace) + builtin_names(replace, False)
                + declared_names(result, path, replace, conditions=True))
    if clause in _TEMPLATE_CLAUSES:
        return (bound_variables(clause_text, replace) + declared_names(result, path, replace)
                + builtin_names(replace, True))
    return []


def _typed_range(lines: list[str], line: int, column: int, typed: int,
                 codec: PositionCodec) -> types.Range:
    """The range of the word typed so far, which a completion replaces (with its `$`: an
    editor's own idea of a word would leave it and write `$$x`)."""
    server_range = ServerTextRange(ServerTextPosition(line - 1, column - 1 - typed),
                                   ServerTextPosition(line - 1, column - 1))
    return codec.range_to_client_units(lines, server_range)


def _clause_before(lines: list[str], line: int, before: str) -> tuple[str | None, str]:
    """The last clause keyword before the position (comments and strings left out), and the
    text of the rule or pattern definition up to the position."""
    text = "\n".join([*lines[:line - 1], before])
    code = re.sub(r"#[^\n]*|\"[^\"\n]*\"?|'[^'\n]*'?", lambda m: " " * len(m.group()), text)
    clauses = list(_CLAUSE.finditer(code))
    if not clauses:
        return None, ""
    opening = max((m.start() for m in clauses if m.group(1) in ("rule", "pattern", "condition")),
                  default=0)
    return clauses[-1].group(1), code[opening:]


def bound_variables(rule_text: str, replace: types.Range) -> list[types.CompletionItem]:
    """The variables the rule's pattern binds: the `$names` of its `match` clause (read from
    the text, so that they complete while the rule does not parse yet)."""
    pattern = re.split(r"(?<![\w.$])(?:where|replace|outline)\b(?!\s*\()", rule_text)[0]
    names = dict.fromkeys(_VARIABLE.findall(pattern))
    return [_item(f"${name}", types.CompletionItemKind.Variable, replace, "variable")
            for name in names]


def declared_names(result: CheckResult, path: str, replace: types.Range,
                   conditions: bool = False) -> list[types.CompletionItem]:
    """The names the file defines that may stand here: `use` names and patterns, and the
    named conditions where a condition goes (`conditions`)."""
    items = []
    for symbol in result.symbols.definitions(path):
        if symbol.kind == symbols.USE:
            kind = (types.CompletionItemKind.Constant if symbol.detail.kind == "constant"
                    else types.CompletionItemKind.Function)
            items.append(_item(symbol.name, kind, replace, symbol.detail.dotted))
        elif symbol.kind == symbols.PATTERN:
            items.append(_item(symbol.name, types.CompletionItemKind.Struct, replace, "pattern"))
        elif symbol.kind == symbols.CONDITION and conditions:
            items.append(_item(symbol.name, types.CompletionItemKind.Interface, replace,
                               "condition"))
    return items


def builtin_names(replace: types.Range, in_templates: bool) -> list[types.CompletionItem]:
    return [_item(info.name, types.CompletionItemKind.Function, replace, info.signature,
                  info.summary)
            for info in BUILTINS.values() if info.in_templates or not in_templates]


def _item(label: str, kind: types.CompletionItemKind, replace: types.Range, detail: str,
          documentation: str | None = None) -> types.CompletionItem:
    return types.CompletionItem(label=label, kind=kind, detail=detail,
                                documentation=documentation,
                                text_edit=types.TextEdit(replace, label))


def names_under(parent: tuple[str, ...]) -> list[tuple[str, types.CompletionItemKind, str]]:
    """The names a `use` path can go on with after `parent.`: (name, kind, detail)."""
    module = types.CompletionItemKind.Module
    if not parent:
        return [(root, module, "namespace") for root in sorted(ROOTS)]
    if parent == ("torch", "ops"):
        return [(name, module, "op namespace") for name in sorted(_op_names()) + ["higher_order"]]
    if parent == ("torch", "ops", "higher_order"):
        return [(name, types.CompletionItemKind.Function, "higher-order op")
                for name in sorted(torch._ops._higher_order_ops)]
    if parent[:2] == ("torch", "ops") and len(parent) == 3:
        return [(name, types.CompletionItemKind.Function, f"{parent[2]} op")
                for name in _op_names().get(parent[2], ())]
    if parent[:2] == ("torch", "ops") and len(parent) == 4:
        return [(name, types.CompletionItemKind.Function, "overload")
                for name in _overloads(parent[2], parent[3])]
    return _attributes(parent)


@functools.cache
def _op_names() -> dict[str, list[str]]:
    """The registered ops by namespace (`aten` -> `add`, `mul`...), read once a process."""
    by_namespace: dict[str, set[str]] = {}
    for qualified in torch._C._dispatch_get_all_op_names():
        namespace, _, name = qualified.partition("::")
        by_namespace.setdefault(namespace, set()).add(name.split(".")[0])
    return {namespace: sorted(names) for namespace, names in by_namespace.items()}


def _overloads(namespace: str, op: str) -> list[str]:
    try:
        packet = getattr(getattr(torch.ops, namespace), op)
    except (AttributeError, RuntimeError):
        return []
    return packet.overloads() if isinstance(packet, OpOverloadPacket) else []


def _attributes(parent: tuple[str, ...]) -> list[tuple[str, types.CompletionItemKind, str]]:
    """Public attributes of an allowed object (`torch.nn.functional.`), never leaving the
    allowed namespaces (the checker refuses what lies outside)."""
    value = ROOTS.get(parent[0])
    for part in parent[1:]:
        value = _attribute(value, part)
        if value is None or (inspect.ismodule(value) and not value.__name__.startswith(NAMESPACES)):
            return []
    found = []
    for name in sorted(n for n in dir(value) if not n.startswith("_")):
        kind = (types.CompletionItemKind.Module if inspect.ismodule(_attribute(value, name))
                else types.CompletionItemKind.Function)
        found.append((name, kind, ".".join(parent)))
    return found


def _attribute(value: object, name: str) -> object:
    try:
        return getattr(value, name, None)
    except Exception:  # an attribute that fails to load is no completion, not a crash
        return None


# --- the server --------------------------------------------------------------------------------
class RulesServer(LanguageServer):
    """Keeps each open document's last check (with it as the root) and what was published."""

    def __init__(self):
        super().__init__(SERVER_NAME, "0.1.0")
        self.results: dict[str, CheckResult] = {}  # by the path of the open document
        self.published: dict[str, list[types.Diagnostic]] = {}  # by path, what the editor shows
        self.due: dict[str, None] = {}  # roots to check (in order), when no message waits
        self.heard: set[str] = set()  # paths whose diagnostics are published after their check
        self.unpublished = False  # a document closed since the last publish
        self.versions: dict[str, int] = {}  # by path: the version of the open text checked
        self.taken: dict[str, int] = {}  # by path: the version of the text being checked

    def open_texts(self) -> dict[str, str]:
        return {load.file_key(uri_path(uri)): document.source
                for uri, document in self.workspace.text_documents.items()}

    def recheck(self, uri: str) -> None:
        """The changed document and every open one that reached it are due for a check; after
        it, what changed is published (and always the changed document's, so that the editor
        hears back). `engine.tools.lsp_io` runs due checks when no message waits."""
        path = uri_path(uri)
        self._mark_reaching(path)
        self.heard.add(path)

    def forget(self, uri: str) -> None:
        """A closed document: no longer a root, and read from the disk again by the open
        documents that include it."""
        path = uri_path(uri)
        self.results.pop(path, None)
        self.versions.pop(path, None)
        self.due.pop(path, None)
        self._mark_reaching(path)
        self.due.pop(path, None)
        self.unpublished = True  # its diagnostics go, after the checks that include it

    def _mark_reaching(self, path: str) -> None:
        stale = {path} | {root for root, result in self.results.items()
                          if path in map(os.path.normpath, result.sources)}
        for root in sorted(stale):
            self.due[root] = None

    def due_paths(self) -> set[str]:
        return set(self.due)

    def take_due(self):
        """(path, check) for each due root: its text and the open texts as they are now (pygls
        has applied the changes), the check to run on a worker."""
        if not self.due:
            return []
        open_texts = self.open_texts()
        versions = {uri_path(uri): document.version
                    for uri, document in self.workspace.text_documents.items()}
        taken = []
        for root in list(self.due):
            del self.due[root]
            text = open_texts.get(load.file_key(root))
            if text is not None:
                self.taken[root] = versions.get(root)
                taken.append((root, functools.partial(check_document, root, text, open_texts)))
        return taken

    def checked(self, path: str, result: CheckResult | None) -> None:
        """A check's result, kept if its document is still open; `settled` publishes."""
        version = self.taken.pop(path, None)
        if result is not None and path in map(uri_path, self.workspace.text_documents):
            self.results[path] = result
            self.versions[path] = version

    def settled(self) -> None:
        """Every due check has run: publish what changed, once, and always the diagnostics of
        the documents edited since (so that the editor hears back)."""
        if self.heard or self.unpublished:
            self.publish(always=self.heard)
            self.heard, self.unpublished = set(), False

    def request_paths(self, message) -> set[str]:
        """The document a request asks about, whose due check it waits for."""
        params = getattr(message, "params", None)
        document = getattr(params, "text_document", None)
        uri = getattr(document, "uri", None)
        return {uri_path(uri)} if uri is not None and hasattr(message, "id") else set()

    def publish(self, always: set[str] = frozenset()) -> None:
        merged: dict[str, list[types.Diagnostic]] = {}
        for result in self.results.values():
            for path, diagnostics in diagnostics_by_path(result, self.workspace.position_codec
                                                         ).items():
                known = merged.setdefault(os.path.normpath(path), [])
                # Two open documents that include one file report its mistakes twice.
                known += [d for d in diagnostics if d not in known]
        for path in set(self.published) | set(merged):
            diagnostics = merged.get(path, [])
            if diagnostics != self.published.get(path, []) or path in always:
                # The version of the text checked, for an open document: an editor drops
                # diagnostics of a text older than it shows.
                self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
                    uri=path_uri(path), diagnostics=diagnostics,
                    version=self.versions.get(path) if path in self.results else None))
            self.published[path] = diagnostics

    def at(self, uri: str, position: types.Position) -> tuple[CheckResult | None, str, int, int]:
        """The open document's last result, its path, and the position as a span's; no result
        for a document that is not open (its path is never read)."""
        path = uri_path(uri)
        document = self.workspace.text_documents.get(uri)
        if document is None or path not in self.results:
            return None, path, 0, 0
        line, column = span_position(document.source, position, self.workspace.position_codec)
        return self.results[path], path, line, column


def build_server() -> RulesServer:
    server = RulesServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: RulesServer, params: types.DidOpenTextDocumentParams):
        ls.recheck(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: RulesServer, params: types.DidChangeTextDocumentParams):
        ls.recheck(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: RulesServer, params: types.DidCloseTextDocumentParams):
        ls.forget(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: RulesServer, params: types.HoverParams):
        result, path, line, column = ls.at(params.text_document.uri, params.position)
        return result and hover_at(result, path, line, column, ls.workspace.position_codec)

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: RulesServer, params: types.DefinitionParams):
        result, path, line, column = ls.at(params.text_document.uri, params.position)
        return result and definition_at(result, path, line, column, ls.workspace.position_codec)

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=[".", "$"]))
    def completion(ls: RulesServer, params: types.CompletionParams):
        result, path, line, column = ls.at(params.text_document.uri, params.position)
        if result is None:
            return None
        text = ls.workspace.text_documents[params.text_document.uri].source
        return types.CompletionList(is_incomplete=False, items=completions_at(
            result, path, text, line, column, ls.workspace.position_codec))

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols_of(ls: RulesServer, params: types.DocumentSymbolParams):
        path = uri_path(params.text_document.uri)
        result = ls.results.get(path)
        return result and document_symbols(result, path, ls.workspace.position_codec)

    return server


def serve() -> None:
    """Speak LSP on stdin and stdout until the editor says exit or goes away
    (`engine.tools.lsp_io`: framing, coalesced checks on a worker)."""
    import sys

    from .lsp_io import Connection

    server = build_server()
    warm_up()
    code = 0
    try:
        Connection(server, sys.stdin.buffer, sys.stdout.buffer).serve()
    except SystemExit as exit_:  # `exit`: 0 after `shutdown`, else 1 (pygls decides)
        code = exit_.code if isinstance(exit_.code, int) else 1
    sys.stdout.flush()
    # At once: the reader thread holds stdin's lock, and a check may be running; an
    # interpreter shutting down would wait for neither, and abort on the lock.
    os._exit(code)


def warm_up() -> None:
    """Load the grammar and torch's op tables before the first document comes, then move every
    object made so far out of the garbage collector's sight: a full collection walks torch's
    few hundred thousand objects, 100 to 300 ms, which a keystroke would otherwise wait for
    now and then (they live as long as the process anyway)."""
    check_document("<warm-up>", "use torch.ops.aten.add\nrule r:\n    match add($x, $y)\n"
                                "    replace with add($y, $x)\n", {})
    gc.collect()
    gc.freeze()
