"""Source spans and diagnostics.

Input: a source text, and positions found by the parser or the checker.
Output: `Diagnostic` values that render as `file:line:col: error: message`, followed by the
offending source line and a caret under the span, plus optional notes pointing elsewhere
("see the previous definition here"). `RuleError` carries every diagnostic of a load at once;
rendered, the first MAX_SHOWN are shown and all are counted, and a line longer than
SHOWN_COLUMNS shows the part about the caret.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """A rule file's text and the name it is reported under."""

    path: str
    text: str

    def line(self, number: int) -> str:
        """Line `number` (1-based) as the parser counts lines: by "\n" alone."""
        lines = self._lines
        return lines[number - 1].removesuffix("\r") if 0 < number <= len(lines) else ""

    @functools.cached_property
    def _lines(self) -> list[str]:  # split once: a file's thousand diagnostics read it once
        return self.text.split("\n")


@dataclass(frozen=True)
class Span:
    """A range in a source, 1-based lines and columns, end exclusive."""

    source: Source
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def where(self) -> str:
        return f"{self.source.path}:{self.line}:{self.column}"

    def __repr__(self) -> str:  # keeps AST reprs short
        return f"Span({self.where})"


@dataclass(frozen=True)
class Note:
    span: Span
    message: str


@dataclass(frozen=True)
class Diagnostic:
    span: Span
    message: str
    notes: tuple[Note, ...] = field(default=())
    severity: str = "error"

    def render(self) -> str:
        parts = [_render_one(self.span, self.severity, self.message)]
        parts += [_render_one(note.span, "note", note.message) for note in self.notes]
        return "\n".join(parts)


SHOWN_COLUMNS = 120  # of a longer line, the part about the caret is shown


def _render_one(span: Span, severity: str, message: str) -> str:
    line = span.source.line(span.line)
    # The caret covers the span on its first line; at least one character.
    start = span.column - 1
    width = max(1, (span.end_column if span.end_line == span.line else len(line) + 1)
                - span.column)
    before = after = ""
    if len(line) > SHOWN_COLUMNS:  # a line of a megabyte shows a window about the caret
        first = max(0, min(start - SHOWN_COLUMNS // 3, len(line) - SHOWN_COLUMNS))
        before, after = ("..." if first else ""), ("..." if first + SHOWN_COLUMNS < len(line)
                                                    else "")
        line, start = line[first:first + SHOWN_COLUMNS], start - first
        width = min(width, SHOWN_COLUMNS - start)
    # Control characters (a binary file's) would garble a terminal; each shows as one mark.
    text = "".join(c if c.isprintable() or c == "\t" else "\ufffd" for c in line)
    caret = " " * (len(before) + start) + "^" * max(1, width)
    return f"{span.where}: {severity}: {message}\n    {before}{text}{after}\n    {caret}"


MAX_SHOWN = 100  # diagnostics rendered; the rest are counted


def render_all(diagnostics: list[Diagnostic]) -> str:
    """Every diagnostic in file order, up to MAX_SHOWN, then how many there are."""
    ordered = sorted(diagnostics, key=lambda d: (d.span.source.path, d.span.line, d.span.column))
    count = len(ordered)
    summary = f"{count} error{'s' if count != 1 else ''}"
    if count > MAX_SHOWN:
        summary += f", the first {MAX_SHOWN} shown"
    return "\n".join(d.render() for d in ordered[:MAX_SHOWN]) + f"\n{summary}"


class RuleError(Exception):
    """Raised by `load_rules` when rule files have errors; `str()` holds every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__(render_all(self.diagnostics))
