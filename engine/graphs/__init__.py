"""What every stage shares about FX graphs; nothing here knows about rules.

    values.py       where a node's value lives (`meta["val"]` or Dynamo's `example_value`)
    modules.py      a module tree: fetching attributes, the graphs a graph holds
    errors.py       problems in a graph, told with the model's own source lines
    dump.py         a graph or program -> canonical text (snapshots, `engine dump`, diffs)
    parse.py        that text -> a GraphModule again (grammar/fxg.lark), values rebuilt
    equivalence.py  the oracles' notions of "the same graph"
    files.py        writing a file whole: the new contents or the old, never a part
    contained.py    running a graph with the caller's grad mode, autocast and RNG kept
"""
