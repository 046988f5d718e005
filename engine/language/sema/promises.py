"""`verify` clauses: AST promises -> `checked.Promises`.

Input: a rule's `verify` clause, if it has one, and whether the rule is a DAG rule. Output:
what `engine verify` holds the rule to (dtypes, tolerance), what it allows it (`refines`,
`aliases`, `unsigned_zeros`) and what it assumes of the inputs (`finite`); every mistake
reported: an unknown promise, one given twice, arguments where none go, a dtype that is none,
a tolerance that is no number, a clause on a region rule.
"""

from __future__ import annotations

import torch

from .. import ast, checked
from ..builtins import DTYPE_NAMES
from ..names import ResolveError, resolve
from ..suggest import did_you_mean
from .scope import Reporter

FLAGS = ("refines", "aliases", "unsigned_zeros", "finite")
PROMISES = ("dtypes", "tolerance", *FLAGS)
# As torch names them (`float32`, `half`) or as graph text abbreviates them (`f32`, `bf16`):
# the names conditions and templates take bare too.
DTYPES = DTYPE_NAMES


def check_promises(reporter: Reporter, verify: ast.Verify | None,
                   is_dag: bool) -> checked.Promises:
    if verify is None:
        return checked.Promises()
    if not is_dag:
        reporter.error(verify.span, "`verify` promises are for DAG rules; a region rule is "
                                    "verified on models, the whole program before and after")
        return checked.Promises()
    fields: dict[str, object] = {}
    seen: set[str] = set()
    for promise in verify.promises:
        if promise.name not in PROMISES:
            reporter.error(promise.name_span, f"unknown promise `{promise.name}`; a `verify` "
                           f"clause holds {', '.join(PROMISES)}"
                           + did_you_mean(promise.name, PROMISES))
            continue
        if promise.name in seen:
            reporter.error(promise.name_span, f"`{promise.name}` is promised twice")
            continue
        seen.add(promise.name)
        if promise.name in FLAGS:
            if promise.args is not None:
                reporter.error(promise.span, f"`{promise.name}` takes no arguments")
            fields[promise.name] = True
        elif promise.name == "dtypes":
            fields["dtypes"] = _dtypes(reporter, promise)
        else:
            fields.update(_tolerance(reporter, promise))
    return checked.Promises(**fields, span=verify.span)


def _dtypes(reporter: Reporter, promise: ast.Promise) -> tuple | None:
    if not promise.args:
        reporter.error(promise.span, "`dtypes` names the dtypes the rule is meant for, as in "
                                     "`dtypes(float32, float64)`")
        return None
    dtypes = []
    for arg in promise.args:
        dtype = _dtype(arg)
        if dtype is None:
            name = getattr(arg, "name", None)
            reporter.error(arg.span, "not a dtype; dtypes are written as torch names them "
                                     "(`float32`, `bfloat16`, `int64`, `bool`) or as graph "
                                     "text does (`f32`, `bf16`, `i64`, `b8`)"
                           + (did_you_mean(name, DTYPES) if name else ""))
        elif dtype not in dtypes:
            dtypes.append(dtype)
    return tuple(dtypes)


def _dtype(arg) -> torch.dtype | None:
    if isinstance(arg, ast.Constant) and arg.name in DTYPES:
        return DTYPES[arg.name]
    if isinstance(arg, ast.QualifiedConstant):
        try:
            value = resolve(arg.path).value
        except ResolveError:
            return None
        return value if isinstance(value, torch.dtype) else None
    return None


def _tolerance(reporter: Reporter, promise: ast.Promise) -> dict[str, float]:
    """`tolerance(1e-3)` (relative and absolute alike) or `tolerance(rtol=..., atol=...)`."""
    args = promise.args or ()
    usage = "`tolerance(1e-3)`, or `tolerance(rtol=1e-3, atol=1e-5)`"
    if len(args) == 1 and not isinstance(args[0], ast.Keyword):
        value = _number(reporter, args[0], usage)
        return {} if value is None else {"rtol": value, "atol": value}
    found: dict[str, float] = {}
    if not args:
        reporter.error(promise.span, f"a tolerance is a number: {usage}")
    for arg in args:
        if not isinstance(arg, ast.Keyword) or arg.name not in ("rtol", "atol"):
            reporter.error(arg.span, f"a tolerance is {usage}")
            continue
        value = _number(reporter, arg.value, usage)
        if value is not None:
            found[arg.name] = value
    return found


def _number(reporter: Reporter, arg, usage: str) -> float | None:
    if isinstance(arg, ast.Literal) and type(arg.value) in (int, float) and arg.value >= 0:
        return float(arg.value)
    reporter.error(arg.span, f"a tolerance is a number, 0 or more: {usage}")
    return None
