"""Rewriting: matches -> decisions -> new graphs.

    decide.py     region trees and DAG matches -> decisions: the rule, its bindings, its
                  footprint (what goes, what stays, what is built), or why it was rejected;
                  every problem is found here, before anything is built
    templates.py  a DAG decision's templates -> the nodes to build, with targets and values
    evaluate.py   what an op computes on fake values, and which overload a packet picks, cached
    emit.py       copies one graph level into a new graph, handing regions to the actions
    actions.py    carries out a region decision: outline (outline.py), inline, keep, erase
    replace.py    carries out the DAG decisions of one pass in a copy of the graph
    driver.py     the module tree: match, decide, build; DAG passes to a fixpoint; `RuleSet`
"""
