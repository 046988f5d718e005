"""Property tests: random rules on random graphs they match, through the whole pipeline.

Hypothesis draws a small graph of elementwise aten ops (shared values, several outputs,
keywords, literal arguments), then a rule read off it: a root, nested calls down to a random
depth (some `shared`, some bound as `$v = ...`, some `commutative`), repeated variables,
keyword patterns (`alpha=2`, `**$kw`, `**_`), sometimes a second root among the users of what
the first bound, and a template that may reuse any bound node, interiors included. The rule is
written as `.rw` text and loaded like any rule file. Then:

- loading never fails (the rules are right by construction) and applying never raises anything
  but a `GraphError` that names the rule (never an internal error);
- the reference interpreter and the compiled matcher agree at every node of the graph;
- one pass, decided and built, lints, runs, and is the graph rebuilt by hand from the decisions'
  bindings with FX's own mutation API: templates inserted before their roots, uses redirected,
  then every node of a match that nothing uses any more erased, and nothing else;
- `engine verify` judges the rule (drawn instances, and the graph as a model) without an
  internal error, on graphs and rules drawn `rich`: with a random op, a prim that has no
  autograd formula, more `_` inputs and templates making constants (what once crashed it);
  and a graph compared with itself is the same, values and gradients.

CI runs the `ci` profile (a fixed number of examples, derandomized, so main stays green); the
nightly profile runs many more with fresh seeds: `scripts/nightly`.
"""

from __future__ import annotations

import copy
import re

import torch
import torch.fx
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch._subclasses.fake_tensor import FakeTensorMode

import engine
from engine.graphs.equivalence import dag_difference
from engine.language import checked
from engine.matching.guards import Context
from engine.matching.match import compile_node, compile_value, match_node, match_value
from engine.rewriting.decide import decide_dag_pass
from engine.rewriting.evaluate import Evaluator
from engine.rewriting.replace import rewrite_graph
from engine.tools.compare import Allowance, Comparison, compare_gradients, compare_graphs
from engine.tools.verify import CRASH, verify


aten = torch.ops.aten
UNARY = {"sin": aten.sin, "cos": aten.cos, "neg": aten.neg, "relu": aten.relu,
         "tanh": aten.tanh}
BINARY = {"add": aten.add, "mul": aten.mul, "sub": aten.sub}
OVERLOAD = {name: (packet.Tensor if name in BINARY else packet.default)
            for name, packet in {**UNARY, **BINARY}.items()}
NAME_OF = {overload: name for name, overload in OVERLOAD.items()}
# Patterns may name an op by its packet (`sin`) or its overload (`sin_o`); templates by overload.
USES = "\n".join(f"use torch.ops.aten.{name}\nuse torch.ops.aten.{name}.{o._overloadname} as "
                 f"{name}_o" for name, o in OVERLOAD.items())
SHAPE = (3,)
CONTEXT = Context(ambient_grad=True)
# What the graphs and rules `verify` is judged on draw besides (`rich`): the shapes that once
# crashed it. A random op (both sides must draw alike), a prim with no autograd formula (as
# every graph Inductor hands its passes has), more `_` inputs, and templates that make a tensor
# from no tensor (evaluated in the graph's fake mode).
RANDOM, CONVERT = aten.rand.default, torch.ops.prims.convert_element_type.default
RICH_NAME_OF = {**NAME_OF, RANDOM: "rand", CONVERT: "convert_element_type"}
RICH_USES = USES + """
use torch.ops.aten.rand
use torch.ops.aten.rand.default as rand_o
use torch.ops.prims.convert_element_type
use torch.ops.prims.convert_element_type.default as convert_element_type_o
use torch.ops.aten.zeros.default as zeros_o
use torch.ops.aten.full.default as full_o
use torch.ops.aten.scalar_tensor.default as scalar_tensor_o"""
CONSTANTS = ("zeros_o([3])", "full_o([3], 1.5)", "scalar_tensor_o(2.0)")


# --- graphs ----------------------------------------------------------------------------------
@st.composite
def graphs(draw, rich: bool = False) -> torch.fx.GraphModule:
    """1 or 2 inputs, 1 to 8 elementwise ops over earlier values, 1 to 3 outputs; `rich`, some
    of them `rand([3])` or `prims.convert_element_type(v, torch.float32)`."""
    with FakeTensorMode():
        fake = torch.empty(SHAPE)
    graph = torch.fx.Graph()
    values = [graph.placeholder(f"x{i}") for i in range(draw(st.integers(1, 2)))]
    for value in values:
        value.meta["val"] = fake
    for _ in range(draw(st.integers(1, 8))):
        earlier = st.sampled_from(values)
        name = draw(st.sampled_from(sorted(OVERLOAD) + ["rand", "convert"] * rich))
        if name in ("rand", "convert"):
            node = graph.call_function(RANDOM, ([3],)) if name == "rand" else \
                graph.call_function(CONVERT, (draw(earlier), torch.float32))
            node.meta["val"] = fake
            values.append(node)
            continue
        if name in UNARY:
            args, kwargs = (draw(earlier),), {}
        elif name == "mul" and draw(st.booleans()):
            args, kwargs = (draw(earlier), draw(st.sampled_from([2.0, 0.5]))), {}
        else:
            args = (draw(earlier), draw(earlier))
            kwargs = {"alpha": draw(st.sampled_from([2, 3]))} if name != "mul" and draw(
                st.booleans()) else {}
        node = graph.call_function(OVERLOAD[name], args, kwargs)
        node.meta["val"] = fake
        values.append(node)
    calls = values[-1:] + draw(st.lists(st.sampled_from(values), max_size=2, unique=True))
    graph.output(tuple(dict.fromkeys(calls)))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


# --- rules read off a graph ------------------------------------------------------------------
class RuleWriter:
    """Writes a pattern for a node of the graph as .rw text, in the order the checker reads
    it, remembering what each variable binds."""

    def __init__(self, draw, rich: bool = False):
        self.draw = draw
        self.rich = rich
        self.name_of = RICH_NAME_OF if rich else NAME_OF
        self.names: dict[torch.fx.Node, str] = {}  # nodes variables bind
        self.literals: list[str] = []  # variables binding literals
        self.keywords: list[str] = []  # variables binding `**` keywords
        self.covered: set[torch.fx.Node] = set()  # nodes the pattern's calls match
        self.count = 0

    def fresh(self, prefix: str = "v") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def call(self, node: torch.fx.Node, depth: int) -> str:
        draw = self.draw
        self.covered.add(node)
        name = self.name_of[node.target]
        callee = name + ("_o" if draw(st.booleans()) else "")
        args = [self.argument(arg, depth) for arg in node.args]
        kwargs = self.keyword_patterns(node)
        prefix = "commutative " if len(args) == 2 and name in ("add", "mul") and draw(
            st.booleans()) else ""
        return f"{prefix}{callee}({', '.join(args + kwargs)})"

    def keyword_patterns(self, node: torch.fx.Node) -> list[str]:
        choice = self.draw(st.sampled_from(["exact", "any", "bind"] +
                                           ["repeat"] * 2 * bool(self.keywords)))
        if choice == "any":
            return ["**_"]
        if choice == "bind":
            self.keywords.append(self.fresh("kw"))
            return [f"**${self.keywords[-1]}"]
        if choice == "repeat":  # it must equal what the first one bound
            return [f"**${self.draw(st.sampled_from(self.keywords))}"]
        return [f"{key}={value!r}" for key, value in node.kwargs.items()]

    def argument(self, arg, depth: int) -> str:
        draw = self.draw
        if not isinstance(arg, torch.fx.Node):  # a literal: itself, `_`, or bound (a number)
            choice = draw(st.sampled_from(["literal", "wildcard"] + ["bind"] * (
                type(arg) in (int, float))))
            if choice == "bind":
                self.literals.append(self.fresh("k"))
                return f"${self.literals[-1]}"
            return repr(arg) if choice == "literal" else "_"
        if arg in self.names:
            return f"${self.names[arg]}"
        if arg.op == "call_function" and depth > 0 and draw(st.booleans()):
            text = ("shared " if draw(st.booleans()) else "") + self.call(arg, depth - 1)
            if draw(st.booleans()):
                self.names[arg] = self.fresh()
                text = f"${self.names[arg]} = {text}"
            return text
        if draw(st.integers(0, 1 if self.rich else 5)) == 0:
            return "_"
        self.names[arg] = self.fresh()
        return f"${self.names[arg]}"

    def template(self, depth: int, avoid: set[str]) -> str:
        """A value to build: a bound node, or an op over smaller templates. Something must be
        bound that `avoid` does not name."""
        draw = self.draw
        bound = sorted(name for name in self.names.values() if name not in avoid)
        if self.rich and draw(st.integers(0, 3)) == 0:
            return draw(st.sampled_from(CONSTANTS))
        if depth <= 0 or draw(st.integers(0, 2)) == 0:
            return f"${draw(st.sampled_from(bound))}"
        name = draw(st.sampled_from(sorted(OVERLOAD)))
        if name in UNARY:
            return f"{name}_o({self.template(depth - 1, avoid)})"
        left = self.template(depth - 1, avoid)
        if name == "mul" and self.literals and draw(st.booleans()):
            return f"mul_o({left}, ${draw(st.sampled_from(self.literals))})"
        right = self.template(depth - 1, avoid)
        extra = f", **${draw(st.sampled_from(self.keywords))}" if name == "add" and \
            self.keywords and draw(st.booleans()) else ""
        return f"{name}_o({left}, {right}{extra})"

    def can_build_without(self, avoid: set[str]) -> bool:
        return any(name not in avoid for name in self.names.values())


@st.composite
def cases(draw, rich: bool = False):
    """A graph, and the text of a rule that matches it somewhere (`rich`: see RICH_USES)."""
    gm = draw(graphs(rich))
    calls = [n for n in gm.graph.nodes if n.op == "call_function"]
    root = draw(st.sampled_from(calls))
    writer = RuleWriter(draw, rich)
    depth = draw(st.integers(0, 3))
    roots = [writer.call(root, depth)]
    root_names = ["r0"] if draw(st.booleans()) else []
    if root_names:
        roots[0] = f"$r0 = {roots[0]}"
        writer.names[root] = "r0"
    second = sorted({user for node in writer.names for user in node.users
                     if user.op == "call_function" and user not in writer.covered},
                    key=list(gm.graph.nodes).index)
    if second and draw(st.booleans()):
        if not root_names:
            roots[0] = f"$r0 = {roots[0]}"
            writer.names[root] = "r0"
            root_names = ["r0"]
        node = draw(st.sampled_from(second))
        roots.append(f"$r1 = {writer.call(node, draw(st.integers(0, 1)))}")
        writer.names[node] = "r1"
        root_names.append("r1")
    if len(roots) == 1:
        replaced = [(None, set(root_names))]
    else:
        replaced = [(name, {name}) for name in draw(st.sampled_from([["r0"], ["r1"],
                                                                      ["r0", "r1"]]))]
    if draw(st.integers(0, 9)) == 0 or not all(writer.can_build_without(avoid)
                                               for _, avoid in replaced):
        action = "erase"
    else:
        action = "replace " + ", ".join(
            (f"${name} " if name else "")
            + f"with {writer.template(draw(st.integers(0, 2)), avoid)}"
            for name, avoid in replaced)
    uses = RICH_USES if rich else USES
    return gm, f"{uses}\nrule r:\n    match {', '.join(roots)}\n    {action}\n"


# --- the properties --------------------------------------------------------------------------
@given(cases())
def test_random_rules_on_random_graphs(case):
    gm, text = case
    rules = engine.rules_from_text(text)  # a RuleError here is a bug of the writer above
    rules.max_passes = 4
    _matchers_agree(rules.rules[0], gm)
    inputs = tuple(torch.randn(SHAPE) for n in gm.graph.nodes if n.op == "placeholder")
    before = engine.dump(gm)
    try:
        result = rules.rewrite(gm)
    except engine.GraphError as error:
        assert all(p.message.startswith(("rule `r` (", "DAG rules still match"))
                   for p in error.problems), str(error)
        assert engine.dump(gm) == before
        return
    assert engine.dump(gm) == before
    result.module.graph.lint()
    result.module(*inputs)
    _one_pass_is_the_hand_built_graph(rules, gm, inputs)


def _matchers_agree(rule: checked.Rule, gm: torch.fx.GraphModule) -> None:
    """The interpreter and the compiled matcher of the first root, at every node; of the
    later roots, wherever the first matched, from the bindings it made."""
    (first_name, first), *later = rule.pattern.roots
    for node in gm.graph.nodes:
        bindings, _ = _agree(first, node, {})
        if bindings is None:
            continue
        if first_name:
            bindings[first_name] = node  # as `match_at` names a root
        for _, pattern in later:
            for other in gm.graph.nodes:
                _agree(pattern, other, dict(bindings))


def _agree(pattern, node, bindings):
    slow, fast = (dict(bindings), []), (dict(bindings), [])
    if isinstance(pattern, checked.NodePattern):
        expected = match_node(pattern, node, *slow)
        got = compile_node(pattern)(node, *fast)
    else:
        expected = match_value(pattern, node, *slow)
        got = compile_value(pattern)(node, *fast)
    assert got == expected, node.format_node()
    if not expected:
        return None, None
    assert slow == fast, node.format_node()
    return slow


def _one_pass_is_the_hand_built_graph(rules, gm, inputs) -> None:
    decided = decide_dag_pass(gm, rules.dags, CONTEXT, "", Evaluator())
    assume(decided.decisions and not decided.problems)
    ours = rewrite_graph(gm, decided.decisions, {})
    ours.graph.lint()
    expected, removed = _by_hand(gm, decided.decisions)
    assert {n.name for n in removed} == {
        n.name for d in decided.decisions for n in (*d.removed, *d.replaced)}
    assert dag_difference(ours, expected) is None, dag_difference(ours, expected)
    torch.testing.assert_close(ours(*inputs), expected(*inputs), equal_nan=True)


def _by_hand(gm: torch.fx.GraphModule, decisions):
    """The rewrite as FX's mutation API writes it, from the decisions' bindings alone."""
    copied = copy.deepcopy(gm)
    twin = dict(zip(gm.graph.nodes, copied.graph.nodes))
    graph = copied.graph
    replaced = []
    order = {node: index for index, node in enumerate(graph.nodes)}
    for decision in decisions:
        bindings = {name: torch.fx.map_arg(value, twin.get) if isinstance(
            value, (torch.fx.Node, tuple, list, dict)) else value
            for name, value in decision.bindings.items()}
        made = {}  # equal calls of one match are one node, made where first needed
        templates = [(twin[decision.roots[index]], template)
                     for index, template in getattr(decision.rule.action, "replacements", ())]
        for root, template in sorted(templates, key=lambda pair: order[pair[0]]):
            with graph.inserting_before(root):
                replaced.append((root, _build(graph, template, bindings, made)))
    order = {node: index for index, node in enumerate(graph.nodes)}
    # Later roots first: a replacement may be an earlier replaced root, whose own uses are
    # then redirected in their turn.
    for root, new in sorted(replaced, key=lambda pair: -order[pair[0]]):
        root.replace_all_uses_with(new)
    # a match's interior nodes, the roots it replaces or erases: never a root it leaves, nor
    # an interior a template names (it stays, used or not, as a root left in place does)
    replaced_roots = {root for d in decisions for root in d.replaced}
    named = {twin[node] for d in decisions for _, template in getattr(
        d.rule.action, "replacements", ()) for use in checked.template_uses(template)
        for node in _nodes(d.bindings[use.name]) if node not in replaced_roots}
    candidates = {twin[n] for d in decisions
                  for n in (*d.removed, *d.kept, *d.replaced)} - named
    erased = []
    changed = True
    while changed:  # whatever of a match nothing uses any more goes; nothing else does
        changed = False
        for node in reversed(list(graph.nodes)):
            if node in candidates and not node.users and node not in erased:
                graph.erase_node(node)
                erased.append(node)
                changed = True
    copied.recompile()
    back = {v: k for k, v in twin.items()}
    return copied, [back[n] for n in erased]


def _nodes(value) -> list[torch.fx.Node]:
    found = []
    torch.fx.map_arg(value, found.append)
    return found


def _build(graph, template, bindings, made):
    if isinstance(template, checked.Value):
        return bindings[template.name]
    if isinstance(template, checked.Const):
        return template.value
    args = []
    kwargs = {}
    for arg in template.args:
        args.append(_build(graph, arg, bindings, made))
    for name, arg in template.kwargs:
        if name is None:
            kwargs.update(bindings[arg.name])
        else:
            kwargs[name] = _build(graph, arg, bindings, made)
    key = (template.target, tuple(args), tuple(kwargs.items()))
    if key not in made:  # equal calls of one match are one node
        made[key] = graph.call_function(template.target, tuple(args), kwargs)
    return made[key]


@settings(max_examples=40,  # verify draws instances itself: a search inside the search
          suppress_health_check=[HealthCheck.nested_given, HealthCheck.too_slow])
@given(cases(rich=True))
def test_verify_judges_random_rules_without_an_internal_error(case):
    """`engine verify` on rules it has never seen, drawn instances and the graph as a model:
    findings or none, each rendered with its rule's line, never an exception nor a failure of
    verify itself (a `CRASH` finding); a template making a constant is evaluated with the
    graph's values (never "fails on its inputs"). And the graph compared with itself, random
    op and prim without gradient included, is the same: values and gradients where it has
    them."""
    gm, text = case
    rules = engine.rules_from_text(text)
    rules.max_passes = 4
    result = verify(rules, [("the graph", gm)], examples=5)
    for finding in result.findings:
        rendered = finding.render()
        assert rendered.startswith(("<text>:", "error: the rules")), rendered
        assert finding.kind != CRASH, rendered
        assert "fails on its inputs" not in rendered, rendered
    assert result.render().splitlines()[-1].endswith("in 1 rule")
    inputs = [torch.randn(SHAPE) for n in gm.graph.nodes if n.op == "placeholder"]
    names = [f"x{i}" for i in range(len(inputs))]
    assert compare_graphs(gm, gm, inputs, Allowance(), Comparison(), names) is None
    seen = Comparison()
    assert compare_gradients(gm, gm, inputs, list(range(len(inputs))), Allowance(), seen,
                             names) is None
    assert set(seen.gradientless) in (set(), {0, 1})


def test_the_writer_reaches_every_feature():
    """The strategies above do draw what the properties claim to cover (a guard against a
    writer that silently stopped writing, say, `shared` or second roots)."""
    seen = set()

    @settings(max_examples=300, derandomize=True, database=None)
    @given(cases())
    def collect(case):
        text = case[1].split("rule r:")[1]
        for feature in ("shared ", "commutative ", "**$kw", "**_", "$r1 =", "erase", "_o(",
                        "= ", "$k"):
            if feature in text:
                seen.add(feature)

    collect()
    assert seen == {"shared ", "commutative ", "**$kw", "**_", "$r1 =", "erase", "_o(", "= ",
                    "$k"}



def test_the_rich_writer_reaches_the_shapes_that_crashed_verify():
    """What `test_verify_judges_random_rules_without_an_internal_error` is there for: patterns
    with two `_` tensors, over a random op and a prim, templates making constants; graphs
    with a prim and a random op in them."""
    seen = set()

    @settings(max_examples=300, derandomize=True, database=None)
    @given(cases(rich=True))
    def collect(case):
        gm, text = case
        match, _, action = text.split("rule r:")[1].partition("\n    replace")
        if len(re.findall(r"[(,] ?_[,)]", match)) >= 2:
            seen.add("two `_`")
        for feature in ("rand", "convert_element_type"):
            if feature in match:
                seen.add(feature)
        if any(constant in action for constant in CONSTANTS):
            seen.add("a constant")
        targets = {node.target for node in gm.graph.nodes}
        if {RANDOM, CONVERT} <= targets:
            seen.add("a graph with both")

    collect()
    assert seen == {"two `_`", "rand", "convert_element_type", "a constant", "a graph with both"}
