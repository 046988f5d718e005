"""Pygments lexers for rule files (`.rw`) and graphs as text (`.fxg`, `.fxt` fixtures).

Input: text. Output: Pygments tokens. Registered under the `pygments.lexers` entry point
(pyproject.toml), so `pygmentize -l rw FILE`, Sphinx and MkDocs find them once the package is
installed. The rule language's keywords are read from its grammar (grammar/rw.lark), and its
built-ins from `engine.language.builtins`, so the lexer cannot fall behind either.
"""

from __future__ import annotations

import re
from importlib import resources

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (Comment, Keyword, Name, Number, Operator, Punctuation, String,
                            Text, Whitespace)

from ..language.builtins import BUILTINS


def _grammar_keywords() -> tuple[str, ...]:
    grammar = resources.files("engine.grammar").joinpath("rw.lark").read_text()
    return tuple(sorted({word for word in re.findall(r'"([a-z][a-z_]*)"', grammar)}))


KEYWORDS = _grammar_keywords()  # rule, match, where, replace, with, use, include, pattern...
NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class RwLexer(RegexLexer):
    """The `.rw` rule language."""

    name = "Rewrite rules"
    aliases = ["rw", "rewrite-rules"]
    filenames = ["*.rw"]
    mimetypes = ["text/x-rw"]

    tokens = {
        "root": [
            (r"\s+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (rf"(rule|pattern|condition)(\s+)({NAME})", bygroups(Keyword, Whitespace,
                                                                  Name.Function)),
            (rf"(use)(\s+)({NAME}(?:\.{NAME})*)", bygroups(Keyword.Namespace, Whitespace,
                                                           Name.Namespace)),
            (rf"(as)(\s+)({NAME})", bygroups(Keyword.Namespace, Whitespace, Name.Class)),
            (r"include\b", Keyword.Namespace),
            (words(KEYWORDS, suffix=r"\b"), Keyword),
            (words(("True", "False", "None"), suffix=r"\b"), Keyword.Constant),
            (rf"\${NAME}", Name.Variable),
            (words(tuple(BUILTINS), suffix=r"(?=\s*\()"), Name.Builtin),
            (r'"(\\.|[^"\\\n])*"', String.Double),
            (r"'(\\.|[^'\\\n])*'", String.Single),
            (r"(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", Number),
            (r"\.\.\.", Operator),
            (r"\*\*|==|!=|<=|>=|//|[-+*/%<>|?=]", Operator),
            (r"[()\[\],:.]", Punctuation),
            (NAME, Name),
        ],
    }


class FxgLexer(RegexLexer):
    """FX graphs as text (`engine dump`), and the rule fixtures that hold them."""

    name = "FX graph text"
    aliases = ["fxg", "fx-graph"]
    filenames = ["*.fxg", "*.fxt"]
    mimetypes = ["text/x-fxg"]

    tokens = {
        "root": [
            (r"\s+", Whitespace),
            (r"# ---[^\n]*", Comment.Special),  # a fixture's sections
            (r"#[^\n]*", Comment.Single),
            (rf"(def)(\s+)({NAME}(?:\.(?:{NAME}|\d+))*)",
             bygroups(Keyword, Whitespace, Name.Function)),
            (words(("return", "signature", "input", "output", "get_attr", "module",
                    "method"), suffix=r"\b"), Keyword),
            (words(("True", "False", "None"), suffix=r"\b"), Keyword.Constant),
            (r"[a-z]+\d*(?=\[)", Keyword.Type),  # f32[4, 8], bf16[s0]
            (rf"{NAME}(?:\.{NAME})+", Name.Function),  # aten.mul.Tensor, operator.getitem
            (r"[A-Z][A-Z_]+\b", Name.Constant),  # USER_INPUT, PARAMETER
            (r'"(\\.|[^"\\\n])*"', String.Double),
            (r"'(\\.|[^'\\\n])*'", String.Single),
            (r"-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", Number),
            (r"[-+*/=]", Operator),
            (r"[()\[\]{},:.]", Punctuation),
            (NAME, Name),
            (r".", Text),
        ],
    }
