"""Word splitters for raw text: one place decides what a "word" is, for prediction and for span files.

--word_split modes (WORD_SPLITS):
  punct       WORD_RULE below, what `predict` uses on text input: words and punctuation apart.
  whitespace  runs of non-space characters, so text made by joining words with single spaces (CoNLL
              detokenised, `predict`'s text for conll/jsonl input) gives exactly those words back.
  char        every non-space character is a word: for scripts written without spaces (Chinese,
              Japanese, Thai), where a span may start at any character.
Each splitter returns the words and each word's [start, end) character offsets in the text, so that
text[start:end] == word always holds and whitespace is never part of a word.
Pure Python: no torch, no transformers.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

from tokclf.errors import ConfigError

WORD_SPLITS = ("punct", "whitespace", "char")
WORD_RULE = (
    "A word is a run of letters, digits, underscores and combining marks (accents, Indic vowel signs) "
    "that may hold a single - ' ’ or zero-width (non-)joiner between two such characters (e-mail, "
    "l’homme, don't); every other non-space character (punctuation, symbols, emoji) is a word of its "
    "own; whitespace only separates. So `Dr. Smith's e-mail: 3.5€!` gives "
    "Dr . Smith's e-mail : 3 . 5 € !"
)
WORD_SPLIT_RULES = {
    "punct": WORD_RULE,
    "whitespace": "A word is a run of non-space characters; whitespace only separates.",
    "char": "Every non-space character is a word of its own; whitespace only separates.",
}
JOINERS = "-'’\u200c\u200d"
Offsets = list[tuple[int, int]]


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


# `\s` in a str pattern is str.isspace(), the same whitespace that str.split() drops.
_PATTERNS = {"whitespace": re.compile(r"\S+"), "char": re.compile(r"\S")}


def _matches(pattern: re.Pattern, text: str) -> tuple[list[str], Offsets]:
    matches = list(pattern.finditer(text))
    return [m.group() for m in matches], [m.span() for m in matches]


def split_words(line: str) -> tuple[list[str], Offsets]:
    """Words of a text line by WORD_RULE, and each word's [start, end) character offsets in it."""
    return _matches(_word_pattern(), line)


def split(text: str, mode: str = "punct") -> tuple[list[str], Offsets]:
    """Words of text under a --word_split mode, and each word's [start, end) character offsets."""
    if mode == "punct":
        return split_words(text)
    if mode not in _PATTERNS:
        raise ConfigError(f"--word_split {mode!r}: expected one of {', '.join(WORD_SPLITS)}.")
    return _matches(_PATTERNS[mode], text)
