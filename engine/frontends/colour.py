"""Colour for the command line: whether a stream gets it, and text coloured by what it says.

Input: text the CLI prints (diagnostics, reports, explanations, a `--diff`, graph text), its
kind, the stream it goes to and the environment. Output: the same text with ANSI colours from
Pygments' terminal formatter when the stream is a terminal, and the text untouched otherwise:
never coloured when `NO_COLOR` is set to anything non-empty, always when `FORCE_COLOR` is (and
`NO_COLOR` is not), never when Pygments is missing. With its escapes taken out, coloured text is
the uncoloured text, character for character: colour only adds.

    print(paint(report_text, REPORT, sys.stderr), file=sys.stderr)
"""

from __future__ import annotations

import os
import re
from typing import Iterator, Mapping, TextIO

DIAGNOSTICS = "diagnostics"  # `file:line:col: error: ...`, the line, a caret
REPORT = "report"  # what rules matched, explanations, near misses: prose with the same parts
DIFF = "diff"  # a unified diff of two graph texts
GRAPH = "graph"  # graph text, as `engine dump` prints it
JSON = "json"

# A line of a rule (or graph) quoted under its place, and the caret under the part meant.
_CARET_LINE = re.compile(r" *\^+ *")
_PLACE = re.compile(r"([^\s:`]+\.(?:rw|fxg|fxt)):\d+:\d+:")


def wants_colour(stream: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """Colour for `stream`: a terminal's, unless NO_COLOR says not; any, if FORCE_COLOR says."""
    if environ.get("NO_COLOR"):  # https://no-color.org: set and not empty
        return False
    if not _have_pygments():
        return False
    if environ.get("FORCE_COLOR"):  # https://force-color.org
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a stream without a file, or a closed one
        return False


def paint(text: str, kind: str, stream: TextIO) -> str:
    """`text` coloured as `kind` if `stream` wants colour; else `text` itself."""
    return colour(text, kind) if wants_colour(stream) else text


def colour(text: str, kind: str) -> str:
    """`text` with ANSI colours for what each part of it is."""
    from pygments import format as format_tokens
    from pygments.formatters import TerminalFormatter

    # Tokens straight from the lexer, not `highlight()`: that would first turn "\r\n" into "\n"
    # and add a final newline, and colour must not change a character.
    tokens = ((_plain_spaces(token), value)
              for _, token, value in _lexer(kind).get_tokens_unprocessed(text))
    return format_tokens(tokens, TerminalFormatter())


def _plain_spaces(token):
    from pygments.token import Text, Whitespace

    # The formatter greys whitespace: escapes around every space, and nothing to see.
    return Text if token in Whitespace else token


def _have_pygments() -> bool:
    try:
        import pygments  # noqa: F401
    except ImportError:
        return False
    return True


def _lexer(kind: str):
    from pygments.lexers import DiffLexer, JsonLexer

    from ..tools.highlight import FxgLexer

    lexers = {DIAGNOSTICS: _messages_lexer, REPORT: _messages_lexer, DIFF: DiffLexer,
              GRAPH: FxgLexer, JSON: JsonLexer}
    return lexers[kind]()


def _messages_lexer():
    """Diagnostics, reports and explanations: prose, with quoted rule lines highlighted as
    rules (or graph text) under their `file:line:col`, and the caret line below them."""
    from pygments.lexer import Lexer

    class MessagesLexer(Lexer):
        name = "engine messages"

        def get_tokens_unprocessed(self, text: str) -> Iterator[tuple[int, object, str]]:
            yield from _lex_messages(text)

    return MessagesLexer()


def _lex_messages(text: str) -> Iterator[tuple[int, object, str]]:
    from ..tools.highlight import FxgLexer, RwLexer

    prose, rules, graphs = _prose_lexer(), RwLexer(), FxgLexer()
    lines = text.splitlines(keepends=True)
    snippet_lexer = rules
    offset = 0
    for number, line in enumerate(lines):
        place = _PLACE.search(line)
        if place:  # the quoted line below is in this file's language
            snippet_lexer = rules if place.group(1).endswith(".rw") else graphs
        following = lines[number + 1] if number + 1 < len(lines) else ""
        quoted = line.startswith(" ") and _CARET_LINE.fullmatch(following.rstrip("\r\n"))
        lexer = snippet_lexer if quoted else prose
        for start, token, value in lexer.get_tokens_unprocessed(line):
            yield offset + start, token, value
        offset += len(line)


def _prose_lexer():
    from pygments.lexer import RegexLexer, bygroups
    from pygments.token import Generic, Name, Number, Punctuation, Text, Whitespace

    class ProseLexer(RegexLexer):
        """One line of a message: places bold, errors red, rule and node names, $variables."""

        name = "engine message prose"
        tokens = {"root": [
            (r"^( *)(\^+)", bygroups(Whitespace, Generic.Inserted)),  # the caret
            (r"[^\s:`]+\.(?:rw|fxg|fxt|py):\d+(?::\d+)?", Generic.Heading),  # a place
            (r"\b(error|failed|FAILED)(:)", bygroups(Generic.Error, Punctuation)),
            (r"\b(note|warning)(:)", bygroups(Generic.Subheading, Punctuation)),
            (r"\bnot matched\b|\bmatched nowhere\b", Generic.Deleted),
            (r"\bmatched\b|\bmatches\b|\bmatch\b", Generic.Inserted),
            (r"`\$?[A-Za-z_][\w.]*`", Name.Function),  # a rule, a node, an op
            (r"\$[A-Za-z_]\w*", Name.Variable),
            (r"\b\d+\b", Number),
            (r"\s+", Whitespace),
            (r"[\w.]+|[^\w\s]", Text),
        ]}

    return ProseLexer()
