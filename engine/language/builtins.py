"""The built-ins of `where` clauses, as the language knows them: names, arities, meanings.

Input: nothing (data). Read by `engine.language.sema` (is a name a built-in, how many arguments)
and by tools (completion, hover). What each one evaluates to lives with the matchers, in
`engine.matching.guards`, which has one evaluator for each name here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinInfo:
    name: str
    arity: int
    summary: str


BUILTINS: dict[str, BuiltinInfo] = {info.name: info for info in (
    BuiltinInfo("grad_enabled", 0, "the grad mode the region's nodes run under"),
    BuiltinInfo("dtype", 1, "the dtype of a tensor value"),
    BuiltinInfo("shape", 1, "the shape of a tensor value, as a list"),
    BuiltinInfo("rank", 1, "the number of dimensions of a tensor value"),
    BuiltinInfo("device", 1, "the device type of a tensor value, such as 'cpu'"),
)}
