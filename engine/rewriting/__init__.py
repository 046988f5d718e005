"""Rewriting: matches -> new graphs.

    emit.py       copies one graph level into a new graph, handing regions to the actions
    actions.py    a region -> the first rule whose guards hold -> outline (outline.py), inline,
                  keep, erase
    replace.py    the DAG matches of one pass, carried out in a copy of the graph
    driver.py     the module tree: plan, build, DAG passes to a fixpoint; `RuleSet`
"""
