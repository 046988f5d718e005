"""Pictures of a rewrite: a module tree before and after the rules, as Graphviz DOT, SVG or PNG.

Input: the module before, the module after and the `Changes` a traced rewrite recorded (which
rule took which nodes, outlined which submodule, made which nodes), or one module alone.
Output: DOT source (`to_dot`), and SVG or PNG bytes laid out by a `dot`-compatible program
(`render`): the `graphviz-pure` wheel's binary, else Graphviz's own `dot`.

The two graphs stand side by side. A region a rule matched is a cluster labelled with the rule;
an outlined submodule is a cluster inside its caller, labelled with its name, its HOP and the
rule that made it; nodes a rule took (before) or made (after) are filled with the rule's colour,
and a dashed edge of that colour links each replaced node to what replaced it.

Large graphs stay readable and quick to lay out: in a graph of more than `fold_above` nodes, each
run of unchanged nodes (not taken, made, nor next to such a node) becomes one box saying how many
it holds, each region a rule took becomes one box, and held graphs are left to their HOP nodes
(thousands of clusters would take the layout minutes); a `focus` rule keeps only the nodes that
rule took or made and their neighbours.

Nodes are told apart by (module path, name): a rewrite keeps the names of the nodes it copies,
so a node before and its copy after share a name. The rewrite is run again with observers
(`RuleSet.rewrite(observe=, observe_regions=)`); a plain rewrite records nothing more.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.fx

from ..graphs.modules import held_graphs
from ..graphs.errors import source_line
from ..graphs.files import write_atomic
from ..matching.regions import Region, Segment

# Light fills for nodes, and a darker edge colour of the same hue: one pair a rule, in rule order.
PALETTE = ("#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc", "#fdd0a2", "#c6dbef", "#f4a6c0", "#d9d9a0")
EDGE_PALETTE = ("#3182bd", "#e6550d", "#31a354", "#756bb1", "#d94801", "#6baed6", "#c51b7d",
                "#8c8c2a")
_UNCHANGED = {"before": " unchanged", "after": " unchanged", "graph": ""}  # fold box labels
FOLD_ABOVE = 200  # graphs with more nodes than this fold their unchanged runs
MIN_FOLD = 3  # shorter runs stay as they are: a box saying "2 nodes" hides more than it saves
LAYOUT_ENGINES = ("graphviz-pure", "dot")  # tried in this order


class LayoutEngineMissing(Exception):
    """No `dot`-compatible program: DOT source can still be written."""


class DrawingLibraryMissing(Exception):
    """The Python `graphviz` package is not installed."""


# --- what a rewrite did ---------------------------------------------------------------------------
@dataclass
class Box:
    """A region or segment a rule matched, in the graph before: its own nodes and inner boxes."""

    rule: str
    action: str  # outline, inline, keep, erase
    source: str | None
    nodes: list[str] = field(default_factory=list)
    boxes: list["Box"] = field(default_factory=list)


@dataclass
class Changes:
    """What a traced rewrite did, by (module path, node name): paths as the graph before names
    them on the `before` side, as the graph after names them on the `after` side."""

    rules: list[str] = field(default_factory=list)  # every rule, in order (their colours)
    taken: dict[tuple[str, str], str] = field(default_factory=dict)  # before node -> rule
    made: dict[tuple[str, str], str] = field(default_factory=dict)  # after node -> rule
    boxes: dict[str, list[Box]] = field(default_factory=dict)  # before path -> its top boxes
    outlined: dict[str, str] = field(default_factory=dict)  # after submodule path -> rule
    # (before path, name, after path, name, rule): what took a node's place
    links: list[tuple[str, str, str, str, str]] = field(default_factory=list)


def traced_rewrite(rules, gm: torch.fx.GraphModule, signature=None):
    """`rules.rewrite(gm, signature)` and the `Changes` it made: (Rewrite, Changes)."""
    changes = Changes([rule.name for rule in rules.rules])
    phases, passes = [], []
    result = rules.rewrite(gm, signature, observe=lambda module, decisions: passes.append(
        (module, decisions, {node.name for node in module.graph.nodes})),
        observe_regions=phases.append)
    phase = phases[0]
    before_path = _record_regions(phase, changes)
    final = dict(_module_paths(result.module))
    _record_dag(passes, dict(_module_paths(phase.module)), final, before_path, changes)
    return result, changes


def _module_paths(module: torch.fx.GraphModule, path: str = ""):
    """(path, GraphModule) for the module and every graph it holds, parents first."""
    yield path, module
    for target, child in held_graphs(module):
        yield from _module_paths(child, f"{path}.{target}" if path else target)


def _record_regions(phase, changes: Changes) -> dict[str, str]:
    """Region boxes and outlined submodules into `changes`; returns each after-path's
    before-path (an outlined submodule's nodes stood in the graph that held the region)."""
    outline_order: dict[str, list[Box]] = defaultdict(list)
    for plan in _plans(phase.plan):
        if plan.decisions is not None:
            changes.boxes[plan.path] = _boxes(plan.items, plan.decisions, plan.path, changes,
                                              outline_order[plan.path])
    before_path: dict[str, str] = {}
    outlined_order: dict[str, list[str]] = defaultdict(list)
    for path, module in _module_paths(phase.module):
        parent, _, target = path.rpartition(".")
        context = phase.contexts.get(id(module))
        if not path:
            before_path[path] = ""
        elif context is not None and context.regions:
            before_path[path] = before_path[parent]
            changes.outlined[path] = context.regions[-1].rule
            outlined_order[before_path[path]].append(path)
        else:  # a cond branch and the like: it keeps its attribute name
            base = before_path.get(parent, parent)
            before_path[path] = f"{base}.{target}" if base else target
    final = dict(_module_paths(phase.module))
    for path, boxes in outline_order.items():
        # Both in the order a rewrite meets the regions (outer first); checked rule by rule.
        for box, outlined in zip(boxes, outlined_order.get(path, ())):
            if box.rule == changes.outlined[outlined] and box.nodes:
                _link_outline(box, path, outlined, final, changes)
    return before_path


def _plans(plan):
    yield plan
    for child in plan.children:
        yield from _plans(child)


def _boxes(items, decisions, path: str, changes: Changes, outlines: list[Box]) -> list[Box]:
    """The boxes of the rule-taken regions and segments among `items`; an item no rule took
    gives its nodes and boxes to the enclosing box."""
    boxes = []
    for item in items:
        if not isinstance(item, (Region, Segment)):
            continue
        decision = decisions.decisions.get(item)
        if decision is None or decision.rule is None:
            boxes.extend(_boxes(item.items, decisions, path, changes, outlines))
            continue
        rule = decision.rule.name
        box = Box(rule, type(decision.action).__name__.lower(), source_line(item.origin))
        if box.action == "outline":
            outlines.append(box)
        box.nodes = [node.name for node in (*item.markers, *_own_nodes(item, decisions))]
        box.boxes = _boxes(item.items, decisions, path, changes, outlines)
        for name in _all_names(box):
            changes.taken.setdefault((path, name), rule)
        boxes.append(box)
    return boxes


def _own_nodes(item, decisions):
    """Nodes directly in a region or segment, and in those within it that no rule took (drawn
    as part of it); not those of inner regions a rule took (boxes of their own)."""
    for inner in item.items:
        if isinstance(inner, torch.fx.Node):
            yield inner
            continue
        decision = decisions.decisions.get(inner)
        if decision is None or decision.rule is None:
            yield from inner.markers
            yield from _own_nodes(inner, decisions)


def _all_names(box: Box):
    yield from box.nodes
    for inner in box.boxes:
        yield from _all_names(inner)


def _link_outline(box: Box, path: str, outlined: str, final: dict, changes: Changes) -> None:
    """Links the region's opener to the HOP node that calls the submodule outlined from it."""
    parent, _, target = outlined.rpartition(".")
    caller = _hop_caller(final.get(parent), target)
    if caller is not None:
        changes.links.append((path, box.nodes[0], parent, caller.name, box.rule))
        changes.made.setdefault((parent, caller.name), box.rule)


def _hop_caller(module, target: str):
    """The node of `module` that passes the fetch of submodule `target` to a HOP."""
    if module is None:
        return None
    for node in module.graph.nodes:
        if node.op == "call_function" and any(
                arg.op == "get_attr" and arg.target == target for arg in node.all_input_nodes):
            return node
    return None


def _record_dag(passes, region_modules: dict, final: dict, before_path: dict,
                changes: Changes) -> None:
    """Each DAG decision's taken nodes, made nodes and links into `changes`."""
    path_of = {id(module): path for path, module in region_modules.items()}
    path = ""
    for module, decisions, names in passes:
        # A pass after the first works on the copy the previous pass made: the same path.
        path = path_of.get(id(module), path)
        final_module = final.get(path)
        final_nodes = {node.name: node for node in final_module.graph.nodes} if final_module \
            else {}
        origin = before_path.get(path, path)
        for decision in decisions:
            rule = decision.rule.name
            for node in (*decision.roots, *decision.removed):
                changes.taken.setdefault((origin, node.name), rule)
            for root, value in decision.replaced.items():
                heads, made = _replacements(root, value, names, final_nodes)
                for name in made:
                    changes.made.setdefault((path, name), rule)
                changes.links.extend((origin, root.name, path, head, rule) for head in heads)


def _arguments(node: torch.fx.Node) -> list:
    """A node's arguments, nested ones included, flattened in order."""
    leaves = []
    torch.fx.node.map_aggregate((node.args, node.kwargs), leaves.append)
    return leaves


def _replacements(root, value, old_names: set[str], final_nodes: dict):
    """(heads, made): the after-graph nodes that stand where `root` stood (an existing node it
    became, or the new nodes its former users now read), and with them the new nodes they
    read in turn (a template's whole body), by name."""
    if isinstance(value, torch.fx.Node):
        return ([value.name], [value.name]) if value.name in final_nodes else ([], [])
    made, stack = [], []
    for user in root.users:
        new_user = final_nodes.get(user.name)
        if new_user is None:
            continue
        # What the user now reads where it read `root`: the same place among its arguments.
        old_args, new_args = _arguments(user), _arguments(new_user)
        if len(old_args) == len(new_args):
            stack.extend(new for old, new in zip(old_args, new_args)
                         if old is root and isinstance(new, torch.fx.Node)
                         and new.name not in old_names)
    heads = list(dict.fromkeys(node.name for node in stack))
    seen = set()
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        made.append(node.name)
        stack.extend(arg for arg in node.all_input_nodes if arg.name not in old_names)
    return heads, made


# --- the drawing ----------------------------------------------------------------------------------
@dataclass
class Side:
    """One graph tree to draw: `before`, `after` or `graph` (one alone)."""

    name: str
    module: torch.fx.GraphModule
    marked: dict[tuple[str, str], str]  # (path, node) -> rule
    boxes: dict[str, list[Box]]
    outlined: dict[str, str]


@dataclass
class Options:
    fold_above: int = FOLD_ABOVE  # fold unchanged runs of graphs with more nodes than this
    focus: str | None = None  # only this rule's nodes and their neighbours
    nested: bool = True  # draw held graphs as clusters inside their callers


class _Dot:
    """DOT text, written line by line: the `graphviz` package quotes every name and label."""

    def __init__(self, graphviz_module):
        self.quote = graphviz_module.quoting.quote
        self.lines: list[str] = []
        self.declared: list[str] = []  # node idents, in the order drawn
        self.declared_set: set[str] = set()
        self.shown = 0  # nodes and fold boxes drawn
        self.total = 0  # nodes of the graphs

    def node(self, ident: str, **attrs) -> None:
        self.declared.append(ident)
        self.declared_set.add(ident)
        self.lines.append(f"{self.quote(ident)} [{self._attrs(attrs)}]")

    def edge(self, tail: str, head: str, **attrs) -> None:
        extra = f" [{self._attrs(attrs)}]" if attrs else ""
        self.lines.append(f"{self.quote(tail)} -> {self.quote(head)}{extra}")

    def open(self, ident: str, **attrs) -> None:
        self.lines.append(f"subgraph {self.quote(ident)} {{")
        self.lines.extend(f"{key}={self.quote(str(value))}" for key, value in attrs.items())

    def close(self) -> None:
        self.lines.append("}")

    def _attrs(self, attrs: dict) -> str:
        return " ".join(f"{key}={self.quote(str(value))}" for key, value in attrs.items())


def to_dot(before: torch.fx.GraphModule, after: torch.fx.GraphModule | None = None,
           changes: Changes | None = None, options: Options | None = None) -> str:
    """DOT source: `before` and `after` side by side, or `before` alone when `after` is None."""
    return _dot_source(before, after, changes, options)[0]


def _dot_source(before, after, changes, options) -> tuple[str, str]:
    """(DOT source, its summary: how many nodes, how many drawn)."""
    graphviz = _graphviz()
    options = options or Options()
    changes = changes or Changes()
    colours = {rule: index for index, rule in enumerate(changes.rules)}
    dot = _Dot(graphviz)
    if after is None:
        sides = [Side("graph", before, {}, {}, {})]
    else:
        sides = [Side("before", before, changes.taken, changes.boxes, {}),
                 Side("after", after, changes.made, {}, changes.outlined)]
    for side in sides:
        dot.open(f"cluster_{side.name}", label=side.name, fontsize=18, style="rounded",
                 color="#888888")
        _draw_graph(dot, side, side.module, "", colours, options)
        dot.close()
    if after is not None:
        _draw_links(dot, changes, colours, options)
    focus = f"; focus: rule `{options.focus}`" if options.focus else ""
    label = f"{dot.total:,} nodes in all, {dot.shown:,} drawn{focus}"
    header = ["digraph rewrite {", "compound=true", "newrank=true", "rankdir=TB",
              "nodesep=0.25", "ranksep=0.35",
              f"label={dot.quote(label)}", "labelloc=t", "fontname=Helvetica",
              'node [shape=box style="rounded,filled" fillcolor=white fontname=Helvetica '
              'fontsize=10 height=0.3]', "edge [color=\"#555555\" arrowsize=0.6]"]
    return "\n".join([*header, *dot.lines, "}"]) + "\n", label


def _graphviz():
    try:
        import graphviz
    except ImportError as error:
        raise DrawingLibraryMissing(
            "drawing needs the Python `graphviz` package: pip install -e '.[draw]' "
            "(scripts/setup installs it)") from error
    return graphviz


def node_id(side: str, path: str, name: str) -> str:
    return f"{side}:{path}:{name}"


def _draw_graph(dot: _Dot, side: Side, module, path: str, colours: dict,
                options: Options) -> None:
    """One graph's nodes, boxes, folds and edges, and its submodules as clusters within it."""
    nodes = list(module.graph.nodes)
    dot.total += len(nodes)
    children = dict(held_graphs(module))
    kept = _kept(nodes, side, path, options)
    fold = options.focus is None and len(nodes) > options.fold_above
    boxes = side.boxes.get(path, [])
    owner = _owners(boxes)
    if fold:
        # A large graph: each region a rule took is one box too (thousands of clusters would
        # take the layout minutes), and held graphs are not drawn in it (their HOP nodes are).
        groups = _collapse_regions(_groups(nodes, kept, _top_owners(owner), fold, False), boxes)
        children = {}
    else:
        groups = _groups(nodes, kept, owner, fold, drop=options.focus is not None)
    _emit_groups(dot, side, path, groups, boxes, colours)
    rep = {node.name: node_id(side.name, path, group[0]) for group in groups
           for node in group[1]}
    edges = set()
    for node in nodes:
        for arg in node.all_input_nodes:
            tail, head = rep.get(arg.name), rep.get(node.name)
            if tail and head and tail != head and (tail, head) not in edges:
                edges.add((tail, head))
                dot.edge(tail, head)
    for target, child in children.items() if options.nested else ():
        _draw_child(dot, side, module, path, target, child, rep, colours, options)


def _kept(nodes, side: Side, path: str, options: Options) -> set[str]:
    """Names never folded: marked nodes, their neighbours, the output and fetches of graphs;
    under `focus`, only that rule's nodes and their neighbours (everything else is dropped)."""
    def marked(node):
        rule = side.marked.get((path, node.name))
        return rule is not None and (options.focus is None or rule == options.focus)

    kept = set()
    for node in nodes:
        if marked(node):
            kept.add(node.name)
            kept.update(arg.name for arg in node.all_input_nodes)
            kept.update(user.name for user in node.users)
    if options.focus is None:
        kept.update(node.name for node in nodes if node.op in ("output", "get_attr"))
    return kept


def _owners(boxes: list[Box]) -> dict[str, tuple[int, ...]]:
    """Each boxed node -> the path of box indexes down to its innermost box."""
    owner = {}

    def walk(box_list, trail):
        for index, box in enumerate(box_list):
            here = (*trail, index)
            for name in box.nodes:
                owner[name] = here
            walk(box.boxes, here)

    walk(boxes, ())
    return owner


def _top_owners(owner: dict) -> dict:
    return {name: trail[:1] for name, trail in owner.items()}


def _collapse_regions(groups, boxes: list[Box]):
    """Consecutive groups in the same top-level box -> one group standing for that box."""
    collapsed = []
    for group in groups:
        ident, members, trail = group
        if not trail:
            collapsed.append(group)
        elif collapsed and collapsed[-1][2] == ("region", trail):
            collapsed[-1][1].extend(members)
        else:
            collapsed.append((f"region:{members[0].name}", list(members), ("region", trail)))
    return [(ident, members, ()) if trail[:1] != ("region",) else
            (ident, members, (), boxes[trail[1][0]]) for ident, members, trail in collapsed]


def _groups(nodes, kept: set[str], owner: dict, fold: bool, drop: bool):
    """(ident, member nodes, box path) in graph order: a node alone, or a folded run of
    unchanged nodes in the same box. `drop` (a focus): nodes not kept go."""
    groups, run = [], []

    def flush():
        if len(run) >= MIN_FOLD:
            ident = f"fold:{run[0].name}"
            groups.append((ident, list(run), owner.get(run[0].name, ())))
        else:
            groups.extend((node.name, [node], owner.get(node.name, ())) for node in run)
        run.clear()

    for node in nodes:
        unchanged = node.name not in kept
        if fold and unchanged and (not run or owner.get(run[0].name) == owner.get(node.name)):
            run.append(node)
            continue
        flush()
        if fold and unchanged:
            run.append(node)
        elif unchanged and drop:
            continue
        else:
            groups.append((node.name, [node], owner.get(node.name, ())))
    flush()
    return groups


def _emit_groups(dot: _Dot, side: Side, path: str, groups, boxes: list[Box],
                 colours: dict) -> None:
    """Nodes and folds, each inside its innermost box's cluster."""
    by_box = defaultdict(list)
    for group in groups:
        by_box[group[2]].append(group)
    for group in by_box.get((), []):
        _emit_group(dot, side, path, group, colours)
    # Boxes holding something drawn, themselves or within: the others are left out.
    occupied = {key[:depth] for key in by_box for depth in range(1, len(key) + 1)}
    _emit_boxes(dot, side, path, boxes, (), by_box, occupied, colours)


def _emit_boxes(dot, side, path, boxes, trail, by_box, occupied, colours) -> None:
    for index, box in enumerate(boxes):
        here = (*trail, index)
        if here not in occupied:
            continue
        colour = EDGE_PALETTE[colours.get(box.rule, 0) % len(EDGE_PALETTE)]
        where = f"\n{_short_source(box.source)}" if box.source else ""
        dot.open(f"cluster_{side.name}:{path}:{'.'.join(map(str, here))}",
                 label=f"{box.action} by rule {box.rule}{where}", color=colour,
                 fontcolor=colour, style="dashed", penwidth=2, fontsize=11)
        for group in by_box.get(here, []):
            _emit_group(dot, side, path, group, colours)
        _emit_boxes(dot, side, path, box.boxes, here, by_box, occupied, colours)
        dot.close()


def _emit_group(dot: _Dot, side: Side, path: str, group, colours: dict) -> None:
    ident, members = group[:2]
    dot.shown += 1
    if len(group) == 4:  # a whole region, in a large graph
        box = group[3]
        dot.node(node_id(side.name, path, ident),
                 label=f"{box.action} by rule {box.rule}\n{len(members):,} nodes: "
                       f"{members[0].name} ... {members[-1].name}",
                 shape="box3d", style="filled",
                 fillcolor=PALETTE[colours.get(box.rule, 0) % len(PALETTE)],
                 **{"class": "folded region"})
        return
    if len(members) > 1:
        dot.node(node_id(side.name, path, ident),
                 label=f"{len(members):,} nodes{_UNCHANGED[side.name]}\n"
                       f"{members[0].name} ... {members[-1].name}",
                 shape="box3d", style="filled", fillcolor="#eeeeee", fontcolor="#444444",
                 **{"class": "folded"})
        return
    node = members[0]
    attrs = {"label": _label(node), "tooltip": _tooltip(node)}
    rule = side.marked.get((path, node.name))
    if rule is not None:
        attrs["fillcolor"] = PALETTE[colours.get(rule, 0) % len(PALETTE)]
        attrs["class"] = f"rule-{rule}"
    if node.op in ("placeholder", "output"):
        attrs["shape"] = "ellipse"
    dot.node(node_id(side.name, path, node.name), **attrs)


def _draw_child(dot: _Dot, side: Side, module, path: str, target: str, child, rep: dict,
                colours: dict, options: Options) -> None:
    """A held graph as a cluster beside its caller, linked from the HOP node that calls it."""
    child_path = f"{path}.{target}" if path else target
    rule = side.outlined.get(child_path)
    caller = _hop_caller(module, target)
    hop = _target_name(caller.target) if caller is not None else "held graph"
    made = f"\noutlined by rule {rule}" if rule else ""
    colour = EDGE_PALETTE[colours.get(rule, 0) % len(EDGE_PALETTE)] if rule else "#888888"
    cluster = f"cluster_{side.name}:{child_path}"
    dot.open(cluster, label=f"{child_path} ({hop}){made}", color=colour, fontcolor=colour,
             style="rounded", penwidth=2 if rule else 1, fontsize=11)
    first = len(dot.declared)
    _draw_graph(dot, side, child, child_path, colours, options)
    dot.close()
    caller_ident = rep.get(caller.name) if caller is not None else None
    if first < len(dot.declared) and caller_ident is not None:
        # `lhead` ends the edge at the cluster's border: the HOP node calls the whole graph.
        dot.edge(caller_ident, dot.declared[first], lhead=cluster,
                 style="dotted", color=colour)


def _draw_links(dot: _Dot, changes: Changes, colours: dict, options: Options) -> None:
    """Dashed edges from each replaced node to what took its place, in the rule's colour."""
    drawn = set()
    for before_path, before, after_path, after, rule in changes.links:
        if options.focus and rule != options.focus:
            continue
        tail, head = node_id("before", before_path, before), node_id("after", after_path, after)
        if (tail, head) in drawn or tail not in dot.declared_set or \
                head not in dot.declared_set:
            continue
        drawn.add((tail, head))
        dot.edge(tail, head, style="dashed", constraint="false",
                 color=EDGE_PALETTE[colours.get(rule, 0) % len(EDGE_PALETTE)], penwidth=1.5)


def _label(node: torch.fx.Node) -> str:
    if node.op == "placeholder":
        return node.name
    if node.op == "output":
        return "output"
    if node.op == "get_attr":
        return f"{node.name}\nget_attr {node.target}"
    return f"{node.name}\n{_target_name(node.target)}"


def _target_name(target) -> str:
    """`aten.linear`, `higher_order.wrap_with_autocast`, `getitem`: short, and still the op."""
    if isinstance(target, str):
        return target
    if isinstance(target, torch._ops.OpOverload):
        return str(target).removesuffix(".default")
    if isinstance(target, torch._ops.HigherOrderOperator):
        return f"higher_order.{target.__name__}"
    return getattr(target, "__name__", str(target))


def _tooltip(node: torch.fx.Node) -> str:
    line = source_line(node)
    return f"{node.op} {node.name}" + (f"\n{line}" if line else "")


def _short_source(source: str) -> str:
    """`path/file.py:20 in forward: code` -> `file.py:20: code`, cut to fit a label."""
    where, _, code = source.partition(" in ")
    code = code.partition(": ")[2]
    text = f"{Path(where.rsplit(':', 1)[0]).name}:{where.rsplit(':', 1)[-1]}: {code}"
    return text if len(text) <= 60 else text[:57] + "..."


# --- layout -----------------------------------------------------------------------------------------
def find_layout_engine() -> str | None:
    """The `dot`-compatible program: $ENGINE_DOT if set, else `graphviz-pure` (the wheel's,
    next to this Python or on PATH), else Graphviz's `dot` on PATH; None if there is none."""
    chosen = os.environ.get("ENGINE_DOT")
    if chosen:
        return chosen if shutil.which(chosen) else None
    # The wheel's program lies beside this Python, which need not be on PATH (`.venv/bin/python`
    # run directly); `which` with a path adds `.exe` where that is the custom.
    beside = os.pathsep.join(dict.fromkeys((sysconfig.get_path("scripts"),
                                            str(Path(sys.executable).parent))))
    for path in (beside, None):
        for name in LAYOUT_ENGINES:
            found = shutil.which(name, path=path)
            if found:
                return found
    return None


def render(dot_source: str, fmt: str) -> bytes:
    """DOT source laid out as `svg` or `png` bytes by the layout program."""
    program = find_layout_engine()
    if program is None:
        chosen = os.environ.get("ENGINE_DOT")
        named = f" (ENGINE_DOT names `{chosen}`, which is no program)" if chosen else ""
        raise LayoutEngineMissing(
            f"no graph layout program found{named}: drawing needs `graphviz-pure` (pip install "
            "graphviz-pure; scripts/setup installs it) or Graphviz's `dot` (apt-get install "
            "graphviz), or ENGINE_DOT naming one; `-o FILE.dot` writes the DOT source without")
    done = subprocess.run([program, f"-T{fmt}"], input=dot_source.encode(),
                          capture_output=True, timeout=600, check=False)
    if done.returncode != 0:
        raise LayoutEngineMissing(f"{Path(program).name} failed (exit {done.returncode}): "
                                  f"{done.stderr.decode(errors='replace').strip()[:500]}")
    return done.stdout


FORMATS = (".svg", ".png", ".dot")


def write_drawing(output: str, before, after=None, changes: Changes | None = None,
                  options: Options | None = None) -> str:
    """Draws into `output` (.svg, .png, or .dot: the source, no layout program needed);
    returns what to tell the user."""
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot draw into `{output}`: expected {', '.join(FORMATS)}")
    source, summary = _dot_source(before, after, changes, options)
    write_atomic(output, source if suffix == ".dot" else render(source, suffix[1:]))
    return f"wrote {output}: {summary}"
