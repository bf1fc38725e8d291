"""How text becomes words: the splitter of raw text, with each word's character offsets kept."""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

WORD_RULE = (
    "A word is a run of letters, digits, underscores and combining marks (accents, Indic vowel signs) "
    "that may hold a single - ' ’ or zero-width (non-)joiner between two such characters (e-mail, "
    "l’homme, don't); every other non-space character (punctuation, symbols, emoji) is a word of its "
    "own; whitespace only separates. So `Dr. Smith's e-mail: 3.5€!` gives "
    "Dr . Smith's e-mail : 3 . 5 € !"
)
JOINERS = "-'’\u200c\u200d"

@functools.cache
def _word_pattern() -> re.Pattern:
    """WORD_RULE as a regex. `re` has no \\p{M}, so the combining-mark ranges are listed once."""
    marks, start = [], None
    for code in range(sys.maxunicode + 2):
        is_mark = code <= sys.maxunicode and unicodedata.category(chr(code)).startswith("M")
        if is_mark and start is None:
            start = code
        elif not is_mark and start is not None:
            marks.append(f"{re.escape(chr(start))}-{re.escape(chr(code - 1))}")
            start = None
    char = rf"[\w{''.join(marks)}]"
    return re.compile(rf"{char}+(?:[{re.escape(JOINERS)}]{char}+)*|\S")


def split_words(line: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Words of a text line by WORD_RULE, and each word's [start, end) character offsets in it."""
    matches = list(_word_pattern().finditer(line))
    return [m.group() for m in matches], [m.span() for m in matches]
