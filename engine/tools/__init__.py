"""The rule author's tools, beside the pipeline (they read its stages, none of them is on the
rewrite's path).

    explain.py    why (not) a match: each rule at each place its pattern could start
    ruletest.py   rule fixtures (`engine test`): graph text in, expected graph text or report out
    verify.py     soundness (`engine verify`): each rule on drawn instances, matches, programs
    synthesize.py a DAG pattern written out as a graph, its inputs drawn by hypothesis
    extract.py    a decision cut out as two graphs: the pattern's nodes, and their replacement
    compare.py    two graphs run on the same inputs: values, refinement, aliasing, writes, grads
"""
