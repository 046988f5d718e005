"""The editor's highlighting: the TextMate grammars of editors/vscode/, run as VS Code runs them.

Input: editors/vscode/syntaxes/*.tmLanguage.json, the rule files and graph texts of the repo.
Output: pass or fail. The grammars run under babi's TextMate engine (a port of vscode-textmate)
with Oniguruma through onigurumacffi, the regex library VS Code uses, so a pattern that VS Code
would reject fails here too. What they say is checked against the languages (grammar/*.lark,
`engine.language.builtins`) and against the Pygments lexers (engine/tools/highlight.py), which
tests/test_highlight.py checks in turn.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from pygments.token import Comment, Keyword, Name, Number, String

from engine.language.builtins import BUILTINS
from engine.language.sema.promises import PROMISES
from engine.tools.highlight import KEYWORDS, FxgLexer, RwLexer

highlight = pytest.importorskip("babi.highlight", reason="the test extra installs babi")

REPO = Path(__file__).resolve().parent.parent
EXTENSION = REPO / "editors" / "vscode"
SYNTAXES = EXTENSION / "syntaxes"
ROOT_SCOPES = {"source.rw", "source.fxg"}

# What a Pygments token says a text is -> the TextMate scope (a prefix) it must have there.
# Most specific first: Keyword.Constant is a Keyword too.
AGREEMENT = (
    (Keyword.Constant, ("constant.language",)),
    (Keyword.Type, ("support.type",)),
    (Keyword, ("keyword.",)),
    (Name.Variable, ("variable.",)),
    (Name.Builtin, ("support.function.builtin",)),
    (Name.Namespace, ("entity.name.namespace",)),
    (Name.Class, ("entity.name.",)),  # `as NAME`
    # a rule's or pattern's name, a graph's; in graph text also a call's target or a dotted
    # constant (`torch.bfloat16`), which Pygments does not tell apart
    (Name.Function, ("entity.name.function", "support.constant.qualified")),
    (Name, ("",)),  # any scope but the file's own: a name is never left plain
    (Comment, ("comment.",)),
    (String, ("string.",)),
    (Number, ("constant.numeric",)),
)


@pytest.fixture(scope="module")
def grammars(tmp_path_factory):
    """babi's grammar registry over the extension's grammars (it finds each by `SCOPE.json`)."""
    folder = tmp_path_factory.mktemp("grammars")
    for path in SYNTAXES.glob("*.tmLanguage.json"):
        shutil.copy(path, folder / f"{json.loads(path.read_text())['scopeName']}.json")
    return highlight.Grammars(str(folder))


def scopes_of(grammars, scope: str, text: str) -> list[tuple[str, ...]]:
    """The scope stack of each character of `text`, line by line as the editor tokenizes."""
    compiler = grammars.compiler_for_scope(scope)
    state = compiler.root_state
    scopes: list[tuple[str, ...]] = []
    for number, line in enumerate(text.splitlines(keepends=True)):
        state, regions = highlight.highlight_line(compiler, state, line, number == 0)
        line_scopes = [(scope,)] * len(line)
        for region in regions:
            line_scopes[region.start:region.end] = [region.scope] * (region.end - region.start)
        scopes += line_scopes
    return scopes


def disagreements(lexer, scopes, text: str, skip=lambda stack: False) -> list[str]:
    """Where the TextMate grammar does not say what the Pygments lexer says, as readable lines."""
    found = []
    for start, token, value in lexer.get_tokens_unprocessed(text):
        prefixes = next((p for kind, p in AGREEMENT if token in kind), None)
        if prefixes is None:  # operators, punctuation, whitespace: no agreement asked
            continue
        if lexer.name == RwLexer.name and token in Name and value in KEYWORDS:
            # Pygments' `as NAME` reaches across lines: in a broken `use x as` (tests/
            # diagnostics/) it takes the next line's `use` for the alias. TextMate goes by lines.
            prefixes = (*prefixes, "keyword.")
        for offset in range(start, start + len(value)):
            stack = scopes[offset]
            if text[offset].isspace() or skip(stack):
                continue
            inner = [s for s in stack if s not in ROOT_SCOPES]
            if not any(s.startswith(p) for s in inner for p in prefixes):
                line = text.count("\n", 0, offset) + 1
                found.append(f"line {line}: {value!r} is {token}, scopes {stack}")
                break
    return found


def rule_files() -> list[Path]:
    return sorted(REPO.glob("rules/*.rw")) + sorted(REPO.glob("tests/**/*.rw"))


def graph_texts() -> list[Path]:
    snapshots = [path for path in sorted(REPO.glob("snapshots/**/*.txt"))
                 if re.search(r"^def ", path.read_text(), re.MULTILINE)]
    return sorted(REPO.glob("tests/rules/**/*.fxt")) + snapshots


@pytest.mark.parametrize("path", rule_files(), ids=lambda path: path.stem)
def test_every_rule_file_is_scoped_as_the_pygments_lexer_lexes_it(grammars, path):
    text = path.read_text()
    assert disagreements(RwLexer(), scopes_of(grammars, "source.rw", text), text) == []


def test_graph_texts_and_fixtures_are_scoped_as_the_pygments_lexer_lexes_them(grammars):
    # An expected error (`# --- expect: error`) is prose, scoped as one string; Pygments lexes
    # its words as graph text. And it reads the `.0` of an attribute path (`block.0.weight`) as
    # a number, where the path is one name.
    def in_error(stack):
        return "string.unquoted.error.fxg" in stack or "support.constant.qualified.fxg" in stack

    paths = graph_texts()
    assert len(paths) > 50
    for path in paths:
        text = path.read_text()
        found = disagreements(FxgLexer(), scopes_of(grammars, "source.fxg", text), text,
                              in_error)
        assert found == [], path


def innermost(grammars, scope: str, line: str, word: str, occurrence: int = 0) -> tuple:
    """The scope stack of the `occurrence`th `word` (as a whole word) in `line`."""
    starts = [m.start() for m in re.finditer(rf"(?<![\w$]){re.escape(word)}(?!\w)", line)]
    stacks = scopes_of(grammars, scope, line)
    return stacks[starts[occurrence]]


def has_scope(stack: tuple, prefix: str) -> bool:
    return any(s.startswith(prefix) for s in stack)


def lark_keywords(grammar: str) -> set[str]:
    """The lowercase words a .lark grammar quotes: the language's keywords."""
    return set(re.findall(r'"([a-z][a-z_]*)"', (REPO / "grammar" / grammar).read_text()))


RULE_SAMPLE = """\
include "other.rw"
use torch.ops.aten.add.Tensor as add
pattern twice($x) = add($x, $x) | shared mul($x, 2)
condition small($x) = rank($x) < 3 and all($s > 0 for $s in shape($x))
rule sample:
    match $e = enter(*$mode) ... exit($e)
    where not is_tensor($x) and dtype($x) in (float16, bfloat16) or $x not in (1, 2)
    replace with commutative add(twice($x), 1.0e-4)
rule others:
    match relu($x)
    outline with wrap(*$mode)
rule another: match a($x) inline
rule more: match a($x) keep
rule last: match a($x) erase
rule verified: match b($x) replace $x with c($x) verify refines, tolerance(rtol=1e-4)
"""


def test_every_keyword_of_the_rule_grammar_is_a_keyword(grammars):
    keywords = lark_keywords("rw.lark")
    assert {"rule", "match", "where", "replace", "verify", "commutative"} <= keywords
    for keyword in sorted(keywords):
        assert re.search(rf"\b{keyword}\b", RULE_SAMPLE), f"add `{keyword}` to the sample"
        line = next(line for line in RULE_SAMPLE.splitlines() if re.search(rf"\b{keyword}\b",
                                                                           line))
        assert has_scope(innermost(grammars, "source.rw", line, keyword), "keyword."), keyword
        # and alone on a line, as it may be (newlines do not matter to the language)
        assert has_scope(innermost(grammars, "source.rw", keyword, keyword), "keyword."), keyword


def test_variables_comments_strings_numbers_and_names_get_their_scopes(grammars):
    line = 'rule fuse: match add($a, _) replace with sdpa($a, scale=1.5, name="x") # why'
    assert has_scope(innermost(grammars, "source.rw", line, "$a"), "variable.other.rw")
    assert has_scope(innermost(grammars, "source.rw", line, "_"), "variable.language")
    assert has_scope(innermost(grammars, "source.rw", line, "fuse"), "entity.name.function.rule")
    assert has_scope(innermost(grammars, "source.rw", line, "add"), "entity.name.function.call")
    assert has_scope(innermost(grammars, "source.rw", line, "scale"), "variable.parameter")
    assert has_scope(innermost(grammars, "source.rw", line, "1.5"), "constant.numeric")
    assert has_scope(innermost(grammars, "source.rw", line, '"x"'), "string.quoted.double")
    assert has_scope(innermost(grammars, "source.rw", line, "why"), "comment.line")
    use = "use torch.ops.aten.mul.Tensor as mul"
    assert has_scope(innermost(grammars, "source.rw", use, "torch.ops.aten.mul.Tensor"),
                     "entity.name.namespace")
    assert has_scope(innermost(grammars, "source.rw", use, "mul", 1), "entity.name.function")
    typed = "where dtype($x) == torch.float32 and $y != float16"
    assert has_scope(innermost(grammars, "source.rw", typed, "float32"), "support.type.dtype")
    assert has_scope(innermost(grammars, "source.rw", typed, "float16"), "support.type.dtype")
    assert has_scope(innermost(grammars, "source.rw", typed, "=="), "keyword.operator.comparison")


def test_every_builtin_and_promise_is_scoped_as_one(grammars):
    for name in BUILTINS:
        line = f"where {name}($x)"
        assert has_scope(innermost(grammars, "source.rw", line, name),
                         "support.function.builtin"), name
    for name in PROMISES:
        line = f"rule r: match a($x) erase verify {name}"
        assert has_scope(innermost(grammars, "source.rw", line, name),
                         "support.function.promise"), name


GRAPH_SAMPLE = """\
def forward(x: f32[4, s0], w: f32[8, 8]):
    sin: f32[4, s0] = aten.sin.default(x)
    submod_1 = get_attr(submod_1)
    lin: f32[4, 8] = module block.0(sin)
    view: f32[32] = method view(lin, -1)
    n: Sym(2*s0) = aten.sym_size.int(x, 1)
    return (view,)
signature:
    input w: PARAMETER lin.weight
    output view: USER_OUTPUT
"""


def test_every_keyword_of_the_graph_grammar_is_a_keyword(grammars):
    # `input` and `output` are the terminal SIDE's, not quoted; `Sym` is a type.
    keywords = lark_keywords("fxg.lark") | {"input", "output"}
    assert {"def", "return", "get_attr", "module", "method", "signature"} <= keywords
    for keyword in sorted(keywords):
        line = next(line for line in GRAPH_SAMPLE.splitlines()
                    if re.search(rf"\b{keyword}\b", line))
        stacks = scopes_of(grammars, "source.fxg", GRAPH_SAMPLE)
        offset = GRAPH_SAMPLE.index(line) + re.search(rf"\b{keyword}\b", line).start()
        assert has_scope(stacks[offset], "keyword."), keyword


def test_graph_text_types_targets_and_fixture_sections_get_their_scopes(grammars):
    stacks = scopes_of(grammars, "source.fxg", GRAPH_SAMPLE)

    def at(word, occurrence=0):
        starts = [m.start() for m in re.finditer(rf"(?<!\w){re.escape(word)}(?!\w)",
                                                 GRAPH_SAMPLE)]
        return stacks[starts[occurrence]]

    assert has_scope(at("f32"), "support.type") and has_scope(at("Sym"), "support.type")
    assert has_scope(at("forward"), "entity.name.function.graph")
    assert has_scope(at("aten.sin.default"), "entity.name.function.call")
    assert has_scope(at("sin"), "variable.other.definition")
    assert has_scope(at("PARAMETER"), "constant.other")
    fixture = "# --- case: x * 1 is x\n# --- report\ntimes_one at mul\n"
    stacks = scopes_of(grammars, "source.fxg", fixture)
    assert has_scope(stacks[fixture.index("case")], "keyword.other.section")
    assert has_scope(stacks[fixture.index("times_one")], "entity.name.function.rule")
    assert has_scope(stacks[fixture.index(" at ") + 1], "keyword.")


def test_the_extension_manifest_names_files_that_exist():
    manifest = json.loads((EXTENSION / "package.json").read_text())
    assert (EXTENSION / manifest["main"]).is_file()
    assert "vscode-languageclient" in manifest["dependencies"]
    contributes = manifest["contributes"]
    extensions = {ext for language in contributes["languages"] for ext in language["extensions"]}
    assert extensions == {".rw", ".fxg", ".fxt"}
    for language in contributes["languages"]:
        configuration = json.loads((EXTENSION / language["configuration"]).read_text())
        assert configuration["comments"]["lineComment"] == "#"
        assert ["(", ")"] in configuration["brackets"]
        assert {"open": "[", "close": "]"} in configuration["autoClosingPairs"]
        assert re.fullmatch(configuration["wordPattern"], "$mask")  # a variable is one word
    languages = {language["id"] for language in contributes["languages"]}
    for grammar in contributes["grammars"]:
        assert grammar["language"] in languages
        assert json.loads((EXTENSION / grammar["path"]).read_text())["scopeName"] \
            == grammar["scopeName"]
    setting = contributes["configuration"]["properties"]["rw.server.command"]
    assert setting["default"] == ["engine", "lsp"]
    launch = json.loads((EXTENSION / ".vscode" / "launch.json").read_text())
    assert [c["name"] for c in launch["configurations"]] == ["Run Extension"]
    # what extension.js reads: the same setting
    assert 'getConfiguration("rw").get("server.command")' \
        in (EXTENSION / manifest["main"]).read_text()
