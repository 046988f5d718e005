"""Rules -> findings: does each rewrite compute what it replaces? (`engine verify`)

Input: a RuleSet, models (optional: exported programs or GraphModules, each with a label), how
many instances to draw for each rule and a seed. Output: a `Verification`: for each rule, what
it was checked on and how long it took; and the findings, each a rule, a kind, a sentence, the
inputs that show it and what each side computed.

Where the instances come from:
- drawn (DAG rules): hypothesis writes the pattern out with drawn inputs
  (`engine.tools.synthesize`); the engine decides on that graph as on any other (the guards read
  the drawn values' metadata), and the rule's decision is cut out as two graphs over the match's
  inputs (`engine.tools.extract`): the pattern's nodes, and what the rewrite builds in their
  place. Both run on the drawn inputs (`engine.tools.compare`). A failing instance is shrunk by
  hypothesis to the simplest one that still fails.
- matches: every decision the rules take on the given models, cut out the same way and run on
  random inputs of the matched values' dtypes and shapes (three seeds). A match on a tensor of a
  dtype the rule's `dtypes` leaves out is a finding too: the rule fires where it was not meant to.
- programs: each model before and after all the rules, on random inputs and its own parameters:
  outputs, inputs written in place, which outputs require grad, and gradients where both have
  them (a program through an op without an autograd formula, as Inductor's
  `prims.convert_element_type`, has none: its line says which). This is how region rules are
  verified; a difference is pinned on the rules that make it alone, where they do.

Both sides of every comparison run from one random state (`compare.same_random_state`). Where
verify fails itself on a rule, that is a finding of that rule (`CRASH`), and the other rules
are checked as ever.

Besides values, the nodes a template builds must record what they compute (`meta["val"]`: dtype
and shape), since later rules and passes read it.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import dataclass, field

import torch
import torch.fx
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import NoSuchExample
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind
from torch._subclasses.fake_tensor import FakeTensorMode

from ..graphs.dump import dump, format_type
from ..graphs.errors import GraphError
from ..graphs.values import recorded
from ..language import checked
from ..language.diagnostics import Diagnostic
from ..matching.dag import DagIndex
from ..matching.guards import Context
from ..rewriting.decide import decide_dag_pass
from ..rewriting.evaluate import Evaluator
from .compare import (ALIASES, FAILS, REFINES, SIGNED_ZERO, SOFT, Allowance, Comparison,
                      Difference, Rejected, allowance_of_rules, compare_gradients,
                      compare_graphs, random_like, same_random_state)
from .extract import Extracted, extract
from .synthesize import Instance, Unsynthesizable, check_synthesizable, describe_value, instances

META, DTYPES = "meta", "dtypes"
CRASH = "crash"  # verify itself failed on the rule: it is not checked, which is no pass
SEEDS = (0, 1, 2)
HINTS = {
    REFINES: "if the rule is meant to be more defined than its pattern, say so: `verify refines`",
    ALIASES: "right only where nothing writes in place; for functional graphs, say so: "
             "`verify aliases`",
    DTYPES: "guard the rule on the dtype (`where dtype($x) in (...)`), or widen `dtypes`",
    SIGNED_ZERO: "if -0.0 for 0.0 does not matter here, say so: `verify unsigned_zeros`",
    CRASH: "a bug of `engine verify`, not of the rule: the rule is unchecked there; please "
           "report it with the rule",
}


@dataclass
class Finding:
    rule: checked.Rule | None  # None: the rules together, on a program
    kind: str
    message: str
    where: str  # "a drawn instance (shrunk)", "the match at `mul` in MODEL"
    inputs: list[str] = field(default_factory=list)
    first: str | None = None  # what the pattern (the program before) computed, described
    second: str | None = None
    sides: tuple[str, str] = ("the pattern", "the replacement")
    graph: str | None = None  # the pattern written out, for a drawn instance

    def render(self) -> str:
        name = f"rule `{self.rule.name}`" if self.rule else "the rules"
        head = f"{name}: {self.message}"
        if self.rule is not None:
            span = self.rule.action.span if self.kind not in (DTYPES,) else self.rule.span
            lines = [Diagnostic(span, head).render()]
        else:
            lines = [f"error: {head}"]
        hint = HINTS.get(self.kind)
        lines.append(f"  on {self.where}:")
        lines += [f"    {line}" for line in self.inputs]
        if self.first is not None:
            lines.append(f"  {self.sides[0]} gives {self.first}")
            lines.append(f"  {self.sides[1]} gives {self.second}")
        if self.graph:
            lines.append("  the pattern written out:")
            lines += [f"    {line}" for line in self.graph.rstrip().splitlines()]
        if hint:
            lines.append(f"  hint: {hint}")
        return "\n".join(lines)


@dataclass
class RuleStats:
    rule: checked.Rule
    drawn: int = 0
    instances: int = 0  # drawn instances the rule fired on, compared
    rejected: int = 0  # drawn inputs the pattern's ops reject
    guarded: int = 0  # drawn instances the guards (or the footprint) turned down
    refused: int = 0  # drawn instances whose rewrite the engine refuses (wrong type, dtype...)
    matches: int = 0  # matches in the models, compared
    models: int = 0
    seconds: float = 0.0
    seen: Comparison = field(default_factory=Comparison)
    note: str = ""  # why it was not checked on drawn instances
    has_models: bool = False

    def render(self) -> str:
        rule = self.rule
        parts, extras = [], []
        if self.drawn:
            parts.append(f"{self.instances} instance{_s(self.instances)} ({self.drawn} drawn: "
                         f"{self.rejected} rejected by the ops, {self.guarded} turned down by "
                         f"the guards{f', {self.refused} refused' if self.refused else ''})")
        if self.models:
            what = ("match" if rule.is_dag else "region") + ("es" if rule.is_dag else "s") * (
                self.matches != 1)
            parts.append(f"{self.matches} {what} in {self.models} model{_s(self.models)}"
                         + ("" if rule.is_dag else ", the programs run before and after"))
        checked_on = "checked on " + " and ".join(parts) if parts else "not checked"
        if self.has_models and not self.models:
            extras.append("it matched nothing in the models")
        if self.drawn and self.rejected + self.guarded + self.refused == self.drawn and not (
                self.matches):
            extras.append("no drawn instance got past the ops and guards: unchecked, give a "
                          "model it matches")
        if self.seen.largest:
            extras.append(f"largest float difference {self.seen.largest:.3g}, within tolerance")
        if self.seen.refined:
            extras.append(f"more defined than its pattern at {self.seen.refined} elements "
                          "(`refines`)")
        if self.note:
            extras.append(self.note)
        extra = f"; {'; '.join(extras)}" if extras else ""
        return f"{rule.where}: rule `{rule.name}`: {checked_on}{extra}; {self.seconds:.1f} s"


@dataclass
class Verification:
    stats: list[RuleStats]
    findings: list[Finding]
    programs: list[str] = field(default_factory=list)  # one line for each model's program

    @property
    def sound(self) -> bool:
        return not self.findings

    def render(self) -> str:
        parts = [finding.render() for finding in self.findings]
        parts += [stats.render() for stats in self.stats]
        parts += self.programs
        count = len(self.findings)
        parts.append(f"{count} finding{_s(count)} in {len(self.stats)} rule{_s(len(self.stats))}"
                     if count else f"no findings in {len(self.stats)} rule{_s(len(self.stats))}")
        return "\n".join(parts)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def verify(ruleset, models: list[tuple[str, object]] = (), examples: int = 200,
           seed: int = 0) -> Verification:
    """Every rule on drawn instances (DAG rules) and on the matches in `models` (pairs of a
    label and an ExportedProgram or GraphModule); each model's program before and after."""
    with _quiet_fake_tensors():
        return _verify(ruleset, models, examples, seed)


@contextlib.contextmanager
def _quiet_fake_tensors():
    """Drawn inputs that an op rejects are expected by the hundred; fake tensor propagation
    logs each rejection as an error with its traceback. Silenced while verifying."""
    logger = logging.getLogger("torch._subclasses.fake_tensor")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _verify(ruleset, models, examples: int, seed: int) -> Verification:
    result = Verification([RuleStats(rule, has_models=bool(models)) for rule in ruleset.rules],
                          [])
    by_name = {stats.rule.name: stats for stats in result.stats}
    for stats in result.stats:
        started = time.perf_counter()
        try:
            _verify_drawn(stats, examples, seed, result.findings, bool(models))
        except Exception as error:  # one rule's crash never stops the others being checked
            result.findings.append(crash_finding(stats.rule, "its drawn instances", error))
        stats.seconds += time.perf_counter() - started
    for label, model in models:
        try:
            _verify_model(ruleset, label, model, by_name, result)
        except Exception as error:
            result.findings.append(crash_finding(None, label, error))
    return result


def crash_finding(rule: checked.Rule | None, where: str, error: Exception) -> Finding:
    """What verify reports where it fails itself: the rule (or the rules, on a program) stays
    unchecked there, a finding so that it never passes for sound."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return Finding(rule, CRASH, f"verify could not check it: {type(error).__name__}: {first}",
                   where)


# --- drawn instances -----------------------------------------------------------------------------
class _Skip(Exception):
    """A drawn instance that is none: the ops reject it, or the rule does not fire on it."""

    def __init__(self, counter: str):
        super().__init__(counter)
        self.counter = counter


def _verify_drawn(stats: RuleStats, examples: int, seed: int, findings: list[Finding],
                  has_models: bool) -> None:
    rule = stats.rule
    if not rule.is_dag:
        if not has_models:
            stats.note = "a region rule is verified on models: give one"
        return
    if isinstance(rule.action, checked.Erase):
        stats.note = "erases values nothing uses: nothing to compare"
        return
    try:
        check_synthesizable(rule)
    except Unsynthesizable as error:
        stats.note = f"not drawn: {error}"
        return
    search = _Search(_InstanceChecker(rule, stats), stats)
    try:
        minimal = search.run(examples, seed, soft=False)
        if minimal is None and search.soft_seen:  # wrong only in a corner: shrink that one
            minimal = search.run(examples, seed, soft=True)
    except Unsynthesizable as error:
        stats.note = f"not drawn: {error}"
        return
    if minimal is None:
        return
    difference = search.checker.check(minimal, Comparison())
    first, second = _described(difference)
    findings.append(Finding(rule, difference.kind, difference.message,
                            "a drawn instance (shrunk)", minimal.describe_inputs(), first, second,
                            graph=dump(minimal.module)))


class _Search:
    """A counterexample search with hypothesis's `find`: the simplest instance that fails.

    The first search looks for a hard difference (values, aliasing, writes...) and counts what
    it draws until it finds one; soft ones (`compare.SOFT`: refinement, the sign of a zero) it
    notes and passes over, so that a rule wrong both in general and at nan is shown wrong in
    general. Only if it finds nothing hard does a second search shrink a soft one."""

    def __init__(self, checker: "_InstanceChecker", stats: RuleStats):
        self.checker = checker
        self.stats = stats
        self.counting = True
        self.soft_seen = False

    def run(self, examples: int, seed: int, soft: bool) -> Instance | None:
        self.soft = soft
        try:
            return find(instances(self.checker.rule), self.fails,
                        settings=settings(max_examples=examples, database=None, deadline=None,
                                          derandomize=False,
                                          phases=[Phase.generate, Phase.shrink],
                                          suppress_health_check=list(HealthCheck)),
                        random=random.Random(seed))
        except NoSuchExample:
            return None
        finally:
            self.counting = False

    def fails(self, instance: Instance) -> bool:
        stats, counting = self.stats, self.counting
        stats.drawn += counting
        try:
            difference = self.checker.check(instance, stats.seen if counting else Comparison())
        except _Skip as skip:
            if counting:
                setattr(stats, skip.counter, getattr(stats, skip.counter) + 1)
            return False
        if difference is not None and difference.kind in SOFT and not self.soft:
            self.soft_seen = True
            difference = None
        if difference is None:
            stats.instances += counting
            return False
        self.counting = False
        return True


class _InstanceChecker:
    def __init__(self, rule: checked.Rule, stats: RuleStats):
        self.rule = rule
        self.index = DagIndex([rule])
        self.evaluator = Evaluator()
        self.allowance = allowance_of(rule.promises)
        self.stats = stats

    def check(self, instance: Instance, seen: Comparison) -> Difference | None:
        """The rule's two sides on the instance: a difference, None, or `_Skip`."""
        module = instance.module
        placeholders = list(instance.values)
        try:
            _record_values(module, [instance.values[n] for n in placeholders])
        except Exception:  # the pattern's ops reject these inputs
            raise _Skip("rejected") from None
        decided = decide_dag_pass(module, self.index, Context(ambient_grad=True), "",
                                  self.evaluator)
        if decided.problems:
            raise _Skip("refused")  # the engine refuses the rewrite: nothing wrong is built
        root = instance.roots[0]
        decision = next((d for d in decided.decisions if root in d.roots), None)
        if decision is None:
            raise _Skip("guarded")
        extracted = extract(module, decision)
        inputs = [instance.values[node] for node in extracted.inputs]
        names = [instance.names.get(node, node.name) for node in extracted.inputs]
        try:
            difference = compare_graphs(extracted.before, extracted.after, inputs,
                                        self.allowance, seen, names)
        except Rejected:
            raise _Skip("rejected") from None
        return difference or meta_difference(extracted, inputs)


def _record_values(module: torch.fx.GraphModule, inputs: list) -> None:
    """Each node's `meta["val"]` as an exported graph has it: fake tensors for tensors, and
    numbers as they are (a scalar op's result is recorded too, so that a template giving a
    tensor in its place is refused as in a real graph)."""
    mode = FakeTensorMode()

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            node.meta["val"] = super().run_node(node)
            return node.meta["val"]

    with mode:
        Recorder(module).run(*[mode.from_tensor(v) if isinstance(v, torch.Tensor) else v
                               for v in inputs])


def allowance_of(promises: checked.Promises) -> Allowance:
    return Allowance(promises.rtol, promises.atol, promises.refines, promises.aliases,
                     promises.unsigned_zeros)


def meta_difference(extracted: Extracted, inputs: list) -> Difference | None:
    """A node a template built whose recorded value is not what it computes."""
    if not extracted.built:
        return None
    computed: dict[torch.fx.Node, object] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            computed[node] = super().run_node(node)
            return computed[node]

    with torch.no_grad(), same_random_state():
        Recorder(extracted.after).run(*[v.clone() if isinstance(v, torch.Tensor) else v
                                        for v in inputs])
    for node in extracted.built:
        value, meta = computed.get(node), recorded(node, None)
        if isinstance(value, torch.Tensor) and isinstance(meta, torch.Tensor) and all(
                isinstance(d, int) for d in meta.shape) and (
                value.dtype != meta.dtype or list(value.shape) != list(meta.shape)):
            return Difference(META, f"the template's `{node.name}` records {format_type(meta)} "
                                    f"but computes {format_type(value)}", meta, value)
    return None


def _described(difference: Difference) -> tuple[str | None, str | None]:
    if difference.first is None and difference.second is None:
        return None, None
    return describe_value(difference.first), describe_value(difference.second)


# --- models --------------------------------------------------------------------------------------
def _verify_model(ruleset, label: str, model, by_name: dict[str, RuleStats],
                  result: Verification) -> None:
    gm, signature = _graph_of(model)
    observed: list[tuple[torch.fx.GraphModule, list]] = []

    def observe(module: torch.fx.GraphModule, decisions: list) -> None:
        observed.append((module, decisions))

    try:
        rewrite = ruleset.rewrite(gm, signature, observe=observe)
    except GraphError as error:  # refused, or rules that keep firing: nothing to compare
        result.findings.append(Finding(None, FAILS, f"they do not apply to {label}:\n{error}",
                                       label))
        return
    counts = rewrite.report.counts()
    fired = set(counts)
    for name in fired:
        by_name[name].models += 1
        if not by_name[name].rule.is_dag:
            by_name[name].matches += counts[name]
    reported: set[str] = set()
    for module, decisions in observed:
        for decision in decisions:
            stats = by_name[decision.rule.name]
            started = time.perf_counter()
            try:
                finding = _verify_match(stats, label, module, decision)
            except Exception as error:
                finding = crash_finding(decision.rule, f"the match at "
                                        f"`{decision.roots[0].name}` in {label}", error)
            stats.seconds += time.perf_counter() - started
            if finding is not None and decision.rule.name not in reported:
                reported.add(decision.rule.name)  # one finding a rule a model
                result.findings.append(finding)
    if rewrite.module is gm:
        result.programs.append(f"{label}: the rules change nothing")
        return
    finding, seen = _verify_program(ruleset, label, model, gm, rewrite.module, fired)
    if finding is not None:
        result.findings.append(finding)
        return
    gradients = "" if seen.gradientless else ", gradients"
    line = (f"{label}: the program computes the same before and after the rules (outputs, "
            f"inputs written in place{gradients}; {len(SEEDS)} seeds)")
    if seen.gradientless:
        line += f"; gradients not compared: {_gradientless(seen.gradientless)}"
    result.programs.append(line)


def _gradientless(sides: dict[int, str]) -> str:
    """Which of the programs has no gradient, and why (the first side's reason if both)."""
    if len(sides) == 2:
        who = "the program has none, neither before the rules nor after them"
    elif 0 in sides:
        who = "before the rules the program has none, after them it has one"
    else:
        who = "after the rules the program has none, before them it has one"
    return f"{who} ({sides[min(sides)]})"


def _graph_of(model) -> tuple[torch.fx.GraphModule, object]:
    if isinstance(model, ExportedProgram):
        return model.graph_module, model.graph_signature
    return model, model.meta.get("graph_signature")


def _verify_match(stats: RuleStats, label: str, module, decision) -> Finding | None:
    rule = decision.rule
    if isinstance(rule.action, checked.Erase):
        stats.matches += 1
        return None
    extracted = extract(module, decision)
    values = [recorded(node, None) for node in extracted.inputs]
    where = f"the match at `{decision.roots[0].name}` in {label}"
    names = [_bound_name(decision.bindings, node) for node in extracted.inputs]
    outside = _outside_dtypes(rule, values)
    if outside is not None:
        return Finding(rule, DTYPES, f"fires on a {outside} tensor; its `dtypes` leave "
                                     f"{outside} out", where,
                       [f"{name}: {format_type(value)}" for name, value in zip(names, values)])
    stats.matches += 1
    allowance = allowance_of(rule.promises)
    for seed in SEEDS:
        generator = torch.Generator().manual_seed(seed)
        inputs = [random_like(value, generator) for value in values]
        try:
            difference = (compare_graphs(extracted.before, extracted.after, inputs, allowance,
                                         stats.seen, names)
                          or meta_difference(extracted, inputs))
        except Rejected:
            continue
        if difference is not None:
            first, second = _described(difference)
            shown = [f"{name} = {describe_value(value)}" for name, value in zip(names, inputs)]
            return Finding(rule, difference.kind, difference.message,
                           f"{where} (random inputs, seed {seed})", shown, first, second)
    return None


def _bound_name(bindings: dict, node: torch.fx.Node) -> str:
    for name, value in bindings.items():
        if value is node:
            return f"${name}"
    return node.name


def _outside_dtypes(rule: checked.Rule, values: list) -> str | None:
    if rule.promises.dtypes is None:
        return None
    for value in values:
        if isinstance(value, torch.Tensor) and value.dtype not in rule.promises.dtypes:
            return str(value.dtype).removeprefix("torch.")
    return None


# --- programs ------------------------------------------------------------------------------------
def _verify_program(ruleset, label: str, model, before, after,
                    fired: set[str]) -> tuple[Finding | None, Comparison]:
    """The finding the programs make, if any, and what the comparison saw."""
    allow = allowance_of_rules([rule.promises for rule in ruleset.rules if rule.name in fired])
    difference, seed, inputs, seen = _program_difference(model, before, after, allow)
    if difference is None:
        return None, seen
    culprits = _culprits(ruleset, model, before, fired)
    rule = culprits[0] if len(culprits) == 1 else None
    who = ("" if rule is not None else
           f" (rules that fired: {', '.join(sorted(fired))})")
    first, second = _described(difference)
    return Finding(rule, difference.kind, f"the program changes: {difference.message}{who}",
                   f"{label} (random inputs, seed {seed})", [], first, second,
                   sides=("before the rules, it", "after them, it")), seen


def _program_difference(model, before, after, allow: Allowance):
    """The first difference of the two programs over the seeds, held to what the rules that
    fired promise (`allow`), with its seed and inputs; and what the comparison saw."""
    placeholders = [node for node in before.graph.nodes if node.op == "placeholder"]
    names = [node.name for node in placeholders]
    grad_inputs = _differentiable(model, placeholders)
    seen = Comparison(sides=("before the rules, the program", "after them, it"))
    for seed in SEEDS:
        generator = torch.Generator().manual_seed(seed)
        inputs = _program_inputs(model, placeholders, generator)
        try:
            difference = (compare_graphs(before, after, inputs, allow, seen, names)
                          or compare_gradients(before, after, inputs, grad_inputs, allow,
                                               seen, names))
        except Rejected:
            continue
        if difference is not None:
            return difference, seed, inputs, seen
    return None, None, None, seen


def _program_inputs(model, placeholders, generator) -> list:
    """The model's own parameters, buffers and constants; random user inputs."""
    if not isinstance(model, ExportedProgram):
        return [random_like(recorded(node, None), generator) for node in placeholders]
    state = {**model.state_dict, **model.constants}
    inputs = []
    for spec, node in zip(model.graph_signature.input_specs, placeholders):
        if spec.target in state:
            inputs.append(state[spec.target].detach().clone())
        else:
            inputs.append(random_like(recorded(node, None), generator))
    return inputs


def _differentiable(model, placeholders) -> list[int]:
    """The inputs gradients are taken for: user inputs and parameters (not buffers, which a
    program may write in place) of a floating dtype."""
    if isinstance(model, ExportedProgram):
        kinds = (InputKind.USER_INPUT, InputKind.PARAMETER)
        indices = [index for index, spec in enumerate(model.graph_signature.input_specs)
                   if spec.kind in kinds]
    else:
        indices = list(range(len(placeholders)))
    return [index for index in indices
            if isinstance(value := recorded(placeholders[index], None), torch.Tensor)
            and value.dtype.is_floating_point]


def _culprits(ruleset, model, before, fired: set[str]) -> list[checked.Rule]:
    """The rules that, applied alone, change what the program computes."""
    from ..rewriting.driver import RuleSet

    found = []
    for rule in ruleset.rules:
        if rule.name not in fired:
            continue
        try:
            alone = RuleSet([rule]).rewrite(before, _graph_of(model)[1]).module
        except GraphError:
            continue
        if alone is not before and _program_difference(
                model, before, alone, allowance_of_rules([rule.promises]))[0] is not None:
            found.append(rule)
    return found
