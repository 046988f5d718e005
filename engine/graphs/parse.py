"""Graphs as text -> GraphModules: what `engine.dump` prints, read back.

Input: the text of one or more graphs (`def forward(...): ...`, nested graphs named by their
attribute path, `def submod_1(...)`), optionally followed by the export signature; the grammar is
`grammar/fxg.lark` (the lines `engine.dump` prints are read by a line reader of their few
shapes, which gives what the grammar gives; any other text is read by the grammar). Output: a
GraphModule whose nodes have the names, targets, arguments and order the text says, each with
`meta["val"]` rebuilt from its annotation: a fake tensor of that dtype and shape (contiguous, on
the CPU; nodes of one static type share one), sizes such as `s0` or `2*s0` as SymInts of one shape
environment, tuples and lists of those, literals. Nested graphs become submodules where the
graphs that fetch or call them expect them; other attributes a graph fetches become tensors of
their annotation (zeros). The signature, when present, is `module.meta["graph_signature"]`, an
`ExportGraphSignature`, and `engine.dump` prints it back.

Targets resolve through the allowlist rule files use (`engine.language.names`): `aten.sin.default`
and any op namespace's ops, `higher_order.*`, `operator.*`, `math.*`, torch's tensor functions and
graph markers; besides, `getattr` of a public attribute and public tensor methods, on nodes. A
graph file imports and runs nothing else. Calls are checked against their op's schema or their
function's signature. Every mistake is a `file:line:col` diagnostic with the
line and a caret, all of a file's at once (`GraphTextError`), never a traceback; the bounds a
text must keep (MAX_NESTING, INT64, MAX_BITS, MAX_UNBACKED) are told the same way.

    gm = engine.parse_graph(text)           # or engine.load_graph("model.fxg")
    assert engine.dump(gm) == text          # for any text engine.dump printed
"""

from __future__ import annotations

import ast as python_ast
import inspect
import keyword
import math
import operator
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import lark
import sympy
import torch
import torch.fx
from lark import Lark, Token, v_args
from lark.visitors import Transformer_NonRecursive
from torch._ops import OpOverload, OpOverloadPacket
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.export.graph_signature import (ConstantArgument, ExportGraphSignature, InputKind,
                                          InputSpec, OutputKind, OutputSpec, SymIntArgument,
                                          TensorArgument)
from torch.fx.experimental.sym_node import SymNode
from torch.fx.experimental.symbolic_shapes import ShapeEnv, ValueRangesSLoc
from torch.fx.graph import dtype_abbrs
from torch.utils._sympy import functions as sympy_functions
from torch.utils._sympy.functions import FloorDiv

from ..language.diagnostics import Diagnostic, Source, Span, render_all
from ..language.effects import method_refusal, tensor_attributes
from ..language.load import decode
from ..language.names import ResolveError, all_op_names, forget_op_names, resolve
from ..language.schemas import check_call
from .contained import ContainedGraphModule
from .dump import format_value

DTYPES = {abbreviation: dtype for dtype, abbreviation in dtype_abbrs.items()}
_KEYWORDS = frozenset(keyword.kwlist)
SYMBOL_HINT = 8  # the size a symbol stands for when the parsed graph runs
MAX_UNBACKED = 10_000  # unbacked symbols are made in order, u0 first: a bound on that work
MAX_NESTING = 100  # how deep values, types and size expressions nest
INT64 = 2 ** 63
MAX_BITS = 1000  # how large a size expression's value may grow on the way, in bits
_SECTION_START = re.compile(r"^(def |signature:)", re.MULTILINE)


def _signature_problem(function, positional: int, keywords: set[str]) -> str | None:
    """Why a Python function (`operator.add`, `math.sqrt`) does not take this many positional
    arguments and these keywords; None if it does, or if its signature cannot be read."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some builtins have none
        return None
    try:
        signature.bind(*range(positional), **dict.fromkeys(keywords))
    except TypeError as error:
        name = f"{function.__module__}.{function.__name__}".removeprefix("_")
        return f"`{name}{signature}` does not take this call: {error}"
    return None


def _method_problem(name: str, args: tuple, modules: set) -> str | None:
    """A method call reaches only the methods that compute on tensors
    (`engine.language.effects`), on a node that is no module: `x.__class__`, `x.numpy()` or a
    method of a function written as a literal would lead out of the allowlist."""
    refusal = method_refusal(name)
    if refusal is not None:
        return f"`method {name}` {refusal}"
    if args and args[0] in modules:
        return f"`method {name}` is called on a module; a graph calls the methods of tensors"
    if not args or not isinstance(args[0], torch.fx.Node):
        return f"`method {name}` is called on no node; its first argument must be one"
    return None


_ENUMS = {"ScalarType": (torch.dtype, "a dtype (`torch.float32`)"),
          "Layout": (torch.layout, "a layout (`torch.strided`)"),
          "MemoryFormat": (torch.memory_format, "a memory format (`torch.contiguous_format`)")}


def _enum_problem(op, args: tuple, kwargs: dict) -> str | None:
    """A dtype, layout or memory format argument written as a number or a string: torch reads
    the number as the enum's index unchecked (`aten.to.dtype(x, -2)` kills the process when it
    runs), so a graph text must name it (`torch.float32`)."""
    if not isinstance(op, OpOverload):
        return None
    for index, name, kind, kwarg_only in _enum_arguments(op):
        value = args[index] if index < len(args) and not kwarg_only else kwargs.get(name)
        if value is not None and not isinstance(value, (torch.fx.Node, _ENUMS[kind][0])):
            return f"`{op}`'s `{name}` takes {_ENUMS[kind][1]}, not {format_value(value)}"
    return None


@lru_cache(maxsize=None)
def _enum_arguments(op: OpOverload) -> tuple:
    """(index, name, enum, keyword-only) of each of the op's dtype, layout and memory format
    arguments: read off the schema once an op."""
    found = []
    for index, argument in enumerate(op._schema.arguments):
        kind = str(argument.real_type).removeprefix("Optional[").removesuffix("]")
        if kind in _ENUMS:
            found.append((index, argument.name, kind, argument.kwarg_only))
    return tuple(found)


def _getattr_problem(args: tuple, kwargs: dict, modules: set) -> str | None:
    if (len(args) != 2 or kwargs or not isinstance(args[0], torch.fx.Node)
            or not isinstance(args[1], str)):
        return "`getattr` takes a node and an attribute name: `getattr(x, 'T')`"
    if args[0] in modules:
        return "`getattr` of a module: a graph reads the attributes of tensors only"
    if args[1] not in tensor_attributes():
        return (f"`getattr(..., {args[1]!r})`: a graph reads a tensor's data attributes only "
                "(`T`, `mT`, `shape`, `dtype`, `device`, `real`...)")
    return None


def _setitem_problem(args: tuple, modules: set) -> str | None:
    if not args or not isinstance(args[0], torch.fx.Node) or args[0] in modules:
        return ("`operator.setitem` writes into a value the graph holds; its first argument "
                "must be a node that is no module")
    return None


# Names a module already has (`to`, `forward`, `graph`, `_modules`): an attribute of the text's
# must be none of them, or it would replace or reach one.
_MODULE_ATTRIBUTES = frozenset(dir(torch.fx.GraphModule(torch.nn.Module(), torch.fx.Graph())))


def _attribute_problem(target: str) -> str | None:
    """Why a `get_attr`/`call_module` target is no plain attribute path, or None."""
    for part in target.split("."):
        if part.isdigit():
            continue
        if not part.isidentifier() or part in _KEYWORDS:
            return f"`{part}` is no attribute name"
        if part.startswith("__") or part in _MODULE_ATTRIBUTES:
            what = "a dunder name" if part.startswith("__") else "an attribute every module has"
            return f"`{part}` is {what}; a graph text reaches only the graphs and tensors it declares"
    return None


class GraphTextError(Exception):
    """A graph text that cannot be read; `str()` holds every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__(render_all(self.diagnostics))


def load_graph(path: str | Path) -> torch.fx.GraphModule:
    source, problem = decode(str(path), Path(path).read_bytes(), "graph files")
    if problem is not None:
        raise GraphTextError([problem])
    return parse_graph(source.text, str(path))


def parse_graph(text: str, path: str = "<text>") -> torch.fx.GraphModule:
    source = Source(path, text)
    sections, diagnostics = _parse(source)
    if diagnostics and not sections:
        raise GraphTextError(diagnostics)
    builder = _Builder(source, diagnostics)  # a literal out of bounds: the rest is read on
    module = builder.build(sections)
    if builder.diagnostics:
        raise GraphTextError(builder.diagnostics)
    return module


# --- text -> sections ----------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("engine.grammar").joinpath("fxg.lark").read_text()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


@dataclass
class _Graph:
    name: str
    span: Span
    placeholders: list  # (name, span, type or None, default or _NONE)
    statements: list  # (name, span, type or None, call)
    result: object


@dataclass
class _Signature:
    specs: list  # (side, arg, kind, kind span, target or None, span)
    span: Span


def _parse(source: Source):
    """All sections, or every syntax error: a broken section is reported and the others are
    still read."""
    common = _read_common(source)
    if common is not None:
        return common, []
    try:
        tree = _parser().parse(source.text)
    except lark.exceptions.UnexpectedInput:
        pass
    else:
        sections = _Sections(source)
        return sections.transform(tree), sections.diagnostics
    starts = [m.start() for m in _SECTION_START.finditer(source.text)] or [0]
    if starts[0] != 0:
        starts.insert(0, 0)
    diagnostics = []
    for begin, end in zip(starts, starts[1:] + [len(source.text)]):
        chunk = re.sub(r"[^\n]", " ", source.text[:begin]) + source.text[begin:end]
        if not chunk.strip():
            continue
        if source.text.startswith("signature:", begin) and "\n" in chunk[:begin]:
            # A signature follows graphs: put a graph on the blanked first line, so that
            # only the signature's own mistakes are told.
            chunk = "def forward(): return ()" + chunk[chunk.index("\n"):]
        try:
            _parser().parse(chunk)
        except lark.exceptions.UnexpectedInput as error:
            diagnostics.append(_syntax_error(source, error))
    return [], diagnostics or [Diagnostic(Span(source, 1, 1, 1, 2), "this is no graph text")]


def _syntax_error(source: Source, error) -> Diagnostic:
    line, column = max(getattr(error, "line", 1), 1), max(getattr(error, "column", 1), 1)
    if isinstance(error, lark.exceptions.UnexpectedToken):
        if error.token.type == "$END":
            message = "unexpected end of the graph text"
        else:
            message = f"unexpected `{error.token}`"
        width = max(1, len(str(error.token)))
        message += _expected(error.accepts or error.expected)
    elif isinstance(error, lark.exceptions.UnexpectedCharacters):
        message = f"unexpected character `{source.line(line)[column - 1:column]}`"
        width = 1
    else:
        message, width = "unexpected end of the graph text", 1
    return Diagnostic(Span(source, line, column, line, column + width), message)


def _expected(terminals) -> str:
    words = []
    for name in sorted(terminals or ()):
        try:
            pattern = _parser().get_terminal(name).pattern
        except KeyError:
            continue
        words.append(f"`{pattern.value}`" if pattern.type == "str" else name.lower())
    if not words or len(words) > 6:
        return ""
    return ", expected " + (words[0] if len(words) == 1 else "one of " + ", ".join(words))


def _span(source: Source, item) -> Span:
    return Span(source, item.line, item.column, item.end_line, item.end_column)


_NONE = object()  # no default value


@dataclass(frozen=True)
class _Item:
    """A parsed part that is no value: a placeholder, a statement, a keyword, a default."""

    kind: str
    parts: tuple


@dataclass(frozen=True)
class _Ref:
    """A bare name in a value: a node defined earlier in the same graph."""

    name: str
    span: Span


@dataclass(frozen=True)
class _Qualified:
    """`torch.float32`, `operator.add`: a name resolved through the allowlist."""

    path: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class _Constructed:
    """`float('inf')`, `device(type='cpu')`, `slice(0, None, None)`."""

    name: str
    args: tuple
    kwargs: tuple
    span: Span


@dataclass(frozen=True)
class _Call:
    op: str
    target: object  # a dotted path (tuple) or a method name
    args: tuple
    kwargs: tuple
    span: Span


@dataclass(frozen=True)
class _Type:
    kind: str  # "tensor", "sym", "tuple", "list", "literal", "opaque"
    parts: tuple
    span: Span


_TOO_DEEP = object()  # what stands for a value nested deeper than MAX_NESTING, once told


@v_args(meta=True)
class _Sections(Transformer_NonRecursive):
    """The parse tree -> sections, bottom-up without recursion (a value nested a thousand deep
    is a deep tree); literals and nesting are checked against their bounds on the way, each
    mistake a diagnostic."""

    def __init__(self, source: Source):
        super().__init__()
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        self.depths: dict[int, tuple[int, object]] = {}  # id -> (depth, the value, kept alive)

    def span(self, meta) -> Span:
        return _span(self.source, meta)

    def error(self, meta, message: str):
        self.diagnostics.append(Diagnostic(self.span(meta), message))

    def nest(self, meta, value, children):
        """`value`, made of `children`, unless that nests deeper than MAX_NESTING."""
        depth = 1
        for child in children:
            if child is _TOO_DEEP:
                return _TOO_DEEP  # told once, where it first got too deep
            known = self.depths.get(id(child))
            if known is not None and known[0] >= depth:
                depth = known[0] + 1
        if depth > MAX_NESTING:
            self.error(meta, f"this nests deeper than {MAX_NESTING} levels: a graph text nests "
                             f"values, types and size expressions at most {MAX_NESTING} deep")
            return _TOO_DEEP
        self.depths[id(value)] = (depth, value)
        return value

    def start(self, meta, children):
        return children

    def graph(self, meta, children):
        name, *rest = children
        placeholders = [c.parts for c in rest if isinstance(c, _Item) and c.kind == "placeholder"]
        statements = [c.parts for c in rest if isinstance(c, _Item) and c.kind == "statement"]
        return _Graph(name[0], self.span(meta), placeholders, statements, rest[-1])

    def placeholder(self, meta, children):
        name, *rest = children
        annotation = next((c for c in rest if isinstance(c, _Type)), None)
        default = next((c.parts[0] for c in rest if isinstance(c, _Item)), _NONE)
        return _Item("placeholder", (str(name), _span(self.source, name), annotation, default))

    def default(self, meta, children):
        return _Item("default", (children[0],))

    def statement(self, meta, children):
        name, *annotation, call = children
        return _Item("statement", (str(name), _span(self.source, name),
                                   annotation[0] if annotation else None, call))

    def get_attr(self, meta, children):
        return _Call("get_attr", children[0][0], (), (), self.span(meta))

    def call_module(self, meta, children):
        target, *args = children
        return _Call("call_module", target[0], *_split(args), self.span(meta))

    def call_method(self, meta, children):
        name, *args = children
        return _Call("call_method", str(name), *_split(args), self.span(meta))

    def call_function(self, meta, children):
        target, *args = children
        return _Call("call_function", target[0].split("."), *_split(args), target[1])

    def keyword(self, meta, children):
        name, value = children
        return _Item("keyword", (str(name), value))

    def dotted(self, meta, children):
        return ".".join(str(c) for c in children), self.span(meta)

    def dotted_name(self, meta, children):
        return tuple(str(c) for c in children)

    # --- values ----------------------------------------------------------------------------------
    def node_or_name(self, meta, children):
        return _Ref(str(children[0]), self.span(meta))

    def qualified(self, meta, children):
        return _Qualified(children[0], self.span(meta))

    def constructed(self, meta, children):
        name, *args = children
        flat = [a.parts[1] if isinstance(a, _Item) else a for a in args]
        return self.nest(meta, _Constructed(str(name), *_split(args), self.span(meta)), flat)

    def tuple(self, meta, children):
        return self.nest(meta, tuple(children), children)

    def list(self, meta, children):
        return self.nest(meta, list(children), children)

    def dict(self, meta, children):
        try:
            value = dict(children)
        except TypeError:  # a key that is a list or a dict
            self.error(meta, "a dict's keys are names, literals and tuples of them")
            return None
        return self.nest(meta, value, [part for entry in children for part in entry])

    def entry(self, meta, children):
        return tuple(children)

    def string(self, meta, children):
        try:
            return python_ast.literal_eval(children[0])  # a literal: nothing runs
        except (SyntaxError, ValueError) as error:  # `'\N{nope}'`, `'\x'`
            self.error(meta, f"`{_short(children[0])}` is no string literal: {error.msg}")
            return ""

    def number(self, meta, children):
        value, problem = _number(str(children[0]))
        if problem is not None:
            self.error(meta, problem)
        return value

    def true(self, meta, children):
        return True

    def false(self, meta, children):
        return False

    def none(self, meta, children):
        return None

    # --- types -----------------------------------------------------------------------------------
    def tensor_type(self, meta, children):
        dtype, *sizes = children
        return self.nest(meta, _Type("tensor", (str(dtype), *sizes), self.span(meta)), sizes)

    def sym_type(self, meta, children):
        return self.nest(meta, _Type("sym", tuple(children), self.span(meta)), children)

    def tuple_type(self, meta, children):
        return self.nest(meta, _Type("tuple", tuple(children), self.span(meta)), children)

    def list_type(self, meta, children):
        return self.nest(meta, _Type("list", tuple(children), self.span(meta)), children)

    def literal_type(self, meta, children):
        return _Type("literal", tuple(children), self.span(meta))

    def opaque_type(self, meta, children):
        return _Type("opaque", (str(children[0]),), self.span(meta))

    def size_number(self, meta, children):
        problem = _integer_problem(str(children[0]), 0, INT64, "a 64-bit size")
        if problem is not None:
            self.error(meta, problem)
            return ("int", 0)
        return ("int", int(children[0]))

    def size_float(self, meta, children):
        return ("float", float(children[0]))

    def size_true(self, meta, children):
        return ("bool", True)

    def size_false(self, meta, children):
        return ("bool", False)

    def size_negative(self, meta, children):
        return self.nest(meta, ("neg", children[0]), children)

    def size_not(self, meta, children):
        return self.nest(meta, ("not", children[0]), children)

    def size_symbol(self, meta, children):
        return ("symbol", str(children[0]), self.span(meta))

    def size_arithmetic(self, meta, children):
        left, op, right = children
        return self.nest(meta, ("arith", str(op), left, right), children)

    def size_power(self, meta, children):
        return self.nest(meta, ("arith", "**", children[0], children[2]), children)

    def size_and(self, meta, children):
        return self.nest(meta, ("arith", "&", *children), children)

    def size_or(self, meta, children):
        return self.nest(meta, ("arith", "|", *children), children)

    def size_call(self, meta, children):
        name, *args = children
        return self.nest(meta, ("call", str(name), tuple(args), self.span(meta)), args)

    # --- the signature ---------------------------------------------------------------------------
    def signature(self, meta, children):
        return _Signature(list(children), self.span(meta))

    def spec(self, meta, children):
        side, arg, kind, *target = children
        return (str(side), _Ref(str(arg), self.span(arg)) if isinstance(arg, Token) else arg,
                str(kind), _span(self.source, kind), target[0][0] if target else None,
                self.span(meta))


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...{text[-10:]}"


def _number(token: str) -> tuple[int | float, str | None]:
    """A number literal's value (0 if it has a problem), and why it is none a graph text holds:
    an integer beyond 64 bits or with leading zeros, a float beyond a float's range."""
    if not re.fullmatch(r"-?\d+", token):
        value = float(token)
        if math.isinf(value):
            return value, f"`{_short(token)}` is beyond a float: write `float('inf')`"
        return value, None
    problem = _integer_problem(token, -INT64, 2 * INT64, "64 bits")
    return (0, problem) if problem is not None else (int(token), None)


def _integer_problem(token: str, low: int, high: int, what: str) -> str | None:
    """Why an integer literal is none a graph text holds: leading zeros (as in Python), or
    outside [low, high); its digits are counted before it is converted."""
    digits = token.lstrip("-")
    if len(digits) > 1 and digits[0] == "0" and digits.strip("0"):
        return f"`{_short(token)}`: an integer has no leading zeros"
    if len(digits) > 20 or not low <= int(token) < high:
        return f"`{_short(token)}` does not fit in {what}"
    return None


def _split(args) -> tuple[tuple, tuple]:
    positional = tuple(a for a in args if not isinstance(a, _Item))
    keywords = tuple(a.parts for a in args if isinstance(a, _Item))
    return positional, keywords


# --- the common lines, read without the grammar --------------------------------------------------
# What `engine dump` prints is read line by line by a reader that knows its few shapes: a graph's
# `def` line, a statement, its `return`, the signature. A text with any line it does not know
# (a comment, a size expression, a statement over two lines, a name that is a keyword, anything
# out of bounds) is read by the grammar instead, which says what is wrong. What the reader reads
# is what the grammar reads, spans included (tests/test_graph_fuzz.py holds them to it).
_TOKEN = re.compile(r"[ \t\f\r]*(?:([A-Za-z_][A-Za-z0-9_]*)|(-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)"
                    r"|('(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\")|([()\[\]{},.:=]))")
_KEYWORDS_OF_TEXT = frozenset({"def", "return", "get_attr", "module", "method", "Sym",
                               "signature", "input", "output"})
_LITERAL_NAMES = {"True": True, "False": False, "None": None}
_SIGNATURE_SPEC = re.compile(r"    (input|output) ")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|\d+))*")


class _Declined(Exception):
    """The line is none the reader knows: the grammar reads the text."""


class _Line:
    """One line's tokens: (kind, text, column), kind "name", "number", "string" or the mark."""

    def __init__(self, source: Source, number: int, text: str):
        self.source, self.number, self.text = source, number, text
        self.tokens = []
        position = 0
        for match in _TOKEN.finditer(text):
            if match.start() != position:
                raise _Declined
            position = match.end()
            name, number_, string, mark = match.groups()
            kind = "name" if name else "number" if number_ else "string" if string else mark
            token = name or number_ or string or mark
            if kind == "name" and token in _KEYWORDS_OF_TEXT:
                kind = token
            self.tokens.append((kind, token, match.end() - len(token) + 1))
        if text[position:].strip(" \t\f\r"):
            raise _Declined
        self.at = 0

    def span(self, first: int, last: int) -> Span:
        end = self.tokens[last]
        return Span(self.source, self.number, self.tokens[first][2], self.number,
                    end[2] + len(end[1]))

    def peek(self, offset: int = 0) -> str | None:
        index = self.at + offset
        return self.tokens[index][0] if index < len(self.tokens) else None

    def take(self, kind: str) -> str:
        if self.peek() != kind:
            raise _Declined
        self.at += 1
        return self.tokens[self.at - 1][1]

    def done(self) -> None:
        if self.at != len(self.tokens):
            raise _Declined

    # --- values ----------------------------------------------------------------------------------
    def value(self, depth: int = 1):
        if depth > MAX_NESTING:
            raise _Declined
        first, kind = self.at, self.peek()
        if kind == "name":
            name = self.take("name")
            if name in _LITERAL_NAMES:
                return _LITERAL_NAMES[name]
            if self.peek() == ".":
                path = [name]
                while self.peek() == ".":
                    self.at += 1
                    path.append(self.take("name"))
                return _Qualified(tuple(path), self.span(first, self.at - 1))
            if self.peek() == "(":
                self.at += 1
                args = self.arguments(depth + 1)
                self.take(")")
                return _Constructed(name, *args, self.span(first, self.at - 1))
            return _Ref(name, self.span(first, first))
        if kind == "number":
            return self.number_value(self.take("number"))
        if kind == "string":
            try:
                return python_ast.literal_eval(self.take("string"))
            except (SyntaxError, ValueError):
                raise _Declined from None
        if kind == "(":
            self.at += 1
            items = self.items(")", lambda: self.value(depth + 1))
            if len(items) == 1 and self.tokens[self.at - 2][0] != ",":
                raise _Declined  # `(x)` is no tuple
            return tuple(items)
        if kind == "[":
            self.at += 1
            return self.items("]", lambda: self.value(depth + 1))
        if kind == "{":
            self.at += 1
            entries = {}
            while self.peek() != "}":
                key = self.value(depth + 1)
                self.take(":")
                try:
                    entries[key] = self.value(depth + 1)
                except TypeError:
                    raise _Declined from None
                if self.peek() != "}":
                    self.take(",")
            self.at += 1
            return entries
        raise _Declined

    def items(self, close: str, item) -> list:
        """`item()`s separated by commas, a comma after the last allowed, up to `close`."""
        items = []
        while self.peek() != close:
            items.append(item())
            if self.peek() != close:
                self.take(",")
        self.at += 1
        return items

    def number_value(self, token: str):
        value, problem = _number(token)
        if problem is not None:
            raise _Declined  # the grammar's reading tells it
        return value

    def arguments(self, depth: int) -> tuple[tuple, tuple]:
        """`a, b, key=c` up to a `)`, not taken; no comma after the last."""
        positional, keywords = [], []
        while self.peek() != ")":
            if self.peek() == "name" and self.peek(1) == "=":
                name = self.take("name")
                self.at += 1
                keywords.append((name, self.value(depth)))
            else:
                positional.append(self.value(depth))
            if self.peek() != ")":
                self.take(",")
                if self.peek() == ")":
                    raise _Declined  # a comma after the last argument
        return tuple(positional), tuple(keywords)

    def dotted(self) -> tuple[str, Span]:
        """An attribute path (`aten.add.Tensor`, `layers.0.weight`), read off the text: its
        numbers are no tokens of their own (`0.1` would be a float)."""
        if self.peek() != "name":
            raise _Declined
        first = self.at
        start = self.tokens[first][2] - 1
        match = _DOTTED.match(self.text, start)
        end = match.end()
        while self.at < len(self.tokens) and self.tokens[self.at][2] - 1 < end:
            if self.tokens[self.at][2] - 1 + len(self.tokens[self.at][1]) > end:
                raise _Declined  # a token runs past the path
            self.at += 1
        return match.group(), Span(self.source, self.number, start + 1, self.number, end + 1)

    # --- types -----------------------------------------------------------------------------------
    def type(self, depth: int = 1):
        if depth > MAX_NESTING:
            raise _Declined
        first, kind = self.at, self.peek()
        if kind == "name" and self.peek(1) == "[":
            dtype = self.take("name")
            self.at += 1
            sizes = []
            while self.peek() != "]":
                sizes.append(self.size())
                if self.peek() != "]":
                    self.take(",")
                    if self.peek() == "]":
                        raise _Declined
            self.at += 1
            return _Type("tensor", (dtype, *sizes), self.span(first, self.at - 1))
        if kind == "Sym":
            self.at += 1
            self.take("(")
            size = self.size()
            self.take(")")
            return _Type("sym", (size,), self.span(first, self.at - 1))
        if kind in ("(", "["):
            self.at += 1
            parts = self.items(")" if kind == "(" else "]", lambda: self.type(depth + 1))
            if kind == "(" and len(parts) == 1 and self.tokens[self.at - 2][0] != ",":
                raise _Declined
            return _Type("tuple" if kind == "(" else "list", tuple(parts),
                         self.span(first, self.at - 1))
        if kind == "name":
            name = self.take("name")
            if name in _LITERAL_NAMES:
                return _Type("literal", (_LITERAL_NAMES[name],), self.span(first, first))
            return _Type("opaque", (name,), self.span(first, first))
        if kind in ("number", "string"):
            return _Type("literal", (self.value(depth),), self.span(first, first))
        raise _Declined

    def size(self):
        """A plain size: an integer or a symbol; anything else is the grammar's."""
        first, kind = self.at, self.peek()
        if kind == "number":
            token = self.take("number")
            if not token.isdigit() or _integer_problem(token, 0, INT64, "") is not None:
                raise _Declined
            return ("int", int(token))
        if kind == "name" and self.peek(1) in (",", "]", ")"):
            name = self.take("name")
            if name in _LITERAL_NAMES:
                raise _Declined
            return ("symbol", name, self.span(first, first))
        raise _Declined


def _read_common(source: Source):
    """The text's sections, if every line is of a shape the reader knows; else None."""
    sections, graph, statements, signature = [], None, [], None
    try:
        for number, text in enumerate(source.text.split("\n"), 1):
            if not text.strip(" \t\f\r"):
                continue
            if "#" in text:
                return None
            if text.startswith("def ") and graph is None and signature is None:
                graph, statements = _def_line(source, number, text), []
            elif graph is not None and text.startswith("    return "):
                line = _Line(source, number, text)
                line.take("return")
                start = line.at
                result = line.value()
                line.done()
                name, span, placeholders = graph
                end = line.span(start, line.at - 1)
                sections.append(_Graph(name, Span(source, span.line, span.column, number,
                                                  end.end_column),
                                       placeholders, statements, result))
                graph = None
            elif graph is not None and text.startswith("    "):
                statements.append(_statement(source, number, text))
            elif text.startswith("signature:") and graph is None and signature is None:
                line = _Line(source, number, text)
                line.take("signature"), line.take(":"), line.done()
                signature = _Signature([], line.span(0, 1))
                sections.append(signature)
            elif signature is not None and _SIGNATURE_SPEC.match(text):
                signature.specs.append(_spec(source, number, text))
                first = signature.span
                signature.span = Span(source, first.line, first.column, number,
                                      signature.specs[-1][5].end_column)
            else:
                return None
    except _Declined:
        return None
    if graph is not None or not sections or not isinstance(sections[0], _Graph):
        return None
    return sections


def _def_line(source: Source, number: int, text: str):
    line = _Line(source, number, text)
    line.take("def")
    name, _ = line.dotted()
    line.take("(")
    placeholders = []
    while line.peek() != ")":
        first = line.at
        placeholder = line.take("name")
        annotation, default = None, _NONE
        if line.peek() == ":":
            line.at += 1
            annotation = line.type()
        if line.peek() == "=":
            line.at += 1
            default = line.value()
        placeholders.append((placeholder, line.span(first, first), annotation, default))
        if line.peek() != ")":
            line.take(",")
            if line.peek() == ")":
                raise _Declined
    line.take(")"), line.take(":"), line.done()
    return name, line.span(0, 0), placeholders


def _statement(source: Source, number: int, text: str):
    line = _Line(source, number, text)
    name = line.take("name")
    name_span = line.span(0, 0)
    annotation = None
    if line.peek() == ":":
        line.at += 1
        annotation = line.type()
    line.take("=")
    first, kind = line.at, line.peek()
    if kind == "get_attr":
        line.at += 1
        line.take("(")
        target, _ = line.dotted()
        line.take(")")
        call = _Call("get_attr", target, (), (), line.span(first, line.at - 1))
    elif kind in ("module", "method"):
        line.at += 1
        target = line.dotted()[0] if kind == "module" else line.take("name")
        line.take("(")
        args = line.arguments(1)
        line.take(")")
        call = _Call("call_module" if kind == "module" else "call_method", target, *args,
                     line.span(first, line.at - 1))
    else:
        target, span = line.dotted()
        line.take("(")
        args = line.arguments(1)
        line.take(")")
        call = _Call("call_function", target.split("."), *args, span)
    line.done()
    return (name, name_span, annotation, call)


def _spec(source: Source, number: int, text: str):
    line = _Line(source, number, text)
    side = line.peek()
    line.at += 1
    first = line.at
    if line.peek() == "name" and line.tokens[line.at][1] not in _LITERAL_NAMES:
        arg = _Ref(line.take("name"), line.span(first, first))
    elif line.peek() in ("number", "string", "name"):
        arg = line.value()
    else:
        raise _Declined
    line.take(":")
    kind_at = line.at
    kind = line.take("name")
    target = line.dotted()[0] if line.peek() == "name" else None
    line.done()
    return (side, arg, kind, line.span(kind_at, kind_at), target, line.span(0, line.at - 1))


# --- sections -> GraphModules --------------------------------------------------------------------
class _Opaque:
    """A value the text names only by its type (`FakeScriptObject`): kept so it prints back."""


@dataclass
class _Builder:
    source: Source
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self):
        forget_op_names()  # ops registered since the last text was read are seen
        self.namespaces = frozenset(name.split("::")[0] for name in all_op_names())
        self.targets: dict[tuple, object] = {}  # a target's path -> its object or ResolveError
        self.calls: dict[tuple, str | None] = {}  # (op, arguments, keywords) -> the problem
        self.tensors: dict[tuple, torch.Tensor] = {}  # (dtype, *static sizes) -> fake value
        self.shape_env = ShapeEnv()
        self.mode = FakeTensorMode(shape_env=self.shape_env)
        self.symbols: dict[str, sympy.Symbol] = {}
        self.opaque: dict[str, type] = {}
        self.spans: dict[torch.fx.Node, Span] = {}  # where each node's call is written
        self.graph_names: set[str] = set()  # the text's graphs, by attribute path
        self.module_fetches: set[torch.fx.Node] = set()  # nodes whose value is a nested graph

    def error(self, span: Span, message: str) -> None:
        self.diagnostics.append(Diagnostic(span, message))

    def build(self, sections) -> torch.fx.GraphModule:
        graphs = {s.name: s for s in sections if isinstance(s, _Graph)}
        signatures = [s for s in sections if isinstance(s, _Signature)]
        if "forward" not in graphs:
            self.error(Span(self.source, 1, 1, 1, 2), "no `def forward(...)`: the top graph")
            return None
        self.graph_names = set(graphs)
        built = {name: self.graph(section) for name, section in graphs.items()}
        modules = {}
        for name in sorted(built, key=lambda n: (n == "forward", -n.count("."))):
            modules[name] = self.module(name, built[name], modules)
        top = modules["forward"]
        if signatures:
            top.meta["graph_signature"] = self.signature(signatures[-1], built["forward"])
        return top

    # --- one graph -------------------------------------------------------------------------------
    def graph(self, section: _Graph):
        graph = torch.fx.Graph()
        env: dict[str, torch.fx.Node] = {}
        for name, span, annotation, default in section.placeholders:
            value = self.value(default, env) if default is not _NONE else _NONE
            node = graph.placeholder(name, default_value=(
                value if value is not _NONE else inspect.Signature.empty))
            self.name_node(node, name, span, env)
            self.annotate(node, annotation)
        prefix = "" if section.name == "forward" else f"{section.name}."
        for name, span, annotation, call in section.statements:
            args = tuple(self.value(a, env) for a in call.args)
            kwargs = {k: self.value(v, env) for k, v in call.kwargs}
            target = self.target(call)
            self.check_call(call, target, args, kwargs)
            node = graph.create_node(call.op, target, args, kwargs, name=name)
            if call.op == "get_attr" and f"{prefix}{call.target}" in self.graph_names:
                self.module_fetches.add(node)
            self.spans[node] = call.span
            self.name_node(node, name, span, env)
            self.annotate(node, annotation)
        graph.output(self.value(section.result, env))
        return section, graph

    def name_node(self, node, name: str, span: Span, env: dict) -> None:
        if name in env:
            self.error(span, f"`{name}` is defined twice in this graph")
        elif node.name != name:
            # FX renames names it reserves (`input`, a builtin); torch.export names nodes
            # so all the same, and so does the text: keep the name it gives.
            if not name.isidentifier() or name in _KEYWORDS:
                self.error(span, f"`{name}` is no name a node can have")
            node.name = name
        env[name] = node

    def target(self, call: _Call):
        if call.op in ("get_attr", "call_module"):
            problem = _attribute_problem(call.target)
            if problem is not None:
                self.error(call.span, f"`{call.op}({call.target})`: {problem}")
            return call.target
        if call.op == "call_method":
            return call.target
        path = tuple(call.target)
        if path == ("getattr",):  # Dynamo's `x.T`; its attribute is checked in check_call
            return getattr
        if path not in self.targets:  # a graph calls few ops, each many times
            try:
                self.targets[path] = _resolve_graph_name(path, self.namespaces)
            except ResolveError as error:
                self.targets[path] = error
        target = self.targets[path]
        if isinstance(target, ResolveError):
            self.error(call.span, str(target))
            return _unresolved
        return target

    def check_call(self, call: _Call, target, args: tuple, kwargs: dict) -> None:
        """The call's arguments against its op's schema, or a Python function's signature, so
        that `aten.sin.default(x, y)` is told here and not when the graph first runs; and the
        attributes and methods a graph reaches, so that none leads out of the allowlist."""
        problem = None
        if call.op == "call_method":
            problem = _method_problem(call.target, args, self.module_fetches)
        elif call.op != "call_function" or target is _unresolved:
            return
        elif target is getattr:
            problem = _getattr_problem(args, kwargs, self.module_fetches)
        elif target is operator.setitem:
            problem = _setitem_problem(args, self.module_fetches)
        elif isinstance(target, (OpOverload, OpOverloadPacket)):
            key = (target, len(args), frozenset(kwargs))
            if key not in self.calls:
                self.calls[key] = check_call(target, len(args), False, set(kwargs))
            problem = self.calls[key] or _enum_problem(target, args, kwargs)
        else:
            problem = _signature_problem(target, len(args), set(kwargs))
        if problem is not None:
            self.error(call.span, problem)

    def value(self, value, env: dict):
        if value is _TOO_DEEP:
            return None
        if isinstance(value, _Ref):
            if value.name in env:
                return env[value.name]
            self.error(value.span, f"`{value.name}` is no node defined before this line")
            return None
        if isinstance(value, _Qualified):
            try:
                return _resolve_graph_name(value.path, self.namespaces)
            except ResolveError as error:
                self.error(value.span, str(error))
                return None
        if isinstance(value, _Constructed):
            return self.constructed(value, env)
        if isinstance(value, tuple):
            return tuple(self.value(v, env) for v in value)
        if isinstance(value, list):
            return [self.value(v, env) for v in value]
        if isinstance(value, dict):
            return {self.value(k, env): self.value(v, env) for k, v in value.items()}
        return value

    def constructed(self, value: _Constructed, env: dict):
        args = [self.value(a, env) for a in value.args]
        kwargs = {k: self.value(v, env) for k, v in value.kwargs}
        if value.name == "float" and len(args) == 1 and args[0] in ("inf", "-inf", "nan"):
            return float(args[0])
        if value.name == "slice" and len(args) == 3 and not kwargs:
            return slice(*args)
        if value.name == "device" and not args and set(kwargs) <= {"type", "index"}:
            return self.device(value.span, kwargs)
        self.error(value.span, f"`{value.name}(...)` is no value a graph text holds; it holds "
                               "`float('inf')`, `device(type=...)` and `slice(a, b, c)`")
        return None

    def device(self, span: Span, kwargs: dict):
        kind, index = kwargs.get("type"), kwargs.get("index")
        if not isinstance(kind, str) or not (index is None or type(index) is int and index >= 0):
            self.error(span, "a device is `device(type='cpu')` or `device(type='cuda', index=0)`: "
                             "a type's name and an index that is no negative number")
            return None
        try:
            return torch.device(**kwargs)
        except RuntimeError as error:  # a type torch does not know
            self.error(span, f"`device(type={kind!r})` is no device: {error}")
            return None

    # --- values of nodes -------------------------------------------------------------------------
    def annotate(self, node: torch.fx.Node, annotation) -> None:
        if annotation is not None and annotation is not _TOO_DEEP:
            node.meta["val"] = self.meta_value(annotation)

    def meta_value(self, annotation: _Type):
        if annotation.kind == "tensor":
            abbreviation, *sizes = annotation.parts
            dtype = DTYPES.get(abbreviation)
            if dtype is None:
                self.error(annotation.span, f"`{abbreviation}` is no dtype; dtypes are written "
                                            f"{', '.join(sorted(DTYPES))}")
                return None
            try:
                shape = [self.size(s) for s in sizes]
                _check_storage(shape, dtype)
            except _SizeError as error:
                self.error(annotation.span, str(error))
                return None
            key = (dtype, *shape) if all(isinstance(size, int) for size in shape) else None
            if key in self.tensors:  # nodes of one static type share one fake value
                return self.tensors[key]
            try:
                with self.mode:
                    value = torch.empty(shape, dtype=dtype)
            except RuntimeError as error:  # a guard on symbolic sizes that cannot hold
                self.error(annotation.span, f"no tensor has this type: {error}")
                return None
            if key is not None:
                self.tensors[key] = value
            return value
        if annotation.kind == "sym":
            return self.sym_value(annotation.parts[0], annotation.span)
        if annotation.kind in ("tuple", "list"):
            items = [self.meta_value(part) for part in annotation.parts]
            return tuple(items) if annotation.kind == "tuple" else items
        if annotation.kind == "literal":
            return annotation.parts[0]
        name = annotation.parts[0]
        if name not in self.opaque:
            self.opaque[name] = type(name, (_Opaque,), {})
        return self.opaque[name]()

    def size(self, size):
        """A dimension: an int, or a SymInt of the one shape environment."""
        expression = self.size_expression(size)
        if expression.is_Relational or isinstance(expression, _CONDITIONS):
            raise _SizeError(f"`{expression}` is a condition, not a size")
        if expression.is_number:
            if not expression.is_integer:
                raise _SizeError(f"`{expression}` is no size: sizes are integers")
            _check_size(expression, int(expression), "")
            return int(expression)
        hint = self.hint(expression, int)
        if hint is not None:
            _check_size(expression, hint, f" where each symbol is {SYMBOL_HINT}, as when the "
                                          "graph runs")
        return self.shape_env.create_symintnode(expression, hint=hint)

    def sym_value(self, size, span: Span):
        """A `Sym(...)` annotation: a SymInt, a SymBool (`u0 >= 2`) or a SymFloat, of the one
        shape environment; a constant float stays a SymFloat, as Dynamo keeps one it read off
        a tensor (`eps.item()`), which the shape environment would fold to a float."""
        try:
            expression = self.size_expression(size)
            if expression.is_Relational or isinstance(expression, _CONDITIONS):
                hint = self.hint(expression, bool)
                return torch.SymBool(SymNode(expression, self.shape_env, bool, hint))
            if expression.is_Float or _is_float(expression):
                hint = self.hint(expression, float)
                return torch.SymFloat(SymNode(expression, self.shape_env, float, hint))
            if expression.is_number:
                return torch.SymInt(SymNode(expression, self.shape_env, int, int(expression)))
            return self.shape_env.create_symintnode(expression, hint=self.hint(expression, int))
        except _SizeError as error:
            self.error(span, str(error))
            return None

    def hint(self, expression, kind):
        """What the expression is when every backed symbol is SYMBOL_HINT; None with an
        unbacked symbol (`u0`) in it."""
        if any(symbol.name.startswith("u") for symbol in expression.free_symbols):
            return None
        value = expression.subs({s: SYMBOL_HINT for s in expression.free_symbols})
        try:
            return kind(bool(value) if kind is bool else value)
        except OverflowError:  # an integer beyond a float
            return math.inf
        except (TypeError, ValueError):
            return None

    def size_expression(self, size, factor: bool = False):
        """A parsed size -> a sympy expression over the text's symbols. `factor`: it is an
        operand of `*`, where a negated sum stays one (`-(s0 + 1)*u0`, as sympy prints -1
        times both; evaluated, the -1 would go into the sum)."""
        kind = size[0]
        if kind == "int":
            return sympy.Integer(size[1])
        if kind == "float":
            return sympy.Float(size[1])
        if kind == "bool":
            return sympy.true if size[1] else sympy.false
        if kind == "symbol":
            return self.symbol(size[1])
        if kind == "neg":
            # As sympy printed it: `-(s0 + 1)*u0` is -1 times both, not (-s0 - 1) times u0.
            operand = self.size_expression(size[1], factor)
            return sympy.Mul(sympy.S.NegativeOne, operand, evaluate=False) \
                if factor and operand.is_Add else -operand
        if kind == "not":
            return sympy.Not(self.size_expression(size[1]))
        if kind == "call":
            _, name, args, _span = size
            function = _SYMBOLIC_FUNCTIONS.get(name)
            if function is None:
                raise _SizeError(f"`{name}` is no function of symbolic sizes; they are "
                                 f"{', '.join(sorted(_SYMBOLIC_FUNCTIONS))}")
            operands = [self.size_expression(a) for a in args]
            if name in _GROWING and len(operands) == 2:
                self.check_growth(name, *operands)
            try:
                return self.bounded(function(*operands))
            except _SizeError:
                raise
            except Exception as error:  # sympy's and torch's functions assert their domains
                raise _SizeError(f"`{name}` cannot take {', '.join(map(str, operands))}"
                                 + (f": {error}" if str(error) else "")) from None
        _, op, left, right = size
        left, right = (self.size_expression(side, op == "*") for side in (left, right))
        if op in ("//", "%", "/") and right == 0:
            raise _SizeError(f"`{op} 0`: a size divided by zero")
        if op == "**":
            self.check_growth(op, left, right)
        try:
            return self.bounded(_SYMBOLIC_OPERATORS[op](left, right))
        except _SizeError:
            raise
        except Exception as error:
            raise _SizeError(f"`{op}` cannot take {left} and {right}"
                             + (f": {error}" if str(error) else "")) from None

    def check_growth(self, op: str, base, exponent) -> None:
        """A power (`s0**3`, `PowByNatural`, `LShift`) whose value, with each symbol at its
        hint, would have more than MAX_BITS bits is refused before sympy computes it."""
        base_hint, exponent_hint = (self.hint(side, float) for side in (base, exponent))
        if base_hint is None or exponent_hint is None:
            return  # an unbacked symbol: nothing is computed
        bits = exponent_hint if op == "LShift" else exponent_hint * math.log2(abs(base_hint) or 1)
        if bits > MAX_BITS:
            raise _SizeError(f"`{op}` of {_short(str(base))} and {_short(str(exponent))} grows "
                             f"beyond {MAX_BITS} bits where each symbol is {SYMBOL_HINT}")

    def bounded(self, expression):
        hint = self.hint(expression, float) if not isinstance(expression, _CONDITIONS) else 0
        if hint is not None and math.isfinite(hint) and abs(hint) >= 2.0 ** MAX_BITS:
            raise _SizeError(f"`{_short(str(expression))}` grows beyond {MAX_BITS} bits where "
                             f"each symbol is {SYMBOL_HINT}")
        return expression

    def symbol(self, name: str) -> sympy.Symbol:
        """A symbol of the shape environment: unbacked (`u0`: a data-dependent size, no hint)
        or backed, standing for SYMBOL_HINT when the graph runs."""
        if name not in self.symbols:
            if _UNBACKED.fullmatch(name):
                # The environment numbers its unbacked symbols: make them up to this one.
                if int(name[1:]) > MAX_UNBACKED:
                    raise _SizeError(f"`{name}`: a graph text numbers its unbacked symbols "
                                     f"up to u{MAX_UNBACKED}")
                while self.shape_env.unbacked_symint_counter <= int(name[1:]):
                    made = self.shape_env.create_unbacked_symint().node.expr
                    self.symbols[made.name] = made
                return self.symbols[name]
            else:
                symbol = sympy.Symbol(name, integer=True, positive=True)
                self.shape_env.backed_var_to_val[symbol] = sympy.Integer(SYMBOL_HINT)
                self.shape_env.var_to_range[symbol] = self.shape_env._default_value_range()
                where = self.shape_env._get_sloc("a symbol of a graph text")
                self.shape_env.var_to_range_sloc[symbol] = ValueRangesSLoc(where, where)
                self.shape_env.var_to_sources[symbol] = []
            self.symbols[name] = symbol
        return self.symbols[name]

    # --- modules ---------------------------------------------------------------------------------
    def module(self, name: str, built, modules: dict) -> torch.fx.GraphModule:
        """The graph's module: the nested graphs it fetches or calls, and a zero tensor for
        each attribute it fetches with a tensor annotation. Those are all it can reach: a
        target names one of them by a plain path, never an attribute of what it holds."""
        section, graph = built
        root = torch.nn.Module()
        prefix = "" if name == "forward" else f"{name}."
        declared: dict[str, str] = {}  # target -> "graph" | "tensor"
        for node in graph.nodes:
            if node.op not in ("get_attr", "call_module") or _attribute_problem(node.target):
                continue  # a bad target is reported where it is read
            span = self.spans.get(node, section.span)
            kind = "graph" if f"{prefix}{node.target}" in modules else (
                "tensor" if node.op == "get_attr" and isinstance(node.meta.get("val"), torch.Tensor)
                else None)
            if kind is None:
                if declared.get(node.target) == "tensor" and node.op == "get_attr":
                    continue  # fetched again, without an annotation this time
                what = "calls" if node.op == "call_module" else "fetches"
                self.error(span, f"`{node.name}` {what} `{node.target}`, which is no graph of "
                                 "this text" + ("" if node.op == "call_module"
                                                else " and has no tensor annotation"))
                continue
            if node.op == "call_module" and kind != "graph":
                self.error(span, f"`{node.name}` calls `{node.target}`, which is no graph")
                continue
            if declared.setdefault(node.target, kind) != kind:
                self.error(span, f"`{node.target}` is fetched both as a graph and as a tensor")
                continue
            problem = _container_problem(node.target, declared)
            if problem is not None:
                self.error(span, problem)
                continue
            if kind == "graph":
                _set_attr(root, node.target, modules[f"{prefix}{node.target}"])
            else:
                value = node.meta["val"]
                _set_attr(root, node.target, torch.zeros(
                    [int(d) if isinstance(d, int) else SYMBOL_HINT for d in value.shape],
                    dtype=value.dtype))
        if self.diagnostics:
            return torch.fx.GraphModule(root, torch.fx.Graph())
        try:
            return ContainedGraphModule(root, graph)
        except Exception as error:  # FX's codegen rejecting a call the checks above let by
            self.error(section.span, f"FX cannot generate code for `{name}`: {error}")
            return torch.fx.GraphModule(root, torch.fx.Graph())

    def signature(self, signature: _Signature, built) -> ExportGraphSignature | None:
        """The export signature, which must fit the graph: an input for each placeholder and an
        output for each value returned, in their order (a rewrite renames them in step)."""
        _, graph = built
        nodes = {node.name: node for node in graph.nodes}
        placeholders = [node.name for node in graph.find_nodes(op="placeholder")]
        returned = graph.output_node().args[0]
        returned = list(returned) if isinstance(returned, (tuple, list)) else [returned]
        inputs, outputs = [], []
        entries = {"input": 0, "output": 0}  # of each side so far, told or not
        for side, arg, kind, kind_span, target, span in signature.specs:
            entries[side] += 1
            kinds = InputKind if side == "input" else OutputKind
            if kind not in kinds.__members__:
                self.error(kind_span, f"`{kind}` is no {side} kind; they are "
                                      f"{', '.join(kinds.__members__)}")
                continue
            specs = inputs if side == "input" else outputs
            problem = _spec_problem(side, arg, entries[side] - 1, placeholders, returned)
            if problem is not None:
                self.error(span, problem)
                continue
            argument = _argument(arg, nodes)
            try:
                if side == "input":
                    specs.append(InputSpec(InputKind[kind], argument, target,
                                           True if InputKind[kind] == InputKind.BUFFER else None))
                else:
                    specs.append(OutputSpec(OutputKind[kind], argument, target))
            except (AssertionError, TypeError, ValueError) as error:  # torch's own checks
                self.error(span, f"no {side} of a signature is this: {error}")
        for side, expected in (("input", placeholders), ("output", returned)):
            if entries[side] < len(expected):
                self.error(signature.span, f"the signature has {entries[side]} {side}s and the "
                                           f"graph {len(expected)}: one for each, in order")
        if self.diagnostics:
            return None
        return ExportGraphSignature(inputs, outputs)


def _spec_problem(side: str, arg, index: int, placeholders: list, returned: list) -> str | None:
    """Why a signature's entry is not the graph's input or output at its place, or None."""
    expected = placeholders if side == "input" else returned
    what = "input" if side == "input" else "value returned"
    if index >= len(expected):
        return f"the graph has {len(expected)} {what}s; this {side} is one too many"
    wanted = expected[index]
    wanted_name = wanted if side == "input" else (
        wanted.name if isinstance(wanted, torch.fx.Node) else None)
    if isinstance(arg, _Ref):
        if arg.name != wanted_name:
            shown = f"`{wanted_name}`" if wanted_name is not None else format_value(wanted)
            return f"`{arg.name}` is not the graph's {what} {index + 1}, which is {shown}"
        return None
    if side == "input" or wanted_name is not None or arg != wanted:
        shown = f"`{wanted_name}`" if wanted_name is not None else format_value(wanted)
        return f"`{format_value(arg)}` is not the graph's {what} {index + 1}, which is {shown}"
    return None


def _argument(arg, nodes: dict):
    if not isinstance(arg, _Ref):
        return ConstantArgument(name="", value=arg)
    node = nodes[arg.name]
    value = node.meta.get("val")
    if isinstance(value, torch.SymInt):
        return SymIntArgument(name=arg.name)
    return TensorArgument(name=arg.name)


def _container_problem(target: str, declared: dict[str, str]) -> str | None:
    """Why the parents of an attribute path cannot be plain containers: one is a tensor or a
    graph the text declares (`w.T`, `submod_1.graph`)."""
    parts = target.split(".")
    for end in range(1, len(parts)):
        parent = ".".join(parts[:end])
        if parent in declared:
            return (f"`{target}` reaches into `{parent}`, a {declared[parent]} of the text; a "
                    "target names a graph or a tensor, not what one holds")
    return None


def _set_attr(root: torch.nn.Module, target: str, value) -> None:
    *parents, last = target.split(".")
    for part in parents:
        if not hasattr(root, part):
            root.add_module(part, torch.nn.Module())
        root = getattr(root, part)
    if isinstance(value, torch.nn.Module):
        root.add_module(last, value)
    else:
        root.register_buffer(last, value)


class _SizeError(Exception):
    """A size or symbolic value that cannot be formed; the message is for the user."""


def _check_size(expression, value: int, where: str) -> None:
    if value < 0:
        raise _SizeError(f"`{expression}` is a negative size"
                         + (f" ({value}{where})" if where else ""))
    if value >= INT64:
        raise _SizeError(f"`{_short(str(expression))}` does not fit in a 64-bit size{where}")


def _check_storage(shape: list, dtype: torch.dtype) -> None:
    """A tensor type whose bytes a 64-bit size cannot count (`f32[2**40, 2**40]`) is none."""
    elements = 1
    for size in shape:
        hint = size if isinstance(size, int) else size.node.hint
        elements *= int(hint) if hint is not None else 1
    if elements * dtype.itemsize >= INT64:
        raise _SizeError(f"a tensor of {elements} elements of {dtype.itemsize} bytes: more "
                         "bytes than a 64-bit size counts")


_UNBACKED = re.compile(r"u\d+")
_SYMBOLIC_OPERATORS = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "**": operator.pow,
    "//": FloorDiv, "%": sympy_functions.PythonMod, "/": sympy_functions.IntTrueDiv,
    ">=": sympy.Ge, "<=": sympy.Le, ">": sympy.Gt, "<": sympy.Lt, "==": sympy.Eq,
    "!=": sympy.Ne, "&": sympy.And, "|": sympy.Or,
}
# The functions torch's symbolic shapes print (torch.utils._sympy.functions), and sympy's
# equalities: what a `Sym(...)` annotation or a size may call.
_SYMBOLIC_FUNCTIONS = {
    "Eq": sympy.Eq, "Ne": sympy.Ne, "Abs": sympy.Abs,
    **{name: getattr(sympy_functions, name) for name in (
        "Max", "Min", "Mod", "PythonMod", "FloorDiv", "CleanDiv", "CeilDiv", "IntTrueDiv",
        "FloatTrueDiv", "ToFloat", "TruncToInt", "TruncToFloat", "CeilToInt", "FloorToInt",
        "RoundToInt", "RoundDecimal", "ModularIndexing", "PowByNatural", "FloatPow",
        "Identity", "Where", "LShift", "RShift", "BitwiseFn_bitwise_and",
        "BitwiseFn_bitwise_or", "BitwiseFn_bitwise_xor")},
    **{name: getattr(sympy_functions, name) for name in dir(sympy_functions)
       if name.startswith("OpaqueUnaryFn_")},
}
_GROWING = ("PowByNatural", "FloatPow", "LShift")
_CONDITIONS = (sympy.logic.boolalg.BooleanFunction, sympy.logic.boolalg.BooleanAtom)
_FLOAT_FUNCTIONS = (sympy_functions.ToFloat, sympy_functions.FloatTrueDiv,
                    sympy_functions.TruncToFloat, sympy_functions.FloatPow)


def _is_float(expression) -> bool:
    return isinstance(expression, _FLOAT_FUNCTIONS) or expression.func.__name__.startswith(
        "OpaqueUnaryFn_") or any(isinstance(a, sympy.Float) for a in expression.atoms())


def _resolve_graph_name(path: tuple[str, ...], namespaces: frozenset[str]):
    """A dotted name as graph text writes it (`aten.sin.default`, `higher_order.cond`,
    `operator.add`, `torch.float32`) -> its object, through the rule files' allowlist."""
    if path[0] == "higher_order" or path[0] in namespaces:
        return resolve(("torch", "ops", *path)).value
    return resolve(("operator", *path[1:]) if path[0] == "_operator" else path).value


def _unresolved(*args, **kwargs):  # the target of a node whose target did not resolve
    raise AssertionError("unreachable: the text had errors")


