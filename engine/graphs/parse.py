"""Graphs as text -> GraphModules: what `engine.dump` prints, read back.

Input: the text of one or more graphs (`def forward(...): ...`, nested graphs named by their
attribute path, `def submod_1(...)`), optionally followed by the export signature; the grammar is
`grammar/fxg.lark`. Output: a GraphModule whose nodes have the names, targets, arguments and
order the text says, each with `meta["val"]` rebuilt from its annotation: a fake tensor of that
dtype and shape (contiguous, on the CPU), sizes such as `s0` or `2*s0` as SymInts of one shape
environment, tuples and lists of those, literals. Nested graphs become submodules where the
graphs that fetch or call them expect them; other attributes a graph fetches become tensors of
their annotation (zeros). The signature, when present, is `module.meta["graph_signature"]`, an
`ExportGraphSignature`, and `engine.dump` prints it back.

Targets resolve through the allowlist rule files use (`engine.language.names`): `aten.sin.default`
and any op namespace's ops, `higher_order.*`, `operator.*`, `math.*`, torch's tensor functions and
graph markers; besides, `getattr` of a public attribute and public tensor methods, on nodes. A
graph file imports and runs nothing else. Calls are checked against their op's schema or their
function's signature. Every mistake is a `file:line:col` diagnostic with the
line and a caret, all of a file's at once (`GraphTextError`), never a traceback.

    gm = engine.parse_graph(text)           # or engine.load_graph("model.fxg")
    assert engine.dump(gm) == text          # for any text engine.dump printed
"""

from __future__ import annotations

import ast as python_ast
import inspect
import keyword
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import lark
import sympy
import torch
import torch.fx
from lark import Lark, Token, Transformer, v_args
from torch._ops import OpOverload, OpOverloadPacket
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.export.graph_signature import (ConstantArgument, ExportGraphSignature, InputKind,
                                          InputSpec, OutputKind, OutputSpec, SymIntArgument,
                                          TensorArgument)
from torch.fx.experimental.sym_node import SymNode
from torch.fx.experimental.symbolic_shapes import ShapeEnv
from torch.fx.graph import dtype_abbrs
from torch.utils._sympy.functions import FloorDiv

from ..language.diagnostics import Diagnostic, Source, Span, render_all
from ..language.names import ResolveError, resolve
from ..language.schemas import check_call
from .modules import fetch_attr

DTYPES = {abbreviation: dtype for dtype, abbreviation in dtype_abbrs.items()}
_KEYWORDS = frozenset(keyword.kwlist)
SYMBOL_HINT = 8  # the size a symbol stands for when the parsed graph runs
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


def _method_problem(name: str, args: tuple) -> str | None:
    """A method call reaches only public tensor methods, on a node: `x.__class__`, or a method
    of a function written as a literal, would lead to Python the allowlist does not name."""
    if name.startswith("_") or not hasattr(torch.Tensor, name):
        return f"`method {name}` is no public method of a tensor"
    if not args or not isinstance(args[0], torch.fx.Node):
        return f"`method {name}` is called on no node; its first argument must be one"
    return None


def _getattr_problem(args: tuple, kwargs: dict) -> str | None:
    if (len(args) != 2 or kwargs or not isinstance(args[0], torch.fx.Node)
            or not isinstance(args[1], str)):
        return "`getattr` takes a node and an attribute name: `getattr(x, 'T')`"
    if args[1].startswith("_"):
        return f"`getattr(..., {args[1]!r})`: a graph reads public attributes only"
    return None


class GraphTextError(Exception):
    """A graph text that cannot be read; `str()` holds every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__(render_all(self.diagnostics))


def load_graph(path: str | Path) -> torch.fx.GraphModule:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        source = Source(str(path), path.read_bytes().decode("utf-8", errors="replace"))
        raise GraphTextError([Diagnostic(Span(source, 1, 1, 1, 2),
                                         f"the file is not UTF-8 text: {error.reason}")]) from None
    return parse_graph(text, str(path))


def parse_graph(text: str, path: str = "<text>") -> torch.fx.GraphModule:
    source = Source(path, text)
    sections, diagnostics = _parse(source)
    if diagnostics:
        raise GraphTextError(diagnostics)
    builder = _Builder(source)
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
    specs: list  # (side, arg, kind, kind span, target or None)


def _parse(source: Source):
    """All sections, or every syntax error: a broken section is reported and the others are
    still read."""
    try:
        return _Sections(source).transform(_parser().parse(source.text)), []
    except lark.exceptions.UnexpectedInput:
        pass
    starts = [m.start() for m in _SECTION_START.finditer(source.text)] or [0]
    if starts[0] != 0:
        starts.insert(0, 0)
    diagnostics = []
    for begin, end in zip(starts, starts[1:] + [len(source.text)]):
        chunk = re.sub(r"[^\n]", " ", source.text[:begin]) + source.text[begin:end]
        if not chunk.strip():
            continue
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


@v_args(meta=True)
class _Sections(Transformer):
    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    def span(self, meta) -> Span:
        return _span(self.source, meta)

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
        return _Constructed(str(name), *_split(args), self.span(meta))

    def tuple(self, meta, children):
        return tuple(children)

    def list(self, meta, children):
        return list(children)

    def dict(self, meta, children):
        return dict(children)

    def entry(self, meta, children):
        return tuple(children)

    def string(self, meta, children):
        return python_ast.literal_eval(children[0])  # a literal: nothing runs

    def number(self, meta, children):
        return python_ast.literal_eval(children[0])

    def true(self, meta, children):
        return True

    def false(self, meta, children):
        return False

    def none(self, meta, children):
        return None

    # --- types -----------------------------------------------------------------------------------
    def tensor_type(self, meta, children):
        dtype, *sizes = children
        return _Type("tensor", (str(dtype), *sizes), self.span(meta))

    def sym_type(self, meta, children):
        return _Type("sym", tuple(children), self.span(meta))

    def sym_float_type(self, meta, children):
        return _Type("sym_float", (float(children[0]),), self.span(meta))

    def tuple_type(self, meta, children):
        return _Type("tuple", tuple(children), self.span(meta))

    def list_type(self, meta, children):
        return _Type("list", tuple(children), self.span(meta))

    def literal_type(self, meta, children):
        return _Type("literal", tuple(children), self.span(meta))

    def opaque_type(self, meta, children):
        return _Type("opaque", (str(children[0]),), self.span(meta))

    def size_number(self, meta, children):
        return ("int", int(children[0]))

    def size_negative(self, meta, children):
        return ("int", -int(children[0]))

    def size_symbol(self, meta, children):
        return ("symbol", str(children[0]), self.span(meta))

    def size_arithmetic(self, meta, children):
        left, op, right = children
        return ("arith", str(op), left, right)

    # --- the signature ---------------------------------------------------------------------------
    def signature(self, meta, children):
        return _Signature(list(children))

    def spec(self, meta, children):
        side, arg, kind, *target = children
        return (str(side), str(arg) if isinstance(arg, Token) else arg, str(kind),
                _span(self.source, kind), target[0][0] if target else None)


def _split(args) -> tuple[tuple, tuple]:
    positional = tuple(a for a in args if not isinstance(a, _Item))
    keywords = tuple(a.parts for a in args if isinstance(a, _Item))
    return positional, keywords


# --- sections -> GraphModules --------------------------------------------------------------------
class _Opaque:
    """A value the text names only by its type (`FakeScriptObject`): kept so it prints back."""


@dataclass
class _Builder:
    source: Source
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self):
        self.shape_env = ShapeEnv()
        self.mode = FakeTensorMode(shape_env=self.shape_env)
        self.symbols: dict[str, sympy.Symbol] = {}
        self.opaque: dict[str, type] = {}
        self.spans: dict[torch.fx.Node, Span] = {}  # where each node's call is written

    def error(self, span: Span, message: str) -> None:
        self.diagnostics.append(Diagnostic(span, message))

    def build(self, sections) -> torch.fx.GraphModule:
        graphs = {s.name: s for s in sections if isinstance(s, _Graph)}
        signatures = [s for s in sections if isinstance(s, _Signature)]
        if "forward" not in graphs:
            self.error(Span(self.source, 1, 1, 1, 2), "no `def forward(...)`: the top graph")
            return None
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
        for name, span, annotation, call in section.statements:
            args = tuple(self.value(a, env) for a in call.args)
            kwargs = {k: self.value(v, env) for k, v in call.kwargs}
            target = self.target(call)
            self.check_call(call, target, args, kwargs)
            node = graph.create_node(call.op, target, args, kwargs, name=name)
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
        if call.op in ("get_attr", "call_module", "call_method"):
            return call.target
        path = tuple(call.target)
        if path == ("getattr",):  # Dynamo's `x.T`; its attribute is checked in check_call
            return getattr
        try:
            if path[0] == "higher_order" or path[0] in _op_namespaces():
                return resolve(("torch", "ops", *path)).value
            return resolve(("operator", *path[1:]) if path[0] == "_operator" else path).value
        except ResolveError as error:
            self.error(call.span, str(error))
            return _unresolved

    def check_call(self, call: _Call, target, args: tuple, kwargs: dict) -> None:
        """The call's arguments against its op's schema, or a Python function's signature, so
        that `aten.sin.default(x, y)` is told here and not when the graph first runs; and the
        attributes and methods a graph reaches, so that none leads out of the allowlist."""
        problem = None
        if call.op == "call_method":
            problem = _method_problem(call.target, args)
        elif call.op != "call_function" or target is _unresolved:
            return
        elif target is getattr:
            problem = _getattr_problem(args, kwargs)
        elif isinstance(target, (OpOverload, OpOverloadPacket)):
            problem = check_call(target, len(args), False, set(kwargs))
        else:
            problem = _signature_problem(target, len(args), set(kwargs))
        if problem is not None:
            self.error(call.span, problem)

    def value(self, value, env: dict):
        if isinstance(value, _Ref):
            if value.name in env:
                return env[value.name]
            self.error(value.span, f"`{value.name}` is no node defined before this line")
            return None
        if isinstance(value, _Qualified):
            try:
                return resolve(value.path).value
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
            return torch.device(**kwargs)
        self.error(value.span, f"`{value.name}(...)` is no value a graph text holds; it holds "
                               "`float('inf')`, `device(type=...)` and `slice(a, b, c)`")
        return None

    # --- values of nodes -------------------------------------------------------------------------
    def annotate(self, node: torch.fx.Node, annotation) -> None:
        if annotation is not None:
            node.meta["val"] = self.meta_value(annotation)

    def meta_value(self, annotation: _Type):
        if annotation.kind == "tensor":
            abbreviation, *sizes = annotation.parts
            dtype = DTYPES.get(abbreviation)
            if dtype is None:
                self.error(annotation.span, f"`{abbreviation}` is no dtype; dtypes are written "
                                            f"{', '.join(sorted(DTYPES))}")
                return None
            with self.mode:
                return torch.empty([self.size(s) for s in sizes], dtype=dtype)
        if annotation.kind == "sym":
            return self.size(annotation.parts[0])
        if annotation.kind == "sym_float":
            value = annotation.parts[0]
            # Dynamo keeps a float it read off a tensor (`eps.item()`) as a SymFloat that is a
            # constant; the shape environment would fold one to a float, so build it directly.
            return torch.SymFloat(SymNode(sympy.Float(value), self.shape_env, float, value))
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
        """An int, or a SymInt of the one shape environment."""
        expression = self.size_expression(size)
        if isinstance(expression, int):
            return expression
        hint = int(expression.subs({s: SYMBOL_HINT for s in expression.free_symbols}))
        return self.shape_env.create_symintnode(expression, hint=hint)

    def size_expression(self, size):
        kind = size[0]
        if kind == "int":
            return size[1]
        if kind == "symbol":
            return self.symbol(size[1])
        left, right = self.size_expression(size[2]), self.size_expression(size[3])
        op = size[1]
        if op == "//":
            return left // right if isinstance(left, int) and isinstance(right, int) else \
                FloorDiv(left, right)
        return {"+": lambda a, b: a + b, "-": lambda a, b: a - b,
                "*": lambda a, b: a * b}[op](left, right)

    def symbol(self, name: str) -> sympy.Symbol:
        if name not in self.symbols:
            symbol = sympy.Symbol(name, integer=True, positive=True)
            self.shape_env.backed_var_to_val[symbol] = sympy.Integer(SYMBOL_HINT)
            self.shape_env.var_to_range[symbol] = self.shape_env._default_value_range()
            self.shape_env.var_to_sources[symbol] = []
            self.symbols[name] = symbol
        return self.symbols[name]

    # --- modules ---------------------------------------------------------------------------------
    def module(self, name: str, built, modules: dict) -> torch.fx.GraphModule:
        section, graph = built
        root = torch.nn.Module()
        prefix = "" if name == "forward" else f"{name}."
        for node in graph.nodes:
            if node.op not in ("get_attr", "call_module"):
                continue
            path = f"{prefix}{node.target}"
            if path in modules:
                _set_attr(root, node.target, modules[path])
            elif node.op == "get_attr" and isinstance(node.meta.get("val"), torch.Tensor):
                value = node.meta["val"]
                _set_attr(root, node.target, torch.zeros(
                    [int(d) if isinstance(d, int) else SYMBOL_HINT for d in value.shape],
                    dtype=value.dtype))
            elif fetch_attr(root, node.target, None) is None:
                self.error(self.spans.get(node, section.span),
                           f"`{node.name}` fetches `{node.target}`, which is no graph of this "
                           "text and has no tensor annotation")
        if self.diagnostics:
            return torch.fx.GraphModule(root, torch.fx.Graph())
        try:
            return torch.fx.GraphModule(root, graph)
        except Exception as error:  # FX's codegen rejecting a call the checks above let by
            self.error(section.span, f"FX cannot generate code for `{name}`: {error}")
            return torch.fx.GraphModule(root, torch.fx.Graph())

    def signature(self, signature: _Signature, built) -> ExportGraphSignature:
        _, graph = built
        nodes = {node.name: node for node in graph.nodes}
        inputs, outputs = [], []
        for side, arg, kind, kind_span, target in signature.specs:
            kinds = InputKind if side == "input" else OutputKind
            if kind not in kinds.__members__:
                self.error(kind_span, f"`{kind}` is no {side} kind; they are "
                                      f"{', '.join(kinds.__members__)}")
                continue
            argument = _argument(arg, nodes)
            if side == "input":
                inputs.append(InputSpec(InputKind[kind], argument, target,
                                        True if InputKind[kind] == InputKind.BUFFER else None))
            else:
                outputs.append(OutputSpec(OutputKind[kind], argument, target))
        return ExportGraphSignature(inputs, outputs)


def _argument(arg, nodes: dict):
    node = nodes.get(arg) if isinstance(arg, str) else None
    if node is None:
        return ConstantArgument(name="", value=arg)
    value = node.meta.get("val")
    if isinstance(value, torch.SymInt):
        return SymIntArgument(name=arg)
    return TensorArgument(name=arg)


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


def _unresolved(*args, **kwargs):  # the target of a node whose target did not resolve
    raise AssertionError("unreachable: the text had errors")


@lru_cache(maxsize=1)
def _op_namespaces() -> frozenset[str]:
    return frozenset(name.split("::")[0] for name in torch._C._dispatch_get_all_op_names())
