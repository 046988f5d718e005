"""Graphs as text: every dump the suite pins parses back to itself, runs as the original does,
and a bad graph text is told with file:line:col, all at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import engine
from tests.autocast_models import CASES as AUTOCAST_CASES
from tests.grad_models import GRAD_CASES, MIXED_CASES

REPO = Path(__file__).resolve().parent.parent
SNAPSHOTS = sorted((REPO / "snapshots").rglob("*.txt"))
DUMP = re.compile(r"(?ms)^def forward\(.*?(?=^# |\Z)")


def dumps_in(path: Path) -> list[str]:
    return [chunk.rstrip("\n") + "\n" for chunk in DUMP.findall(path.read_text())]


def test_every_dump_in_the_snapshots_parses_back_to_itself():
    count = 0
    for path in SNAPSHOTS:
        for text in dumps_in(path):
            assert engine.dump(engine.parse_graph(text, str(path))) == text, path.name
            count += 1
    assert count > 150


@pytest.mark.parametrize("case", [*AUTOCAST_CASES, *GRAD_CASES, *MIXED_CASES],
                         ids=lambda case: case.name)
def test_a_parsed_program_runs_as_the_original(case):
    torch.set_grad_enabled(case.grad_enabled)
    try:
        model, args = case.build()
        program = engine.capture(model, args, dynamic_shapes=case.dynamic_shapes)
        for version in (program, engine.load_rules(REPO / "rules" / "export.rw").apply_program(
                program)):
            text = engine.dump(version)
            parsed = engine.parse_graph(text)
            assert engine.dump(parsed) == text
            state = {**version.state_dict, **version.constants}
            user = iter(args)
            flat = [state[spec.target] if spec.target in state else next(user)
                    for spec in version.graph_signature.input_specs]
            with torch.no_grad():  # each run gets fresh copies: some models mutate buffers
                expected = version.graph_module(*[t.clone() for t in flat])
                got = parsed(*[t.clone() for t in flat])
            torch.testing.assert_close(got, expected)
    finally:
        torch.set_grad_enabled(True)


def test_values_literals_and_nested_graphs_come_back():
    text = """\
def forward(x: f32[2, s0], n: i64[], flag: b8[3] = None):
    a: f32[2, s0] = aten.add.Tensor(x, 1.5)
    b: f32[2, s0] = aten.mul.Tensor(a, float('inf'))
    c: f32[2, s0] = aten.clamp.default(b, -3, None)
    d: f32[2, 2*s0] = aten.cat.default([a, c], -1)
    e: f32[2, (s0//2)] = aten.slice.Tensor(x, 1, 0, 7)
    size: Sym(s0) = aten.sym_size.int(x, 1)
    f: f32[2, s0] = aten._to_copy.default(a, dtype=torch.float32, layout=torch.strided, device=device(type='cpu'))
    submod_1 = get_attr(submod_1)
    g: (f32[2, s0], i64[]) = higher_order.wrap_with_set_grad_enabled(False, submod_1, f, n)
    h: f32[2, s0] = operator.getitem(g, 0)
    return (d, e, size, h, {'key': [h, None]})

def submod_1(f: f32[2, s0], n: i64[]):
    neg: f32[2, s0] = aten.neg.default(f)
    return (neg, n)
"""
    gm = engine.parse_graph(text)
    assert engine.dump(gm) == text
    nodes = {node.name: node for node in gm.graph.nodes}
    assert nodes["b"].args[1] == float("inf") and nodes["c"].args == (nodes["b"], -3, None)
    assert isinstance(nodes["size"].meta["val"], torch.SymInt)
    assert str(nodes["d"].meta["val"].shape[1]) == "2*s0"
    assert nodes["f"].kwargs["device"] == torch.device("cpu")
    assert isinstance(gm.submod_1, torch.fx.GraphModule)
    assert nodes["g"].target is torch.ops.higher_order.wrap_with_set_grad_enabled


def test_a_signature_comes_back_as_an_export_signature():
    text = engine.dump(engine.capture(torch.nn.Linear(3, 2), (torch.randn(1, 3),)))
    gm = engine.parse_graph(text)
    signature = gm.meta["graph_signature"]
    assert [s.kind.name for s in signature.input_specs] == ["PARAMETER", "PARAMETER",
                                                            "USER_INPUT"]
    assert [s.target for s in signature.input_specs] == ["weight", "bias", None]
    assert signature.output_specs[0].arg.name == "linear"


def test_rules_apply_to_a_parsed_graph_as_to_the_original():
    model, args = AUTOCAST_CASES[0].build()
    program = engine.capture(model, args)
    rules = engine.load_rules(REPO / "rules" / "export.rw")
    expected = engine.dump(rules.apply_program(program))
    parsed = engine.parse_graph(engine.dump(program))
    result = rules.rewrite(parsed, parsed.meta["graph_signature"])
    assert engine.dump(result.module) == expected


# --- bad graph texts -----------------------------------------------------------------------------
BAD = {
    "syntax": """\
def forward(x: f32[4]):
    y: f32[4] = aten.sin.default(x
    return (y,)

def submod_1(x f32[4]):
    return (x,)
""",
    "names": """\
def forward(x: f32[4]):
    y: f32[4] = aten.sinn.default(x)
    z: f32[4] = aten.cos.default(w)
    y: f32[4] = aten.tan.default(x)
    q: f32[4] = os.system(x)
    r: f32[4] = torch.os.system(x)
    s: q99[4] = aten.neg.default(x)
    return (y, z)
""",
    "calls": """\
def forward(x: f32[4]):
    a: f32[4] = aten.sin.default(x, x)
    b: f32[4] = aten.add.Tensor(x, x, beta=2)
    c: f32[4] = operator.add(x)
    d: f32[] = math.sqrt(2.0, 3.0)
    e: f32[4] = aten.add(x)
    return (a, b, c, d, e)
""",
    "reach": """\
def forward(x: f32[4]):
    a = getattr(x, '__class__')
    b = method __subclasses__(a)
    c = method sin(math.sqrt)
    d = getattr(x, 'T', None)
    e: f32[4] = getattr(x, 'T')
    return (e,)
""",
    "literals": """\
def forward(x: f32[4]):
    a: f32[4] = aten.add.Scalar(x, 007)
    b: f32[4] = aten.add.Scalar(x, 99999999999999999999999)
    c: f32[4] = aten.add.Scalar(x, 1e999)
    d: f32[4] = aten.add.Scalar(x, 77777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777)
    e = operator.getitem({[1]: 2}, 1)
    f = aten.sym_size.int(x, '\\N{nope}')
    return (a, b, c, d)
""",
    "sizes": """\
def forward(x: f32[-4], y: f32[99999999999999999999], z: f32[2**40, 2**40],
            w: f32[s0 - 100], v: f32[s0 // 0], u: f32[2**(2**(2**s0))], t: f32[u99999]):
    return (x,)
""",
    "nesting": "def forward(x: f32[4]):\n    y = operator.getitem(x, " + "[" * 150 + "0"
               + "]" * 150 + ")\n    z: " + "(" * 150 + "f32[4]" + ",)" * 150
               + " = aten.sin.default(x)\n    return (y,)\n",
    "devices": """\
def forward(x: f32[4]):
    a: f32[4] = aten.to.device(x, device(type='nope'), torch.float32)
    b: f32[4] = aten.to.device(x, device(type='cpu', index=-5), torch.float32)
    c: f32[4] = aten.to.device(x, device(type=3), torch.float32)
    return (a, b, c)
""",
    "signature": """\
def forward(x: f32[4], w: f32[4]):
    y: f32[4] = aten.mul.Tensor(x, w)
    return (y, None)

signature:
    input w: PARAMETER w
    input x: USER_INPUT
    input x: USER_INPUT
    output y: USER_OUTPUT
    output 3: USER_OUTPUT
""",
    "no_forward": "def main(x: f32[4]):\n    return (x,)\n",
    "attribute": "def forward(x: f32[4]):\n    w = get_attr(weight)\n    return (w,)\n",
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_graph_text_is_told_with_its_place(case, snapshot, tmp_path):
    path = tmp_path / f"{case}.fxg"
    path.write_text(BAD[case])
    with pytest.raises(engine.GraphTextError) as caught:
        engine.load_graph(path)
    text = str(caught.value).replace(str(tmp_path) + "/", "")
    assert re.match(rf"{case}\.fxg:\d+:\d+: error: ", text)
    assert text == snapshot


@pytest.mark.parametrize("target, refusal", [
    ("torch.os.system", "outside the allowed namespaces"),
    ("torch.load", "not a tensor operation"),
    ("torch.save", "not a tensor operation"),
    ("torch.hub.load", "not a tensor operation"),
    ("torch.ops.load_library", "not a tensor operation"),
    ("torch.jit.load", "not a tensor operation"),
])
def test_a_graph_text_runs_nothing_it_names(target, refusal):
    with pytest.raises(engine.GraphTextError, match=refusal):
        engine.parse_graph(f"def forward(x: f32[4]):\n    y = {target}(x)\n    return (y,)\n")


def _dynamo_graphs(case) -> list[torch.fx.GraphModule]:
    graphs = []

    def keep(gm, example_inputs):
        graphs.append((gm, example_inputs))
        return gm.forward

    torch._dynamo.reset()
    model, args = case.build()
    torch.compile(model, backend=keep, dynamic=case.dynamic_shapes is not None)(*args)
    return graphs


@pytest.mark.parametrize("case", [*AUTOCAST_CASES, *GRAD_CASES, *MIXED_CASES],
                         ids=lambda case: case.name)
def test_a_dynamo_graph_parses_back_to_itself_and_runs_as_the_original(case):
    torch.set_grad_enabled(case.grad_enabled)
    try:
        graphs = _dynamo_graphs(case)
        assert graphs
        for gm, inputs in graphs:
            text = engine.dump(gm)
            parsed = engine.parse_graph(text)
            assert engine.dump(parsed) == text
            with torch.no_grad():
                expected = gm(*[_copy(value) for value in inputs])
                got = parsed(*[_copy(value) for value in inputs])
            torch.testing.assert_close(got, expected)
    finally:
        torch.set_grad_enabled(True)


def _copy(value):
    return value.clone() if isinstance(value, torch.Tensor) else value
