"""A `.pt2` runs no code when the engine loads it (README `## Security`, `### Saved programs`).

Each hostile archive starts as a real `torch.export.save` of a small program (parameters,
buffers, a tensor constant, dynamic shapes) with entries rewritten: pickles whose `__reduce__`
writes a marker file, size expressions, names, guards and pytree specs that run code or import
a marker module, AOTInductor code with a compiler command that writes a marker, the torch 2.7
format, and archives that are no zip, cut short, a zip bomb, or hold an entry twice. Each is
refused with one located line (`FILE: error: ...`), in the process and by `engine` as a
process, and afterwards no marker file exists and no marker module was imported. The control:
`torch.export.load` (what `--trust-pt2` calls) runs those payloads. A benign archive loads to
what `torch.export.load` gives, and a program the engine rewrote and saved loads back.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import subprocess
import sys
import typing
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import engine
from engine.frontends import pt2
from engine.frontends.cli import main
from engine.frontends.pt2 import Pt2Error, load_program

REPO = Path(__file__).resolve().parent.parent
CLEANUP = str(REPO / "rules" / "cleanup.rw")
AUTOCAST = str(REPO / "rules" / "autocast.rw")
EXAMPLE = str(REPO / "examples" / "models.py") + ":autocast_mlp"
MODULES = ("pt2_marker_enum", "pt2_marker_factory")  # modules a spec would import


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
        self.register_buffer("scale", torch.full((3,), 2.0))
        self.register_buffer("steps", torch.arange(3.0), persistent=False)
        self.offset = torch.tensor([0.5, -0.5, 1.0])  # a tensor constant

    def forward(self, x, y):
        n = x.shape[0]
        z = self.linear(x) * self.scale + self.offset + self.steps
        return z.sum(0) + y[: n // 2].sum() + n % 3


def inputs(rows: int = 6, length: int = 8):
    return torch.randn(rows, 4), torch.randn(length)


@pytest.fixture(scope="module")
def benign(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    rows = torch.export.Dim("rows", min=4, max=64)
    program = torch.export.export(Small(), inputs(), dynamic_shapes={
        "x": {0: rows}, "y": {0: torch.export.Dim.DYNAMIC}})
    path = tmp_path_factory.mktemp("benign") / "small.pt2"
    torch.export.save(program, path)
    return path


# --- hostile archives --------------------------------------------------------------------------
class Payload:
    """Unpickled, runs `code` (with pickle's own `exec`): writes a marker file."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


def touch(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def rebuild(source: Path, target: Path, *, model=None, weights=None, constants=None,
            replace=None, drop=(), add=None, root=None) -> Path:
    """A copy of the archive `source` with `models/model.json` and the configs edited by the
    functions given, entries (named without the root folder) replaced, dropped or added, and
    the root folder renamed to `root`."""
    edits = {"models/model.json": model, "data/weights/model_weights_config.json": weights,
             "data/constants/model_constants_config.json": constants}
    replace, add = replace or {}, add or {}
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        folder = old.namelist()[0].split("/")[0] + "/"
        root = f"{root}/" if root else folder
        for info in old.infolist():
            name = info.filename[len(folder):]
            if name in drop:
                continue
            data = replace.get(name, old.read(info))
            if edits.get(name):
                document = json.loads(data)
                edits[name](document)
                data = json.dumps(document).encode()
            new.writestr(zipfile.ZipInfo(root + name, info.date_time), data)
        for name, data in add.items():
            new.writestr(root + name, data)
    return target


def graph(d):
    return d["graph_module"]["graph"]


def renamed(value, old: str, new: str):
    if isinstance(value, dict):
        return {(new if k == old else k): renamed(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [renamed(v, old, new) for v in value]
    return new if value == old else value


def in_spec(d, edit):
    signature = d["graph_module"]["module_call_graph"][0]["signature"]
    spec = json.loads(signature["in_spec"])
    edit(spec[1]["children_spec"][1])  # the kwargs: a dict, {} here
    signature["in_spec"] = json.dumps(spec)


def enum_keys(kwargs):
    kwargs["context"] = json.dumps([{"__enum__": True, "fqn": "pt2_marker_enum:E", "name": "A"}])
    kwargs["children_spec"] = [{"type": None, "context": None, "children_spec": []}]


def factory(kwargs):
    kwargs.update(type="collections.defaultdict", context={
        "default_factory_module": "pt2_marker_factory", "default_factory_name": "E",
        "dict_context": []})


def aoti(marker: Path, library: bool) -> dict[str, bytes]:
    """AOTInductor files: C++ and the flags torch compiles it with (the compiler: a command
    that writes `marker`), and with `library` a `.so` (any bytes), which torch would dlopen."""
    flags = {"compiler": f"touch {marker};", "definitions": [], "include_dirs": [], "cflags": [],
             "ldflags": [], "libraries_dirs": [], "libraries": [], "passthrough_args": [],
             "aot_mode": True, "use_relative_path": False, "compile_only": True}
    folder = "data/aotinductor/model/"
    return {**({folder + "model.wrapper.so": b"\x7fELF not really"} if library else {}),
            folder + "model.wrapper.cpp": b"int main() {}\n",
            folder + "model.wrapper_compile_flags.json": json.dumps(flags).encode(),
            folder + "model.wrapper_linker_flags.json": json.dumps(flags).encode(),
            folder + "model.wrapper_metadata.json": b'{"AOTI_DEVICE_KEY": "cpu"}'}


def legacy(benign: Path, target: Path, marker: Path) -> Path:
    """The format of torch 2.7 and older: JSON and pickles at the top of the zip."""
    with zipfile.ZipFile(benign) as old:
        program = old.read(old.namelist()[0].split("/")[0] + "/models/model.json")
    with zipfile.ZipFile(target, "w") as new:
        new.writestr("version", "8.20")
        new.writestr("serialized_exported_program.json", program)
        new.writestr("serialized_state_dict.pt", saved({}))
        new.writestr("serialized_constants.pt", saved(Payload(touch(marker))))
        new.writestr("serialized_example_inputs.pt", saved((inputs(), {})))
    return target


def bomb(benign: Path, target: Path) -> Path:
    """The first weight deflated from 8 MiB of zeros: 1000 times smaller than it unpacks."""
    with zipfile.ZipFile(benign) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename.endswith("data/weights/weight_0"):
                new.writestr(info.filename, bytes(8 << 20), zipfile.ZIP_DEFLATED)
            else:
                new.writestr(info, old.read(info))
    return target


def duplicated(benign: Path, target: Path) -> Path:
    with zipfile.ZipFile(benign) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, old.read(info))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile: "Duplicate name"
            new.writestr(old.infolist()[0], b"the second")
    return target


def no_program(benign: Path, target: Path) -> Path:
    """What a failed `torch.export.save` leaves: the weights, no `models/model.json`."""
    return rebuild(benign, target, drop=("models/model.json", "data/sample_inputs/model.pt"))


def hostile(benign: Path, folder: Path, marker) -> dict[str, Path]:
    """Each hostile archive by name; `marker(name)` is the file its payload would write."""
    def edited(name, **edits):
        return rebuild(benign, folder / f"{name}.pt2", **edits)

    def use_pickle(fqn):
        def edit(config):
            config["config"][fqn]["use_pickle"] = True
        return edit

    def expression(text):
        def edit(d):
            graph(d)["tensor_values"]["x"]["sizes"][0]["as_expr"]["expr_str"] = text
        return edit

    def sym_int(text):
        def edit(d):
            graph(d)["sym_int_values"]["floordiv"]["as_expr"]["expr_str"] = text
        return edit

    def path_name(name):
        def edit(config):
            config["config"]["offset"].update(path_name=name, use_pickle=True, tensor_meta=None)
        return edit

    def opened(name):  # Python that writes the marker of `name`, as an expression
        return f"__import__('builtins').open({str(marker(name))!r}, 'w')"

    def rename(d):
        graph_module = d["graph_module"]
        graph_module["graph"] = renamed(graph_module["graph"], "y", f"y={opened('name')}")
        graph_module["signature"] = renamed(graph_module["signature"], "y",
                                            f"y={opened('name')}")

    def guard(d):
        d["guards_code"] = [f"{opened('guard')} is not None"]

    def range_key(d):
        d["range_constraints"][opened("range_key")] = {"min_val": 2, "max_val": None}

    def target(d):
        graph(d)["nodes"][1]["target"] = "torch.os.system"

    def operator_argument(d):  # a higher-order operator that calls its argument: os.system
        node = graph(d)["nodes"][1]
        node.update(target="torch.ops.higher_order.wrap_with_set_grad_enabled", name=None,
                    inputs=[{"name": "", "arg": arg, "kind": 1} for arg in (
                        {"as_bool": True}, {"as_operator": "torch.os.system"},
                        {"as_string": f"touch {marker('operator_argument')}"})])

    def effect_argument(d):  # the same with an op whose effect lies outside tensors
        node = graph(d)["nodes"][1]
        node.update(target="torch.ops.higher_order.wrap_with_set_grad_enabled", name=None,
                    inputs=[{"name": "", "arg": arg, "kind": 1} for arg in (
                        {"as_bool": True}, {"as_operator": "torch.ops.aten._print.default"},
                        {"as_string": "printed"})])

    def stack_trace(d):
        graph(d)["nodes"][1]["metadata"]["stack_trace"] = \
            'File "m.py", line 1, in f\n    x\r' + touch(marker("stack_trace"))

    payload = lambda name: saved(Payload(touch(marker(name))))  # noqa: E731
    cases = {
        "pickled_weight": edited("pickled_weight", weights=use_pickle("linear.weight"),
                                 replace={"data/weights/weight_0": payload("pickled_weight")}),
        "pickled_constant": edited(
            "pickled_constant", constants=use_pickle("offset"),
            replace={"data/constants/tensor_0": payload("pickled_constant")}),
        "opaque_constant": edited(
            "opaque_constant", constants=path_name("opaque_obj_0"),
            add={"data/constants/opaque_obj_0": pickle.dumps(Payload(touch(
                marker("opaque_constant"))))}),
        "torchbind_constant": edited("torchbind_constant", constants=path_name("custom_obj_0"),
                                     add={"data/constants/custom_obj_0": b"PK\x03\x04"}),
        "pickled_sample_inputs": edited(
            "pickled_sample_inputs",
            replace={"data/sample_inputs/model.pt": payload("pickled_sample_inputs")}),
        "size_expression": edited("size_expression", model=expression(opened("size_expression"))),
        "sym_int_expression": edited("sym_int_expression",
                                     model=sym_int(opened("sym_int_expression"))),
        "name": edited("name", model=rename),
        "guard": edited("guard", model=guard),
        "range_key": edited("range_key", model=range_key),
        "enum_spec": edited("enum_spec", model=lambda d: in_spec(d, enum_keys)),
        "defaultdict_spec": edited("defaultdict_spec", model=lambda d: in_spec(d, factory)),
        "target": edited("target", model=target),
        "operator_argument": edited("operator_argument", model=operator_argument),
        "effect_argument": edited("effect_argument", model=effect_argument),
        "stack_trace": edited("stack_trace", model=stack_trace),
        "aoti_only": rebuild(benign, folder / "aoti_only.pt2", add=aoti(marker("aoti_only"), library=True),
                             drop=("models/model.json", "data/sample_inputs/model.pt")),
        "aoti_beside": edited("aoti_beside", add=aoti(marker("aoti_beside"), library=False)),
        "aoti_library_beside": edited("aoti_library_beside", add=aoti(
            marker("aoti_library_beside"), library=True)),
        "legacy": legacy(benign, folder / "legacy.pt2", marker("legacy")),
        "legacy_weights": edited("legacy_weights", add={
            "data/weights/model.pt": payload("legacy_weights")}),
        "bomb": bomb(benign, folder / "bomb.pt2"),
        "duplicated": duplicated(benign, folder / "duplicated.pt2"),
        "no_program": no_program(benign, folder / "no_program.pt2"),
    }
    (folder / "not_zip.pt2").write_bytes(b"#!/bin/sh\ntouch marker\n" * 40)
    (folder / "truncated.pt2").write_bytes(benign.read_bytes()[: benign.stat().st_size // 2])
    (folder / "empty.pt2").write_bytes(b"")
    cases.update({name: folder / f"{name}.pt2" for name in ("not_zip", "truncated", "empty")})
    return cases


# What each is refused with, after `FILE: error: ` (the archive's folder is `small/`).
REFUSALS = {
    "pickled_weight": "small/data/weights/model_weights_config.json: weight `linear.weight` is "
                      "pickled and is not a tensor that torch.load(weights_only=True) can load "
                      "(pass --trust-pt2 if you trust the file)",
    "pickled_constant": "small/data/constants/model_constants_config.json: constant `offset` is "
                        "pickled and is not a tensor that torch.load(weights_only=True) can load",
    "opaque_constant": "small/data/constants/model_constants_config.json: constant `offset` is an "
                       "opaque object, a pickle that loading would run",
    "torchbind_constant": "small/data/constants/model_constants_config.json: constant `offset` is "
                          "a torchbind object, a pickle that loading would run",
    "size_expression": "small/models/model.json: graph_module.graph.tensor_values[\"x\"].sizes[0]"
                       ".as_expr.expr_str: `__import__('builtins').open(",
    "sym_int_expression": "small/models/model.json: graph_module.graph.sym_int_values"
                          "[\"floordiv\"].as_expr.expr_str: `__import__(",
    "name": "small/models/model.json: graph_module.graph.inputs[6].as_tensor.name: "
            "`y=__import__('builtins').open(",
    "guard": "small/models/model.json: guards_code[0]: `__import__('builtins').open(",
    "range_key": "small/models/model.json: range_constraints key: `__import__(",
    "enum_spec": "small/models/model.json: graph_module.module_call_graph[0].signature.in_spec: "
                 "not a pytree spec torch writes (an enum, which torch would import by name)",
    "defaultdict_spec": "small/models/model.json: graph_module.module_call_graph[0].signature."
                        "in_spec: not a pytree spec torch writes (a defaultdict whose factory is "
                        "not a builtin type)",
    "target": "small/models/model.json: torch cannot build the program (SpecViolationError: "
              "Operator '<built-in function system>' is not an allowed operator type",
    "operator_argument": "small/models/model.json: node `wrap_with_set_grad_enabled` takes a "
                         "builtin_function_or_method (`<built-in function system>`)",
    "effect_argument": "small/models/model.json: node `wrap_with_set_grad_enabled` calls "
                       "`aten._print`, which prints (allowed with --allow-effect aten._print)",
    "stack_trace": "small/models/model.json: graph_module.graph.nodes[1].metadata"
                   "[\"stack_trace\"]: the text holds a control character ('\\r')",
    "aoti_only": "no exported program `models/model.json`; it holds only AOTInductor-compiled "
                 "code, which is native code and never loaded here",
    "legacy": "an archive in the format of torch 2.7 and older, whose weights are pickles; save "
              "it again with torch.export.save of torch 2.8 or later (or pass --trust-pt2 if you "
              "trust it)",
    "legacy_weights": "small/data/weights/model.pt: the weights as one pickle, as torch 2.7 and "
                      "older saved them",
    "bomb": "small/data/weights/weight_0: would unpack ",
    "duplicated": "small/data/weights/weight_0 is in the archive twice",
    "no_program": "no exported program `models/model.json`",
    "not_zip": "not a zip archive (File is not a zip file)",
    "truncated": "not a zip archive (File is not a zip file)",
    "empty": "not a zip archive (File is not a zip file)",
}
# No code runs, and the program loads (torch would dlopen the `.so`: any bytes here, it fails).
LOADED = ("pickled_sample_inputs", "aoti_beside", "aoti_library_beside")
# The payloads torch.export.load runs (the guard's when the program's module() is called, the
# operator argument's when its graph runs, as `engine verify` runs it: torch.fx.Interpreter).
TORCH_RUNS = ("pickled_weight", "pickled_constant", "opaque_constant", "pickled_sample_inputs",
              "size_expression", "sym_int_expression", "name", "guard", "operator_argument",
              "aoti_beside", "legacy", "legacy_weights")


def marker_folder(folder: Path) -> Path:
    """The folder the payloads write into, holding the modules a spec would import."""
    folder.mkdir()
    for module in MODULES:
        (folder / f"{module}.py").write_text(
            f"open({str(folder / module)!r}, 'w').close()\n"
            "import enum\n\nclass E(enum.Enum):\n    A = 1\n")
    return folder


@pytest.fixture(scope="module")
def markers(tmp_path_factory) -> Path:
    return marker_folder(tmp_path_factory.mktemp("run") / "markers")


@pytest.fixture(scope="module")
def archives(benign, markers) -> dict[str, Path]:
    folder = markers.parent / "hostile"
    folder.mkdir()
    return hostile(benign, folder, lambda name: markers / name)


def ran(markers: Path) -> list[str]:
    return sorted(p.name for p in markers.iterdir() if p.suffix != ".py" and p.name != "__pycache__")


# --- refused, in the process ----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_each_hostile_archive_is_refused_with_one_located_line(name, archives, markers,
                                                                monkeypatch):
    monkeypatch.syspath_prepend(str(markers))  # where the marker modules could be imported from
    path = archives[name]
    with pytest.raises(Pt2Error) as refused:
        load_program(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: error: {REFUSALS[name]}"), message
    assert "\n" not in message and refused.value.path == str(path)
    assert ran(markers) == []
    assert not any(module in sys.modules for module in MODULES)


@pytest.mark.parametrize("name", LOADED)
def test_an_archive_whose_extras_would_run_code_loads_its_program_only(name, archives, benign,
                                                                       markers):
    """Sample inputs that need pickle are dropped; AOTInductor files are never read."""
    program, reference = load_program(archives[name]), torch.export.load(benign)
    assert engine.dump(program) == engine.dump(reference)
    if name == "pickled_sample_inputs":
        assert program.example_inputs is None and reference.example_inputs is not None
    else:
        torch.testing.assert_close(program.example_inputs, reference.example_inputs)
    assert ran(markers) == []


def test_in_a_fresh_process_nothing_ran_and_nothing_was_imported(archives, markers):
    script = f"""
import json, sys
from engine.frontends.pt2 import Pt2Error, load_program
said = {{}}
for name, path in {json.dumps({k: str(v) for k, v in archives.items()})}.items():
    try:
        program = load_program(path)
        said[name] = "loaded"
    except Pt2Error as error:
        said[name] = str(error)
said["modules"] = sorted(m for m in sys.modules if m.startswith("pt2_marker"))
print(json.dumps(said))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": f"{markers}{os.pathsep}{REPO}"})
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said.pop("modules") == []
    assert {name for name, what in said.items() if what == "loaded"} == set(LOADED)
    assert all(said[name].startswith(f"{archives[name]}: error: {REFUSALS[name]}")
               for name in REFUSALS)
    assert ran(markers) == []


def test_torch_export_load_runs_the_payloads(benign, tmp_path):
    """The control: what `--trust-pt2` calls runs each payload the engine refuses (the tests
    above would pass against archives that run nothing). Its own copies: they write markers."""
    markers = marker_folder(tmp_path / "markers")
    (tmp_path / "hostile").mkdir()
    archives = hostile(benign, tmp_path / "hostile", lambda name: markers / name)
    script = f"""
import json, torch
for name in {json.dumps(TORCH_RUNS + ("enum_spec", "defaultdict_spec"))}:
    path = {json.dumps({k: str(v) for k, v in archives.items()})}[name]
    try:
        program = torch.export.load(path)
        x, y = torch.randn(6, 4), torch.randn(8)
        if name == "guard":
            program.module()(x, y)
        if name == "operator_argument":
            lifted = [program.state_dict.get(spec.target, program.constants.get(spec.target))
                      for spec in program.graph_signature.input_specs if spec.target]
            torch.fx.Interpreter(program.graph_module).run(*lifted, x, y)
    except Exception:
        pass
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(markers)})
    assert done.returncode == 0, done.stderr
    assert ran(markers) == sorted(TORCH_RUNS + MODULES)


# --- refused by the command line --------------------------------------------------------------------
def engine_process(*argv, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.frontends.cli", *map(str, argv)],
                          cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(REPO)})


def assert_refused(done: subprocess.CompletedProcess, path: Path, refusal: str):
    assert done.returncode == 1, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"{path}: error: {refusal}"), done.stderr


@pytest.mark.parametrize("name", ["pickled_weight", "legacy"])
def test_engine_dump_refuses_it_in_one_line_and_writes_nothing(name, archives, markers):
    before = sorted(archives[name].parent.iterdir())
    assert_refused(engine_process("dump", archives[name]), archives[name], REFUSALS[name])
    assert ran(markers) == [] and sorted(archives[name].parent.iterdir()) == before


def test_engine_apply_refuses_it_and_saves_nothing(archives, markers, tmp_path):
    out = tmp_path / "out.pt2"
    done = engine_process("apply", CLEANUP, archives["name"], "-o", out)
    assert_refused(done, archives["name"], REFUSALS["name"])
    assert list(tmp_path.iterdir()) == [] and ran(markers) == []


@pytest.mark.parametrize("argv", [["apply", CLEANUP], ["explain", CLEANUP], ["verify", CLEANUP],
                                  ["dump"], ["draw", "-o", "{tmp}/d.dot"]],
                         ids=["apply", "explain", "verify", "dump", "draw"])
def test_every_command_taking_a_model_refuses_it(argv, archives, markers, tmp_path, capsys):
    path = archives["opaque_constant"]
    status = main([a.format(tmp=tmp_path) for a in argv] + [str(path)])
    captured = capsys.readouterr()
    assert status == 1 and captured.out == ""
    assert captured.err.splitlines() == [f"{path}: error: {REFUSALS['opaque_constant']} (pass "
                                         "--trust-pt2 if you trust the file)"]
    assert list(tmp_path.iterdir()) == [] and ran(markers) == []


def test_the_readme_refusal_is_what_the_command_prints(benign, tmp_path, monkeypatch, capsys):
    readme = (REPO / "README.md").read_text().splitlines()
    (shown,) = [line.strip() for line in readme if line.startswith("  evil.pt2: error: ")]
    evil = "y=__import__('os').system('touch pwned')"

    def rename(d):
        for part in ("graph", "signature"):
            d["graph_module"][part] = renamed(d["graph_module"][part], "y", evil)

    rebuild(benign, tmp_path / "evil.pt2", model=rename, root="evil")
    monkeypatch.chdir(tmp_path)
    assert main(["dump", "evil.pt2"]) == 1
    assert capsys.readouterr().err.splitlines() == [shown]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt2"]  # no `pwned`


# --- what loads ----------------------------------------------------------------------------------
def test_a_benign_archive_loads_as_torch_loads_it(benign):
    ours, torchs = load_program(benign), torch.export.load(benign)
    assert engine.dump(ours) == engine.dump(torchs)
    assert str(ours.graph_signature) == str(torchs.graph_signature)
    assert str(ours.range_constraints) == str(torchs.range_constraints)
    assert ours._guards_code == torchs._guards_code and ours._guards_code
    assert ours.state_dict.keys() == torchs.state_dict.keys() and len(ours.state_dict) == 3
    for key, value in torchs.state_dict.items():
        assert type(ours.state_dict[key]) is type(value)
        assert ours.state_dict[key].requires_grad == value.requires_grad
        torch.testing.assert_close(ours.state_dict[key], value, rtol=0, atol=0)
    assert ours.constants.keys() == torchs.constants.keys() == {"offset", "steps"}
    for key, value in torchs.constants.items():
        torch.testing.assert_close(ours.constants[key], value, rtol=0, atol=0)
    torch.testing.assert_close(ours.example_inputs, torchs.example_inputs, rtol=0, atol=0)
    x, y = inputs(9, 5)  # other sizes: the dynamic dimensions
    torch.testing.assert_close(ours.module()(x, y), torchs.module()(x, y), rtol=0, atol=0)
    with pytest.raises(AssertionError, match="Guard failed"):  # rows: min=4
        ours.module()(*inputs(2, 5))


def test_a_pickled_tensor_that_weights_only_loads_is_read(benign, tmp_path):
    """`use_pickle` with a plain tensor: torch.load(weights_only=True) reads it."""
    weight = torch.arange(12.0).reshape(3, 4)
    path = rebuild(benign, tmp_path / "pickled.pt2", weights=lambda config: config["config"][
        "linear.weight"].update(use_pickle=True), replace={"data/weights/weight_0":
                                                           saved(torch.nn.Parameter(weight))})
    ours, torchs = load_program(path), torch.export.load(path)
    torch.testing.assert_close(ours.state_dict["linear.weight"], weight, rtol=0, atol=0)
    torch.testing.assert_close(ours.state_dict["linear.weight"], torchs.state_dict["linear.weight"])


def test_trust_pt2_is_torch_export_load(benign, tmp_path, capsys):
    assert engine.dump(load_program(benign, trust=True)) == engine.dump(torch.export.load(benign))
    assert main(["dump", "--trust-pt2", str(benign)]) == 0
    assert capsys.readouterr().out == engine.dump(torch.export.load(benign))
    # what the flag gives up: torch unpickles the sample inputs, running the payload
    marker = tmp_path / "ran"
    path = rebuild(benign, tmp_path / "inputs.pt2", replace={
        "data/sample_inputs/model.pt": saved(Payload(touch(marker)))})
    assert main(["dump", "--trust-pt2", str(path)]) == 1  # torch then fails on what it returned
    assert marker.exists()


def test_engine_dump_as_a_process_prints_what_torch_loads(benign):
    done = engine_process("dump", benign)
    assert done.returncode == 0, done.stderr
    assert done.stdout == engine.dump(torch.export.load(benign))


@pytest.mark.parametrize("argv", [["apply", CLEANUP], ["explain", CLEANUP],
                                  ["verify", "--examples", "1", CLEANUP], ["dump"],
                                  ["draw", "-o", "{tmp}/d.dot"]],
                         ids=["apply", "explain", "verify", "dump", "draw"])
def test_every_command_taking_a_model_takes_trust_pt2(argv, benign, tmp_path, capsys):
    command, *rest = (a.format(tmp=tmp_path) for a in argv)
    assert main([command, "--trust-pt2", *rest, str(benign)]) == 0
    capsys.readouterr()


def test_a_program_rewritten_and_saved_loads_back(benign, tmp_path, capsys):
    """`engine apply ... -o`, then `engine dump` of what it saved, in place too: what torch
    loads from it (a save and load renames some nodes: `submod_2` comes back `submod_1`)."""
    in_place = tmp_path / "in_place.pt2"
    in_place.write_bytes(benign.read_bytes())
    for rules, model, out in ((AUTOCAST, EXAMPLE, tmp_path / "autocast.pt2"),
                              (CLEANUP, str(benign), tmp_path / "cleanup.pt2"),
                              (CLEANUP, str(in_place), in_place)):
        assert main(["apply", rules, model, "-o", str(out)]) == 0
        capsys.readouterr()
        assert main(["dump", str(out)]) == 0
        assert capsys.readouterr().out == engine.dump(torch.export.load(out))
    assert "higher_order.wrap_with_autocast" in engine.dump(load_program(tmp_path / "autocast.pt2"))


def test_every_string_of_torchs_schema_has_a_role():
    """A string field torch adds later is refused until it is given a role here."""
    from torch._export.serde import schema

    found, seen = set(), set()

    def walk(tp, role):
        tp = getattr(schema, tp.__forward_arg__) if isinstance(tp, typing.ForwardRef) else tp
        tp = getattr(schema, tp) if isinstance(tp, str) else tp
        origin = typing.get_origin(tp)
        if origin in (typing.Annotated, typing.Union, __import__("types").UnionType, list, dict):
            args = typing.get_args(tp)
            if origin is dict:
                found.add((*role, "key"))
            for arg in (args[:1] if origin is typing.Annotated else args[-1:] if origin is dict
                        else args):
                walk(arg, role)
        elif dataclasses.is_dataclass(tp) and tp not in seen:
            seen.add(tp)
            hints = typing.get_type_hints(tp, globalns=vars(schema), include_extras=True)
            for field in dataclasses.fields(tp):
                walk(hints[field.name], (tp.__name__, field.name))
        elif tp is str:
            found.add(role)

    walk(schema.ExportedProgram, ())
    walk(schema.PayloadConfig, ())
    assert found == set(pt2.ROLES)
    with pytest.raises(pt2._Refused, match="a string field this loader does not know"):
        pt2._check_string(("Node", "new_field"), "anything", "models/model.json: nodes[0]")
