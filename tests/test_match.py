"""Region marker patterns: the compiled matchers agree with the reference interpreter, and
both mean what the README says. (DAG patterns: tests/test_dag.py.)"""

from __future__ import annotations

import pytest
import torch
import torch.fx

import engine
from engine.matching.match import compile_node, match_node, same_value
from tests.graphs import ENTER, EXIT

HEADER = """
use torch.amp.autocast_mode._enter_autocast as enter
use torch.amp.autocast_mode._exit_autocast as exit
use torch.ops.higher_order.wrap_with_autocast as hop
use torch.bfloat16
use torch.float16
"""

PATTERNS = {
    "any": "enter(*_)",
    "capture_all": "enter(*$m)",
    "nothing": "enter()",
    "cpu_rest": "enter('cpu', *_)",
    "exact": "enter('cpu', bfloat16, True, False)",
    "four_wildcards": "enter(_, _, _, _)",
    "four_vars": "enter($d, $t, $on, $c)",
    "same_twice": "enter(_, _, $b, $b)",
    "one_is_not_true": "enter(_, _, 1, *_)",
    "one_point_oh": "enter(_, _, _, _, 1.0)",
    "float16": "enter(_, float16, *_)",
    "none_dtype": "enter('cpu', None, *_)",
    "keyword": "enter(*_, cache=False)",
    "keyword_var": "enter('cuda', *$rest, cache=$c)",
}

ARGS = [
    (("cpu", torch.bfloat16, True, False), {}),
    (("cpu", torch.float16, True, True), {}),
    (("cuda", torch.bfloat16, False, False), {}),
    (("cpu", None, False, None), {}),
    (("cpu", torch.bfloat16, True, False, 1), {}),
    (("cpu", torch.bfloat16, 1, False), {}),
    ((), {}),
    (("cuda", torch.bfloat16), {"cache": False}),
    (("cpu",), {"cache": True}),
]


def _patterns():
    text = HEADER + "".join(
        f"rule {name}:\n    match $opener = {pattern} ... exit($opener)\n    outline with hop()\n"
        for name, pattern in PATTERNS.items())
    return {rule.name: rule.pattern.opener for rule in engine.rules_from_text(text).rules}


def _nodes():
    graph = torch.fx.Graph()
    nodes = [graph.call_function(ENTER, args, kwargs) for args, kwargs in ARGS]
    nodes.append(graph.call_function(EXIT, (nodes[0],)))
    nodes.append(graph.call_method("sin", (nodes[0],)))
    return nodes


OPENERS = _patterns()
NODES = _nodes()


@pytest.mark.parametrize("name", list(PATTERNS))
def test_compiled_matcher_agrees_with_interpreter(name):
    pattern = OPENERS[name]
    compiled = compile_node(pattern)
    for node in NODES:
        interpreted, fast = {}, {}
        expected = match_node(pattern, node, interpreted, [])
        assert compiled(node, fast, []) == expected, node.format_node()
        if expected:
            assert interpreted.keys() == fast.keys()
            assert all(same_value(interpreted[k], fast[k]) for k in interpreted)


# Which of ARGS (by index) each pattern matches: the semantics, spelled out.
EXPECTED = {
    "any": {0, 1, 2, 3, 4, 5, 6},  # `*_` covers positional arguments, not keywords
    "capture_all": {0, 1, 2, 3, 4, 5, 6},
    "nothing": {6},
    "cpu_rest": {0, 1, 3, 4, 5},
    "exact": {0},
    "four_wildcards": {0, 1, 2, 3, 5},
    "four_vars": {0, 1, 2, 3, 5},
    "same_twice": {1, 2},
    "one_is_not_true": {5},
    "one_point_oh": set(),  # no schema reads it as a float: 1.0 is not the int 1
    "float16": {1},
    "none_dtype": {3},
    "keyword": {7},
    "keyword_var": {7},
}


@pytest.mark.parametrize("name", list(PATTERNS))
def test_pattern_semantics(name):
    matched = {i for i, node in enumerate(NODES[:len(ARGS)]) if match_node(OPENERS[name], node, {}, [])}
    assert matched == EXPECTED[name]


def test_bindings_hold_what_they_name():
    bindings = {}
    assert match_node(OPENERS["keyword_var"], NODES[7], bindings, [])
    assert bindings == {"rest": (torch.bfloat16,), "c": False}
    bindings = {}
    assert match_node(OPENERS["four_vars"], NODES[3], bindings, [])
    assert bindings == {"d": "cpu", "t": None, "on": False, "c": None}


def test_a_pattern_never_matches_another_target_or_op():
    for pattern in OPENERS.values():
        assert not match_node(pattern, NODES[-2], {}, [])  # _exit_autocast
        assert not match_node(pattern, NODES[-1], {}, [])  # call_method


@pytest.mark.parametrize("a, b, same", [
    (1, 1.0, False), (2.0, 2.0, True), (True, 1, False), (0, False, False), ("cpu", "cpu", True),
    (torch.bfloat16, torch.bfloat16, True), (torch.bfloat16, torch.float16, False),
    (None, None, True), (None, 0, False), ((1, "a"), [1, "a"], True), ((1,), (1, 2), False),
])
def test_same_value(a, b, same):
    assert same_value(a, b) is same
    assert same_value(b, a) is same


def test_same_value_compares_nodes_by_identity():
    graph = torch.fx.Graph()
    x, y = graph.placeholder("x"), graph.placeholder("y")
    assert same_value(x, x) and not same_value(x, y) and not same_value(x, "x")
