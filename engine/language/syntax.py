"""Text -> parse tree -> AST.

Input: a `Source` (path and text). Output: an `ast.RuleFile` and a list of syntax diagnostics.
The grammar is `grammar/rw.lark`, shipped inside the package as `engine.grammar`. A file that
does not parse is cut into its top-level items (`use ...`, `rule ...`) and each is parsed on its
own, so every broken item of a file is reported, not just the first, and the items that parse
are checked as well; the name a broken `use` declares is recorded, so that its uses are not
reported again as unknown.
"""

from __future__ import annotations

import ast as python_ast
import re
from functools import lru_cache
from importlib import resources

import lark
from lark import Lark, Token, Transformer, v_args

from . import ast
from .diagnostics import Diagnostic, Source, Span

_ITEM_START = re.compile(r"^(include|use|rule|pattern)\b", re.MULTILINE)

# How terminals read in "expected ..." messages.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "VAR": "a variable like `$x`",
    "STRING": "a string",
    "NUMBER": "a number",
    "WILDCARD": "`_`",
    "ELLIPSIS": "`...`",
    "COMPARISON": "`==` or `!=`",
    "$END": "the end of the file",
}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("engine.grammar").joinpath("rw.lark").read_text()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def parse_source(source: Source) -> tuple[ast.RuleFile, list[Diagnostic]]:
    """Parses a whole file; on syntax errors, returns what parsed and every error found."""
    try:
        tree = _parser().parse(source.text)
    except lark.exceptions.UnexpectedInput:
        return _parse_items_separately(source)
    return _ToAst(source).transform(tree), []


def _parse_items_separately(source: Source) -> tuple[ast.RuleFile, list[Diagnostic]]:
    starts = [m.start() for m in _ITEM_START.finditer(source.text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    items, diagnostics, broken = [], [], []
    for begin, end in zip(starts, starts[1:] + [len(source.text)]):
        # Blank out everything outside the item so that positions stay those of the file.
        chunk = re.sub(r"[^\n]", " ", source.text[:begin]) + source.text[begin:end]
        try:
            part = _ToAst(source).transform(_parser().parse(chunk))
        except lark.exceptions.UnexpectedInput as error:
            diagnostics.append(_syntax_diagnostic(source, chunk, error))
            declared = _BROKEN_USE.match(source.text[begin:end])
            if declared:  # its name is not unknown, only broken: say nothing more of it
                broken.append(declared["alias"] or declared["path"].split(".")[-1])
            continue
        items += part.items
    return ast.RuleFile(source.path, tuple(items), tuple(broken)), diagnostics


_BROKEN_USE = re.compile(r"use\s+(?P<path>[\w.]+)(?:\s+as\s+(?P<alias>\w+))?")


def _syntax_diagnostic(source: Source, text: str, error: lark.exceptions.UnexpectedInput) -> Diagnostic:
    """`text` is what was parsed: the whole file, or one item of it blanked around."""
    line, column = max(error.line, 1), max(error.column, 1)
    width = 1
    if isinstance(error, lark.exceptions.UnexpectedToken):
        token = error.token
        if token.type == "$END":
            message = "unexpected end of file"
            line, column = _end_position(text)
        else:
            message = f"unexpected `{token}`"
            width = max(1, len(str(token)))
        message += _explain(error, text) or _expected(error.accepts or error.expected)
    elif isinstance(error, lark.exceptions.UnexpectedCharacters):
        message = f"unexpected character `{source.line(line)[column - 1:column]}`"
        message += _expected(error.allowed)
    else:  # UnexpectedEOF
        line, column = _end_position(text)
        message = "unexpected end of file" + _expected(getattr(error, "expected", ()))
    return Diagnostic(Span(source, line, column, line, column + width), message)


def _end_position(text: str) -> tuple[int, int]:
    lines = text.rstrip().splitlines() or [""]
    return len(lines), len(lines[-1]) + 1


_EMPTY_WHERE = re.compile(r"\bwhere\s+(inline|keep|erase|outline|replace)\b\s*\Z")


def _explain(error: lark.exceptions.UnexpectedToken, text: str) -> str | None:
    """Words for mistakes common enough to deserve them, told apart by what the parser wanted."""
    wanted = set(error.accepts or error.expected)
    before = text[:error.pos_in_stream] if error.token.type != "$END" else text.rstrip()
    if _EMPTY_WHERE.search(before):
        return (": a `where` clause needs a condition before the action, as in "
                "`where $mode != grad_enabled()`")
    if error.token == "=" and "COMPARISON" in wanted:
        return ": compare with `==`; `=` names a keyword argument or binds a variable"
    if "ELLIPSIS" in wanted and error.token.type == "NAME":
        return ": a region is written `opener(...) ... closer(...)`; the `...` is missing"
    if {"OUTLINE", "INLINE", "ERASE"} <= wanted and "ELLIPSIS" not in wanted:
        return (": a rule needs an action after its pattern: `outline with hop(...)`, "
                "`inline`, `keep`, `erase` or `replace with ...`")
    if wanted == {"COLON"}:
        return ": a rule's name is followed by `:`"
    if "COMPARISON" in wanted:
        return ": a `where` guard compares two values, as in `$mode != grad_enabled()`"
    return None


def _expected(terminals) -> str:
    words = sorted({_terminal_word(name) for name in terminals or ()})
    if not words:
        return ""
    return ", expected " + (words[0] if len(words) == 1 else "one of " + ", ".join(words))


def _terminal_word(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return name
    return f"`{pattern.value}`" if pattern.type == "str" else name


def _span(source: Source, item) -> Span:
    """Span of a Token or of a tree's meta."""
    return Span(source, item.line, item.column, item.end_line, item.end_column)


@v_args(meta=True)
class _ToAst(Transformer):
    """Parse tree -> `ast` dataclasses. Each method is named after the grammar rule it builds."""

    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    def span(self, meta) -> Span:
        return _span(self.source, meta)

    def start(self, meta, items):
        return ast.RuleFile(self.source.path, tuple(items))

    def include(self, meta, children):
        return ast.Include(self.span(meta), python_ast.literal_eval(children[0]))

    def use(self, meta, children):
        path_parts, path_span = children[0]
        if len(children) > 1:
            alias, alias_span = str(children[1]), _span(self.source, children[1])
        else:
            alias, alias_span = path_parts[-1], path_span
        return ast.Use(self.span(meta), path_parts, path_span, alias, alias_span)

    def dotted(self, meta, names):
        return tuple(str(name) for name in names), self.span(meta)

    def rule(self, meta, children):
        verify = children.pop() if isinstance(children[-1], ast.Verify) else None
        name, pattern, *guards, action = children
        guards = tuple(guards[0]) if guards else ()
        return ast.Rule(self.span(meta), str(name), _span(self.source, name), pattern, guards,
                        action, verify)

    def pattern_def(self, meta, children):
        name, *params = children
        *params, body = params
        return ast.PatternDef(self.span(meta), str(name), _span(self.source, name),
                              tuple(ast.Var(_span(self.source, p), p[1:]) for p in params
                                    if p is not None), body)

    def condition_def(self, meta, children):
        name, *params = children
        *params, body = params
        return ast.ConditionDef(self.span(meta), str(name), _span(self.source, name),
                                tuple(ast.Var(_span(self.source, p), p[1:]) for p in params
                                      if p is not None), self._condition(body))

    def verify(self, meta, promises):
        return ast.Verify(self.span(meta), tuple(promises))

    def promise(self, meta, children):
        return ast.Promise(self.span(meta), str(children[0]), _span(self.source, children[0]),
                           None)

    def promise_call(self, meta, children):
        name, *args = children
        return ast.Promise(self.span(meta), str(name), _span(self.source, name),
                           tuple(arg for arg in args if arg is not None))

    def match(self, meta, children):
        return children[0]

    def region(self, meta, children):
        binder = None
        if isinstance(children[0], Token) and children[0].type == "VAR":
            binder = ast.Var(_span(self.source, children[0]), children[0][1:])
            children = children[1:]
        opener, _ellipsis, *closer = children
        return ast.Region(self.span(meta), binder, opener, closer[0] if closer else None)

    def dag(self, meta, roots):
        return ast.Dag(self.span(meta), tuple(roots))

    def bound(self, meta, children):
        var, inner = children
        return ast.Bound(self.span(meta), ast.Var(_span(self.source, var), var[1:]), inner)

    def method(self, meta, children):
        receiver, name, *args = children
        return ast.Method(self.span(meta), receiver, str(name), _span(self.source, name),
                          tuple(a for a in args if a is not None))

    def list(self, meta, items):
        return ast.ListExpr(self.span(meta), tuple(i for i in items if i is not None))

    def alternatives(self, meta, options):
        return ast.Alternatives(self.span(meta), tuple(options))

    def shared(self, meta, children):
        return ast.Shared(self.span(meta), children[0])

    def commutative(self, meta, children):
        return ast.Commutative(self.span(meta), children[0])

    def replace(self, meta, children):
        return ast.Replace(self.span(meta), ((None, children[0]),))

    def replace_each(self, meta, replacements):
        return ast.Replace(self.span(meta), tuple(replacements))

    def replacement(self, meta, children):
        var, template = children
        return ast.Var(_span(self.source, var), var[1:]), template

    def where(self, meta, children):
        (condition,) = children
        if isinstance(condition, ast.AllOf):
            return list(condition.items)
        if not isinstance(condition, (ast.Guard, ast.Membership, ast.AnyOf, ast.Not)):
            condition = ast.Truth(condition.span, condition)
        return [condition]

    # --- conditions ----------------------------------------------------------------------------
    def _condition(self, item):
        """A value standing where a condition goes is a predicate to test."""
        if isinstance(item, (ast.Guard, ast.Membership, ast.AllOf, ast.AnyOf, ast.Not,
                             ast.Truth)):
            return item
        return ast.Truth(item.span, item)

    def all_of(self, meta, items):
        return ast.AllOf(self.span(meta), tuple(self._condition(i) for i in items))

    def any_of(self, meta, items):
        return ast.AnyOf(self.span(meta), tuple(self._condition(i) for i in items))

    def negation(self, meta, children):
        return ast.Not(self.span(meta), self._condition(children[0]))

    def comparison(self, meta, children):
        left, op, right = children
        return ast.Guard(self.span(meta), str(op), left, right)

    def membership(self, meta, children):
        value, *options = children
        return ast.Membership(self.span(meta), value, tuple(options), False)

    def non_membership(self, meta, children):
        value, *options = children
        return ast.Membership(self.span(meta), value, tuple(options), True)

    # --- values --------------------------------------------------------------------------------
    def builtin(self, meta, children):
        name, *args = children
        return ast.Builtin(self.span(meta), str(name), tuple(a for a in args if a is not None),
                           _span(self.source, name))

    def quantified(self, meta, children):
        name, body, var, values = children
        return ast.Quantified(self.span(meta), str(name), _span(self.source, name),
                              self._condition(body), ast.Var(_span(self.source, var), var[1:]),
                              values)

    def arithmetic(self, meta, children):
        left, op, right = children
        return ast.Arithmetic(self.span(meta), str(op), left, right)

    def negative(self, meta, children):
        (operand,) = children
        if isinstance(operand, ast.Literal) and type(operand.value) in (int, float):
            return ast.Literal(self.span(meta), -operand.value)  # a negative number
        return ast.Negative(self.span(meta), operand)

    def index(self, meta, children):
        value, index = children
        return ast.Index(self.span(meta), value, index)

    def qualified_constant(self, meta, children):
        return ast.QualifiedConstant(self.span(meta), tuple(str(c) for c in children))

    def outline(self, meta, children):
        return ast.Outline(self.span(meta), children[0])

    def inline(self, meta, children):
        return ast.Inline(self.span(meta))

    def keep(self, meta, children):
        return ast.Keep(self.span(meta))

    def erase(self, meta, children):
        return ast.Erase(self.span(meta))

    def call(self, meta, children):
        callee, *args = children
        optional = bool(args) and isinstance(args[0], Token) and args[0].type == "OPTIONAL"
        args = tuple(arg for arg in args[optional:] if arg is not None)
        if callee.type == "VAR":  # `$f(...)`: the op is a variable
            return ast.Call(self.span(meta), str(callee)[1:], _span(self.source, callee), args,
                            callee_is_var=True, optional=optional)
        return ast.Call(self.span(meta), str(callee), _span(self.source, callee), args,
                        optional=optional)

    # --- arguments -------------------------------------------------------------------------
    def var(self, meta, children):
        return ast.Var(self.span(meta), children[0][1:])

    def star_var(self, meta, children):
        return ast.StarVar(self.span(meta), children[0][1:])

    def wildcard(self, meta, children):
        return ast.Wildcard(self.span(meta))

    def star_wildcard(self, meta, children):
        return ast.StarWildcard(self.span(meta))

    def star_star_var(self, meta, children):
        return ast.StarStarVar(self.span(meta), children[0][1:])

    def star_star_wildcard(self, meta, children):
        return ast.StarStarWildcard(self.span(meta))

    def keyword(self, meta, children):
        name, value = children
        return ast.Keyword(self.span(meta), str(name), value)

    def string(self, meta, children):
        return ast.Literal(self.span(meta), python_ast.literal_eval(children[0]))

    def number(self, meta, children):
        return ast.Literal(self.span(meta), python_ast.literal_eval(children[0]))

    def true(self, meta, children):
        return ast.Literal(self.span(meta), True)

    def false(self, meta, children):
        return ast.Literal(self.span(meta), False)

    def none(self, meta, children):
        return ast.Literal(self.span(meta), None)

    def constant(self, meta, children):
        return ast.Constant(self.span(meta), str(children[0]))
