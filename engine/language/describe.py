"""Checked rules -> text, with every name resolved: what `engine check --verbose` prints.

Input: `checked.Rule`s. Output: each rule as the language would write it, with the full dotted
name of each op in place of the file's short one, so a reader sees what the rule really matches.
"""

from __future__ import annotations

from . import checked
from ..graphs.dump import format_target, format_value


def describe_rule(rule: checked.Rule) -> str:
    lines = [f"rule {rule.name}  # {rule.where}", "    match " + _pattern(rule.pattern)]
    if rule.guards:
        lines.append("    where " + " and ".join(describe_condition(g, "and") for g in rule.guards))
    lines.append("    " + _action(rule))
    if rule.promises.span is not None:
        lines.append("    verify " + describe_promises(rule.promises))
    return "\n".join(lines)


def describe_promises(promises: checked.Promises) -> str:
    """A `verify` clause as written, dtypes by torch's names."""
    parts = []
    if promises.dtypes:
        parts.append(f"dtypes({', '.join(str(d).removeprefix('torch.') for d in promises.dtypes)})")
    tolerance = [f"{name}={value:g}" for name, value in (("rtol", promises.rtol),
                                                          ("atol", promises.atol))
                 if value is not None]
    if tolerance:
        parts.append(f"tolerance({', '.join(tolerance)})")
    parts += [flag for flag in ("refines", "aliases", "unsigned_zeros", "finite")
              if getattr(promises, flag)]
    return ", ".join(parts)


def _pattern(pattern) -> str:
    if isinstance(pattern, checked.DagPattern):
        return ", ".join((f"${name} = " if name else "") + _arg(root)
                         for name, root in pattern.roots)
    binder = f"${pattern.binder} = " if pattern.binder else ""
    if pattern.is_segment:
        return f"{binder}{_arg(pattern.opener)} ...  # a segment: to the next marker of its kind"
    return f"{binder}{_arg(pattern.opener)} ... {_arg(pattern.closer)}"


def describe_pattern(pattern) -> str:
    """One pattern (a call, a variable, alternatives) as the language writes it."""
    return _arg(pattern)


def _action(rule: checked.Rule) -> str:
    action = rule.action
    if isinstance(action, checked.Outline):
        args = ", ".join(_operand(arg) for arg in action.args)
        return (f"outline with {format_target(action.hop)}({args})"
                "  # then the submodule, then the region's inputs")
    if isinstance(action, checked.Replace):
        names = [name for name, _ in rule.pattern.roots]
        parts = [(f"${names[index]} " if len(names) > 1 else "") + f"with {_template(t)}"
                 for index, t in action.replacements]
        return "replace " + ", ".join(parts)
    if isinstance(action, checked.Keep):
        return "keep"
    return "inline" if isinstance(action, checked.Inline) else "erase"


def _arg(pattern) -> str:
    if isinstance(pattern, checked.Anything):
        return "_"
    if isinstance(pattern, (checked.Bind, checked.Same)):
        return f"${pattern.name}"
    if isinstance(pattern, checked.Equals):
        return format_value(pattern.value)
    if isinstance(pattern, checked.BindNode):
        return f"${pattern.name} = {_arg(pattern.pattern)}"
    if isinstance(pattern, checked.OneOf):
        return " | ".join(_arg(option) for option in pattern.options)
    if isinstance(pattern, checked.ListPattern):
        return "[" + ", ".join(_arguments(pattern.items, pattern.rest, (), None)) + "]"
    return _node(pattern)


def _node(pattern: checked.NodePattern) -> str:
    prefix = ("shared " if pattern.shared else "") + ("commutative " if pattern.commutative else "")
    args = _arguments(pattern.args, pattern.rest, pattern.kwargs, pattern.more_kwargs)
    if pattern.op == "call_method":
        return f"{prefix}{args[0]}.{pattern.target}({', '.join(args[1:])})"
    if pattern.target_var is not None:
        return f"{prefix}${pattern.target_var.name}({', '.join(args)})"
    return f"{prefix}{format_target(pattern.target)}({', '.join(args)})"


def _arguments(items, rest, kwargs, more) -> list[str]:
    parts = [_arg(item) for item in items]
    if rest is not None:
        parts.append("*" + _rest(rest))
    parts += [f"{name}={_arg(value)}" for name, value in kwargs]
    if more is not None:
        parts.append("**" + _rest(more))
    return parts


def _rest(rest) -> str:
    return "_" if isinstance(rest, checked.AnyRest) else f"${rest.name}"


def _template(template) -> str:
    if isinstance(template, checked.NodeTemplate):
        args = [_template(arg) for arg in template.args]
        args += [(f"{name}=" if name else "**") + _template(value)
                 for name, value in template.kwargs]
        if template.op == "call_method":
            return f"{args[0]}.{template.target}({', '.join(args[1:])})"
        if isinstance(template.target, checked.Value):
            return f"${template.target.name}({', '.join(args)})"
        return f"{format_target(template.target)}({', '.join(args)})"
    if isinstance(template, checked.ListTemplate):
        return "[" + ", ".join(_template(item) for item in template.items) + "]"
    return _operand(template)


def describe_condition(condition, within: str = "") -> str:
    """A condition as written; `within`: the connective around it, for parentheses."""
    if isinstance(condition, (checked.AllOf, checked.AnyOf)):
        word = "and" if isinstance(condition, checked.AllOf) else "or"
        text = f" {word} ".join(describe_condition(item, word) for item in condition.items)
        return f"({text})" if within and within != word else text
    if isinstance(condition, checked.Not):
        return f"not {describe_condition(condition.item, 'not')}"
    if isinstance(condition, checked.Named):
        return f"{condition.name}({', '.join(_operand(arg) for arg in condition.args)})"
    if isinstance(condition, checked.Every):
        return (f"{'all' if condition.every else 'any'}({describe_condition(condition.body)} "
                f"for ${condition.var} in {_operand(condition.values)})")
    if isinstance(condition, checked.Test):
        return _operand(condition.value)
    if isinstance(condition, checked.Member):
        options = ", ".join(_operand(option) for option in condition.options)
        return f"{_operand(condition.value)} {'not in' if condition.negated else 'in'} ({options})"
    return f"{_operand(condition.left)} {condition.op} {_operand(condition.right)}"


def _operand(operand) -> str:
    if isinstance(operand, checked.Const):
        return format_value(operand.value)
    if isinstance(operand, checked.BuiltinCall):
        return f"{operand.name}({', '.join(_operand(a) for a in operand.args)})"
    if isinstance(operand, checked.Index):
        return f"{_operand(operand.value)}[{_operand(operand.index)}]"
    if isinstance(operand, checked.Items):
        return "[" + ", ".join(_operand(value) for value in operand.values) + "]"
    if isinstance(operand, checked.Arithmetic):
        if operand.op == "neg":
            return f"-{_operand(operand.operands[0])}"
        left, right = operand.operands
        return f"({_operand(left)} {operand.op} {_operand(right)})"
    return f"*${operand.name}" if isinstance(operand, checked.Splat) else f"${operand.name}"
