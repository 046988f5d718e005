"""The language server as an editor uses it: `engine lsp` started as a process, spoken to over
stdio by pygls's client (positions 0-based, in UTF-16 code units). Diagnostics on open and on
change, includes, hover, go to definition, completion and document symbols."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60  # seconds; the server's first check imports torch's op tables

# Three mistakes, one of them after a character that is two UTF-16 code units (and one that is
# one): the ranges must count code units, not code points or bytes.
BAD = """\
# émoji: 😀
use torch.ops.aten.mull
use torch.ops.aten.add
use torch.ops.aten.mul

rule times_one:
    match $y = commutative mul($x, 1)
    where device($x) == 'cpü😀' and dtype($z) == dtype($x)
    replace with $x

rule doubled:
    match add($a, $a)
    replace with mul($a, $b)
"""

GOOD = """\
use torch.ops.aten.add
use torch.ops.aten.mul.Tensor as mul
use torch.ops.aten.relu

pattern sum_of($a, $b) = add($a, $b) | add($b, $a)

rule outer:
    match $y = mul(relu($x), 1)
    where dtype($y) == dtype($x)
    replace with relu($x)

rule inner:
    match relu(sum_of($p, $q))
    where inside(outer) and rank($p) == 2
    replace with add(relu($p), $q)
"""


class Editor:
    """A pygls client on its own event loop, driving one `engine lsp` process."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.client = LanguageClient("test-editor", "v1")
        self.published: dict[str, list[types.Diagnostic]] = {}
        self.waiting: dict[str, list[asyncio.Future]] = {}
        self.versions: dict[str, int] = {}

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_publish(params: types.PublishDiagnosticsParams) -> None:
            self._on_publish(params)

        self.run(self.client.start_io(sys.executable, "-m", "engine.frontends.cli", "lsp",
                                      cwd=str(REPO)))
        self.run(self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(), root_uri=from_fs_path(str(REPO)))))
        self.client.initialized(types.InitializedParams())

    def _on_publish(self, params: types.PublishDiagnosticsParams) -> None:
        diagnostics = list(params.diagnostics)
        self.published[params.uri] = diagnostics
        for future in self.waiting.pop(params.uri, []):
            if not future.done():
                future.set_result(diagnostics)

    def run(self, awaitable):
        return self.loop.run_until_complete(asyncio.wait_for(awaitable, TIMEOUT))

    def published_after(self, send, *paths: Path) -> list[list[types.Diagnostic]]:
        """Send a notification, then wait until each file's diagnostics come."""
        futures = []
        for path in paths:
            future = self.loop.create_future()
            self.waiting.setdefault(uri(path), []).append(future)
            futures.append(future)
        send()
        return self.run(asyncio.gather(*futures))

    def open(self, path: Path, text: str, *published: Path) -> list[list[types.Diagnostic]]:
        self.versions[uri(path)] = 1
        return self.published_after(lambda: self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(
                uri(path), "rw", 1, text))), *(published or (path,)))

    def change(self, path: Path, text: str, *published: Path) -> list[list[types.Diagnostic]]:
        self.versions[uri(path)] += 1
        return self.published_after(lambda: self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version=self.versions[uri(path)],
                                                      uri=uri(path)),
                [types.TextDocumentContentChangeWholeDocument(text)])), *(published or (path,)))

    def edit(self, path: Path, where: types.Range, text: str) -> list[types.Diagnostic]:
        """An incremental change, as editors send them: `text` in place of the range."""
        self.versions[uri(path)] += 1
        return self.published_after(lambda: self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version=self.versions[uri(path)],
                                                      uri=uri(path)),
                [types.TextDocumentContentChangePartial(where, text)])), path)[0]

    def close(self, path: Path) -> None:
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(
            types.TextDocumentIdentifier(uri(path))))

    def at(self, path: Path, position: types.Position) -> dict:
        return {"text_document": types.TextDocumentIdentifier(uri(path)), "position": position}

    def hover(self, path, position) -> types.Hover | None:
        return self.run(self.client.text_document_hover_async(
            types.HoverParams(**self.at(path, position))))

    def definition(self, path, position) -> types.Location:
        found = self.run(self.client.text_document_definition_async(
            types.DefinitionParams(**self.at(path, position))))
        return found[0] if isinstance(found, list) else found

    def completion(self, path, position) -> list[types.CompletionItem]:
        found = self.run(self.client.text_document_completion_async(
            types.CompletionParams(**self.at(path, position))))
        return found.items if isinstance(found, types.CompletionList) else found

    def symbols(self, path) -> list[types.DocumentSymbol]:
        return self.run(self.client.text_document_document_symbol_async(
            types.DocumentSymbolParams(types.TextDocumentIdentifier(uri(path)))))

    def stop(self) -> None:
        self.run(self.client.shutdown_async(None))
        self.client.exit(None)
        self.run(self.client.stop())
        self.loop.close()


def uri(path: Path | str) -> str:
    """A file's URI; a string is a URI already (`untitled:`, a document never saved)."""
    return path if isinstance(path, str) else from_fs_path(str(path))


def position(text: str, needle: str, offset: int = 0, occurrence: int = 0) -> types.Position:
    """Where the `occurrence`-th `needle` (plus `offset` characters) stands, as LSP counts:
    0-based line, UTF-16 code units."""
    index = [m.start() for m in re.finditer(re.escape(needle), text)][occurrence] + offset
    line = text.count("\n", 0, index)
    start = text.rfind("\n", 0, index) + 1
    return types.Position(line, len(text[start:index].encode("utf-16-le")) // 2)


def span_of(location_range: types.Range) -> tuple[int, int, int, int]:
    return (location_range.start.line, location_range.start.character,
            location_range.end.line, location_range.end.character)


@pytest.fixture(scope="module")
def editor():
    editor = Editor()
    yield editor
    editor.stop()


# --- diagnostics ---------------------------------------------------------------------------------
def test_open_reports_every_error_as_engine_check_does(editor, tmp_path):
    path = tmp_path / "bad.rw"
    path.write_text(BAD)
    [diagnostics] = editor.open(path, BAD)
    check = subprocess.run([sys.executable, "-m", "engine.frontends.cli", "check", str(path)],
                           capture_output=True, text=True, cwd=REPO)
    expected = re.findall(r"^.*?:(\d+):(\d+): error: (.*)$", check.stderr, re.MULTILINE)
    assert len(expected) == 3
    # The same messages at the same places; check's columns count code points, 1-based.
    lines = BAD.split("\n")
    assert [(d.range.start.line, d.range.start.character, d.message) for d in diagnostics] == [
        (int(line) - 1, len(lines[int(line) - 1][:int(column) - 1].encode("utf-16-le")) // 2,
         message) for line, column, message in expected]
    assert all(d.severity == types.DiagnosticSeverity.Error for d in diagnostics)
    mull, z, b = diagnostics
    assert span_of(mull.range) == (1, 4, 1, 23)  # `torch.ops.aten.mull`
    # `$z` after `ü` (one code unit) and `😀` (two): code point 41 is UTF-16 unit 42.
    assert span_of(z.range) == (7, 42, 7, 44)
    assert BAD.split("\n")[7][41:43] == "$z"
    assert span_of(b.range) == (12, 25, 12, 27)


def test_a_change_that_fixes_the_errors_clears_them(editor, tmp_path):
    path = tmp_path / "fixing.rw"
    [before] = editor.open(path, BAD)
    assert len(before) == 3
    # An incremental edit after the emoji: `$z` -> `$y`, by its UTF-16 range.
    after_edit = editor.edit(path, before[1].range, "$y")
    assert [d.message for d in after_edit] == [before[0].message, before[2].message]
    fixed = BAD.replace("mull", "sub").replace("$z", "$y").replace("$b)", "$a)")
    [after] = editor.change(path, fixed)
    assert after == []
    [again] = editor.change(path, fixed.replace("mul($a, $a)", "mul($a, $c)"))
    assert [d.message for d in again] == ["`$c` is not bound by the pattern"]


def test_an_include_is_read_relative_to_the_file_and_its_errors_go_to_it(editor, tmp_path):
    main, library = tmp_path / "main.rw", tmp_path / "sub" / "lib.rw"
    library.parent.mkdir()
    library.write_text("use torch.ops.aten.gleu\n")
    main_text = 'include "sub/lib.rw"\nuse torch.ops.aten.relu\n'
    main_diagnostics, library_diagnostics = editor.open(main, main_text, main, library)
    assert main_diagnostics == []
    [gleu] = library_diagnostics
    assert gleu.message.startswith("`torch.ops.aten` has no `gleu`; did you mean `gelu`")
    assert span_of(gleu.range) == (0, 4, 0, 23)
    # Opened in the editor, the included file is read from there, not from the disk.
    [fixed] = editor.open(library, "use torch.ops.aten.gelu\n")
    assert fixed == [] and editor.published[uri(library)] == []
    # Closed, it is read from the disk again: its mistake is back.
    [again] = editor.published_after(lambda: editor.close(library), library)
    assert [d.message for d in again] == [gleu.message]


def test_a_missing_include_is_an_error_at_the_include(editor, tmp_path):
    path = tmp_path / "lonely.rw"
    [diagnostics] = editor.open(path, 'include "nowhere.rw"\n')
    [missing] = diagnostics
    assert missing.message.startswith(f"cannot read `{tmp_path / 'nowhere.rw'}`")
    assert span_of(missing.range) == (0, 0, 0, 20)


def test_a_note_becomes_related_information(editor, tmp_path):
    path = tmp_path / "twice.rw"
    [[twice]] = editor.open(path, "use torch.ops.aten.add\nuse torch.ops.aten.add\n")
    assert twice.message == "`add` is already declared" and span_of(twice.range) == (1, 4, 1, 22)
    [note] = twice.related_information
    assert note.message == "previous declaration here"
    assert note.location.uri == uri(path) and span_of(note.location.range) == (0, 4, 0, 22)


def test_a_document_never_saved_gets_its_diagnostics(editor):
    [[mull]] = editor.open("untitled:Untitled-1", "use torch.ops.aten.mull\n")
    assert mull.message.startswith("`torch.ops.aten` has no `mull`")
    assert span_of(mull.range) == (0, 4, 0, 23)


# --- hover ---------------------------------------------------------------------------------------
def test_hover_on_a_use_shows_every_overloads_schema(editor, tmp_path):
    path = tmp_path / "hover.rw"
    editor.open(path, GOOD)
    hover = editor.hover(path, position(GOOD, "add", offset=1))
    text = hover.contents.value
    assert text.startswith("`add`: `torch.ops.aten.add`, op packet of")
    overloads = torch.ops.aten.add.overloads()
    assert f"op packet of {len(overloads)} overloads" in text
    for overload in overloads:
        assert str(getattr(torch.ops.aten.add, overload)._schema) in text
    assert "aten::add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor" in text
    assert span_of(hover.range) == (0, 4, 0, 22)  # without `as`, the name is the path


def test_hover_on_an_op_in_a_pattern_shows_what_it_resolves_to(editor, tmp_path):
    path = tmp_path / "hover_pattern.rw"
    editor.open(path, GOOD)
    hover = editor.hover(path, position(GOOD, "mul(relu"))
    assert hover.contents.value == ("`mul`: `torch.ops.aten.mul.Tensor`, op overload\n```\n"
                                    "aten::mul.Tensor(Tensor self, Tensor other) -> Tensor\n```")
    assert span_of(hover.range) == (7, 15, 7, 18)


def test_hover_on_a_builtin_and_a_variable(editor, tmp_path):
    path = tmp_path / "hover_more.rw"
    editor.open(path, GOOD)
    rank = editor.hover(path, position(GOOD, "rank("))
    assert rank.contents.value.startswith("```\nrank(a tensor) -> a number\n```\nbuilt-in: ")
    x = editor.hover(path, position(GOOD, "$x)", occurrence=1))
    assert x.contents.value.startswith("`$x`: variable of rule `outer`, binds a value; "
                                       "bound at hover_more.rw:8:25")
    assert editor.hover(path, position(GOOD, "match")) is None


def test_hover_on_a_template_call_a_rule_and_a_pattern(editor, tmp_path):
    path = tmp_path / "hover_names.rw"
    editor.open(path, GOOD)
    relu = editor.hover(path, position(GOOD, "relu($x)", occurrence=-1))  # in the template
    assert relu.contents.value.startswith("`relu`: `torch.ops.aten.relu`, op packet of")
    assert "aten::relu(Tensor self) -> Tensor" in relu.contents.value
    outer = editor.hover(path, position(GOOD, "outer)"))
    assert outer.contents.value == "rule `outer`, hover_names.rw:7:6"
    sum_of = editor.hover(path, position(GOOD, "sum_of($p"))
    assert sum_of.contents.value == ("```rw\npattern sum_of($a, $b) = add($a, $b) | add($b, $a)"
                                     "\n```\npattern, hover_names.rw:5:9")


def test_hover_on_a_higher_order_op_and_a_function(editor, tmp_path):
    path = tmp_path / "autocast.rw"
    text = (REPO / "rules" / "autocast.rw").read_text()
    editor.open(path, text)
    hop = editor.hover(path, position(text, "wrap_with_autocast(*", occurrence=-1))
    assert hop.contents.value == (
        "`wrap_with_autocast`: `torch.ops.higher_order.wrap_with_autocast`, higher-order op: "
        "no schema; `outline with` calls it as `wrap_with_autocast(*ARGS, submodule, *inputs)`")
    enter = editor.hover(path, position(text, "enter_autocast(*", occurrence=-1))
    assert enter.contents.value == (
        "`enter_autocast`: `torch.amp.autocast_mode._enter_autocast`, function\n```\n"
        "torch.amp.autocast_mode._enter_autocast(*vals)\n```")


# --- go to definition ----------------------------------------------------------------------------
def test_definition_of_a_rule_a_use_and_a_variable(editor, tmp_path):
    path = tmp_path / "definition.rw"
    editor.open(path, GOOD)
    rule = editor.definition(path, position(GOOD, "outer)"))
    assert rule.uri == uri(path) and span_of(rule.range) == (6, 5, 6, 10)  # `rule outer:`
    use = editor.definition(path, position(GOOD, "mul(relu"))
    assert span_of(use.range) == (1, 33, 1, 36)  # `as mul`
    # `$q` in the template jumps to where the pattern binds it.
    q = editor.definition(path, position(GOOD, "$q)", occurrence=1))
    assert span_of(q.range) == span_of(types.Range(position(GOOD, "$q"),
                                                   position(GOOD, "$q", offset=2)))
    pattern = editor.definition(path, position(GOOD, "sum_of(", occurrence=1))
    assert span_of(pattern.range) == (4, 8, 4, 14)


def test_definition_of_an_include_is_the_file(editor, tmp_path):
    path = tmp_path / "export_copy.rw"
    text = f'include "{REPO / "rules" / "autocast.rw"}"\ninclude "../{tmp_path.name}/x.rw"\n'
    (tmp_path / "x.rw").write_text("use torch.ops.aten.sin\n")
    editor.open(path, text)
    autocast = editor.definition(path, position(text, "autocast"))
    assert autocast.uri == uri(REPO / "rules" / "autocast.rw")
    assert span_of(autocast.range) == (0, 0, 0, 0)
    relative = editor.definition(path, position(text, "x.rw"))
    assert relative.uri == uri(tmp_path / "x.rw")


# --- completion ----------------------------------------------------------------------------------
def labels(items: list[types.CompletionItem]) -> list[str]:
    return [item.label for item in items]


def test_completion_of_aten_and_higher_order_op_names_after_use(editor, tmp_path):
    path = tmp_path / "complete_use.rw"
    text = "use torch.ops.aten.\nuse torch.ops.higher_order.\nuse torch.ops.aten.add.\n"
    editor.open(path, text)
    aten = labels(editor.completion(path, types.Position(0, 19)))
    assert {"mul", "add", "gelu", "scaled_dot_product_attention"} <= set(aten)
    assert "wrap_with_autocast" not in aten
    higher_order = labels(editor.completion(path, types.Position(1, 27)))
    assert {"wrap_with_autocast", "wrap_with_set_grad_enabled", "cond"} <= set(higher_order)
    assert labels(editor.completion(path, types.Position(2, 23))) == \
        torch.ops.aten.add.overloads()
    namespaces = labels(editor.completion(path, types.Position(0, 14)))
    assert {"aten", "higher_order", "prims"} <= set(namespaces)


def test_completion_of_torch_and_python_names_after_use(editor, tmp_path):
    path = tmp_path / "complete_modules.rw"
    text = "use torch.nn.functional.\nuse math.\nuse torch.\nuse torch.os.\n"
    editor.open(path, text)
    assert {"gelu", "relu", "softmax"} <= set(labels(editor.completion(path, position(
        text, "functional.", offset=11))))
    assert {"sqrt", "exp", "pi"} <= set(labels(editor.completion(path, position(
        text, "math.", offset=5))))
    torch_names = editor.completion(path, position(text, "torch.\n", offset=6))
    assert {"sin", "float32", "nn", "ops"} <= set(labels(torch_names))
    assert next(item for item in torch_names if item.label == "nn").kind == \
        types.CompletionItemKind.Module
    # `torch.os` is the `os` module, outside the allowed namespaces: nothing to offer there.
    assert labels(editor.completion(path, position(text, "os.", offset=3))) == []


def test_completion_in_a_pattern_offers_the_declared_names(editor, tmp_path):
    path = tmp_path / "complete_pattern.rw"
    text = GOOD + "\nrule more:\n    match re"
    editor.open(path, text)
    items = editor.completion(path, position(text, "match re", offset=8, occurrence=-1))
    assert labels(items) == ["add", "mul", "relu", "sum_of"]
    relu = items[2]
    assert relu.detail == "torch.ops.aten.relu"
    # The completion replaces the word typed so far.
    assert span_of(relu.text_edit.range) == (17, 10, 17, 12)


def test_completion_in_a_template_offers_the_bound_variables(editor, tmp_path):
    path = tmp_path / "complete_template.rw"
    text = GOOD + "\nrule more:\n    match $out = mul($a, relu($b))\n    replace with add($"
    editor.open(path, text)
    items = editor.completion(path, position(text, "add($", offset=5, occurrence=-1))
    names = labels(items)
    assert names[:3] == ["$out", "$a", "$b"] and "$x" not in names  # only this rule's
    assert {"add", "relu", "shape", "size"} <= set(names)
    assert "grad_enabled" not in names  # not known when a template is built
    # `$` is part of what the completion replaces, so that it writes `$a`, not `$$a`.
    assert span_of(items[1].text_edit.range) == (18, 21, 18, 22)


def test_completion_in_where_offers_variables_and_builtins(editor, tmp_path):
    path = tmp_path / "complete_where.rw"
    text = GOOD + "\nrule more:\n    match $out = mul($a, relu($b))\n    where "
    editor.open(path, text)
    items = editor.completion(path, position(text, "where ", offset=6, occurrence=-1))
    names = labels(items)
    assert names[:3] == ["$out", "$a", "$b"]
    assert {"dtype", "shape", "grad_enabled", "inside", "is_pointwise", "add"} <= set(names)
    dtype = next(item for item in items if item.label == "dtype")
    assert dtype.detail == "dtype(a tensor) -> a dtype"


# --- document symbols ----------------------------------------------------------------------------
def test_document_symbols_list_uses_patterns_and_rules(editor, tmp_path):
    path = tmp_path / "outline.rw"
    editor.open(path, GOOD)
    found = editor.symbols(path)
    assert [(s.name, s.kind, s.detail) for s in found] == [
        ("add", types.SymbolKind.Variable, "torch.ops.aten.add"),
        ("mul", types.SymbolKind.Variable, "torch.ops.aten.mul.Tensor"),
        ("relu", types.SymbolKind.Variable, "torch.ops.aten.relu"),
        ("sum_of", types.SymbolKind.Struct, "pattern"),
        ("outer", types.SymbolKind.Function, "rule"),
        ("inner", types.SymbolKind.Function, "rule"),
    ]
    assert span_of(found[4].selection_range) == (6, 5, 6, 10)


# --- named conditions ----------------------------------------------------------------------------
CONDITIONS = """\
use torch.ops.aten.add

condition same_rank($a, $b) = rank($a) == rank($b)

rule commuted:
    match add($x, $y)
    where same_rank($x, $y) and 
    replace with add($y, $x)
"""


def test_a_named_condition_is_hovered_gone_to_completed_and_listed(editor, tmp_path):
    path = tmp_path / "conditions.rw"
    text = CONDITIONS.replace("and \n", "\n")
    assert editor.open(path, text) == [[]]
    use = editor.hover(path, position(text, "same_rank($x"))
    assert use.contents.value == ("```rw\ncondition same_rank($a, $b) = rank($a) == rank($b)"
                                  "\n```\ncondition, conditions.rw:3:11")
    parameter = editor.hover(path, position(text, "$b)"))
    assert parameter.contents.value.startswith(
        "`$b`: variable of condition `same_rank`, binds a value; bound at conditions.rw:3:25")
    definition = editor.definition(path, position(text, "same_rank($x"))
    assert span_of(definition.range) == (2, 10, 2, 19)
    assert [(s.name, s.kind, s.detail) for s in editor.symbols(path)] == [
        ("add", types.SymbolKind.Variable, "torch.ops.aten.add"),
        ("same_rank", types.SymbolKind.Interface, "condition"),
        ("commuted", types.SymbolKind.Function, "rule")]
    # Where a condition goes, the conditions are offered (after the change, the rule does not
    # parse; the names come from the last good check).
    editor.change(path, CONDITIONS)
    items = editor.completion(path, position(CONDITIONS, "and ", offset=4))
    condition = next(item for item in items if item.label == "same_rank")
    assert (condition.kind, condition.detail) == (types.CompletionItemKind.Interface,
                                                  "condition")
    assert {"$x", "$y", "rank"} <= set(labels(items))
    # in a condition's body, its parameters and the built-ins
    body = editor.completion(path, position(CONDITIONS, "rank($a)"))
    assert {"$a", "$b", "rank", "same_rank"} <= set(labels(body))
    # and not in a pattern, where a condition cannot stand
    pattern = editor.completion(path, position(CONDITIONS, "add($x", offset=4))
    assert "same_rank" not in labels(pattern) and "add" in labels(pattern)


# --- the command line ----------------------------------------------------------------------------
def test_without_pygls_the_command_says_what_to_install():
    code = ("import sys; sys.modules['pygls'] = None; from engine.frontends.cli import main; "
            "sys.exit(main(['lsp']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 1
    assert "the language server needs pygls" in result.stderr
    assert "pip install .[lsp]" in result.stderr
    # ... and the other commands do not need it.
    check = subprocess.run([sys.executable, "-c", code.replace("['lsp']", "['check', "
                                                               "'rules/export.rw']")],
                           capture_output=True, text=True, cwd=REPO)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("rules/export.rw: ") and check.stdout.endswith(" no errors\n")
