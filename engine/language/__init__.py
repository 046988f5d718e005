"""The language: `.rw` text -> checked rules.

    syntax.py      text -> parse tree (grammar/rw.lark, LALR) -> AST (ast.py), each node
                   with its span
    load.py        root files and their includes, each parsed once, rules in file order
    sema.py        AST -> checked rules (checked.py): names through the allowlist (names.py;
                   what a name does beyond computing, and the effects allowed: effects.py),
                   variables bound once, ops against their schemas (schemas.py), built-ins
                   (builtins.py); every mistake a diagnostic (diagnostics.py) with its span
    describe.py    checked rules -> text, names resolved (`engine check --verbose`)

Nothing here looks at a graph.
"""
