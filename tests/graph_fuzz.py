"""A fuzz of graph text: mutants of the repository's own graphs (`.fxg` files, the cases of
`.fxt` fixtures, the dumps in `snapshots/`), each a seed's deterministic edit of one of them.

Input: a seed. Output: a mutant's text and the name of the edit that made it. The edits are
the classes hostile or careless text falls in: sizes beyond int64, negative, overflowing the
storage or dividing by zero; integer literals of thousands of digits or with leading zeros;
values and types nested a thousand deep; devices that are none; unknown symbols; names defined
twice; signatures that do not fit their graph; and the edits of a careless hand (a line deleted,
doubled or swapped, a character dropped or inserted, the text cut short).

`tests/test_graph_fuzz.py` asserts what every mutant must give; `scripts/nightly` runs more.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CASE = re.compile(r"^# --- .*$", re.MULTILINE)
_SNAPSHOT_HEADER = re.compile(r"^# .*$", re.MULTILINE)


@lru_cache(maxsize=1)
def corpus() -> tuple[str, ...]:
    """Every graph text of the repository that parses, in a fixed order."""
    import engine

    texts = []
    for path in sorted(ROOT.glob("tests/**/*.fxg")):
        texts.append(path.read_text())
    for path in sorted(ROOT.glob("tests/**/*.fxt")):
        texts.extend(_CASE.split(path.read_text()))
    for path in sorted(ROOT.glob("snapshots/**/*.txt")):
        texts.extend(_SNAPSHOT_HEADER.split(path.read_text()))
    kept = []
    for text in texts:
        text = text.strip() + "\n"
        if not text.startswith("def forward(") or text in kept:
            continue
        try:
            engine.parse_graph(text)
        except Exception:  # a graph that is not for parsing on its own (an error fixture)
            continue
        kept.append(text)
    return tuple(kept)


_DEEP = 1_000


def _sizes(text: str) -> list[re.Match]:
    return list(re.finditer(r"(?<=[\[ ])(\d+|s\d+)(?=[,\]])", text))


def _numbers(text: str) -> list[re.Match]:
    return list(re.finditer(r"(?<![\w.])\d+(?![\w.])", text))


def _replace(text: str, match: re.Match, new: str) -> str:
    return text[:match.start()] + new + text[match.end():]


def _pick(rng: random.Random, matches: list):
    return rng.choice(matches) if matches else None


def _size_edit(new):
    def edit(rng: random.Random, text: str) -> str | None:
        match = _pick(rng, _sizes(text))
        return None if match is None else _replace(text, match, new(rng, match.group()))
    return edit


def _number_edit(new):
    def edit(rng: random.Random, text: str) -> str | None:
        match = _pick(rng, _numbers(text))
        return None if match is None else _replace(text, match, new(rng, match.group()))
    return edit


def _line_edit(kind):
    def edit(rng: random.Random, text: str) -> str | None:
        lines = text.split("\n")
        if len(lines) < 3:
            return None
        i, j = rng.randrange(len(lines) - 1), rng.randrange(len(lines) - 1)
        if kind == "delete":
            del lines[i]
        elif kind == "double":
            lines.insert(i, lines[i])
        else:
            lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    return edit


def _character_edit(kind):
    def edit(rng: random.Random, text: str) -> str | None:
        i = rng.randrange(len(text))
        if kind == "drop":
            return text[:i] + text[i + 1:]
        if kind == "cut":
            return text[:i]
        return text[:i] + rng.choice("()[]{}:,.=*-+'\"#\\\n $@!<>0_x\u00e9\u2028\x00") + text[i:]
    return edit


def _nested_value(rng: random.Random, text: str) -> str | None:
    match = _pick(rng, list(re.finditer(r"(?<=\()[^()\n]*(?=\)\n)", text)))
    if match is None:
        return None
    opening, closing = rng.choice([("[", "]"), ("(", ",)"), ("{0: ", "}")])
    return _replace(text, match, match.group() + ", " + opening * _DEEP + "1" + closing * _DEEP)


def _nested_type(rng: random.Random, text: str) -> str | None:
    match = _pick(rng, list(re.finditer(r"(?<=: )[a-z0-9]+\[[^\]]*\](?=[ )=,])", text)))
    if match is None:
        return None
    return _replace(text, match, "(" * _DEEP + match.group() + ",)" * _DEEP)


def _device(rng: random.Random, text: str) -> str | None:
    match = _pick(rng, list(re.finditer(r"device\(type='cpu'\)", text)))
    new = rng.choice(["device(type='nope')", "device(index=-5)", "device(type='cpu', index=-5)",
                      "device('cpu', 'cuda')", "device(type=3)", "device()"])
    if match is None:
        match = _pick(rng, list(re.finditer(r"(?<=\()[a-z_0-9]+(?=[,)])", text)))
        return None if match is None else _replace(text, match, match.group() + ", " + new)
    return _replace(text, match, new)


def _duplicate_name(rng: random.Random, text: str) -> str | None:
    names = re.findall(r"^    (\w+)(?=: | = )", text, re.MULTILINE)
    if len(names) < 2:
        return None
    old, new = rng.sample(names, 2)
    return re.sub(rf"^    {old}(?=: | = )", f"    {new}", text, count=1, flags=re.MULTILINE)


def _signature_edit(rng: random.Random, text: str) -> str | None:
    lines = text.split("\n")
    entries = [i for i, line in enumerate(lines) if re.match(r"    (input|output) ", line)]
    if not entries:
        return None
    i = rng.choice(entries)
    kind = rng.randrange(4)
    if kind == 0:
        lines.insert(i, lines[i])
    elif kind == 1:
        del lines[i]
    elif kind == 2:
        lines[i] = re.sub(r"(?<=: )\w+", rng.choice(["BUFFER", "PARAMETER", "USER_INPUT",
                                                       "LOSS_OUTPUT", "TOKEN", "NOPE"]), lines[i])
    else:
        lines[i] = re.sub(r"(?<=put )\w+", rng.choice(["nowhere", "x", "None", "3"]), lines[i])
    return "\n".join(lines)


def _signature_added(rng: random.Random, text: str) -> str | None:
    if "signature:" in text:
        return None
    return text.rstrip("\n") + "\n\nsignature:\n    input x: USER_INPUT\n    output x: USER_OUTPUT\n"


def _dtype_changed(rng: random.Random, text: str) -> str | None:
    match = _pick(rng, list(re.finditer(r"\b(f32|f16|bf16|i64|b8)(?=\[)", text)))
    new = rng.choice(["f32", "f16", "bf16", "f64", "i64", "i32", "b8", "u8", "c64", "nope"])
    return None if match is None else _replace(text, match, new)


def _op_changed(rng: random.Random, text: str) -> str | None:
    match = _pick(rng, list(re.finditer(r"aten\.\w+\.\w+(?=\()", text)))
    new = rng.choice(["aten.sin.default", "aten.relu.default", "aten.add.Tensor",
                      "aten.mul.Scalar", "aten.to.dtype", "aten.clone.default",
                      "aten.view.default", "aten.nope.default", "aten.sin.nope"])
    return None if match is None else _replace(text, match, new)


def _annotation_dropped(rng: random.Random, text: str) -> str | None:
    match = _pick(rng, list(re.finditer(r"(?<=^    \w)(\w*): [^=\n]+(?= = )", text, re.M)))
    return None if match is None else _replace(text, match, match.group(1))


EDITS = {
    "size above int64": _size_edit(lambda rng, old: str(2 ** rng.randrange(63, 200))),
    "negative size": _size_edit(lambda rng, old: f"-{rng.randrange(1, 9)}"),
    "size overflowing storage": _size_edit(lambda rng, old: rng.choice(
        ["2**62", "4611686018427387904", "2**40*2**40", "9223372036854775807"])),
    "size of an unknown sum": _size_edit(lambda rng, old: f"s{rng.randrange(9)} - 100"),
    "size divided by zero": _size_edit(lambda rng, old: rng.choice(
        [f"{old} // 0", f"{old} % 0", "s0 // (s0 - s0)"])),
    "size of many symbols": _size_edit(lambda rng, old: "*".join(["s0"] * rng.randrange(3, 12))),
    "unbacked symbol far out": _size_edit(lambda rng, old: f"u{rng.choice([99999, 10**30])}"),
    "literal of thousands of digits": _number_edit(lambda rng, old: "7" * rng.randrange(4301, 6000)),
    "literal with leading zeros": _number_edit(lambda rng, old: "00" + old),
    "literal above int64": _number_edit(lambda rng, old: str(2 ** 64 + int(old))),
    "value nested deep": _nested_value,
    "type nested deep": _nested_type,
    "device that is none": _device,
    "name defined twice": _duplicate_name,
    "signature that does not fit": _signature_edit,
    "signature added": _signature_added,
    "dtype changed": _dtype_changed,
    "op changed": _op_changed,
    "annotation dropped": _annotation_dropped,
    "line deleted": _line_edit("delete"),
    "line doubled": _line_edit("double"),
    "lines swapped": _line_edit("swap"),
    "character dropped": _character_edit("drop"),
    "character inserted": _character_edit("insert"),
    "text cut short": _character_edit("cut"),
}


def mutant(seed: int) -> tuple[str, str, str]:
    """(edit's name, the original, the mutant) of one seed; every edit class comes in turn."""
    rng = random.Random(seed)
    texts = corpus()
    names = list(EDITS)
    name = names[seed % len(names)]
    for _ in range(20):
        original = rng.choice(texts)
        text = EDITS[name](rng, original)
        if text is not None:
            return name, original, text
    return name, original, original
