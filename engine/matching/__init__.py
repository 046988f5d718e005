"""Matching: checked rules + one graph -> what the rules' patterns match there.

    match.py      node patterns -> matchers: a reference interpreter and a compiler, side by side
    regions.py    region and segment rules -> one stack pass over a graph -> its region tree
    dag.py        DAG rules -> an index by root target -> the structural matches at a node
    guards.py     `where` guards evaluated on bindings, in a context (grad mode, segment states)

Matching decides nothing: which rule a region or node gets, and what that removes and builds,
is `engine.rewriting.decide`'s to say.
"""
