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


# --- plain text out of model text: thinking, LaTeX, numbers in words, symbols, units ----------------

_THINK = re.compile(r"(?is)<think>.*?(?:</think>|$)")
_LATEX = [
    (re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}"), r"\1/\2"),
    (re.compile(r"\\sqrt\s*\{([^{}]*)\}"), r"√\1"),
    (re.compile(r"\\(?:text|mathrm|mathbf|textbf|operatorname|mbox)\s*\{([^{}]*)\}"), r" \1 "),
    (re.compile(r"\^\{([^{}]*)\}"), r"^\1"),
    (re.compile(r"\\(?:times|cdot)"), " × "),
    (re.compile(r"\\div"), " ÷ "),
    (re.compile(r"\\(?:left|right|displaystyle|quad|qquad|[,;:! ])"), " "),
    (re.compile(r"\$\$?([^$\n]+?)\$\$?"), r" \1 "),  # $math$; a lone "$5" stays money
    (re.compile(r"\\[\[\]()]"), " "),
    (re.compile(r"\\%"), "%"),
    (re.compile(r"(\d)\s*\\?,\s*(\d{3})(?!\d)"), r"\1,\2"),
]
_SMALL = {w: n for w, n in NUMBER_WORDS.items() if n < 100}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
_NUMBER_PHRASE = re.compile(
    r"(?i)\b(?:(?:" + "|".join(sorted(set(_SMALL) | set(_SCALES), key=len, reverse=True)) + r")(?:[\s-]+(?:and[\s-]+)?|\b))+")
# Symbols that name an outcome: rock-paper-scissors hands, dice faces, coins, colours and yes/no marks.
_SYMBOLS = {"✊": "rock", "👊": "rock", "🪨": "rock", "✋": "paper", "🖐": "paper", "🤚": "paper", "📄": "paper",
            "📃": "paper", "🧻": "paper", "✌": "scissors", "✂": "scissors", "⚀": "1", "⚁": "2", "⚂": "3", "⚃": "4",
            "⚄": "5", "⚅": "6", "✅": "yes", "✔": "yes", "👍": "yes", "❌": "no", "✖": "no", "👎": "no",
            "🔴": "red", "🔵": "blue", "🟢": "green", "🟡": "yellow", "🟠": "orange", "🟣": "purple", "⚫": "black",
            "⚪": "white", "🟤": "brown", "❤": "red heart", "♥": "hearts", "♦": "diamonds", "♣": "clubs", "♠": "spades"}
_SYMBOL_NOISE = {"black", "white", "heavy", "face", "sign", "symbol", "with", "mark", "emoji", "large", "medium",
                 "small", "ballot", "box", "check", "selector", "variation", "combining", "enclosing", "keycap"}
UNITS = {  # spelled-out and symbol forms -> one symbol
    "km": "kilometer kilometers kilometre kilometres kms", "m": "meter meters metre metres",
    "cm": "centimeter centimeters centimetre centimetres", "mm": "millimeter millimeters millimetre millimetres",
    "mi": "mile miles", "ft": "foot feet", "inch": "inches", "kg": "kilogram kilograms kilo kilos kgs",
    "g": "gram grams", "lb": "pound pounds lbs", "l": "liter liters litre litres", "ml": "milliliter milliliters "
    "millilitre millilitres", "h": "hour hours hr hrs", "min": "minute minutes mins", "s": "second seconds sec secs",
    "%": "percent per cent", "$": "dollar dollars usd", "€": "euro euros eur", "£": "pound sterling gbp",
    "°": "degree degrees deg", "km/h": "kph kmh km/hr", "mph": "mi/h", "m/s": "mps", "km/s": "kps",
    "c": "celsius centigrade", "f": "fahrenheit",
}
_UNIT_OF = {form: unit for unit, forms in UNITS.items() for form in [unit, *forms.split()]}


def _year_reading(tokens: list[str]) -> int | None:
    """ "nineteen forty-five" -> 1945: two pairs of digits read as two numbers."""
    values = [_SMALL.get(t) for t in tokens]
    if None in values or len(values) < 2:
        return None
    split = 2 if len(values) > 2 and values[0] >= 20 and values[1] < 10 else 1
    first, second = sum(values[:split]), sum(values[split:])
    if 10 <= first <= 99 and 10 <= values[split] <= 99 and second <= 99 and len(values) - split <= 2:
        return first * 100 + second
    return None


def words_to_number(phrase: str) -> int | None:
    """ "three hundred and ninety-one" -> 391, "nineteen forty-five" -> 1945; None when not one number."""
    tokens = [t for t in re.findall(r"[a-z]+", phrase.lower()) if t != "and"]
    year = _year_reading(tokens)
    if year is not None:
        return year
    total = current = 0
    seen = False
    for word in re.findall(r"[a-z]+", phrase.lower()):
        if word == "and":
            continue
        if word in _SMALL:
            current += _SMALL[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word in _SCALES:
            total += max(current, 1) * _SCALES[word]
            current = 0
        else:
            return None
        seen = True
    return total + current if seen else None


def _symbol_name(ch: str) -> str:
    if ch in _SYMBOLS:
        return _SYMBOLS[ch]
    try:
        name = unicodedata.name(ch).lower()
    except ValueError:
        return ch
    if "digit" in name and "keycap" in name:
        return ""
    kept = [w for w in name.split() if w not in _SYMBOL_NOISE]
    return " ".join(kept) or ch


def plain(text: str) -> str:
    """Model text as plain words: no <think> block, LaTeX as text, multi-word numbers as digits
    ("three hundred ninety-one" -> "391"), emoji and symbols as the words they stand for."""
    text = _THINK.sub(" ", text)
    for pattern, repl in _LATEX:
        text = pattern.sub(repl, text)
    for _ in range(2):  # inner braces first ("\boxed{x^{2}}"); \boxed{..} stays: it marks the answer
        text = re.sub(r"(?<!\\boxed)\{([^{}]*)\}", r" \1 ", text)
    text = re.sub(r"\\(?!boxed)[a-zA-Z]*", " ", text)

    def phrase(match: re.Match) -> str:
        raw = match.group(0)
        trail = re.search(r"[\s-]*$", raw).group(0)
        body = raw[: len(raw) - len(trail)] if trail else raw
        if len(re.findall(r"[a-z]+", body.lower())) < 2:  # one number word is read as it is
            return raw
        value = words_to_number(body)
        return raw if value is None else f"{value}{' ' if trail else ''}"

    text = _NUMBER_PHRASE.sub(phrase, text)
    out = []
    for ch in text:
        if ch in "\ufe0f\u20e3\u200d":  # emoji modifiers
            continue
        category = unicodedata.category(ch)
        out.append(f" {_symbol_name(ch)} " if category == "So" or ch in _SYMBOLS else ch)
    return "".join(out)


def canonical_unit(word: str) -> str | None:
    return _UNIT_OF.get(word.lower().rstrip("."))


def normalize_answer(text: str) -> str:
    """Canonical form of a short answer: folded, no articles/punctuation, numbers as digits."""
    text = fold(plain(re.sub(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}", r"\1", text)))
    text = re.sub(r"(\d)\s*(?:per|/)\s*(hour|hr|h)\b", r"\1 \2/h", text)  # "60 km per hour" -> "60 km/h"
    text = re.sub(r"\b(km|kilomet\w+|mi|miles?|m|met\w+)\s*(?:per\s+|/\s*)(?:hour|hr|h)\b", r"\1/h", text)
    text = re.sub(r"\b(km|kilomet\w+|mi|miles?|m|met\w+)\s*(?:per\s+|/\s*)(?:second|sec|s)\b", r"\1/s", text)
    text = re.sub(r"^\s*(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*", "", text)
    text = re.sub(r"^\s*[a-z]\s*=\s*", "", text)  # "x = 5" -> "5"
    out = []
    for token in re.findall(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?%?|[a-z]+(?:/[hs]\b)?(?:'[a-z]+)?|[$€£°%]", text):
        if token in ("a", "an", "the", "is", "it", "its", "it's", "about", "approximately", "around", "exactly",
                     "roughly", "nearly", "almost", "approx",
                     "total", "in", "of", "and"):
            continue
        number = to_number(token) if token[0].isdigit() or token[0] == "-" or token in NUMBER_WORDS else None
        if number is not None:
            out.append(number)
            continue
        after_number = [t for t in out[-2:] if t != "°"][-1:]  # "100 ° c": the unit after the degree sign too
        unit = (canonical_unit(re.sub(r"/[hs]$", "", token)) if after_number
                and re.fullmatch(r"-?[\d.,/]+%?", after_number[0]) else None)
        if unit and token.endswith("/h"):
            unit = {"km": "km/h", "mi": "mph", "m": "m/h"}.get(unit, unit)
        elif unit and token.endswith("/s"):
            unit = {"km": "km/s", "mi": "mi/s", "m": "m/s"}.get(unit, unit)
        if unit in ("$", "€", "£"):  # "$5" and "5 dollars" alike: the currency after the number
            out.append(unit)
        elif unit:
            out.append(unit)
        else:
            out.append(token)
    out = _currency_after_number(out)
    text = " ".join(t for i, t in enumerate(out) if i == 0 or t != out[i - 1])
    return re.sub(r"(\d) %", r"\1%", text)


def _currency_after_number(tokens: list[str]) -> list[str]:
    """ "$ 5" -> "5 $", so "$5" and "5 dollars" compare equal."""
    out = list(tokens)
    for i in range(len(out) - 1):
        if out[i] in ("$", "€", "£") and re.fullmatch(r"-?[\d.]+", out[i + 1]):
            out[i], out[i + 1] = out[i + 1], out[i]
    return out
