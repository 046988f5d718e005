"""DAG patterns -> instances: small graphs a pattern matches, and their inputs, drawn by
hypothesis.

Input: a checked DAG rule and the dtypes to draw tensors of. Output: a hypothesis strategy of
`Instance`s: the pattern written out as a graph (a node for each call, a placeholder for each
tensor a variable or `_` stands for, literals for numbers and lists), its roots, and a value for
each placeholder. Hypothesis draws every choice, so that it can shrink a counterexample to the
simplest one that still fails:
- which option of each `|`, which form of each call (overload; for `commutative`, the order);
- each tensor's dtype (from the rule's `dtypes`, else float32, float16, bfloat16, float64, int64,
  int32, bool), its shape (one base shape of rank 0 to 4 and sizes 0 to 3, each tensor the base
  or a shape broadcastable to it; of the rank a guard asks, `rank($q) == 4`, mostly the base
  itself) and its values (floats include 0, -0.0, negatives, huge, inf
  and nan, the last two not if the rule promises `finite`; integers their extremes);
- one dtype for the tensors a guard asks to share it (`dtype($k) == dtype($q)`);
- each number, by what the op's schema takes there: small ints for `int` (dims), any float for
  `float`, either for `Scalar`, a dtype for `ScalarType`, None or a value for an optional.
Arguments the pattern leaves to their defaults are left out. `$f(...)` (any op) cannot be
written out: such a rule is verified on models only (`Unsynthesizable`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.fx
from hypothesis import strategies as st
from torch._ops import OpOverload, OpOverloadPacket
from torch.fx.graph import dtype_abbrs

from ..language import checked
from ..language.schemas import takes_numbers_as_tensors

DEFAULT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64,
                  torch.int32, torch.bool)
MAX_ELEMENTS = 24  # a tensor's elements: enough for every broadcast, few enough to shrink fast
SHOWN_ELEMENTS = 8  # a larger tensor in a counterexample shows its first elements only


class Unsynthesizable(Exception):
    """A pattern that cannot be written out as a graph; the message says why."""


@dataclass
class Instance:
    module: torch.fx.GraphModule  # the pattern written out; no `meta["val"]` yet
    roots: tuple[torch.fx.Node, ...]
    values: dict[torch.fx.Node, object]  # each placeholder's input
    names: dict[torch.fx.Node, str]  # each placeholder as the rule writes it: `$x`, `_`

    def describe_inputs(self) -> list[str]:
        return [f"{self.names[node]} = {describe_value(self.values[node])}"
                for node in self.values]


def check_synthesizable(rule: checked.Rule) -> None:
    for _, root in rule.pattern.roots:
        _check_pattern(root)


def _check_pattern(pattern) -> None:
    if isinstance(pattern, checked.NodePattern) and pattern.target_var is not None:
        raise Unsynthesizable("`$f(...)` matches any op, which no graph written out covers: "
                              "verify it on models")
    for part in checked.inner_patterns(pattern):
        _check_pattern(part)


def instances(rule: checked.Rule):
    """A strategy of the rule's pattern written out with drawn inputs, of the dtypes its
    promises name (else `DEFAULT_DTYPES`), finite if it assumes so."""
    check_synthesizable(rule)
    dtypes = tuple(rule.promises.dtypes or DEFAULT_DTYPES)
    finite = rule.promises.finite

    hints = _literal_hints(rule.guards)
    ranks, same_dtype = _rank_hints(rule.guards), _same_dtype_hints(rule.guards)

    @st.composite
    def instance(draw) -> Instance:
        return _Writer(draw, dtypes, finite, hints, ranks, same_dtype).write(rule.pattern)

    return instance()


def _literal_hints(guards) -> dict[str, list]:
    """The literals each variable is compared with in the guards (`$s in (2, 4)`, `$d == -1`):
    drawn for it often, so that 200 instances meet the values the rule is about. A variable
    named here (or in `is_literal`) is drawn as a number where an op takes a number for a
    tensor (`mul.Tensor(x, 0.5)`)."""
    hints: dict[str, list] = {}

    def add(operand, literals) -> None:
        if isinstance(operand, checked.Value):
            hints.setdefault(operand.name, []).extend(
                literal.value for literal in literals if isinstance(literal, checked.Const))

    def walk(condition) -> None:
        if isinstance(condition, checked.Guard):
            add(condition.left, [condition.right])
            add(condition.right, [condition.left])
        elif isinstance(condition, checked.Member):
            add(condition.value, condition.options)
        elif isinstance(condition, (checked.AllOf, checked.AnyOf)):
            for part in condition.items:
                walk(part)
        elif isinstance(condition, checked.Not):
            walk(condition.item)
        elif isinstance(condition, checked.Named):
            walk(condition.body)
        elif isinstance(condition, checked.Test) and isinstance(
                condition.value, checked.BuiltinCall) and condition.value.name == "is_literal":
            add(condition.value.args[0], [])  # a number: drawn where a number may stand

    for guard in guards:
        walk(guard)
    return hints


def _equalities(guards):
    """The `==` comparisons every instance must pass: the guards' top-level conjuncts."""
    def walk(condition):
        if isinstance(condition, checked.Guard) and condition.op == "==":
            yield condition
        elif isinstance(condition, checked.AllOf):
            for part in condition.items:
                yield from walk(part)
        elif isinstance(condition, checked.Named):
            yield from walk(condition.body)

    for guard in guards:
        yield from walk(guard)


def _of_variable(operand, builtin: str) -> str | None:
    """`$x` of `builtin($x)`, else None."""
    if (isinstance(operand, checked.BuiltinCall) and operand.name == builtin
            and isinstance(operand.args[0], checked.Value)):
        return operand.args[0].name
    return None


def _rank_hints(guards) -> dict[str, int]:
    """The ranks the guards ask of variables, `rank($q) == 4`: the base shape is drawn of the
    largest, and those tensors of their rank, most often the base shape itself (a matmul or a
    transpose needs more than shapes that broadcast)."""
    ranks: dict[str, int] = {}
    for guard in _equalities(guards):
        for left, right in ((guard.left, guard.right), (guard.right, guard.left)):
            name = _of_variable(left, "rank")
            if name and isinstance(right, checked.Const) and type(right.value) is int:
                ranks[name] = right.value
    return ranks


def _same_dtype_hints(guards) -> dict[str, str]:
    """Variables the guards ask to be of one dtype, `dtype($k) == dtype($q)`: each -> the
    first of its group, whose drawn dtype it takes."""
    leader: dict[str, str] = {}

    def find(name: str) -> str:
        while leader.get(name, name) != name:
            name = leader[name]
        return name

    for guard in _equalities(guards):
        left, right = _of_variable(guard.left, "dtype"), _of_variable(guard.right, "dtype")
        if left and right:
            leader.setdefault(left, left)
            leader.setdefault(right, right)
            leader[find(right)] = find(left)
    return {name: find(name) for name in leader}


# --- the types of arguments, as the schema gives them --------------------------------------------
def _type_of(argument) -> str:
    """An argument's type as text: "Tensor", "Optional[List[int]]", "ScalarType"..."""
    return str(argument.real_type)


def _strip(text: str, wrapper: str) -> str | None:
    prefix = f"{wrapper}["
    return text[len(prefix):-1] if text.startswith(prefix) and text.endswith("]") else None


class _Writer:
    """One instance: walks the pattern, drawing each choice, building the graph."""

    def __init__(self, draw, dtypes: tuple[torch.dtype, ...], finite: bool,
                 hints: dict[str, list] | None = None, ranks: dict[str, int] | None = None,
                 same_dtype: dict[str, str] | None = None):
        self.draw = draw
        self.hints = hints or {}
        self.ranks = ranks or {}
        self.same_dtype = same_dtype or {}
        self.group_dtypes: dict[str, torch.dtype] = {}
        self.dtypes = dtypes
        self.finite = finite
        self.graph = torch.fx.Graph()
        self.values: dict[torch.fx.Node, object] = {}
        self.names: dict[torch.fx.Node, str] = {}
        self.bound: dict[str, object] = {}
        self.base = draw(_base_shapes(max(self.ranks.values(), default=None)))
        self.last_placeholder: torch.fx.Node | None = None

    def write(self, pattern: checked.DagPattern) -> Instance:
        roots = []
        for name, root in pattern.roots:
            value = self.pattern(root, None)
            if name is not None:
                self.bound[name] = value
            roots.append(value)
        if not all(isinstance(root, torch.fx.Node) for root in roots):
            raise Unsynthesizable("a root of the pattern is no call")
        self.graph.output(tuple(roots))
        module = torch.fx.GraphModule(torch.nn.Module(), self.graph)
        return Instance(module, tuple(roots), self.values, self.names)

    # --- patterns ----------------------------------------------------------------------------
    def pattern(self, pattern, type_text: str | None):
        if isinstance(pattern, checked.NodePattern):
            return self.call(pattern)
        if isinstance(pattern, checked.BindNode):
            value = self.bound[pattern.name] = self.pattern(pattern.pattern, type_text)
            return value
        if isinstance(pattern, checked.Bind):
            value = self.bound[pattern.name] = self.fresh(type_text, f"${pattern.name}")
            return value
        if isinstance(pattern, checked.Same):
            return self.bound[pattern.name]
        if isinstance(pattern, checked.Anything):
            return self.fresh(type_text, "_")
        if isinstance(pattern, checked.Equals):
            return pattern.value
        if isinstance(pattern, checked.OneOf):
            option = self.draw(st.integers(0, len(pattern.options) - 1))
            value = self.pattern(pattern.options[option], type_text)
            self.bound.update(dict.fromkeys(pattern.nones(option)))
            return value
        if isinstance(pattern, checked.ListPattern):
            listed = _strip(type_text or "", "Optional") or type_text or ""  # `int[1]?`
            inner = _strip(listed, "List")
            items = [self.pattern(item, inner) for item in pattern.items]
            return items + list(self.rest(pattern.rest))
        raise Unsynthesizable(f"cannot write out {type(pattern).__name__}")

    def rest(self, rest) -> tuple:
        """What a `*` pattern stands for in an instance: nothing more (`*$r` binds `()`), or
        for a repeated `*$r`, what it bound."""
        if isinstance(rest, checked.BindRest):
            self.bound[rest.name] = ()
        if isinstance(rest, checked.SameRest):
            return tuple(self.bound[rest.name])
        return ()

    def call(self, pattern: checked.NodePattern) -> torch.fx.Node:
        if pattern.forms:
            form = self.draw(st.sampled_from(pattern.forms))
            target, args, kwargs = form.overload, *self.schema_call(form)
        elif isinstance(pattern.target, (OpOverload, OpOverloadPacket)):
            target, args, kwargs = self.call_with_rest(pattern)
        else:
            types = ["Tensor" if pattern.op == "call_method" and index == 0 else None
                     for index in range(len(pattern.args))]
            target = pattern.target
            args = [self.pattern(arg, t) for arg, t in zip(pattern.args, types)]
            args += list(self.rest(pattern.rest))
            kwargs = {name: self.pattern(arg, None) for name, arg in pattern.kwargs}
        if isinstance(pattern.more_kwargs, checked.BindRest):
            self.bound[pattern.more_kwargs.name] = {}
        return self.graph.create_node(pattern.op, target, tuple(args), kwargs)

    def schema_call(self, form: checked.SchemaForm) -> tuple[list, dict]:
        """The arguments of a call read by schema: each the pattern names, drawn in the order
        the pattern writes them; positional while no earlier one is left out, then keywords."""
        arguments = {argument.name: argument for argument in form.overload._schema.arguments}
        given = {}
        for schema_arg in form.args:
            if schema_arg.pattern is not None:
                argument = arguments[schema_arg.param.name]
                type_text = _type_of(argument)
                # A tensor or a number (export writes `x * 0.5` as `mul.Tensor(x, 0.5)`),
                # drawn as either for a variable the guards compare with a number.
                if (type_text == "Tensor" and takes_numbers_as_tensors(form.overload)
                        and isinstance(schema_arg.pattern, checked.Bind)
                        and schema_arg.pattern.name in self.hints):
                    type_text = None
                given[argument.name] = self.pattern(schema_arg.pattern, type_text)
        return self.arrange(form.overload, given)

    def call_with_rest(self, pattern: checked.NodePattern) -> tuple[object, list, dict]:
        """A call of an op with `*_` or `*$r`: an overload taking the named arguments, its other
        required arguments drawn."""
        overloads = ([pattern.target] if isinstance(pattern.target, OpOverload) else
                     [getattr(pattern.target, name) for name in pattern.target.overloads()])
        fitting = [o for o in overloads if len(pattern.args) <= len(
            [a for a in o._schema.arguments if not a.kwarg_only])]
        if not fitting:
            raise Unsynthesizable(f"no overload of `{pattern.target}` takes this call")
        overload = self.draw(st.sampled_from(fitting))
        arguments = overload._schema.arguments
        positional = [a for a in arguments if not a.kwarg_only]
        given = {argument.name: self.pattern(arg, _type_of(argument))
                 for argument, arg in zip(positional, pattern.args)}
        named = dict(pattern.kwargs)
        extra = []
        for argument in arguments:
            if argument.name in given:
                continue
            if argument.name in named:
                given[argument.name] = self.pattern(named[argument.name], _type_of(argument))
            elif not argument.has_default_value():
                given[argument.name] = self.fresh(_type_of(argument), "_")
                extra.append(given[argument.name])
        if isinstance(pattern.rest, checked.BindRest):
            self.bound[pattern.rest.name] = tuple(extra)
        return (overload, *self.arrange(overload, given))

    @staticmethod
    def arrange(overload: OpOverload, given: dict) -> tuple[list, dict]:
        args, kwargs = [], {}
        for argument in overload._schema.arguments:
            if argument.name not in given:
                continue
            if not argument.kwarg_only and len(args) == _position(overload, argument.name):
                args.append(given[argument.name])
            else:
                kwargs[argument.name] = given[argument.name]
        return args, kwargs

    # --- values --------------------------------------------------------------------------------
    def fresh(self, type_text: str | None, name: str):
        """A value a variable or `_` stands for, of the type the schema gives there."""
        if type_text is None:  # no schema: a function or method; a tensor or a number
            return self.fresh(self.draw(st.sampled_from(["Tensor", "Scalar"])), name)
        inner = _strip(type_text, "Optional")
        if inner is not None:
            return None if self.draw(st.booleans()) else self.fresh(inner, name)
        inner = _strip(type_text, "List")
        if inner is not None:
            count = self.draw(st.integers(1 if inner == "Tensor" else 0, 3))
            return [self.fresh(inner, name) for _ in range(count)]
        if type_text == "Tensor":
            return self.tensor(name)
        drawn = _scalars(type_text, self.dtypes, self.finite)
        hints = [value for value in self.hints.get(name.lstrip("$"), ())
                 if type(value) in (bool, int, float)]
        if hints and type_text in ("int", "SymInt", "float", "Scalar", "number", "bool"):
            drawn = st.one_of(st.sampled_from(hints), drawn)
        return self.draw(drawn)

    def tensor(self, name: str) -> torch.fx.Node:
        group = self.same_dtype.get(name.lstrip("$"))
        if group is None:
            dtype = self.draw(st.sampled_from(self.dtypes))
        else:
            if group not in self.group_dtypes:
                self.group_dtypes[group] = self.draw(st.sampled_from(self.dtypes))
            dtype = self.group_dtypes[group]
        rank = self.ranks.get(name.lstrip("$"))
        if rank is not None and rank <= len(self.base):
            full = self.base[len(self.base) - rank:]
            shape = full if self.draw(st.integers(0, 3)) else self.draw(_broadcastable(full, 0))
        else:
            shape = self.draw(_broadcastable(self.base))
        # Placeholders go first, in the order drawn, before the calls that use them.
        if self.last_placeholder is None:
            where = self.graph.inserting_before(next(iter(self.graph.nodes), None))
        else:
            where = self.graph.inserting_after(self.last_placeholder)
        with where:
            node = self.graph.placeholder(name.lstrip("$") or "_")
        # FX makes node names unique, not targets, and a placeholder's target is the forward's
        # parameter: two `_` (or the tensors of one `$xs` list) would be one name twice.
        node.target = node.name
        self.last_placeholder = node
        self.values[node] = self.draw(_tensors(dtype, shape, self.finite))
        self.names[node] = name
        return node


def _position(overload: OpOverload, name: str) -> int:
    positional = [a.name for a in overload._schema.arguments if not a.kwarg_only]
    return positional.index(name) if name in positional else -1


# --- strategies ----------------------------------------------------------------------------------
def _base_shapes(rank: int | None = None):
    """Ranks 0 to 4 and sizes 0 to 3 (or the rank given, sizes 1 to 3), at most MAX_ELEMENTS
    elements; shrinks towards `[]` (or all ones)."""
    def fits(shape: list[int]) -> bool:
        count = 1
        for size in shape:
            count *= size
        return count <= MAX_ELEMENTS

    if rank is not None:
        return st.lists(st.integers(1, 3), min_size=rank, max_size=rank).filter(fits)
    return st.lists(st.integers(0, 3), max_size=4).filter(fits)


@st.composite
def _broadcastable(draw, base: list[int], most_dropped: int | None = None) -> list[int]:
    """The base shape, or one that broadcasts to it: leading dims dropped (at most
    `most_dropped`), some sizes 1."""
    dropped = draw(st.integers(0, len(base) if most_dropped is None else most_dropped))
    return [1 if draw(st.booleans()) else size for size in base[dropped:]]


def _elements(dtype: torch.dtype, finite: bool):
    if dtype == torch.bool:
        return st.booleans()
    if dtype.is_floating_point:
        width = {torch.float16: 16, torch.float64: 64}.get(dtype, 32)
        # The values rewrites get wrong, often enough that 200 instances meet them: zeros of
        # both signs, the extremes, the smallest normal; nan and inf unless the rule assumes
        # none. Shrinks towards 0.0.
        info = torch.finfo(dtype)
        special = [0.0, -0.0, 1.0, -1.0, info.max, -info.max, info.tiny]
        if not finite:
            special += [math.inf, -math.inf, math.nan]
        return st.one_of(st.sampled_from(special),
                         st.floats(width=width, allow_nan=not finite, allow_infinity=not finite))
    info = torch.iinfo(dtype)
    return st.one_of(st.sampled_from([0, 1, -1, info.max, info.min] if info.min else
                                     [0, 1, info.max]),
                     st.integers(info.min, info.max))


@st.composite
def _tensors(draw, dtype: torch.dtype, shape: list[int], finite: bool) -> torch.Tensor:
    count = 1
    for size in shape:
        count *= size
    values = draw(st.lists(_elements(dtype, finite), min_size=count, max_size=count))
    source = torch.float64 if dtype.is_floating_point else dtype
    return torch.tensor(values, dtype=source).reshape(shape).to(dtype)


def _scalars(type_text: str, dtypes, finite: bool):
    floats = st.floats(allow_nan=not finite, allow_infinity=not finite)
    if type_text in ("int", "SymInt"):
        return st.integers(-4, 4)
    if type_text == "float":
        return floats
    if type_text in ("Scalar", "number"):
        return st.one_of(st.integers(-4, 4), floats)
    if type_text == "bool":
        return st.booleans()
    if type_text == "ScalarType":
        return st.sampled_from(dtypes)
    if type_text == "str":
        return st.sampled_from(["floor", "trunc", "none", "tanh"])
    if type_text == "Device":
        return st.just(torch.device("cpu"))
    if type_text == "Layout":
        return st.just(torch.strided)
    if type_text == "MemoryFormat":
        return st.just(torch.contiguous_format)
    if type_text == "complex":
        return st.complex_numbers(allow_nan=not finite, allow_infinity=not finite)
    return st.nothing()  # a type no instance is drawn with (a Generator, a Dimname): none


def describe_value(value) -> str:
    """An input as a counterexample shows it: `f32[2] [0.0, -inf]`."""
    if isinstance(value, torch.Tensor):
        dims = ", ".join(str(d) for d in value.shape)
        kind = f"{dtype_abbrs.get(value.dtype, str(value.dtype))}[{dims}]"
        if value.numel() <= SHOWN_ELEMENTS:
            return f"{kind} {value.tolist()}"
        first = ", ".join(repr(item) for item in value.flatten()[:SHOWN_ELEMENTS].tolist())
        return f"{kind} [{first}, ...] ({value.numel()} elements)"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(describe_value(item) for item in value) + "]"
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    return repr(value)
