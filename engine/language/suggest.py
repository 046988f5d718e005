""""Did you mean": the closest known name to a misspelt one.

Input: a word and the names it could have meant. Output: the closest, by edit distance where a
swap of two neighbouring letters is one edit (`gleu` is one edit from `gelu`), within a
distance that grows with the word (one edit in four letters, at most three); up to three of
the nearest, by name; nothing for words under three letters.
"""

from __future__ import annotations

from typing import Iterable


def closest(word: str, candidates: Iterable[str]) -> list[str]:
    """The nearest candidates (up to three, all at the smallest distance found)."""
    if len(word) < 3:
        return []  # `$x` for `$e` would be a guess, not a suggestion
    limit = min(3, max(1, len(word) // 4))
    found = []
    for candidate in set(candidates):
        if candidate == word or abs(len(candidate) - len(word)) > limit:
            continue
        distance = _distance(word.lower(), candidate.lower())
        if distance <= limit:
            found.append((distance, candidate))
    found.sort()
    return [name for distance, name in found if distance == found[0][0]][:3]


def did_you_mean(word: str, candidates: Iterable[str], template: str = "`{}`") -> str:
    """"; did you mean `x`?" (or "`x` or `y`") for the closest candidates, or ""."""
    found = [template.format(name) for name in closest(word, candidates)]
    return f"; did you mean {' or '.join(found)}?" if found else ""


def _distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, swaps."""
    previous2, previous = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]
