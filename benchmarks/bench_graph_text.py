"""Benchmark: a rewrite of a graph read from text, against the same rewrite of the same graph
built with torch.fx, in the same run: time and peak memory.

The graph: benchmarks/bench_dag.py's chain (x -> relu(add(x, y)) -> mul(_, 2) -> ..., 3 nodes
an occurrence, every node's value a fake tensor), rewritten by benchmarks/add_relu.rw. Each side
runs in a process of its own, so that its peak resident memory is its own:
- fx: the chain built with torch.fx (its nodes share one fake value, as bench_dag's do), then
  `RuleSet.rewrite`;
- text: `engine.parse_graph` of the chain's dump (written to a file beforehand, read inside
  the timing), then `RuleSet.rewrite`.
Both results are checked to be the same graph. The ratios are text / fx.

    .venv/bin/python benchmarks/bench_graph_text.py [--nodes 20000 200000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def side(kind: str, occurrences: int, path: str) -> dict:
    import engine
    from bench_dag import RULES, chain

    rules = engine.load_rules(RULES)
    start = time.perf_counter()
    if kind == "fx":
        gm = chain(occurrences)
    else:
        gm = engine.parse_graph(Path(path).read_text(), path)
    built = time.perf_counter()
    result = rules.rewrite(gm)
    done = time.perf_counter()
    return {"build": built - start, "rewrite": done - built,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "dump": engine.dump(result.module), "matches": len(result.report.matches)}


def run_side(kind: str, occurrences: int, path: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--side", kind, str(occurrences), path],
                         capture_output=True, text=True, check=True, cwd=HERE)
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[20000, 200000])
    parser.add_argument("--side", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    sys.path.insert(0, str(HERE))
    if options.side:
        kind, occurrences, path = options.side
        print(json.dumps(side(kind, int(occurrences), path)))
        return
    import engine
    from bench_dag import chain

    print(f"{'nodes':>7} | {'fx build s':>10} {'rewrite s':>9} {'peak MiB':>8} | "
          f"{'parse s':>8} {'rewrite s':>9} {'peak MiB':>8} | {'time':>6} {'memory':>6}")
    for nodes in options.nodes:
        occurrences = max(1, nodes // 3)
        with tempfile.NamedTemporaryFile("w", suffix=".fxg", delete=False) as file:
            file.write(engine.dump(chain(occurrences)))
        fx, text = (run_side(kind, occurrences, file.name) for kind in ("fx", "text"))
        Path(file.name).unlink()
        assert fx["dump"] == text["dump"] and fx["matches"] == text["matches"] == occurrences
        fx_time, text_time = fx["build"] + fx["rewrite"], text["build"] + text["rewrite"]
        print(f"{occurrences * 3 + 2:>7} | {fx['build']:10.2f} {fx['rewrite']:9.2f} "
              f"{fx['peak_mib']:8.0f} | {text['build']:8.2f} {text['rewrite']:9.2f} "
              f"{text['peak_mib']:8.0f} | {text_time / fx_time:5.2f}x "
              f"{text['peak_mib'] / fx['peak_mib']:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
