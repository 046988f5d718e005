"""Saved programs (`.pt2`) read as data: nothing in the archive runs.

Input: a path. Output: the ExportedProgram `torch.export.load` gives for an archive that
`torch.export.save` wrote, or a `Pt2Error`, one line: `FILE: error: ENTRY: FIELD: WHAT`.

`torch.export.load` (torch 2.13) runs code an archive brings: it unpickles weights and constants
that say `use_pickle`, opaque and torchbind constants, and sample inputs (falling back to
`weights_only=False`); it evaluates each size expression of `models/*.json` (`sympy.sympify`
is `eval`); its FX code generation pastes the file's names into Python source it then executes
(a tensor named `y=__import__('os').system(...)` becomes a default argument); a pytree spec can
name a module to import (`enum_object_hook`, `defaultdict`); `ExportedProgram.module()` execs
the `guards_code` strings; it dlopens an AOTInductor `.so` or compiles the archive's C++ with
the compiler its `*_compile_flags.json` names; it reads the torch 2.7 format, whose weights
are pickles; and it accepts a higher-order operator given `os.system` as its argument
(`wrap_with_set_grad_enabled(True, os.system, "...")`), which runs when the graph does. Here,
instead:

- the archive is opened with `zipfile`; only `archive_format`, `archive_version`,
  `models/model.json`, the weights and constants configs, the payload files they name and the
  sample inputs are ever read. AOTInductor code (`data/aotinductor/`, any `.so`, compile flags),
  ExecuTorch files, extra files and other models are never read, so never loaded or run; an
  archive with no exported program `model` is refused. Every entry read is stored or deflated,
  at most 100 times smaller than what it unpacks to (past 1 MiB), and named once.
- the torch 2.7 format (`serialized_exported_program.json` at the top) is refused.
- weights and tensor constants are raw bytes, viewed as torch does; a pickled one
  (`use_pickle`) loads with `torch.load(weights_only=True)` or is refused; torchbind and opaque
  constants (pickles by design) are refused. Sample inputs load with `weights_only=True` or are
  dropped (`example_inputs` is then None): nothing in the engine uses them.
- `models/model.json` must match torch's schema (`torch/_export/serde/schema.py`) field for
  field, and each string its role: names `[A-Za-z_][A-Za-z0-9_]*`, dotted names for state-dict
  keys and module paths, operator paths under `torch`, `_operator` or `math`, size expressions
  in the grammar of what torch writes (sympy's `srepr`: `Symbol('s0', integer=True,
  positive=True)`, `Integer`, `Add`, `Mul`, `FloorDiv`, `Mod`, ... and nothing else, checked
  on the parse tree before sympy sees it), pytree specs of registered types whose every string
  is plain text and that import nothing, guards in the grammar torch's guard printer writes
  (`L['x'].size()[0] >= 2`, arithmetic, comparisons, `math.floor`, ...), and free text (stack
  traces, metadata) without control characters.
- then torch's own deserializer builds the program, and every call in every graph is checked:
  an aten (or other registered) operator, a higher-order operator of torch's, or one of the
  builtins torch.export's verifier allows, with arguments that are values, never callables of
  the file's choosing.

`load_program(path, trust=True)` (`engine ... --trust-pt2`) is plain `torch.export.load`, for a
file you trust.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import functools
import io
import json
import math
import operator
import re
import types
import typing
import zipfile
import zlib
from pathlib import Path
from typing import Annotated, Any

import torch

from ..language.effects import NEVER_ALLOWED, is_allowed, op_effect, op_name

__all__ = ["Pt2Error", "load_program"]

# torch.export.save writes entries stored; a deflated one may unpack to at most this many times
# its packed size once it passes UNPACK_FLOOR bytes.
MAX_RATIO = 100
UNPACK_FLOOR = 1 << 20

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PART = r"[A-Za-z0-9_\-@]+"
_DOTTED = re.compile(rf"{_PART}(\.{_PART})*")
_TARGET = re.compile(r"(torch|_operator|math)(\.[A-Za-z_][A-Za-z0-9_]*)+"  # or an extension's:
                     r"|#[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*")
_PATH_NAME = re.compile(r"[A-Za-z0-9_]+")
_DEVICE = re.compile(r"[a-z][a-z0-9_]*")
_SYMPY_STR = re.compile(r"[A-Za-z0-9_ ().,*+\-/%]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all but \t and \n
_PLAIN = re.compile(r"[^\x00-\x1f\x7f'\"\\]*")  # no control characters, quotes or backslashes


class Pt2Error(Exception):
    """A `.pt2` archive that is not loaded: `str()` is `FILE: error: WHAT`, one line."""

    def __init__(self, path: str, message: str):
        self.path, self.message = str(path), message
        super().__init__(f"{self.path}: error: {message}")


def load_program(path: str | Path, trust: bool = False) -> torch.export.ExportedProgram:
    """The ExportedProgram saved at `path`. With `trust=True`, `torch.export.load` itself,
    which runs whatever code the archive holds; otherwise read as data (the module docstring)."""
    if trust:
        return torch.export.load(path)
    return _Loader(str(path)).load()


class _Refused(Exception):
    """What is wrong and where (an entry, a field); `_Loader.load` makes it a `Pt2Error`."""


# --- the archive -----------------------------------------------------------------------------
class _Archive:
    """A zip file whose entries are read one by one, each checked first."""

    def __init__(self, source, label: str = ""):
        self.label = label  # what the entries' names are shown after
        try:
            self.zip = zipfile.ZipFile(source)
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
                NotImplementedError, RuntimeError) as error:
            raise _Refused(f"{label}not a zip archive ({_reason(error)})") from None
        self.infos: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if info.filename in self.infos:  # zipfile reads the last, torch's reader the first
                raise _Refused(f"{label}{_shown(info.filename)} is in the archive twice")
            self.infos[info.filename] = info

    def check(self, name: str) -> zipfile.ZipInfo:
        info = self.infos[name]
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Refused(f"{self.label}{_shown(name)}: packed with method "
                           f"{info.compress_type}, neither stored nor deflated")
        if info.file_size > max(UNPACK_FLOOR, MAX_RATIO * info.compress_size):
            raise _Refused(f"{self.label}{_shown(name)}: would unpack {info.compress_size} bytes "
                           f"to {info.file_size}, more than {MAX_RATIO} times as many")
        return info

    def read(self, name: str) -> bytes:
        info = self.check(name)
        try:
            return self.zip.read(info)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
                RuntimeError, zlib.error) as error:
            raise _Refused(f"{self.label}{_shown(name)}: cannot be read ({_reason(error)})") \
                from None


# --- loading -----------------------------------------------------------------------------------
class _Loader:
    def __init__(self, path: str):
        self.path = path

    def load(self) -> torch.export.ExportedProgram:
        if not Path(self.path).exists():
            raise Pt2Error(self.path, "no such file")
        if not Path(self.path).is_file():
            raise Pt2Error(self.path, "not a regular file")
        try:
            return self._load()
        except _Refused as refusal:
            raise Pt2Error(self.path, str(refusal)) from None
        except RecursionError:
            raise Pt2Error(self.path, "nested too deeply to read") from None

    def _load(self) -> torch.export.ExportedProgram:
        from torch._export.serde import schema
        from torch._export.serde.serialize import ExportedProgramDeserializer
        from torch.export.pt2_archive import constants as c

        archive = _Archive(self.path)
        names = list(archive.infos)
        top = {n for n in names if "/" not in n}
        if "serialized_exported_program.json" in top or "version" in top:
            raise _Refused("an archive in the format of torch 2.7 and older, whose weights are "
                           "pickles; save it again with torch.export.save of torch 2.8 or later "
                           "(or pass --trust-pt2 if you trust it)")
        if not names:
            raise _Refused("an empty zip archive")
        root = names[0].split("/", 1)[0] + "/" if "/" in names[0] else None
        if root is None or any(not n.startswith(root) for n in names):
            raise _Refused("not a torch.export archive: its entries are not all in one folder")
        self.root = root

        def entry(name: str) -> str | None:
            return root + name if root + name in archive.infos else None

        if entry(c.ARCHIVE_FORMAT_PATH) is None or \
                archive.read(root + c.ARCHIVE_FORMAT_PATH) != c.ARCHIVE_FORMAT_VALUE.encode():
            raise _Refused(f"not a torch.export archive: no `{c.ARCHIVE_FORMAT_PATH}` saying "
                           f"`{c.ARCHIVE_FORMAT_VALUE}`")
        version = entry(c.ARCHIVE_VERSION_PATH)
        version = archive.read(version).decode("utf-8", "replace") if version else "(none)"
        if version != c.ARCHIVE_VERSION_VALUE:
            raise _Refused(f"archive version {_shown(version)}, not {c.ARCHIVE_VERSION_VALUE}")
        model = entry(c.MODELS_FILENAME_FORMAT.format("model"))
        if model is None:
            aoti = any(n.startswith(root + c.AOTINDUCTOR_DIR) or n.endswith(".so") for n in names)
            raise _Refused("no exported program `models/model.json`" + (
                "; it holds only AOTInductor-compiled code, which is native code and never "
                "loaded here" if aoti else ""))

        document = _json(archive.read(model), model)
        serialized = _read(schema.ExportedProgram, document, f"{model}: ")

        state_dict = self._payloads(archive, c.WEIGHTS_DIR,
                                    c.WEIGHTS_CONFIG_FILENAME_FORMAT.format("model"), "weight")
        constants = self._payloads(archive, c.CONSTANTS_DIR,
                                   c.CONSTANTS_CONFIG_FILENAME_FORMAT.format("model"), "constant")
        sample = entry(c.SAMPLE_INPUTS_FILENAME_FORMAT.format("model"))
        example_inputs = self._sample_inputs(archive, sample) if sample else None
        try:
            program = ExportedProgramDeserializer().deserialize(
                serialized, state_dict, constants, example_inputs)
        except Exception as error:  # noqa: BLE001 - torch's own errors about a malformed file
            raise _Refused(f"{model}: torch cannot build the program "
                           f"({type(error).__name__}: {_first_line(error)})") from None
        _check_calls(program, model)
        return program

    def _payloads(self, archive: _Archive, folder: str, config_name: str, kind: str) -> dict:
        """Weights or constants by FQN, as torch's `_load_state_dict` / `_load_constants`
        make them, but from raw bytes or `weights_only=True` only."""
        from torch._export.serde import schema
        from torch._export.serde.serialize import (deserialize_size, deserialize_storage_offset,
                                                   deserialize_stride)
        from torch.export.pt2_archive import constants as c

        root = self.root
        legacy = f"{root}{folder}model.pt"
        if legacy in archive.infos:
            raise _Refused(f"{legacy}: the {kind}s as one pickle, as torch 2.7 and older saved "
                           "them; save the program again with torch.export.save of torch 2.8 or "
                           "later (or pass --trust-pt2 if you trust the file)")
        if root + config_name not in archive.infos:
            raise _Refused(f"no {root}{config_name}")
        document = _json(archive.read(root + config_name), root + config_name)
        config = _read(schema.PayloadConfig, document, f"{root}{config_name}: ")

        flat: dict[str, torch.Tensor] = {}
        result: dict[str, Any] = {}
        for fqn, meta in config.config.items():
            where = f"{root}{config_name}: {kind} `{_shown(fqn)}`"
            name = meta.path_name
            record = f"{root}{folder}{name}"
            if kind == "constant" and name.startswith(c.CUSTOM_OBJ_FILENAME_PREFIX):
                raise _Refused(f"{where} is a torchbind object, a pickle that loading would "
                               "run (pass --trust-pt2 if you trust the file)")
            if kind == "constant" and name.startswith(c.OPAQUE_OBJ_FILENAME_PREFIX):
                raise _Refused(f"{where} is an opaque object, a pickle that loading would run "
                               "(pass --trust-pt2 if you trust the file)")
            if kind == "constant" and not name.startswith(c.TENSOR_CONSTANT_FILENAME_PREFIX):
                raise _Refused(f"{where} is stored as `{_shown(name)}`, not a tensor")
            if record not in archive.infos:
                raise _Refused(f"{where}: no {_shown(record)} in the archive")
            if meta.use_pickle:
                result[fqn] = self._unpickled_tensor(archive, record, where)
                continue
            if meta.tensor_meta is None:
                raise _Refused(f"{where} has no tensor_meta")
            tensor_meta = meta.tensor_meta
            try:
                if name not in flat:
                    flat[name] = _flat_tensor(archive, record, tensor_meta)
                tensor = torch.as_strided(
                    flat[name], size=deserialize_size(tensor_meta.sizes),
                    stride=deserialize_stride(tensor_meta.strides),
                    storage_offset=deserialize_storage_offset(tensor_meta.storage_offset))
                if kind == "weight" and meta.is_param:
                    tensor = torch.nn.Parameter(tensor, requires_grad=tensor_meta.requires_grad)
            except _Refused:
                raise
            except Exception as error:  # noqa: BLE001 - sizes past the data, bad dtypes, ...
                raise _Refused(f"{where}: {type(error).__name__}: {_first_line(error)}") from None
            result[fqn] = tensor
        return result

    def _unpickled_tensor(self, archive: _Archive, record: str, where: str) -> torch.Tensor:
        value = _weights_only(archive.read(record), record)
        if not isinstance(value, torch.Tensor):
            raise _Refused(f"{where} is pickled and is not a tensor that "
                           "torch.load(weights_only=True) can load (pass --trust-pt2 if you "
                           "trust the file)" if value is None else
                           f"{where} is a pickled {type(value).__name__}, not a tensor")
        return value

    def _sample_inputs(self, archive: _Archive, record: str):
        """(args, kwargs) if they load with weights_only=True, else None (dropped)."""
        data = archive.read(record)
        if not data:
            return None
        value = _weights_only(data, record)
        return value if isinstance(value, (tuple, dict)) else None


def _flat_tensor(archive: _Archive, record: str, tensor_meta) -> torch.Tensor:
    """The payload as a flat tensor, as torch's `_build_file_map` makes it."""
    from torch._export.serde.serialize import (deserialize_device, deserialize_scalar_type,
                                               deserialize_size)

    dtype = deserialize_scalar_type(tensor_meta.dtype)
    device = deserialize_device(tensor_meta.device)
    data = archive.read(record)
    if not data:
        tensor = torch.zeros(deserialize_size(tensor_meta.sizes), dtype=dtype, device=device)
        if tensor_meta.requires_grad:
            tensor.requires_grad_(True)
        return tensor
    size = torch._utils._element_size(dtype)
    if len(data) % size:
        raise _Refused(f"{record}: {len(data)} bytes is not a whole number of {dtype} "
                       f"elements ({size} bytes each)")
    tensor = torch.frombuffer(bytearray(data), dtype=dtype)
    if tensor_meta.requires_grad:
        tensor.requires_grad_(True)
    if device != torch.device("cpu"):
        tensor = tensor.to(device)
    return tensor


def _weights_only(data: bytes, where: str):
    """torch.load(weights_only=True) of `data`, or None when that refuses it."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        nested = _Archive(io.BytesIO(data), f"{where}: ")
        for name in nested.infos:
            nested.check(name)
    try:
        return torch.load(io.BytesIO(data), weights_only=True)
    except Exception:  # noqa: BLE001 - UnpicklingError and whatever a bad pickle raises
        return None


def _json(data: bytes, where: str):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise _Refused(f"{where}: not JSON ({_first_line(error)})") from None


# --- models/model.json against torch's schema -------------------------------------------------
# Each string of torch's schema, by (dataclass, field) or (dataclass, field, "key") for the keys
# of a dict field (a list's items have the field's role): what it must look like.
# `tests/test_security_pt2.py` checks that every string field of the schema has a role here;
# a string field without one is refused.
NAME, OPTIONAL_NAME, DOTTED, MODULE_PATH, TARGET, EXPRESSION, SYMPY_TEXT, TREESPEC, GUARD, \
    PAYLOAD_FILE, DEVICE, VALUE, TEXT = range(13)
ROLES = {
    # Python names: FX pastes them into the code it generates and executes.
    ("TensorArgument", "name"): NAME, ("TokenArgument", "name"): NAME,
    ("SymIntArgument", "as_name"): NAME, ("SymFloatArgument", "as_name"): NAME,
    ("SymBoolArgument", "as_name"): NAME, ("GraphArgument", "name"): NAME,
    ("CustomObjArgument", "name"): NAME, ("Node", "name"): NAME,
    ("InputToConstantInputSpec", "name"): NAME,
    ("GradientToUserInputSpec", "user_input_name"): NAME,
    ("UserInputMutationSpec", "user_input_name"): NAME,
    ("ModuleCallSignature", "forward_arg_names"): NAME, ("NamedTupleDef", "field_names"): NAME,
    ("Graph", "tensor_values", "key"): NAME, ("Graph", "sym_int_values", "key"): NAME,
    ("Graph", "sym_bool_values", "key"): NAME, ("Graph", "sym_float_values", "key"): NAME,
    ("Graph", "custom_obj_values", "key"): NAME, ("ExportedProgram", "opset_version", "key"): NAME,
    ("ExportedProgram", "verifiers"): NAME,
    ("NamedArgument", "name"): OPTIONAL_NAME,  # "" for a higher-order operator's inputs
    # State-dict keys and module paths: `layers.0.weight`, `ks.k-1`, `linear@1`.
    ("InputToParameterSpec", "parameter_name"): DOTTED,
    ("InputToBufferSpec", "buffer_name"): DOTTED,
    ("InputToTensorConstantSpec", "tensor_constant_name"): DOTTED,
    ("InputToCustomObjSpec", "custom_obj_name"): DOTTED,
    ("BufferMutationSpec", "buffer_name"): DOTTED,
    ("ParameterMutationSpec", "parameter_name"): DOTTED,
    ("GradientToParameterSpec", "parameter_name"): DOTTED,
    ("CustomObjArgument", "class_fqn"): DOTTED, ("PayloadConfig", "config", "key"): DOTTED,
    ("ModuleCallEntry", "fqn"): MODULE_PATH,  # "" for the root
    ("Node", "target"): TARGET, ("Argument", "as_operator"): TARGET,
    ("SymExpr", "expr_str"): EXPRESSION,  # sympy.sympify: eval
    ("ExportedProgram", "range_constraints", "key"): SYMPY_TEXT,  # str() of a symbol: `2*s0`
    ("ModuleCallSignature", "in_spec"): TREESPEC, ("ModuleCallSignature", "out_spec"): TREESPEC,
    ("ExportedProgram", "guards_code"): GUARD,  # exec'd by ExportedProgram.module()
    ("PayloadMeta", "path_name"): PAYLOAD_FILE, ("Device", "type"): DEVICE,
    # Values: FX writes them with repr().
    ("Argument", "as_string"): VALUE, ("Argument", "as_strings"): VALUE,
    ("ConstantValue", "as_string"): VALUE, ("Argument", "as_string_to_argument", "key"): VALUE,
    # Text that is only kept: stack traces, module stacks, metadata, the torch version.
    ("Node", "metadata"): TEXT, ("Node", "metadata", "key"): TEXT,
    ("GraphModule", "metadata"): TEXT, ("GraphModule", "metadata", "key"): TEXT,
    ("GraphModule", "treespec_namedtuple_fields", "key"): TEXT,
    ("ExportedProgram", "torch_version"): TEXT,
}
_PATTERNS = {NAME: (_NAME, "a name ([A-Za-z_][A-Za-z0-9_]*)"),
             OPTIONAL_NAME: (re.compile(f"({_NAME.pattern})?"), "an argument name"),
             DOTTED: (_DOTTED, "a dotted name"),
             MODULE_PATH: (re.compile(f"({_DOTTED.pattern})?"), "a module path"),
             TARGET: (_TARGET, "an operator under torch, _operator or math"),
             SYMPY_TEXT: (_SYMPY_STR, "a symbol as sympy prints it"),
             PAYLOAD_FILE: (_PATH_NAME, "a payload file name"),
             DEVICE: (_DEVICE, "a device type")}


def _check_string(role: tuple, value: str, where: str) -> None:
    kind = ROLES.get(role)
    if kind in _PATTERNS:
        pattern, what = _PATTERNS[kind]
        if not pattern.fullmatch(value):
            raise _Refused(f"{where}: `{_shown(value)}` is not {what}")
    elif kind == EXPRESSION:
        _check_expression(value, where)
    elif kind == TREESPEC:
        _check_treespec(value, where)
    elif kind == GUARD:
        _check_guard(value, where)
    elif kind == TEXT:
        if found := _CONTROL.search(value):
            raise _Refused(f"{where}: the text holds a control character ({found.group()!r})")
    elif kind != VALUE:
        raise _Refused(f"{where}: a string field this loader does not know ({'.'.join(role)})")


def _at(where: str, field: str) -> str:
    return f"{where}.{field}" if where and not where.endswith(": ") else f"{where}{field}"


def _read(tp, document, where: str):
    """The schema dataclass `tp` that `document` (parsed JSON) holds, once `_check`ed."""
    from torch._export.serde.serialize import _dict_to_dataclass

    _check(tp, document, where)
    try:
        return _dict_to_dataclass(tp, document)
    except Exception as error:  # noqa: BLE001 - what _check let through and torch cannot read
        raise _Refused(f"{where}{type(error).__name__}: {_first_line(error)}") from None


@functools.cache
def _hints(tp) -> dict:
    from torch._export.serde import schema

    return typing.get_type_hints(tp, globalns=vars(schema), include_extras=True)


def _check(tp, value, where: str, role: tuple = ()) -> None:
    """`value` (parsed JSON) is what `_dict_to_dataclass(tp, value)` reads as a `tp`, and each
    string in it fits its role."""
    from torch._export.serde import schema
    from torch._export.serde.union import _Union

    if isinstance(tp, str):
        tp = getattr(schema, tp)
    if isinstance(tp, typing.ForwardRef):
        tp = getattr(schema, tp.__forward_arg__)
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _check(tp.__origin__, value, where, role)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        return _check(args[0], value, where, role)
    if isinstance(tp, type) and issubclass(tp, _Union):
        hints = _hints(tp)
        if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in hints:
            raise _Refused(f"{where}: expected one of {', '.join(sorted(hints))}")
        (kind, inner), = value.items()
        return _check(hints[kind], inner, _at(where, kind), (tp.__name__, kind))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Refused(f"{where}: expected an object ({tp.__name__})")
        hints = _hints(tp)
        for field in dataclasses.fields(tp):
            if field.name in value:
                _check(hints[field.name], value[field.name], _at(where, field.name),
                       (tp.__name__, field.name))
            elif field.default is dataclasses.MISSING and \
                    field.default_factory is dataclasses.MISSING:
                raise _Refused(f"{where}: no `{field.name}`")
        return None
    if origin is list:
        if not isinstance(value, list):
            raise _Refused(f"{where}: expected a list")
        (item,) = typing.get_args(tp)
        for i, v in enumerate(value):
            _check(item, v, f"{where}[{i}]", role)
        return None
    if origin is dict:
        if not isinstance(value, dict):
            raise _Refused(f"{where}: expected an object")
        item = typing.get_args(tp)[1]
        for k, v in value.items():
            _check_string((*role, "key"), k, f"{where} key")
            _check(item, v, f"{where}[{_shown(json.dumps(k), 60)}]", role)
        return None
    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        if type(value) is not int or value not in tp._value2member_map_:
            raise _Refused(f"{where}: `{_shown(value)}` is not a {tp.__name__}")
        return None
    if tp is bool:
        if type(value) is not bool:
            raise _Refused(f"{where}: expected true or false")
        return None
    if tp is int:
        if type(value) is not int:
            raise _Refused(f"{where}: expected an integer")
        return None
    if tp is float:
        if type(value) not in (int, float) and value not in ("Infinity", "-Infinity", "NaN"):
            raise _Refused(f"{where}: expected a number")
        return None
    if tp is str:
        if not isinstance(value, str):
            raise _Refused(f"{where}: expected a string")
        _check_string(role, value, where)
        return None
    raise _Refused(f"{where}: a field of a kind this loader does not know ({tp!r})")


# --- size expressions: what sympy.srepr writes --------------------------------------------------
# torch's deserializer hands these strings to sympy.sympify (eval) with its functions as locals.
_TORCH_SYMPY = {"FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv",
                "CeilToInt", "FloorToInt", "CeilDiv", "LShift", "RShift", "PowByNatural",
                "FloatPow", "FloatTrueDiv", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator",
                "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat",
                "Identity"}
_SYMPY = {"Add", "Mul", "Pow", "Max", "Min", "Abs", "floor", "ceiling", "Equality", "Unequality",
          "StrictLessThan", "LessThan", "StrictGreaterThan", "GreaterThan", "Eq", "Ne", "Lt",
          "Le", "Gt", "Ge", "And", "Or", "Not", "Piecewise", "ExprCondPair"}
_EXPRESSION_FUNCTIONS = _TORCH_SYMPY | _SYMPY
_EXPRESSION_NAMES = {"true", "false", "oo", "zoo", "nan", "int_oo", "pi", "E"}
_SYMBOL_NAME = re.compile(r"[a-z]+[0-9]+")  # s0, u3, zf1: torch's symbols, written bare
_EXPRESSION_CHARS = re.compile(r"[A-Za-z0-9_ ().,'=+\-*/%]*")
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?inf|nan")
_BINARY = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


def _assumptions() -> frozenset[str]:
    from sympy.core.assumptions import _assume_defined

    return frozenset(_assume_defined)


def _parsed(text: str, characters: re.Pattern, shown: str, bad) -> ast.Expression:
    """The Python parse tree of `text` (never evaluated), if it holds only `characters`."""
    if not characters.fullmatch(text):
        bad(f"a character outside letters, digits and {shown}")
    try:
        return ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
        bad(f"{type(error).__name__}")


def _check_expression(text: str, where: str) -> None:
    """`text` is a sympy expression as torch writes it; refused before sympy evaluates it."""
    def bad(why: str):
        raise _Refused(f"{where}: `{_shown(text)}` is not a size expression ({why})")

    tree = _parsed(text, _EXPRESSION_CHARS, "( ) , . ' = + - * / %", bad)

    def number(node) -> bool:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            node = node.operand
        return isinstance(node, ast.Constant) and type(node.value) in (int, float)

    def walk(node) -> None:
        if number(node):
            return
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return walk(node.operand)
        if isinstance(node, ast.BinOp) and isinstance(node.op, _BINARY):
            walk(node.left)
            return walk(node.right)
        if isinstance(node, ast.Name):
            if node.id in _EXPRESSION_NAMES or _SYMBOL_NAME.fullmatch(node.id):
                return None
            bad(f"`{node.id}` is neither a symbol nor a constant")
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            bad(f"a {type(node).__name__} where a value or a call belongs")
        name, args, keywords = node.func.id, node.args, node.keywords
        if name == "Symbol":
            if len(args) != 1 or not isinstance(args[0], ast.Constant) or \
                    not isinstance(args[0].value, str) or not _NAME.fullmatch(args[0].value):
                bad("Symbol takes a name")
            for keyword in keywords:
                if keyword.arg not in _assumptions() or \
                        not isinstance(keyword.value, ast.Constant) or \
                        type(keyword.value.value) is not bool:
                    bad(f"Symbol takes assumptions, true or false, not `{keyword.arg}`")
            return None
        if name == "Integer":
            if len(args) != 1 or keywords or not number(args[0]) or \
                    type(_value(args[0])) is not int:
                bad("Integer takes an integer")
            return None
        if name == "Rational":
            if len(args) != 2 or keywords or not all(
                    number(a) and type(_value(a)) is int for a in args):
                bad("Rational takes two integers")
            return None
        if name == "Float":
            if len(args) != 1 or not isinstance(args[0], ast.Constant) or \
                    not isinstance(args[0].value, str) or not _FLOAT_TEXT.fullmatch(args[0].value):
                bad("Float takes a number as text")
            for keyword in keywords:
                if keyword.arg != "precision" or not number(keyword.value) or \
                        type(_value(keyword.value)) is not int:
                    bad("Float takes precision=N")
            return None
        if name not in _EXPRESSION_FUNCTIONS:
            bad(f"`{name}` is not a function torch writes")
        if keywords:
            bad(f"{name} takes no keywords")
        for arg in args:
            walk(arg)
        return None

    walk(tree.body)


def _value(node):
    if isinstance(node, ast.UnaryOp):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    return node.value


# --- guards: what torch's guard printer writes, exec'd by ExportedProgram.module() -------------
_GUARD_CHARS = re.compile(r"[A-Za-z0-9_ ()\[\].,'=<>!+\-*/%]*")
_GUARD_FUNCTIONS = {"max", "min", "abs", "round", "float", "int"}
_GUARD_MATH = {"floor", "ceil", "trunc", "sqrt", "exp", "log", "log2", "log10", "cos", "cosh",
               "acos", "sin", "sinh", "asin", "tan", "tanh", "atan", "isnan", "isinf", "pow",
               "fabs", "inf", "nan", "pi", "e"}
_GUARD_TORCH = {"sym_float", "sym_int", "sym_max", "sym_min", "sym_sqrt", "_sym_sqrt",
                "sym_ite", "sym_not"}
_GUARD_METHODS = {"size", "stride", "storage_offset", "dim", "numel"}


def _check_guard(text: str, where: str) -> None:
    def bad(why: str):
        raise _Refused(f"{where}: `{_shown(text)}` is not a guard ({why})")

    tree = _parsed(text, _GUARD_CHARS, "spaces and ( ) [ ] . , ' = < > ! + - * / %", bad)

    def path(node) -> None:  # L['x'], L['x'].size()[0], L['x']['k'][1]
        if isinstance(node, ast.Subscript):
            key = node.slice
            if not isinstance(key, ast.Constant) or type(key.value) not in (int, str):
                bad("a subscript that is not a constant")
            if isinstance(node.value, ast.Name):
                if node.value.id != "L" or not isinstance(key.value, str):
                    bad("a subscript of something other than L")
                return None
            return path(node.value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in _GUARD_METHODS and not node.keywords and \
                all(isinstance(a, ast.Constant) and type(a.value) is int for a in node.args):
            return path(node.func.value)
        bad(f"a {type(node).__name__} where an input's size belongs")

    def walk(node) -> None:
        if isinstance(node, ast.Constant):
            if type(node.value) not in (int, float, bool):
                bad("a text constant outside L[...]")
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                walk(value)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
            walk(node.operand)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, _BINARY):
            walk(node.left)
            walk(node.right)
        elif isinstance(node, ast.Compare) and all(
                isinstance(op, (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE))
                for op in node.ops):
            for value in (node.left, *node.comparators):
                walk(value)
        elif isinstance(node, ast.Name) and node.id == "inf":
            pass
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id == "math" and node.attr in _GUARD_MATH:
            pass
        elif isinstance(node, ast.Call) and not node.keywords and (
                (isinstance(node.func, ast.Name) and node.func.id in _GUARD_FUNCTIONS) or
                (isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                 and (node.func.value.id, node.func.attr) in
                 {*(("math", f) for f in _GUARD_MATH), *(("torch", f) for f in _GUARD_TORCH)})):
            for arg in node.args:
                walk(arg)
        else:
            path(node)

    walk(tree.body)


# --- pytree specs --------------------------------------------------------------------------------
def _check_treespec(text: str, where: str) -> None:
    """A `treespec_dumps` string: registered types whose context loads without importing
    anything (no enum, a defaultdict of a builtin), and plain text throughout."""
    import torch.utils._pytree as pytree

    def bad(why: str):
        raise _Refused(f"{where}: not a pytree spec torch writes ({why})")

    def plain(value) -> None:
        if isinstance(value, str):
            if not _PLAIN.fullmatch(value):
                bad(f"text `{_shown(value)}` holds a quote, a backslash or a control character")
        elif isinstance(value, dict):
            if "__enum__" in value:
                bad("an enum, which torch would import by name")
            for k, v in value.items():
                plain(k)
                plain(v)
        elif isinstance(value, list):
            for v in value:
                plain(v)
        elif value is not None and type(value) not in (int, float, bool):
            bad(f"a {type(value).__name__}")

    def node(spec) -> None:
        if not isinstance(spec, dict) or set(spec) != {"type", "context", "children_spec"} or \
                not isinstance(spec["children_spec"], list):
            bad("a node is not {type, context, children_spec}")
        kind, context = spec["type"], spec["context"]
        if kind is not None:
            if not isinstance(kind, str) or kind not in pytree.SERIALIZED_TYPE_TO_PYTHON_TYPE:
                bad(f"type `{_shown(kind)}` is not registered with pytree")
            typ = pytree.SERIALIZED_TYPE_TO_PYTHON_TYPE[kind]
            loader = pytree.SUPPORTED_SERIALIZED_TYPES[typ].from_dumpable_context
            if loader is None:
                if not isinstance(context, str):
                    bad("a context that is not JSON text")
                try:
                    plain(json.loads(context))
                except ValueError:
                    bad("a context that is not JSON")
            elif loader is pytree._namedtuple_deserialize:
                if not isinstance(context, str) or \
                        context not in pytree.SERIALIZED_TYPE_TO_PYTHON_TYPE:
                    bad("a namedtuple that is not registered")
            elif loader is pytree._defaultdict_deserialize:
                if not isinstance(context, dict) or context.get("default_factory_module") != \
                        "builtins" or context.get("default_factory_name") not in \
                        ("list", "dict", "set", "int", "float", "str", "tuple", "bool"):
                    bad("a defaultdict whose factory is not a builtin type")
                plain(context)
            else:
                bad(f"type `{_shown(kind)}` loads its context with code of its own")
        elif context is not None:
            plain(context)
        for child in spec["children_spec"]:
            node(child)

    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        bad("not JSON")
    if not isinstance(parsed, list) or len(parsed) != 2 or parsed[0] != 1:
        bad("not [1, spec]")
    node(parsed[1])


# --- the program torch built -----------------------------------------------------------------
def _allowed_functions() -> set:
    from torch._export.serde.serialize import _SYM_OPS
    from torch._export.verifier import Verifier

    allowed = set(_SYM_OPS) | set(Verifier.allowed_builtin_ops(Verifier()))
    allowed |= {operator.getitem, math.ceil, math.floor, math.trunc, round}
    for name in ("sym_int", "sym_float", "sym_ite", "sym_max", "sym_min", "sym_not",
                 "sym_sqrt", "sym_sum", "_sym_sqrt"):
        if hasattr(torch, name):
            allowed.add(getattr(torch, name))
    allowed |= {torch.autograd.grad_mode.set_grad_enabled, torch._C._set_grad_enabled,
                torch.amp.autocast_mode._enter_autocast, torch.amp.autocast_mode._exit_autocast}
    return allowed


_VALUE_TYPES = (type(None), bool, int, float, complex, str, torch.dtype, torch.device,
                torch.layout, torch.memory_format, torch.fx.Node)


def _check_calls(program, where: str) -> None:
    """Every call in every graph is to an operator or to a builtin torch.export allows, with
    values for arguments: running the program runs torch's code only."""
    from torch._export.serde.serialize import _registered_extension_types
    from torch._ops import HigherOrderOperator, OpOverload

    allowed = _allowed_functions()
    operators = (OpOverload, HigherOrderOperator, *_registered_extension_types())

    def acts(op, node) -> None:  # the rule files' and graph text's refusals, read off the op
        if isinstance(op, (OpOverload, HigherOrderOperator)):
            effect = op_effect(op)
            if effect is not None and not is_allowed(op, effect):
                allowing = "" if effect in NEVER_ALLOWED else \
                    f" (allowed with --allow-effect {op_name(op)})"
                raise _Refused(f"{where}: node `{node.name}` calls `{op_name(op)}`, which "
                               f"{effect}{allowing}")

    def value(arg, node) -> None:
        if isinstance(arg, (list, tuple)):
            for a in arg:
                value(a, node)
        elif isinstance(arg, dict):
            for a in arg.values():
                value(a, node)
        elif isinstance(arg, operators):
            acts(arg, node)
        elif not isinstance(arg, _VALUE_TYPES):
            raise _Refused(f"{where}: node `{node.name}` takes a {type(arg).__name__} "
                           f"(`{_shown(str(arg))}`)")

    for module in program.graph_module.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        for node in module.graph.nodes:
            if node.op in ("call_module", "call_method"):
                raise _Refused(f"{where}: node `{node.name}` is a {node.op}")
            if node.op == "call_function" and not isinstance(node.target, operators) and \
                    node.target not in allowed:
                raise _Refused(f"{where}: node `{node.name}` calls "
                               f"`{_shown(str(node.target))}`, not an operator")
            acts(node.target, node)
            value(node.args, node)
            value(node.kwargs, node)


# --- messages ----------------------------------------------------------------------------------
def _shown(value, limit: int = 80) -> str:
    """`value` for a one-line message: escapes shown, cut to `limit` characters."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape").decode("ascii").replace("`", "'")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _first_line(error: BaseException) -> str:
    return _shown(str(error).strip().split("\n", 1)[0], 160) or type(error).__name__


def _reason(error: BaseException) -> str:
    return _first_line(error) if str(error) else type(error).__name__

