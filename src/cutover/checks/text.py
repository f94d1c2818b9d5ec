"""Checks on the shape of the text: emptiness, length, markdown, numbers written as words."""

from __future__ import annotations

import re
from itertools import pairwise

from cutover.checks._base import CheckContext
from cutover.checks._facts import FactCheck, Facts, Outcome

# A block-level markdown feature at the start of a line.
_BLOCK = re.compile(
    r"(?P<heading>\#{1,6}[ \t]+\S)"
    r"|(?P<table>\|?[ \t]*:?-{3,}:?[ \t]*\|[ \t:|-]*$)"
    r"|(?P<list>(?:[-*+]|\d{1,3}[.)])[ \t]+\S)"
    r"|(?P<quote>>[ \t]?\S)",
    re.MULTILINE,
)
# Where a line may start a block feature, after its indentation. Searching for "\n"
# first is much faster than a MULTILINE "^"; the first line is matched on its own.
_LINE_START = re.compile(r"\n[ \t]*(?=[#|:*+>0-9-])")
_FIRST_LINE_START = re.compile(r"[ \t]*(?=[#|:*+>0-9-])")
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_LINK = re.compile(r"\]\([^)\s]+\)")
_MARKDOWN_ORDER = ("headings", "lists", "table", "code", "quote", "bold", "links")

_SMALL = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
)
_TENS = (
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
)
_SCALES = (
    "hundred",
    "thousand",
    "million",
    "billion",
    "trillion",
)
_UNIT = "|".join(_SMALL[1:10])
# A number spelled out where style guides (and readers) expect digits: 11 and up.
_SPELLED = re.compile(
    r"(?<![\w-])(?:"
    rf"(?:{'|'.join(_TENS)})(?:[- ](?:{_UNIT}))?(?!-\w)"  # twenty, twenty-five (not twenty-first)
    rf"|(?:{'|'.join(_SMALL[11:])})"  # eleven .. nineteen
    rf"|(?:{_UNIT}|ten)[ -](?:{'|'.join(_SCALES)})"  # three hundred, one million
    r")\b"
)
# Every spelled-out number above ten contains one of these: a cheap gate before _SPELLED.
_BIG_STEMS = (*_SMALL[11:13], "teen", *_TENS, *_SCALES[:2], "illion")
# Number words below eleven ("one" left out: it is mostly a pronoun).
_SMALL_WORDS = (*_SMALL[:1], *_SMALL[2:11])
_DIGIT = re.compile(r"[0-9]")


def _empty(f: Facts, ctx: CheckContext) -> Outcome:
    if f.stripped:
        return (False, "has text")
    if f.obs.tool_calls:
        return (False, "no text, but tool calls")
    return (True, "no text and no tool calls")


def _length_chars(f: Facts, ctx: CheckContext) -> Outcome:
    return (len(f.text), "characters in the output")


def _length_words(f: Facts, ctx: CheckContext) -> Outcome:
    return (len(f.text.split()), "whitespace-separated words")


def markdown_features(text: str, has_fences: bool) -> tuple[frozenset[str], int]:
    """The markdown features present in ``text`` and how many list items it has."""
    found: set[str] = set()
    list_items = 0
    if has_fences:
        found.add("code")
    first = _FIRST_LINE_START.match(text)
    starts = [first.end()] if first is not None else []
    starts += [m.end() for m in _LINE_START.finditer(text)]
    for start in starts:
        m = _BLOCK.match(text, start)
        if m is None:
            continue
        kind = m.lastgroup
        if kind == "list":
            list_items += 1
            found.add("lists")
        elif kind == "heading":
            found.add("headings")
        elif kind is not None:
            found.add(kind)
    if ("**" in text or "__" in text) and _BOLD.search(text):
        found.add("bold")
    if "](" in text and _LINK.search(text):
        found.add("links")
    return frozenset(found), list_items


def outside_fences(f: Facts) -> str:
    """The stripped output without its fenced code blocks."""
    if f.prose is None:
        text = f.stripped
        fences = f.fences
        if fences:
            parts = [text[: fences[0].start]]
            parts += [text[a.end : b.start] for a, b in pairwise(fences)]
            parts.append(text[fences[-1].end :])
            text = "\n".join(parts)
        f.prose = text
    return f.prose


def _markdown_parts(f: Facts) -> tuple[frozenset[str], int]:
    if f.markdown is None:  # what is inside code blocks is code, not markdown
        f.markdown = markdown_features(outside_fences(f), bool(f.fences))
    return f.markdown


def _markdown(f: Facts, ctx: CheckContext) -> Outcome:
    found, items = _markdown_parts(f)
    if not found:
        return ("plain", "no markdown")
    present = [k for k in _MARKDOWN_ORDER if k in found]
    reason = ", ".join(f"{items} list items" if k == "lists" else k for k in present)
    return ("+".join(present), reason)


def _markdown_heavy(f: Facts, ctx: CheckContext) -> Outcome:
    found, items = _markdown_parts(f)
    if "headings" in found or "table" in found:
        what = "headings" if "headings" in found else "a table"
        return (True, f"has {what}")
    if items >= 3:
        return (True, f"{items} list items")
    return (False, "no headings or tables, < 3 list items")


def _numbers_as_words(f: Facts, ctx: CheckContext) -> Outcome:
    lower = f.text.lower()
    for stem in _BIG_STEMS:
        at = lower.find(stem)
        while at >= 0:  # _SPELLED runs only around the stem
            m = _SPELLED.search(lower, max(0, at - 16), at + len(stem) + 16)
            if m is not None:
                return (True, f"spelled out: {m.group(0)!r}")
            at = lower.find(stem, at + 1)
    if _DIGIT.search(lower) is None and not _has_word(lower, _SMALL_WORDS):
        return (None, "no numbers")
    return (False, "no number above ten spelled out")


def _has_word(text: str, words: tuple[str, ...]) -> bool:
    """Whether one of ``words`` is in ``text`` as a whole word (str.find, then the edges)."""
    for word in words:
        at = text.find(word)
        while at >= 0:
            end = at + len(word)
            if (at == 0 or not text[at - 1].isalpha()) and (
                end == len(text) or not text[end].isalpha()
            ):
                return True
            at = text.find(word, end)
    return False


EMPTY = FactCheck("empty", _empty)
LENGTH_CHARS = FactCheck("length_chars", _length_chars)
LENGTH_WORDS = FactCheck("length_words", _length_words)
MARKDOWN = FactCheck("markdown", _markdown)
MARKDOWN_HEAVY = FactCheck("markdown_heavy", _markdown_heavy)
NUMBERS_AS_WORDS = FactCheck("numbers_as_words", _numbers_as_words)

__all__ = [
    "EMPTY",
    "LENGTH_CHARS",
    "LENGTH_WORDS",
    "MARKDOWN",
    "MARKDOWN_HEAVY",
    "NUMBERS_AS_WORDS",
    "markdown_features",
]
