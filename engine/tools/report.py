"""A rewrite, for review: one self-contained HTML page.

Input: the model's label, the rules, the module before and after, the report and the `Changes`
of a traced rewrite (`engine.tools.draw.traced_rewrite`), and the near-miss text.
Output: HTML text that needs nothing else to open: styles inline, drawings as inline SVG (no
scripts, fonts, images or links to anything), each submodule in a `<details>` of its own, nested
as the submodules are; the rule report; the model's source lines around each match; the text
diff; the nearest misses of the rules that matched nowhere.
"""

from __future__ import annotations

import difflib
import html
import re
from pathlib import Path

from ..graphs.modules import held_graphs
from . import draw

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; font-size: 12px; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .2em .6em; }
.swatch { display: inline-block; width: .9em; height: .9em; border: 1px solid #555; }
.add { color: #116611; background: #eaffea; } .del { color: #aa1111; background: #ffecec; }
.hunk { color: #555599; } .hit { background: #fff3b0; font-weight: bold; }
details { margin: .4em 0 .4em 1em; } summary { cursor: pointer; font-weight: 600; }
.drawing { overflow: auto; max-height: 90vh; border: 1px solid #ddd; }
.note { color: #666; }
"""
_SOURCE = re.compile(r"^(?P<file>.+?):(?P<line>\d+) in (?P<func>[^:]+): ")
_CONTEXT = 2  # source lines shown before and after each matched line
# Submodules drawn one by one: a layout each, so a model outlined into hundreds stops here.
MAX_SUBMODULE_DRAWINGS = 24


def build_report(label: str, rule_paths: list[str], rules, before, after, report, changes,
                 texts: tuple[str, str], near_misses: str) -> str:
    """The page, as text. `texts`: the dumps before and after (what the diff compares)."""
    sections = [
        f"<h1>Rewrite of {_e(label)}</h1>",
        f"<p>Rules: {_e(', '.join(rule_paths))}. {_summary(report, rules)}</p>",
        "<h2>Rules</h2>", _rule_table(rules, report),
        "<h2>Drawing</h2>", _drawings(before, after, changes),
        "<h2>Matches in the model's source</h2>", _source_lines(report),
        "<h2>Diff</h2>", _diff(label, *texts),
        "<h2>Near misses</h2>", _near_misses(near_misses),
    ]
    body = "\n".join(sections)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Rewrite of {_e(label)}</title><style>{_STYLE}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _summary(report, rules) -> str:
    counts = report.counts()
    matched = sum(1 for rule in rules.rules if counts[rule.name])
    return (f"{len(report.matches)} match{'es' * (len(report.matches) != 1)} by "
            f"{matched} of {len(rules.rules)} rules.")


def _rule_table(rules, report) -> str:
    counts = report.counts()
    rows = ["<table><tr><th></th><th>rule</th><th>defined at</th><th>matches</th>"
            "<th>where</th></tr>"]
    for index, rule in enumerate(rules.rules):
        colour = draw.PALETTE[index % len(draw.PALETTE)]
        places = "<br>".join(
            _e(f"`{m.node}`" + (f" in `{m.module}`" if m.module else "")
               + (f" ({m.note})" if m.note else ""))
            for m in report.matches if m.rule == rule.name)
        rows.append(f"<tr><td><span class=\"swatch\" style=\"background:{colour}\"></span></td>"
                    f"<td>{_e(rule.name)}</td><td>{_e(str(rule.where))}</td>"
                    f"<td>{counts[rule.name]}</td><td>{places}</td></tr>")
    rows.append("</table>")
    rows.append(f"<pre>{_e(report.render(rules.rules))}</pre>")
    return "\n".join(rows)


def _drawings(before, after, changes) -> str:
    """Before and after side by side, then each submodule of the result in a `<details>`
    (nested as the submodules nest), drawn alone."""
    try:
        whole = _svg(draw.to_dot(before, after, changes))
        budget = [MAX_SUBMODULE_DRAWINGS]
        nested = _submodule_details(after, "", changes, budget)
        if budget[0] < 0:
            nested += (f"<p class=\"note\">Only the first {MAX_SUBMODULE_DRAWINGS} submodules "
                       f"are drawn alone; the diff below has them all.</p>")
    except (draw.LayoutEngineMissing, draw.DrawingLibraryMissing) as error:
        return f"<p class=\"note\">No drawing: {_e(str(error))}</p>"
    legend = ("<p class=\"note\">Clusters: regions a rule matched (dashed) and outlined "
              "submodules (solid), labelled with the rule; filled nodes: taken (before) or put "
              "in their place (after) by the rule of that colour; dashed edges: a node to what "
              "took its place.</p>")
    return (f"{legend}<details open><summary>before and after</summary>"
            f"<div class=\"drawing\">{whole}</div></details>\n{nested}")


def _submodule_details(module, path: str, changes, budget: list[int]) -> str:
    """`budget`: how many more to draw; below zero once some were left out."""
    parts = []
    for target, child in held_graphs(module):
        budget[0] -= 1
        if budget[0] < 0:
            break
        child_path = f"{path}.{target}" if path else target
        rule = changes.outlined.get(child_path)
        made = f", outlined by rule {rule}" if rule else ""
        options = draw.Options(nested=False)
        svg = _svg(draw.to_dot(child, None, None, options))
        parts.append(f"<details><summary>submodule {_e(child_path)}{_e(made)}</summary>"
                     f"<div class=\"drawing\">{svg}</div>"
                     f"{_submodule_details(child, child_path, changes, budget)}</details>")
    return "\n".join(parts)


def _svg(dot_source: str) -> str:
    """SVG for inlining: no XML prolog, doctype, comments or namespace declarations (an HTML
    page's `<svg>` needs none, and each names a URL)."""
    text = draw.render(dot_source, "svg").decode()
    text = text[text.index("<svg"):]
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)


def _source_lines(report) -> str:
    """For each match, the model's lines around the one it came from, that line marked."""
    parts, files = [], {}
    for match in report.matches:
        found = _SOURCE.match(match.source or "")
        title = _e(f"rule {match.rule}: `{match.node}`" + (f" in `{match.module}`"
                                                            if match.module else ""))
        if found is None:
            parts.append(f"<p>{title}: no source line recorded</p>")
            continue
        path, number = found["file"], int(found["line"])
        if path not in files:
            try:
                files[path] = Path(path).read_text().splitlines()
            except OSError:
                files[path] = []
        lines = files[path]
        shown = []
        for index in range(max(1, number - _CONTEXT), min(len(lines), number + _CONTEXT) + 1):
            text = _e(f"{index:5d}  {lines[index - 1]}")
            shown.append(f"<span class=\"hit\">{text}</span>" if index == number else text)
        body = "\n".join(shown) or _e(match.source)
        parts.append(f"<p>{title}, {_e(Path(path).name)}:{number} in {_e(found['func'])}</p>"
                     f"<pre>{body}</pre>")
    return "\n".join(parts) or "<p>No matches.</p>"


def _diff(label: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(),
                                 f"{label} (before)", f"{label} (after)", lineterm="")
    out = []
    for line in lines:
        kind = "add" if line.startswith("+") else "del" if line.startswith("-") else \
            "hunk" if line.startswith("@@") else ""
        out.append(f"<span class=\"{kind}\">{_e(line)}</span>" if kind else _e(line))
    return f"<pre>{chr(10).join(out)}</pre>" if out else "<p>No change.</p>"


def _near_misses(text: str) -> str:
    if not text.strip():
        return "<p>Every rule matched somewhere.</p>"
    return f"<pre>{_e(text)}</pre>"
