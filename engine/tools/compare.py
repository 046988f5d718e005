"""Two graphs run on the same inputs: do they compute the same thing?

Input: two GraphModules that take the same inputs (a rule's pattern and its replacement, or a
program before and after the rules), the inputs, and what the comparison allows (`Allowance`:
a tolerance, refinement, aliasing, signed zeros). Output: None, or the first `Difference`:
its kind, a sentence, and what each side computed. Each side runs on its own copies of the
inputs, so a side that writes to an input is seen doing it, and from the same random state
(`same_random_state`), so that `rand` or `randperm` draw the same numbers on both; the
caller's random state is left as it was.

Kinds of difference:
- `FAILS`: the second graph raises where the first runs;
- `DIFFERS`: another type, dtype or shape, other values (exact for integers and bools; within
  the tolerance for floats, nan equal to nan);
- `SIGNED_ZERO`: -0.0 for 0.0 or the other way round (allowed by `unsigned_zeros`);
- `REFINES`: the values differ only where the first gives nan or inf and the second is finite
  (the second is more defined: allowed by `refines`);
- `ALIASES`: an output is an input, or a view of one, on one side and a new tensor on the
  other (allowed by `aliases`: right where nothing writes in place, wrong where something does);
- `MUTATES`: one side writes to an input the other does not, or writes other values.

`random_like` makes an input from a recorded value (a fake tensor's dtype and shape), and
`too_large` says which recorded values it will not make: more than MAX_INPUT_ELEMENTS.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch

from ..graphs.contained import process_state_kept
from ..graphs.parse import SYMBOL_HINT

FAILS, DIFFERS, REFINES, ALIASES, MUTATES = "fails", "differs", "refines", "aliases", "mutates"
SIGNED_ZERO = "signed zero"
RANDOM_SEED = 0  # the random state each side of a comparison runs from
# Differences a counterexample search looks for last: a rule wrong only there is wrong in a
# corner, and a value difference elsewhere says more.
SOFT = (REFINES, SIGNED_ZERO)


@dataclass(frozen=True)
class Allowance:
    rtol: float | None = None  # None: torch.testing's default for the dtype
    atol: float | None = None
    refines: bool = False
    aliases: bool = False
    unsigned_zeros: bool = False

    def tolerance(self, dtype: torch.dtype) -> tuple[float, float]:
        rtol, atol = _DEFAULT_TOLERANCE.get(dtype, (0.0, 0.0))
        return (rtol if self.rtol is None else self.rtol, atol if self.atol is None else self.atol)


def allowance_of_rules(promises: list) -> Allowance:
    """What a program rewritten by several rules is held to: the loosest tolerance they promise
    (else torch.testing's for the dtype), and each allowance only if every one of them makes
    it (`promises`: their `checked.Promises`, at least one)."""
    rtols = [p.rtol for p in promises if p.rtol is not None]
    atols = [p.atol for p in promises if p.atol is not None]
    return Allowance(max(rtols, default=None), max(atols, default=None),
                     refines=bool(promises) and all(p.refines for p in promises),
                     aliases=bool(promises) and all(p.aliases for p in promises),
                     unsigned_zeros=bool(promises) and all(p.unsigned_zeros for p in promises))


# torch.testing.assert_close's defaults (torch.testing._comparison.default_tolerances).
_DEFAULT_TOLERANCE = {torch.float16: (1e-3, 1e-5), torch.bfloat16: (1.6e-2, 1e-5),
                      torch.float32: (1.3e-6, 1e-5), torch.float64: (1e-7, 1e-7)}


@dataclass
class Difference:
    kind: str
    message: str  # a clause about the second graph: "output 0 differs: ..."
    first: object = None  # what each side computed, for the output (or input) concerned
    second: object = None


class Rejected(Exception):
    """The first graph does not run on these inputs (an op rejects them): no instance."""


@dataclass
class Comparison:
    """How to name the two sides, and what a comparison saw besides its verdict: the largest
    difference a tolerance let by, the elements a permitted refinement changed."""

    sides: tuple[str, str] = ("the pattern", "the replacement")
    largest: float = 0.0
    refined: int = 0  # elements where the second is finite and the first is not (allowed)
    # The sides (0, 1) that have no gradient (backward fails: an op without an autograd
    # formula, as `prims.convert_element_type`), each with why; gradients are compared only
    # where both have one.
    gradientless: dict[int, str] = field(default_factory=dict)


def compare_graphs(first: torch.fx.GraphModule, second: torch.fx.GraphModule, inputs: list,
                   allow: Allowance, seen: Comparison | None = None,
                   names: list[str] | None = None) -> Difference | None:
    """Run both on copies of `inputs`; the first difference, or None. `names`: what to call
    each input in messages."""
    seen = seen if seen is not None else Comparison()
    names = names or [f"input {index}" for index in range(len(inputs))]
    first_inputs, second_inputs = _copies(inputs), _copies(inputs)
    try:
        with torch.no_grad(), same_random_state():
            expected = first(*first_inputs)
    except Exception as error:
        raise Rejected(f"{type(error).__name__}: {error}") from None
    try:
        with torch.no_grad(), same_random_state():
            actual = second(*second_inputs)
    except Exception as error:  # what the replacement raises is the finding
        return Difference(FAILS, f"{seen.sides[1]} fails where {seen.sides[0]} runs: "
                                 f"{type(error).__name__}: {_first_line(error)}")
    expected, actual = _outputs(expected), _outputs(actual)
    if len(expected) != len(actual):
        return Difference(DIFFERS, f"{seen.sides[1]} gives {len(actual)} outputs, not "
                                   f"{len(expected)}")
    for index, (e, a) in enumerate(zip(expected, actual)):
        what = f"output {index}" if len(expected) > 1 else "the value"
        difference = compare_values(e, a, allow, seen, what)
        if difference is not None:
            return difference
    return (_mutation(inputs, first_inputs, second_inputs, names, allow, seen)
            or _aliasing(expected, actual, first_inputs, second_inputs, names, allow, seen))


def compare_gradients(first: torch.fx.GraphModule, second: torch.fx.GraphModule, inputs: list,
                      differentiable: list[int], allow: Allowance, seen: Comparison,
                      names: list[str]) -> Difference | None:
    """With the inputs at `differentiable` requiring grad: which outputs require grad (the grad
    mode each is made under), and the gradients of one random weighting of the outputs. A side
    whose backward fails (an op without an autograd formula) has no gradient: that is noted in
    `seen.gradientless`, and gradients are compared only where both sides have them."""
    if not differentiable:
        return None
    runs = []
    for side, module in enumerate((first, second)):
        leaves = _copies(inputs)
        for index in differentiable:
            leaves[index] = leaves[index].detach().requires_grad_()
        try:
            with torch.enable_grad(), same_random_state():
                runs.append((leaves, _outputs(module(*leaves))))
        except Exception as error:
            if side == 0:
                raise Rejected(f"{type(error).__name__}: {error}") from None
            return Difference(FAILS, f"{seen.sides[1]} fails with gradients on, where "
                                     f"{seen.sides[0]} runs: {type(error).__name__}: "
                                     f"{_first_line(error)}")
    (first_leaves, first_out), (second_leaves, second_out) = runs
    for index, (e, a) in enumerate(zip(first_out, second_out)):
        if isinstance(e, torch.Tensor) and isinstance(a, torch.Tensor) and (
                e.requires_grad != a.requires_grad):
            state = "requires" if a.requires_grad else "does not require"
            return Difference(DIFFERS, f"output {index} {state} grad after the rules, unlike "
                                       "before: it is made under another grad mode",
                              e.requires_grad, a.requires_grad)
    wanted = [index for index, e in enumerate(first_out)
              if isinstance(e, torch.Tensor) and e.requires_grad and e.dtype.is_floating_point]
    if not wanted:
        return None
    generator = torch.Generator().manual_seed(0)
    weights = {index: torch.randn(first_out[index].shape, generator=generator,
                                  dtype=torch.float64) for index in wanted}
    gradients = []
    for side, (leaves, outputs) in enumerate(runs):
        loss = sum((outputs[index].double() * weights[index]).sum() for index in wanted)
        try:
            grads = torch.autograd.grad(loss, [leaves[i] for i in differentiable],
                                        allow_unused=True)
        except (RuntimeError, NotImplementedError) as error:  # no gradient: a fact, told
            seen.gradientless[side] = f"{type(error).__name__}: {_first_line(error)}"
            continue
        gradients.append([g if g is not None else torch.zeros_like(leaves[i])
                          for g, i in zip(grads, differentiable)])
    if len(gradients) < 2:
        return None
    for index, e, a in zip(differentiable, *gradients):
        difference = compare_values(e, a, allow, seen, f"the gradient of `{names[index]}`")
        if difference is not None:
            return difference
    return None


def compare_values(expected, actual, allow: Allowance, seen: Comparison,
                   what: str) -> Difference | None:
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return Difference(DIFFERS, f"{what} has another structure", expected, actual)
        for index, (e, a) in enumerate(zip(expected, actual)):
            difference = compare_values(e, a, allow, seen, f"{what}[{index}]")
            if difference is not None:
                return difference
        return None
    if isinstance(expected, torch.Tensor):
        return _compare_tensors(expected, actual, allow, seen, what)
    if isinstance(actual, torch.Tensor):
        return Difference(DIFFERS, f"{what} is a tensor where {seen.sides[0]} gives "
                                   f"{expected!r}", expected, actual)
    if _same_number(expected, actual):
        return None
    return Difference(DIFFERS, f"{what} is {actual!r}, not {expected!r}", expected, actual)


def _same_number(expected, actual) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        return expected == actual or (math.isnan(expected) and math.isnan(actual))
    return type(expected) is type(actual) and expected == actual


def _compare_tensors(expected: torch.Tensor, actual, allow: Allowance, seen: Comparison,
                     what: str) -> Difference | None:
    def where(mask: torch.Tensor) -> str:
        return _where(mask, expected, actual, seen.sides)

    if not isinstance(actual, torch.Tensor):
        return Difference(DIFFERS, f"{what} is {actual!r}, not a tensor", expected, actual)
    for aspect, e, a in (("dtype", expected.dtype, actual.dtype),
                         ("shape", list(expected.shape), list(actual.shape))):
        if e != a:
            return Difference(DIFFERS, f"{what} has {aspect} {_text(a)}, not {_text(e)}",
                              expected, actual)
    if expected.is_complex():
        expected, actual = torch.view_as_real(expected), torch.view_as_real(actual)
    if not expected.dtype.is_floating_point:
        if torch.equal(expected, actual):
            return None
        return Difference(DIFFERS, f"{what} differs: {where(expected != actual)}",
                          expected, actual)
    rtol, atol = allow.tolerance(expected.dtype)
    e, a = expected.double(), actual.double()
    close = torch.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    if not bool(close.all()):
        refined = ~close & ~torch.isfinite(e) & torch.isfinite(a)
        if bool((refined | close).all()):
            if allow.refines:
                seen.refined += int(refined.sum())
                return None
            return Difference(REFINES, f"{what} is finite where {seen.sides[0]}'s is not: "
                                       f"{where(refined)}", expected, actual)
        return Difference(DIFFERS, f"{what} differs: {where(~close)}", expected, actual)
    both_finite = torch.isfinite(e) & torch.isfinite(a)
    if bool(both_finite.any()):
        seen.largest = max(seen.largest, float((e - a)[both_finite].abs().max()))
    if not allow.unsigned_zeros:
        signs = (e == 0) & (a == 0) & (torch.signbit(e) != torch.signbit(a))
        if bool(signs.any()):
            return Difference(SIGNED_ZERO, f"{what} has zeros of the other sign: "
                                       f"{where(signs)}", expected, actual)
    return None


def _where(mask: torch.Tensor, expected: torch.Tensor, actual: torch.Tensor,
           sides: tuple[str, str]) -> str:
    """The first element where `mask` holds: its index and both values."""
    index = tuple(int(i) for i in mask.nonzero()[0]) if mask.dim() else ()
    at = f"at {list(index)} " if index else ""
    count = int(mask.sum())
    more = f" ({count} of {mask.numel()} elements)" if count > 1 else ""
    return (f"{at}{sides[0]} gives {_scalar(expected[index])}, {sides[1]} "
            f"{_scalar(actual[index])}{more}")


@contextlib.contextmanager
def same_random_state(seed: int = RANDOM_SEED):
    """Runs from one random state (CPU's, and CUDA's where it is in use): both sides of a
    comparison draw the same numbers in `rand` or `randperm`; afterwards the caller's random
    state, grad mode and autocast are as they were, whatever the graph run did to them
    (`process_state_kept`: a raw graph's grad-mode marker, an autocast region never exited)."""
    with process_state_kept():
        torch.random.default_generator.manual_seed(seed)
        if torch.cuda.is_initialized():
            for device in range(torch.cuda.device_count()):
                torch.cuda.default_generators[device].manual_seed(seed)
        yield


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def _scalar(value: torch.Tensor) -> str:
    item = value.item()
    if isinstance(item, float):
        return repr(item) if math.isfinite(item) else str(item)
    return repr(item)


def _text(value) -> str:
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    return str(value)


# --- aliasing and mutation -----------------------------------------------------------------------
def _aliasing(expected, actual, first_inputs, second_inputs, names, allow,
              seen) -> Difference | None:
    if allow.aliases:
        return None
    for index, (e, a) in enumerate(zip(expected, actual)):
        before, after = _aliased(e, first_inputs), _aliased(a, second_inputs)
        if before == after:
            continue
        what = f"output {index}" if len(expected) > 1 else "the value"
        if after - before:
            name = names[min(after - before)]
            return Difference(ALIASES, f"{what} is `{name}` itself or a view of it, where "
                                       f"{seen.sides[0]} makes a new tensor: an in-place write "
                                       "to one would now change the other")
        name = names[min(before - after)]
        return Difference(ALIASES, f"{what} is a new tensor, where {seen.sides[0]}'s is "
                                   f"`{name}` or a view of it: writes through it no longer "
                                   f"reach `{name}`")
    return None


def _aliased(value, inputs) -> set[int]:
    """The inputs whose memory `value` shares (tensors with memory only)."""
    if not isinstance(value, torch.Tensor) or value.untyped_storage().nbytes() == 0:
        return set()
    pointer = value.untyped_storage().data_ptr()
    return {index for index, item in enumerate(inputs)
            if isinstance(item, torch.Tensor) and item.untyped_storage().nbytes() > 0
            and item.untyped_storage().data_ptr() == pointer}


def _mutation(inputs, first_inputs, second_inputs, names, allow, seen) -> Difference | None:
    for index, original in enumerate(inputs):
        if not isinstance(original, torch.Tensor):
            continue
        first, second = first_inputs[index], second_inputs[index]
        changed = (not _unchanged(original, first), not _unchanged(original, second))
        if changed == (False, False):
            continue
        if changed == (False, True):
            return Difference(MUTATES, f"{seen.sides[1]} writes to `{names[index]}`, which "
                                       f"{seen.sides[0]} only reads")
        if changed == (True, False):
            return Difference(MUTATES, f"{seen.sides[1]} leaves `{names[index]}` as it is, "
                                       f"where {seen.sides[0]} writes to it")
        difference = compare_values(first, second, allow, seen, f"`{names[index]}` after it")
        if difference is not None:
            difference.kind = MUTATES
            return difference
    return None


def _unchanged(original: torch.Tensor, after: torch.Tensor) -> bool:
    """Not written to: its version counter (which every in-place write bumps, even one that
    writes the values already there) and its values are as before."""
    if after._version != 0 or original.shape != after.shape or original.dtype != after.dtype:
        return False
    if original.dtype.is_floating_point or original.is_complex():
        same = (original == after) | (original.isnan() & after.isnan())
        return bool(same.all())
    return torch.equal(original, after)


# --- inputs --------------------------------------------------------------------------------------
def _copies(values: list) -> list:
    return [value.clone() if isinstance(value, torch.Tensor) else value for value in values]


def _outputs(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


MAX_INPUT_ELEMENTS = 2 ** 22  # an input of 4 Mi elements (16 MiB of float32) at most:
# compared three times over, a larger one takes seconds


def too_large(value) -> int | None:
    """The number of elements of a recorded value (items of a list or tuple added up), if it
    is more than an input `random_like` makes may have; None if it is not."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    elements = 0
    while values:
        item = values.pop()
        if isinstance(item, (list, tuple)):
            values.extend(item)
        elif isinstance(item, torch.Tensor):
            elements += math.prod(d if isinstance(d, int) else _hint(d) for d in item.shape)
    return elements if elements > MAX_INPUT_ELEMENTS else None


def random_like(value, generator: torch.Generator):
    """An input made from a recorded value: a tensor of its dtype and shape (floats normal,
    integers in [0, 4), bools either way; symbolic sizes at their hint), an int for a SymInt,
    containers item by item; anything else as it is."""
    if isinstance(value, (list, tuple)):
        return type(value)(random_like(item, generator) for item in value)
    if isinstance(value, torch.SymInt):
        hint = value.node.hint
        return int(hint) if hint is not None else SYMBOL_HINT
    if not isinstance(value, torch.Tensor):
        return value
    shape = [d if isinstance(d, int) else _hint(d) for d in value.shape]
    if value.dtype == torch.bool:
        return torch.rand(shape, generator=generator) > 0.5
    if value.dtype.is_floating_point or value.dtype.is_complex:
        return torch.randn(shape, generator=generator).to(value.dtype)
    return torch.randint(0, 4, shape, generator=generator, dtype=value.dtype)


def _hint(size) -> int:
    hint = getattr(getattr(size, "node", None), "hint", None)
    return int(hint) if hint is not None else SYMBOL_HINT
