"""Small text tools shared by the metrics, the strategies and the local judge.

Plain regular expressions, no model: words, sentences, numbers, capitalised
names, and normalisation of short answers so "Four." and "4" compare equal.
"""

from __future__ import annotations

import re
import unicodedata

WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+(?=[\"'“‘(]?[A-Z0-9])|\n+")

STOPWORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each few
for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him
himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my
myself no nor not of off on once only or other ought our ours ourselves out over own same shan't she she'd she'll
she's should shouldn't so some such than that that's the their theirs them themselves then there there's these
they they'd they'll they're they've this those through to too under until up very was wasn't we we'd we'll we're
we've were weren't what what's when when's where where's which while who who's whom why why's will with won't
would wouldn't you you'd you'll you're you've your yours yourself yourselves just really well also even still
here's sure okay ok yes no one would could might may much many like get got make made use used using
""".split())

# Filler that frames an answer without being its content ("How about ...", "Here is one: ...").
FILLER = frozenset("""
answer answers response responses option options choice choices pick picked example examples suggestion
suggest suggested recommend recommended recommendation great good nice popular common famous known
well-known certainly absolutely definitely sure here's let's how about try another different else
alternatively instead consider perhaps maybe going think guess say said choose chose chosen go give gave
name named call called one two first final result outcome random randomly selected select drew draw drawn
got get comes came landed lands rolled roll rolls flipped flip tossed toss generated generate number
let hmm hm um well okay alright oh ah wow voila ta-da tada yay hey hi hello sure certainly idea
favorite favourite personally honestly quick simple fun classic solid excellent perfect
""".split())

NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
}
_NUMBER = re.compile(r"(?<![\w.])[-−]?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?%?")


def fold(text: str) -> str:
    """Lower case without accents ("Café" -> "cafe")."""
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if not unicodedata.combining(ch)).lower().replace("’", "'")


def words(text: str) -> list[str]:
    return WORD.findall(fold(text))


def stem(word: str) -> str:
    """A crude plural/verb-ending stem, enough to match "dragons"/"dragon", "watered"/"watering"."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if len(word) > len(suffix) + 3 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)] + keep
    return word


def content_words(text: str, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Stemmed words that carry content: no stopwords, no filler, none of `exclude` (stemmed)."""
    out = []
    for word in words(text):
        if word in STOPWORDS or word in FILLER or len(word) < 2:
            continue
        s = stem(word)
        if s not in exclude:
            out.append(s)
    return out


def sentences(text: str) -> list[str]:
    """Sentences and lines; list markers and Markdown emphasis stripped."""
    parts = []
    for piece in _SENTENCE_END.split(text.strip()):
        piece = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", piece)
        piece = piece.replace("**", "").replace("__", "").strip()
        if re.search(r"\w", piece):
            parts.append(piece)
    return parts


def to_number(token: str) -> str | None:
    """A canonical string for a number token ("1,000" -> "1000", "5.0" -> "5", "four" -> "4")."""
    token = token.strip().replace("−", "-").replace(",", "")
    if token.lower() in NUMBER_WORDS:
        return str(NUMBER_WORDS[token.lower()])
    if "/" in token:
        top, _, bottom = token.partition("/")
        try:
            value = float(top) / float(bottom)
        except (ValueError, ZeroDivisionError):
            return None
        return _canonical(value)
    percent = token.endswith("%")
    try:
        value = float(token.rstrip("%"))
    except ValueError:
        return None
    return _canonical(value) + ("%" if percent else "")


def _canonical(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def numbers(text: str) -> list[str]:
    """Every number in the text, canonical, in order (digits and spelled-out small numbers)."""
    found = []
    for match in re.finditer(_NUMBER.pattern + r"|\b(?:" + "|".join(NUMBER_WORDS) + r")\b", text, re.I):
        value = to_number(match.group(0))
        if value is not None:
            found.append(value)
    return found


_CAP_RUN = re.compile(r"\b(?:[A-Z]|[a-z][A-Z])[\w'’-]*(?:\s+(?:of|de|la|du|the|and|von|van|da)?\s*(?:[A-Z]|[a-z][A-Z])[\w'’-]*)*(?:\s+\d+\b)?")


def _initial(text: str, pos: int) -> bool:
    """Whether the word at `pos` opens a sentence, a line, a list item or a quotation."""
    before = text[:pos].rstrip(" \t*_\"'“‘(-–—")
    return not before or before[-1] in ".!?:;\n•" or bool(re.search(r"(?:^|\n)\s*(?:\d+[.)]|[-*•])$", before))


def names(text: str, context: str = "") -> list[str]:
    """Capitalised runs ("New Zealand", "Queen of Hearts", "MacBook Air"), folded, possessive 's dropped.

    A word that merely opens a sentence ("Economic decline ...") is not a name
    unless it also appears capitalised mid-sentence in the text or in `context`.
    """
    midsentence = {fold(m.group(0)) for source in (text, context)
                   for m in re.finditer(r"\b(?:[A-Z]|[a-z][A-Z])[\w'’-]*", source)
                   if not _initial(source, m.start())}
    found = []
    for match in _CAP_RUN.finditer(text):
        run = words(re.sub(r"['’]s\b", "", match.group(0)))
        if _initial(text, match.start()) and run and run[0] not in midsentence:
            run = run[1:]
        while run and (run[0] in STOPWORDS or run[0] in FILLER):
            run.pop(0)
        while run and run[-1] in STOPWORDS:
            run.pop()
        if run:
            found.append(" ".join(run))
    return found


def normalize_answer(text: str) -> str:
    """Canonical form of a short answer: folded, no articles/punctuation, numbers as digits."""
    text = fold(text)
    text = re.sub(r"\\boxed\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"^\s*(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*", "", text)
    text = re.sub(r"^\s*[a-z]\s*=\s*", "", text)  # "x = 5" -> "5"
    out = []
    for token in re.findall(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?%?|[a-z]+(?:'[a-z]+)?", text):
        if token in ("a", "an", "the", "is", "it", "its", "it's", "about", "approximately", "around", "exactly"):
            continue
        number = to_number(token) if token[0].isdigit() or token[0] == "-" or token in NUMBER_WORDS else None
        out.append(number if number is not None else token)
    return " ".join(out)
