"""The built-ins of `where` clauses and templates, as the language knows them.

Input: nothing (data). Read by `engine.language.sema` (is a name a built-in, what it takes and
gives, whether a template may use it) and by tools (completion, hover). What each one evaluates
to lives with the matchers, in `engine.matching.guards`, which has one evaluator for each name
here; templates evaluate theirs in `engine.rewriting.templates`.

Kinds are those of `engine.language.schemas` (`TENSOR`, `SCALAR`...); ANY takes whatever is
given.

`DTYPE_NAMES`: the dtypes every file may name bare, without a `use` (in conditions, patterns,
templates and `verify dtypes(...)`), as torch names them (`float16`, `bfloat16`, `half`) or as
graph text abbreviates them (`f16`, `bf16`, `i64`, `b8`); a name a file binds with `use` is
what it binds there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.fx.graph import dtype_abbrs

from .schemas import ENUM, LIST, OP, SCALAR, STRING, TENSOR

DTYPE_NAMES: dict[str, torch.dtype] = {
    name: getattr(torch, name) for name in dir(torch)
    if isinstance(getattr(torch, name, None), torch.dtype)}
DTYPE_NAMES.update({abbreviation: dtype for dtype, abbreviation in dtype_abbrs.items()})

ANY = "anything"
BOOL = "a truth value"  # what a predicate gives, and a condition wants
RULE = "a rule name"


@dataclass(frozen=True)
class BuiltinInfo:
    name: str
    params: tuple[str, ...]  # the kind each argument must be
    result: str  # the kind it gives
    summary: str
    in_templates: bool = False  # its value is known when a rule applies: a template may use it

    @property
    def arity(self) -> int:
        return len(self.params)

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(self.params)}) -> {self.result}"


BUILTINS: dict[str, BuiltinInfo] = {info.name: info for info in (
    BuiltinInfo("grad_enabled", (), BOOL, "the grad mode the region's nodes run under"),
    BuiltinInfo("dtype", (TENSOR,), ENUM, "the dtype of a tensor", True),
    BuiltinInfo("shape", (TENSOR,), LIST, "the sizes of a tensor, as a list", True),
    BuiltinInfo("size", (TENSOR, SCALAR), SCALAR,
                "one size of a tensor; a negative dim counts from the end", True),
    BuiltinInfo("norm_dim", (TENSOR, SCALAR), SCALAR,
                "a dim of a tensor counted from 0: `norm_dim($x, -1)` is `rank($x) - 1`",
                True),
    BuiltinInfo("is_last_dim", (TENSOR, SCALAR), BOOL,
                "whether a dim is a tensor's last one, written -1 or as its index"),
    BuiltinInfo("broadcasts_to", (TENSOR, TENSOR), BOOL,
                "whether a tensor broadcasts to another's shape without widening it: "
                "`broadcasts_to($mask, $scores)` when `$scores + $mask` has the shape of "
                "`$scores`"),
    BuiltinInfo("rank", (TENSOR,), SCALAR, "the number of dimensions of a tensor", True),
    BuiltinInfo("numel", (TENSOR,), SCALAR, "the number of elements of a tensor", True),
    BuiltinInfo("device", (TENSOR,), STRING, "the device type of a tensor, such as 'cpu'",
                True),
    BuiltinInfo("is_floating", (ENUM,), BOOL,
                "whether a dtype is a floating-point one (float16, bfloat16, float32, float64, "
                "the float8s)"),
    BuiltinInfo("is_complex", (ENUM,), BOOL, "whether a dtype is a complex one"),
    BuiltinInfo("is_signed", (ENUM,), BOOL,
                "whether a dtype holds negative numbers (floats and signed integers)"),
    BuiltinInfo("bits", (ENUM,), SCALAR,
                "how many bits one element of a dtype takes: 16 for float16 and bfloat16, 8 "
                "for bool", True),
    BuiltinInfo("is_tensor", (ANY,), BOOL, "whether a value is a tensor"),
    BuiltinInfo("is_literal", (ANY,), BOOL,
                "whether a value is a literal (a number, a string, None...), not a node"),
    BuiltinInfo("users", (ANY,), SCALAR, "how many nodes use a node"),
    BuiltinInfo("user_nodes", (ANY,), LIST,
                "the nodes that use a node (the graph's output among them, if it returns the "
                "node), for a quantifier: `all(is_pointwise(op($u)) for $u in user_nodes($x))`"),
    BuiltinInfo("op", (ANY,), OP,
                "the op a node calls, as `$f` of a `$f(...)` pattern holds it (`output` for "
                "the graph's output)"),
    BuiltinInfo("is_pointwise", (OP,), BOOL,
                "whether an op (`$f` of a `$f(...)` pattern) is tagged pointwise"),
    BuiltinInfo("is_view", (OP,), BOOL, "whether an op returns a view of an input"),
    BuiltinInfo("top_level", (), BOOL,
                "whether the rule is tried outside every region (kept, outlined or left)"),
    BuiltinInfo("inside", (RULE,), BOOL,
                "whether the rule is tried inside a region the named rule took"),
    BuiltinInfo("autocast_enabled", (STRING,), BOOL,
                "whether autocast is on for a device type there: the innermost autocast region "
                "for it says, else the ambient mode when the rules are applied"),
    BuiltinInfo("under_autocast", (ANY,), BOOL,
                "whether the node making a value runs with autocast on: inside an enabled "
                "autocast region, or an output of one (`wrap_with_autocast`)"),
)}
