"""`engine draw` and `engine apply --html`, driven through their processes: the SVG parses and
holds the clusters, labels and colours of what each rule did; a 5,000-node graph folds and draws
in seconds; `--focus`; without a layout program, a clear error; the HTML report needs nothing
outside itself, and headless Chromium shows it (a screenshot with real content)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = str(REPO / "examples" / "models.py") + ":autocast_mlp"
EXPORT_RULES = str(REPO / "rules" / "export.rw")
ALGEBRA_RULES = str(REPO / "rules" / "algebra.rw")
SVG = "{http://www.w3.org/2000/svg}"
CHROMIUM = "/usr/bin/chromium"

graphviz = pytest.importorskip("graphviz", reason="the drawing tests need the Python `graphviz` "
                               "package (pip install -e '.[draw]')")

from engine.tools import draw  # noqa: E402  (after the skip: it needs graphviz at use)

needs_layout = pytest.mark.skipif(
    draw.find_layout_engine() is None,
    reason="no layout program: neither graphviz-pure (pip) nor Graphviz's dot (apt) is installed")


def engine_cli(*argv, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "engine.frontends.cli", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def chain_graph(path: Path, links: int) -> Path:
    """A graph text of `links` nodes in a chain, every thousandth `x * 1` (`times_one` folds it)."""
    lines, previous = ["def forward(x: f32[4, 4]):"], "x"
    for index in range(links):
        op = "aten.mul.Tensor({}, 1)" if index % 1000 == 500 else \
            "aten.relu.default({})" if index % 2 else "aten.neg.default({})"
        lines.append(f"    v{index}: f32[4, 4] = {op.format(previous)}")
        previous = f"v{index}"
    lines.append(f"    return ({previous},)")
    path.write_text("\n".join(lines) + "\n")
    return path


def clusters(svg_root) -> dict[str, str]:
    """Each cluster's title -> its label text (lines joined)."""
    found = {}
    for group in svg_root.iter(f"{SVG}g"):
        if group.get("class") == "cluster":
            title = group.find(f"{SVG}title").text
            found[title] = " ".join(text.text or "" for text in group.iter(f"{SVG}text"))
    return found


def fills(svg_root) -> set[str]:
    return {shape.get("fill") for shape in svg_root.iter() if shape.get("fill")}


# --- the DOT source: always, no layout program needed ----------------------------------------------
def test_dot_source_names_the_rules_clusters_and_links(tmp_path):
    out = tmp_path / "rewrite.dot"
    done = engine_cli("draw", EXPORT_RULES, EXAMPLE, "-o", str(out))
    assert done.returncode == 0, done.stderr
    source = out.read_text()
    assert "subgraph cluster_before {" in source and "subgraph cluster_after {" in source
    assert 'label="outline by rule autocast_regions' in source  # the regions, before
    assert "outlined by rule autocast_regions" in source  # the submodules, after
    assert source.count("subgraph \"cluster_after:submod_1.submod_1\"") == 1  # nested inside
    # the regions' openers linked to the HOP nodes that replaced them
    assert '"before::_enter_autocast" -> "after::layer_norm" [style=dashed' in source
    assert '"before::_enter_autocast_1" -> "after:submod_1:layer_norm" [style=dashed' in source
    assert f'fillcolor="{draw.PALETTE[0]}"' in source
    assert "wrote" in done.stderr and "53 nodes in all, 53 drawn" in done.stderr


def test_dag_rules_link_what_they_took_to_what_took_its_place(tmp_path):
    out = tmp_path / "activations.dot"
    model = str(REPO / "tests" / "library" / "models.py") + ":activations"
    done = engine_cli("draw", str(REPO / "rules" / "activations.rw"), model, "-o", str(out))
    assert done.returncode == 0, done.stderr
    links = [line for line in out.read_text().splitlines() if "style=dashed" in line]
    # each written-out activation's last op, to the one op that replaced it, in its rule's colour
    assert [line.split(" [")[0] for line in links] == [
        '"before::mul_1" -> "after::gelu_default"', '"before::mul_5" -> "after::gelu_default_1"',
        '"before::mul_6" -> "after::silu_default"', '"before::div_1" -> "after::hardswish_default"']
    assert len({line.split("color=")[1].split()[0] for line in links}) == 4


def test_a_missing_layout_program_is_a_clear_error(tmp_path):
    done = engine_cli("draw", EXPORT_RULES, EXAMPLE, "-o", str(tmp_path / "x.svg"),
                      env={"ENGINE_DOT": str(tmp_path / "no-such-dot")})
    assert done.returncode == 1
    assert "engine draw: error: no graph layout program found" in done.stderr
    assert "graphviz-pure" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.svg").exists()


def test_usage_errors(tmp_path):
    assert engine_cli("draw", EXAMPLE, "-o", str(tmp_path / "x.txt")).returncode == 2
    done = engine_cli("draw", ALGEBRA_RULES, EXAMPLE, "-o", str(tmp_path / "x.dot"),
                      "--focus", "no_such_rule")
    assert done.returncode == 2 and "no rule `no_such_rule`" in done.stderr


# --- laid out ----------------------------------------------------------------------------------------
@needs_layout
def test_svg_before_and_after_with_rule_clusters_and_colours(tmp_path):
    out = tmp_path / "rewrite.svg"
    done = engine_cli("draw", EXPORT_RULES, EXAMPLE, "-o", str(out))
    assert done.returncode == 0, done.stderr
    root = ElementTree.parse(out).getroot()  # well-formed
    found = clusters(root)
    assert {"cluster_before", "cluster_after"} <= found.keys()
    assert "before" in found["cluster_before"] and "after" in found["cluster_after"]
    regions = [label for title, label in found.items() if title.startswith("cluster_before:")]
    assert len(regions) == 2 and all("outline by rule autocast_regions" in r for r in regions)
    assert "models.py:20" in " ".join(regions)  # the region's own source line
    assert "outlined by rule autocast_regions" in found["cluster_after:submod_1"]
    assert "outlined by rule autocast_regions" in found["cluster_after:submod_1.submod_1"]
    assert draw.PALETTE[0] in fills(root)  # nodes in the rule's colour
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert "before::_enter_autocast&#45;&gt;after::layer_norm" in titles or \
        "before::_enter_autocast->after::layer_norm" in titles


@needs_layout
def test_png_and_one_graph_alone(tmp_path):
    png = tmp_path / "rewrite.png"
    assert engine_cli("draw", EXPORT_RULES, EXAMPLE, "-o", str(png)).returncode == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    alone = tmp_path / "alone.svg"
    done = engine_cli("draw", EXAMPLE, "-o", str(alone))
    assert done.returncode == 0, done.stderr
    found = clusters(ElementTree.parse(alone).getroot())
    assert "cluster_graph" in found and "cluster_before" not in found


@needs_layout
def test_five_thousand_nodes_fold_and_draw_in_seconds(tmp_path):
    graph = chain_graph(tmp_path / "chain.fxg", 5000)
    out = tmp_path / "chain.svg"
    started = time.perf_counter()
    done = engine_cli("draw", ALGEBRA_RULES, str(graph), "-o", str(out))
    took = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert took < 60, f"{took:.1f} s"  # about 8 s here, 4 of them reading the graph text
    root = ElementTree.parse(out).getroot()
    folded = [" ".join(t.text for t in g.iter(f"{SVG}text")) for g in root.iter(f"{SVG}g")
              if g.get("class") == "node folded"]
    assert any("997 nodes unchanged" in label for label in folded), folded
    assert "9,999 nodes in all, 44 drawn" in done.stderr
    assert fills(root) & set(draw.PALETTE)  # the matched nodes, in times_one's colour


def region_chain_graph(path: Path, links: int) -> Path:
    """A graph text of `links` autocast regions in a row, 7 nodes a link (`autocast_regions`
    outlines each)."""
    lines, previous = ["def forward(x: f32[8, 8]):"], "x"
    for i in range(links):
        lines += [
            f"    e{i} = torch.amp.autocast_mode._enter_autocast('cpu', torch.bfloat16, True, False)",
            f"    m{i}: f32[8, 8] = aten.mul.Tensor({previous}, 2.0)",
            f"    a{i}: f32[8, 8] = aten.add.Tensor(m{i}, 1.0)",
            f"    r{i}: f32[8, 8] = aten.relu.default(a{i})",
            f"    s{i}: f32[8, 8] = aten.sin.default(r{i})",
            f"    x{i} = torch.amp.autocast_mode._exit_autocast(e{i})",
            f"    c{i}: f32[8, 8] = aten.cos.default(s{i})"]
        previous = f"c{i}"
    lines.append(f"    return ({previous},)")
    path.write_text("\n".join(lines) + "\n")
    return path


@needs_layout
def test_five_thousand_nodes_in_seven_hundred_regions_draw_in_seconds(tmp_path):
    graph = region_chain_graph(tmp_path / "regions.fxg", 700)
    out = tmp_path / "regions.svg"
    started = time.perf_counter()
    done = engine_cli("draw", str(REPO / "rules" / "autocast.rw"), str(graph), "-o", str(out))
    took = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert took < 60, f"{took:.1f} s"  # about 7 s here; drawn as 1,400 clusters, minutes
    root = ElementTree.parse(out).getroot()
    regions = [" ".join(t.text for t in g.iter(f"{SVG}text")) for g in root.iter(f"{SVG}g")
               if g.get("class") == "node folded region"]
    assert len(regions) == 700
    assert regions[0] == "outline by rule autocast_regions 6 nodes: e0 ... x0"


def test_the_drawing_itself_takes_well_under_a_second_a_side(tmp_path):
    import engine

    module = engine.load_graph(chain_graph(tmp_path / "chain.fxg", 5000))
    rules = engine.load_rules(ALGEBRA_RULES)
    started = time.perf_counter()
    result, changes = draw.traced_rewrite(rules, module)
    source = draw.to_dot(module, result.module, changes)
    took = time.perf_counter() - started
    assert took < 10, f"{took:.1f} s"
    assert len(changes.links) == 5  # one `x * 1` each thousand nodes, linked to its `x`
    assert set(changes.taken.values()) == {"times_one"}
    assert source.count('class=folded') + source.count('class="folded"') == 12


@needs_layout
def test_focus_keeps_the_rules_nodes_and_their_neighbours(tmp_path):
    graph = chain_graph(tmp_path / "chain.fxg", 3000)
    out = tmp_path / "focus.svg"
    done = engine_cli("draw", ALGEBRA_RULES, str(graph), "-o", str(out), "--focus", "times_one")
    assert done.returncode == 0, done.stderr
    assert "focus: rule `times_one`" in done.stderr
    root = ElementTree.parse(out).getroot()
    nodes = [g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g")
             if (g.get("class") or "").startswith("node")]
    # three matches: each `mul` and its two neighbours before; the replacement and its two after
    assert len(nodes) == 18, nodes
    assert "before::v500" in nodes and "before::v502" not in nodes


# --- the HTML report ---------------------------------------------------------------------------------
def html_report(tmp_path, env=None) -> tuple[str, Path]:
    page = tmp_path / "report.html"
    done = engine_cli("apply", EXPORT_RULES, EXAMPLE, "--html", str(page), env=env)
    assert done.returncode == 0, done.stderr
    assert f"wrote {page}" in done.stderr
    return page.read_text(), page


def test_html_report_stands_alone(tmp_path):
    text, _ = html_report(tmp_path)
    for reference in ("http:", "https:", "//", "src=", "href=", "url(", "@import", "<script",
                      "<link"):
        assert reference not in text, reference
    assert text.count("<svg") >= 2 and "<details" in text
    assert "rule `autocast_regions`: 2 matches" in text  # the rule report
    assert "-    _enter_autocast: None" in text  # the diff
    assert "with torch.autocast(&quot;cpu&quot;, dtype=torch.bfloat16):" in text  # source lines
    assert "rule `grad_mode_changes` matched nowhere" in text  # near misses
    assert "submodule submod_1.submod_1, outlined by rule autocast_regions" in text


def test_html_report_without_a_layout_program_still_has_the_rest(tmp_path):
    text, _ = html_report(tmp_path, env={"ENGINE_DOT": str(tmp_path / "no-such-dot")})
    assert "No drawing: no graph layout program found" in text
    assert "rule `autocast_regions`: 2 matches" in text and "<svg" not in text


@needs_layout
@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason=f"headless Chromium not installed ({CHROMIUM}: apt-get install chromium)")
def test_html_report_shows_in_headless_chromium(tmp_path):
    _, page = html_report(tmp_path)
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,900", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 900)
    colours = set(pixels)
    assert len(colours) > 100, len(colours)  # text, tables, the drawing's fills
    white = sum(1 for pixel in pixels if pixel[:3] == (255, 255, 255))
    assert white < 0.97 * len(pixels)


def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """A PNG's (width, height, pixels): 8-bit RGB or RGBA, not interlaced; enough for a
    screenshot, without an imaging library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, header = 8, [], None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and not interlace, header
    channels = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        row = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), previous,
                        channels)
        rows.append(row)
        previous = row
    pixels = [tuple(row[x:x + channels]) for row in rows for x in range(0, stride, channels)]
    return width, height, pixels


def _unfilter(kind: int, row: bytearray, above: bytearray, step: int) -> bytearray:
    if kind == 1:
        for i in range(step, len(row)):
            row[i] = (row[i] + row[i - step]) & 0xFF
    elif kind == 2:
        for i in range(len(row)):
            row[i] = (row[i] + above[i]) & 0xFF
    elif kind == 3:
        for i in range(len(row)):
            left = row[i - step] if i >= step else 0
            row[i] = (row[i] + ((left + above[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(len(row)):
            a = row[i - step] if i >= step else 0
            b, c = above[i], above[i - step] if i >= step else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    return row


def test_png_reader_reads_what_the_layout_program_writes():
    if draw.find_layout_engine() is None:
        pytest.skip("no layout program to write a PNG")
    width, height, pixels = png_pixels(draw.render('digraph { a -> b }', "png"))
    assert width * height == len(pixels) and len(set(pixels)) > 2



def test_graphvizs_own_dot_is_the_fallback(monkeypatch):
    which = shutil.which
    if which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz)")
    monkeypatch.delenv("ENGINE_DOT", raising=False)
    monkeypatch.setattr(draw.shutil, "which", lambda name, path=None: None
                        if name == "graphviz-pure" else which(name, path=path))
    assert Path(draw.find_layout_engine()).name == "dot"
    svg = draw.render(draw.to_dot(_tiny_module()), "svg")
    assert ElementTree.fromstring(svg).tag == f"{SVG}svg"


def _tiny_module():
    import torch

    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_function(torch.ops.aten.relu.default, (x,)))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def test_with_no_layout_program_anywhere_the_message_says_what_to_install(monkeypatch, capsys,
                                                                          tmp_path):
    from engine.frontends.cli import main

    monkeypatch.delenv("ENGINE_DOT", raising=False)
    monkeypatch.setattr(draw.shutil, "which", lambda name, path=None: None)
    assert main(["draw", EXAMPLE, "-o", str(tmp_path / "x.svg")]) == 1
    assert capsys.readouterr().err == (
        "engine draw: error: no graph layout program found: drawing needs `graphviz-pure` (pip "
        "install graphviz-pure; scripts/setup installs it) or Graphviz's `dot` (apt-get install "
        "graphviz), or ENGINE_DOT naming one; `-o FILE.dot` writes the DOT source without\n")
