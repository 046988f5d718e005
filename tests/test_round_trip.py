"""What `engine dump` prints, `engine.parse_graph` reads back to the same dump: symbolic bools
and expressions (`Sym(u0 >= 2)`, `Sym(8*s0**3)`, `Max(1, s0)`), ops passed as arguments
(`with_effects`, `auto_functionalized`), and any graph text that parses at all (its dump is a
fixed point)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import engine


def round_trip(program) -> tuple[str, str]:
    text = engine.dump(program)
    return text, engine.dump(engine.parse_graph(text))


class Checked(torch.nn.Module):
    def forward(self, x, n):
        k = n.item()
        torch._check(k >= 2)
        torch._check(k <= 6)
        return x.sum() + x.new_zeros(k).sum(), x[:k]


class Printing(torch.nn.Module):
    def forward(self, x):
        torch._print("from the model")
        return x.sin()


class Powers(torch.nn.Module):
    def forward(self, x):
        return x.reshape(-1, 2) * x.shape[0] ** 3, torch.cat([x, x]).view(x.shape[0] // 2, -1)


@torch.library.custom_op("round_trip::accumulate", mutates_args=("total",))
def accumulate(x: torch.Tensor, total: torch.Tensor) -> None:
    total.add_(x)


@accumulate.register_fake
def _(x, total):
    return None


class Mutating(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("total", torch.zeros(3))

    def forward(self, x):
        accumulate(x, self.total)
        return x * 2


def test_symbolic_bools_of_checks_come_back():
    text, back = round_trip(torch.export.export(Checked(), (torch.randn(8), torch.tensor(3))))
    assert "Sym(u0 >= 2)" in text and "f32[u0]" in text
    assert back == text


def test_symbolic_expressions_with_powers_and_floor_division_come_back():
    dims = ({0: 2 * torch.export.Dim("half", min=1, max=32)},)
    text, back = round_trip(torch.export.export(Powers(), (torch.randn(8),),
                                                dynamic_shapes=dims))
    assert "**3" in text and "Sym(s" in text
    assert back == text


def test_an_op_passed_to_with_effects_comes_back_where_its_effect_is_allowed():
    program = torch.export.export(Printing(), (torch.randn(3),)).run_decompositions({})
    with engine.allowed_effects("aten._print"):
        text, back = round_trip(program)
    assert "higher_order.with_effects(" in text and "aten._print.default" in text
    assert back == text


def test_an_op_passed_to_auto_functionalized_comes_back():
    text, back = round_trip(torch.export.export(Mutating(), (torch.randn(3),)).run_decompositions({}))
    assert "higher_order.auto_functionalized" in text and "round_trip.accumulate" in text
    assert back == text


def test_a_symbolic_bool_is_a_symbool_and_an_unbacked_size_has_no_hint():
    module = engine.parse_graph(
        "def forward(n: i64[]):\n"
        "    item: Sym(u0) = aten.item.default(n)\n"
        "    ge: Sym(u0 >= 2) = operator.ge(item, 2)\n"
        "    eq: Sym(Eq(u0, 3) | (u0 < 0)) = operator.eq(item, 3)\n"
        "    return (ge,)\n")
    values = {node.name: node.meta.get("val") for node in module.graph.nodes}
    assert isinstance(values["item"], torch.SymInt) and values["item"].node.hint is None
    assert isinstance(values["ge"], torch.SymBool) and isinstance(values["eq"], torch.SymBool)


# --- any text that parses: its dump is a fixed point ---------------------------------------------
SYMBOLS = st.sampled_from(["s0", "s1", "u0", "u1"])


def expressions(max_leaves=8):
    leaf = st.one_of(st.integers(0, 40).map(str), SYMBOLS)

    def combine(children):
        pair = st.tuples(children, children)
        return st.one_of(
            pair.map(lambda p: f"({p[0]} + {p[1]})"), pair.map(lambda p: f"({p[0]} - {p[1]})"),
            pair.map(lambda p: f"{p[0]}*{p[1]}"), pair.map(lambda p: f"Max({p[0]}, {p[1]})"),
            pair.map(lambda p: f"Min({p[0]}, {p[1]})"),
            st.tuples(children, st.integers(1, 9)).map(lambda p: f"({p[0]}//{p[1]})"),
            st.tuples(children, st.integers(1, 9)).map(lambda p: f"Mod({p[0]}, {p[1]})"),
            st.tuples(children, st.integers(1, 3)).map(lambda p: f"({p[0]})**{p[1]}"),
            children.map(lambda c: f"-({c})"))

    return st.recursive(leaf, combine, max_leaves=max_leaves)


def conditions():
    comparison = st.tuples(expressions(4), st.sampled_from([">=", "<=", ">", "<", "==", "!="]),
                           expressions(4)).map(lambda t: f"{t[0]} {t[1]} {t[2]}")
    named = st.tuples(st.sampled_from(["Eq", "Ne"]), expressions(3), expressions(3)).map(
        lambda t: f"{t[0]}({t[1]}, {t[2]})")
    atom = st.one_of(comparison, named)
    return st.one_of(atom, st.tuples(atom, st.sampled_from(["&", "|"]), atom).map(
        lambda t: f"({t[0]}) {t[1]} ({t[2]})"))


@settings(max_examples=100, deadline=None)
@given(size=expressions(), value=st.one_of(expressions(), conditions()))
def test_the_dump_of_any_parsed_text_is_a_fixed_point(size, value):
    text = ("def forward(x: f32[s0, s1], n: i64[]):\n"
            "    item: Sym(u1) = aten.item.default(n)\n"
            f"    y: Sym({value}) = aten.sym_size.int(x, 0)\n"
            f"    z: f32[Max(1, {size})] = aten.sin.default(x)\n"
            "    return (z,)\n")
    try:
        first = engine.dump(engine.parse_graph(text))
    except engine.GraphTextError as error:  # a size such as `0 - s0` may be no size
        assert all(": error: " in line for line in str(error).splitlines()[:1])
        return
    assert engine.dump(engine.parse_graph(first)) == first


def test_ops_named_like_dunders_come_back():
    text = ("def forward(x: b8[2], y: b8[2]):\n"
            "    and_1: b8[2] = aten.__and__.Tensor(x, y)\n"
            "    lshift: b8[2] = aten.__or__.Tensor(and_1, y)\n"
            "    return (lshift,)\n")
    assert engine.dump(engine.parse_graph(text)) == text
