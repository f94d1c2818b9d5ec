"""The ``language`` check: a small script- and stopword-based language detector.

It reads the first :data:`MAX_WORDS` words (and :data:`SAMPLE_CHARS`
characters) of the output outside code blocks. Text in a non-Latin script is classified by script: kana -> ``ja``
(kana wins over Han, which Japanese also uses), Hangul -> ``ko``, Han ->
``zh``, Cyrillic -> ``ru``, Arabic -> ``ar``. Latin text is classified by
counting frequent function words of English, French, German, Spanish,
Italian, Portuguese and Dutch; the language with the most hits wins when it
has at least :data:`MIN_HITS` and clearly more than the runner-up. Otherwise
the answer is ``"und"`` (undetermined). Text with fewer than
:data:`MIN_LETTERS` letters gives ``None``: too short to say.

This tells a model that answers in the wrong language apart from one that
does not; it is not a general-purpose identifier (no Catalan, Polish...).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from itertools import chain
from operator import itemgetter
from types import MappingProxyType

from cutover.checks._base import CheckContext
from cutover.checks._facts import FactCheck, Facts, Outcome
from cutover.checks.text import outside_fences

SAMPLE_CHARS = 1000
MAX_WORDS = 150
MIN_LETTERS = 12
MIN_HITS = 2

_STOPWORDS: Mapping[str, str] = {
    "en": "the and is are of to in that it for with you this was be on not have as by "
    "from or but they which can will would there their what your",
    "fr": "le la les des est et une un du que qui dans pour pas sur au avec ce sont vous "
    "nous je il elle mais ou aux cette ces été être très",
    "de": "der die das und ist nicht ein eine zu den mit sich auf für dem von es sie ich "
    "wir auch sind wird oder aber wenn nur noch",
    "es": "el la los las de que y en es un una por para con no se del al lo como más pero "
    "está son muy también sus fue",
    "it": "il la di che e è un una per non sono del della con gli le nel ma come anche "
    "questo si alla delle più essere",
    "pt": "o os as de que e é um uma para com não do da em no na se por mais são você "
    "isso dos das muito também ao",
    "nl": "de het een en van is dat niet op te zijn voor met ik je ook maar als wat er "
    "dit wordt hebben naar bij",
}
# word (UTF-8) -> the languages it is a stopword of
_WORD_LANGS: Mapping[bytes, tuple[str, ...]] = {
    word.encode(): tuple(lang for lang, words in _STOPWORDS.items() if word in words.split())
    for word in {w for words in _STOPWORDS.values() for w in words.split()}
}
# ASCII punctuation -> space, on UTF-8 bytes (bytes.translate is much faster than str's).
_PUNCT = b".,;:!?()[]{}<>\"'`*#_-/\\|~=+"
_PUNCT_TO_SPACE = bytes.maketrans(_PUNCT, b" " * len(_PUNCT))
_SCRIPTS = (
    ("ja", re.compile(r"[\u3040-\u30ff]")),  # hiragana, katakana
    ("ko", re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")),
    ("zh", re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
)
_ANY_SCRIPT = re.compile(
    "[\u3040-\u30ff\uac00-\ud7af\u1100-\u11ff\u4e00-\u9fff\u3400-\u4dbf\u0400-\u04ff\u0600-\u06ff]"
)
_LETTERS = re.compile(r"[^\W\d_]")
_DROP_ASCII_LETTERS = str.maketrans("", "", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def detect_language(text: str) -> tuple[str | None, str]:
    """``(code, reason)``: an ISO 639-1 code, ``"und"`` when unsure, ``None`` when too short."""
    sample = text[:SAMPLE_CHARS]
    if len(sample) < 4 * MIN_LETTERS and len(_LETTERS.findall(sample)) < MIN_LETTERS:
        return None, "too short to tell"
    if not sample.isascii() and _ANY_SCRIPT.search(sample) is not None:
        counts = [(len(p.findall(sample)), code) for code, p in _SCRIPTS]
        latin = len(sample) - len(sample.translate(_DROP_ASCII_LETTERS))
        letters = latin + sum(n for n, _ in counts)
        if counts[0][0] and counts[0][0] + counts[2][0] >= letters * 0.3:
            return "ja", "Japanese kana"
        best, code = max(counts)
        if best >= letters * 0.3 and best >= 2:
            return code, f"{_SCRIPT_NAMES[code]} script"
    words = sample.lower().encode().translate(_PUNCT_TO_SPACE).split()
    return _by_stopwords(words[:MAX_WORDS])


_SCRIPT_NAMES = MappingProxyType(
    {"ja": "kana", "ko": "Hangul", "zh": "Han", "ru": "Cyrillic", "ar": "Arabic"}
)


def _by_stopwords(words: list[bytes]) -> tuple[str | None, str]:
    hits = Counter(chain.from_iterable(filter(None, map(_WORD_LANGS.get, words))))
    if not hits:
        return "und", "no common words of a known language"
    ranked = sorted(hits.items(), key=itemgetter(1), reverse=True)
    lang, n = ranked[0]
    second = ranked[1][1] if len(ranked) > 1 else 0
    if n < MIN_HITS or n < second * 1.25 + 1:
        return "und", f"unsure ({lang} {n} vs {second} common words)"
    return lang, f"{n} common {lang} words"


def _language(f: Facts, ctx: CheckContext) -> Outcome:
    code, reason = detect_language(outside_fences(f) if f.fences else f.stripped)
    return (code, reason)


LANGUAGE = FactCheck("language", _language)

__all__ = ["LANGUAGE", "detect_language"]
