"""Highlighting: the Pygments lexers for rule files and graph text, driven as users drive them,
through `pygmentize` and the `pygments.lexers` entry points the package registers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYGMENTIZE = shutil.which("pygmentize", path=str(Path(sys.executable).parent))


def tokens(lexer: str, text: str, tmp_path: Path) -> list[tuple[str, str]]:
    """(token type, text) pairs as `pygmentize -f raw` prints them."""
    source = tmp_path / f"input.{lexer}"
    source.write_text(text)
    result = subprocess.run([PYGMENTIZE, "-l", lexer, "-f", "raw", str(source)],
                            capture_output=True, text=True, check=True)
    pairs = []
    for line in result.stdout.splitlines():
        kind, _, value = line.partition("\t")
        pairs.append((kind, eval(value)))  # noqa: S307 - pygments writes repr() of a str
    return pairs


def lexed_as(pairs) -> dict[str, set[str]]:
    """Each text -> the token types it was given, wherever it occurs."""
    kinds: dict[str, set[str]] = {}
    for kind, value in pairs:
        kinds.setdefault(value, set()).add(kind)
    return kinds


def test_every_rule_file_lexes_without_an_error_token_and_with_the_languages_parts(tmp_path):
    # (tests/diagnostics/ holds files wrong on purpose, a stray `@` among them)
    files = sorted(REPO.glob("rules/*.rw")) + sorted(
        path for path in REPO.glob("tests/**/*.rw") if "diagnostics" not in path.parts)
    pairs = tokens("rw", "\n".join(path.read_text() for path in files), tmp_path)
    assert not [pair for pair in pairs if pair[0] == "Token.Error"]
    kinds = lexed_as(pairs)
    # (`where` is also a `use`d name in attention.rw, `use ... as where`)
    for keyword in ("rule", "match", "replace", "commutative", "verify", "outline"):
        assert kinds[keyword] == {"Token.Keyword"}, keyword
    assert kinds["$mask"] == kinds["$x"] == {"Token.Name.Variable"}
    assert kinds["dtype"] == kinds["is_last_dim"] == kinds["broadcasts_to"] \
        == {"Token.Name.Builtin"}
    assert kinds["attention_divided"] == {"Token.Name.Function"}  # a rule's name
    assert kinds["k_transposed"] == {"Token.Name.Function", "Token.Name"}  # defined, used
    assert kinds["torch.ops.aten.scaled_dot_product_attention.default"] \
        == {"Token.Name.Namespace"}
    assert kinds["..."] == {"Token.Operator"}


def test_graph_text_and_fixtures_lex_without_an_error_token(tmp_path):
    files = sorted(REPO.glob("tests/rules/**/*.fxt")) + sorted(REPO.glob("snapshots/**/*.txt"))
    pairs = tokens("fxg", "\n".join(path.read_text() for path in files), tmp_path)
    assert not [pair for pair in pairs if pair[0] == "Token.Error"]
    kinds = lexed_as(pairs)
    assert kinds["def"] == kinds["return"] == {"Token.Keyword"}
    # (an expected error's prose also names dtypes: plain names there)
    assert "Token.Keyword.Type" in kinds["f32"] and "Token.Keyword.Type" in kinds["bf16"]
    assert kinds["aten.mul.Tensor"] == kinds["higher_order.wrap_with_autocast"] \
        == {"Token.Name.Function"}
    assert kinds["# --- expect"] == {"Token.Comment.Special"}


def test_the_lexers_are_found_by_file_name():
    for name, alias in (("rules.rw", "rw"), ("graph.fxg", "fxg"), ("cases.fxt", "fxg")):
        result = subprocess.run([PYGMENTIZE, "-N", name], capture_output=True, text=True,
                                check=True)
        assert result.stdout.strip() == alias
