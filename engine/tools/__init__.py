"""The rule author's tools, beside the pipeline (they read its stages, none of them is on the
rewrite's path).

    explain.py    why (not) a match: each rule at each place its pattern could start
    ruletest.py   rule fixtures (`engine test`): graph text in, expected graph text or report out
"""
