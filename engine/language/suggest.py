""""Did you mean": the closest known name to a misspelt one.

Input: a word and the names it could have meant. Output: the closest, by edit distance where a
swap of two neighbouring letters is one edit (`gleu` is one edit from `gelu`), within a
distance that grows with the word (one edit in four letters, at most three); up to three of
the nearest, by name; nothing for words under three letters.

`Suggestions` indexes the names once, by length and by the set of characters each holds, so
that a word is measured only against the few names that can be that near: an edit changes the
length by at most one and the character set by at most two, so a name whose length or set is
further off is never measured. A file of four thousand misspelt ops costs four thousand lookups,
not four thousand scans of every op.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

MAX_DISTANCE = 3


class Suggestions:
    """An index of names for `closest`, built once and asked many times."""

    def __init__(self, candidates: Iterable[str]):
        self.by_length: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
        for name in set(candidates):
            lower = name.lower()
            self.by_length[len(name)].append((_characters(lower), lower, name))
        self.answers: dict[str, list[str]] = {}  # a misspelling made a thousand times

    def closest(self, word: str) -> list[str]:
        """The nearest names (up to three, all at the smallest distance found)."""
        if word not in self.answers:
            self.answers[word] = self._closest(word)
        return self.answers[word]

    def _closest(self, word: str) -> list[str]:
        if len(word) < 3:
            return []  # `$x` for `$e` would be a guess, not a suggestion
        limit = min(MAX_DISTANCE, max(1, len(word) // 4))
        lower = word.lower()
        characters = _characters(lower)
        found = []
        for length in range(len(word) - limit, len(word) + limit + 1):
            for their_characters, their_lower, name in self.by_length.get(length, ()):
                if name == word or (characters ^ their_characters).bit_count() > 2 * limit:
                    continue
                distance = _distance(lower, their_lower)
                if distance <= limit:
                    found.append((distance, name))
        found.sort()
        return [name for distance, name in found if distance == found[0][0]][:3]


def closest(word: str, candidates: Iterable[str] | Suggestions) -> list[str]:
    """The nearest candidates (up to three, all at the smallest distance found)."""
    index = candidates if isinstance(candidates, Suggestions) else Suggestions(candidates)
    return index.closest(word)


def did_you_mean(word: str, candidates: Iterable[str] | Suggestions,
                 template: str = "`{}`") -> str:
    """"; did you mean `x`?" (or "`x` or `y`") for the closest candidates, or ""."""
    found = [template.format(name) for name in closest(word, candidates)]
    return f"; did you mean {' or '.join(found)}?" if found else ""


def _characters(word: str) -> int:
    """The set of characters of a word, as bits (characters past 63 share a bit)."""
    bits = 0
    for character in word:
        bits |= 1 << (ord(character) % 64)
    return bits


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
