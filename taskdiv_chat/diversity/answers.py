"""What an answer answers: the final answer of a fact or a problem (A, D), the item
picked (B) and the random outcome drawn (C), found with rules, no model.

Each extractor returns candidates in order of appearance; the first one is the
"primary" answer. Mentions that are negated ("not Sydney", "rather than 7")
are dropped, so "Canberra, not Sydney" answers Canberra.
"""

from __future__ import annotations

import math
import re

from .text import (FILLER, NUMBER_WORDS, STOPWORDS, content_words, normalize_answer, numbers, plain, sentences, stem,
                   to_number, words)

_MARKERS = (
    re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}"),
    re.compile(r"(?im)^\s*#{2,}\s*(.+)$"),  # GSM8K style "#### 42"
    re.compile(r"(?i)\bfinal answer\s*(?:is|:|=)?\s*[:\-]?\s*\**\s*([^\n]+)"),
    re.compile(r"(?im)^\W*answer\s*[:=]\s*\**\s*([^\n]+)"),
    re.compile(r"(?i)\b(?:the|my|so the|thus the|hence the|therefore the) answer is\s*:?\s*\**\s*([^\n.;]+(?:\.\d+)?)"),
)
_NEGATION = re.compile(
    r"(?i)(?:\bnot|n't|\bnever|\binstead of|\brather than|\bmistaken(?:ly)? for|\bconfused with|\bas opposed to|"
    r"\bunlike|\bcontrary to|\bmisconception|\bthinks?|\bbelieved?|\bassumed?|\bconfuse)"
    r"\W+(?:\w+\W+){0,2}$"
)
_YESNO_START = re.compile(r"(?i)^\s*(?:is|are|was|were|do|does|did|can|could|has|have|had|will|would|should|"
                          r"shall|may|must)\b")
_NUMBER_Q = re.compile(r"(?i)\b(?:how (?:many|much|old|far|long|tall|big|high|fast|heavy|deep|large|wide)|"
                       r"what year|which year|in what year|what percentage|what percent|calculate|compute|"
                       r"what is the (?:sum|product|value|number)|population|speed of|boiling point|melting point|freezing point|"
                       r"temperature|distance|height|weight|length|how hot|how cold|"
                       r"age of)\b")
_WHEN_Q = re.compile(r"(?i)\b(?:when|what year|which year|in what year|what date|what century)\b")
_RANGES = re.compile(
    r"(?i)(?:for |with |giving |making )?(?:a |the )?(?:total|sum)(?: of| is| =|:)?\s*(?:\d+|[a-z]+(?:-[a-z]+)?\b)|"
    r"\b(?:between|from)\s+[-\d,.]+\s+(?:and|to)\s+[-\d,.]+|\(?\b\d+\s*(?:-|–|to)\s*\d+\)?|\bout of\s+\d+|"
    r"\b\d+[- ]sided\b|\b\d+\s+sides\b|\bd\d+\b|\b(?:one|two|three|four|five|six|ten|twenty)[- ]sided\b"
)
_RANKS = {"ace": "a", "king": "k", "queen": "q", "jack": "j", "a": "a", "k": "k", "q": "q", "j": "j",
          **{str(i): str(i) for i in range(2, 11)}, **{w: str(n) for w, n in NUMBER_WORDS.items() if 2 <= n <= 10}}
_SUITS = {"heart": "h", "hearts": "h", "♥": "h", "♡": "h", "diamond": "d", "diamonds": "d", "♦": "d", "♢": "d",
          "club": "c", "clubs": "c", "♣": "c", "♧": "c", "spade": "s", "spades": "s", "♠": "s", "♤": "s"}
_NUM = r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?%?"
_NUM_OR_WORD = _NUM + r"|\b(?:" + "|".join(NUMBER_WORDS) + r")\b"
_CARD = re.compile(r"(?i)\b(ace|king|queen|jack|10|[2-9]|two|three|four|five|six|seven|eight|nine|ten|[akqj])\s*"
                   r"(?:of\s+)?(hearts?|diamonds?|clubs?|spades?|[♥♡♦♢♣♧♠♤])")
_COIN = re.compile(r"(?i)\b(heads|tails)\b")


def answer_type(prompt: str) -> str:
    """What kind of answer a question wants: yesno, when, number or name."""
    first = prompt.strip().split("\n")[0]
    if _YESNO_START.match(first) and not re.search(r"(?i)\bor\b", first):
        return "yesno"
    if _WHEN_Q.search(first):
        return "when"
    if _NUMBER_Q.search(first):
        return "number"
    return "name"


def marked_answer(text: str) -> str | None:
    """The last explicitly marked answer: \\boxed{..}, "#### ..", "Final answer: ..", "Answer: ..", "the answer is .."."""
    best: tuple[int, str] | None = None
    for pattern in _MARKERS:
        for match in pattern.finditer(text):
            value = match.group(1).strip().strip("*").strip()
            value = re.sub(r"\s*[.。]\s*$", "", value)
            if value and (best is None or match.start() >= best[0]):
                best = (match.start(), value)
    return best[1] if best else None


def _not_negated(text: str, start: int) -> bool:
    return not _NEGATION.search(text[max(0, start - 40):start])


def _prompt_terms(prompt: str) -> tuple[set[str], set[str]]:
    return {stem(w) for w in words(prompt)}, set(numbers(prompt))


def fact_candidates(text: str, prompt: str = "") -> list[str]:
    """Normalised answers to a fact question, primary first (A; also D's fallback)."""
    text = plain(text)
    marked = marked_answer(text)
    head = " ".join(sentences(text)[:3]) or text
    kind = answer_type(prompt) if prompt else "name"
    prompt_words, prompt_numbers = _prompt_terms(prompt)
    found: list[str] = []
    if marked:
        found.append(normalize_answer(marked))
    if len(words(head)) <= 4 and kind != "yesno":  # the whole answer is the answer ("Carbon dioxide.", "Nine.")
        short = [w for w in normalize_answer(head.split("\n")[0]).split()
                 if w not in STOPWORDS and stem(w) not in prompt_words]
        if short:
            found.append(" ".join(short))
    if kind == "yesno":
        for match in re.finditer(r"(?i)\b(yes|no|not|nope|yeah|correct|incorrect|true|false)\b", head):
            word = match.group(1).lower()
            found.append("yes" if word in ("yes", "yeah", "correct", "true") else "no")
            break
    if kind in ("when", "number"):
        hits = [(m.start(), m.group(0)) for m in re.finditer(_NUM_OR_WORD, head, re.I)]
        if kind == "when":
            years = [h for h in hits if re.fullmatch(r"\d{3,4}", h[1])]
            hits = years or hits
        for start, token in hits:
            value = _with_unit(normalize_answer(token), head[start + len(token):])
            if value and value not in prompt_numbers and _not_negated(head, start):
                found.append(value)
        months = re.findall(r"(?i)\b(january|february|march|april|may|june|july|august|september|october|"
                            r"november|december)\b", head)
        found += [m.lower() for m in months[:1]]
    if kind == "name" or not found:
        for match in re.finditer(r"\b[A-Z][\w'’-]*(?:\s+(?:of|de|la|du|the|and|von|van|da)?\s*[A-Z][\w'’-]*)*", head):
            if not _not_negated(head, match.start()):
                continue
            run = [w for w in words(re.sub(r"['’]s\b", "", match.group(0)))
                   if w not in STOPWORDS and w not in FILLER and len(w) > 1]
            run = [w for w in run if stem(w) not in prompt_words]
            if run:
                found.append(" ".join(run))
        for match in re.finditer(_NUM, head):
            value = normalize_answer(match.group(0))
            if value and value not in prompt_numbers and _not_negated(head, match.start()):
                found.append(value)
    if not found:  # a lower-case answer ("hydrogen"): the first content words of the opening sentence
        found += content_words(head.split(".")[0], prompt_words)[:2]
    return _dedupe(found)


def _with_unit(value: str, after: str) -> str:
    """A number with the unit that follows it ("4,130 miles long" -> "4130 mi"), when one does."""
    unit = normalize_answer("1 " + " ".join(after.split()[:4])).split()[1:]
    unit = unit[1:] if unit[:1] == ["°"] else unit
    if value and unit and quantity(f"1 {unit[0]}"):
        return f"{value} {'° ' if unit[0] in ('c', 'f') else ''}{unit[0]}"
    return value


_CONCLUSION = re.compile(r"(?i)\b(?:so|therefore|thus|hence|giving|which gives|then|that makes|total|in total|"
                         r"altogether|in all|which is|that's|that is)\b|[;:→⇒]|=>")
_EQUALS = re.compile(r"(?<!\))\s*[=≈]\s*[$€£]?(" + _NUM_OR_WORD + ")", re.I)  # "(x-2)(x-3) = 0" is not an answer
_AFTER_VERB = re.compile(r"(?i)\b(?:is|are|equals|gives?|get|makes?|be|was|of)\s+[$€£]?(" + _NUM_OR_WORD + ")")
_MEMBER = re.compile(r"\b[a-z]\s*∈\s*\{?\s*(-?[\d.]+(?:\s*,\s*-?[\d.]+)*)")


def problem_answer(text: str, prompt: str = "") -> str | None:
    """D: the final answer of a worked solution, normalised.

    A marked answer wins; a yes/no question takes the opening yes/no; otherwise
    the conclusion of the last sentence with a number ("..., so x = 5"): every
    variable it assigns ("x = 2 or x = 3" -> "2 3"), else the last "= value",
    else the value after "is/are/get", else its last number.
    """
    text = plain(text)
    marked = marked_answer(text)
    if marked:
        return normalize_answer(marked) or None
    if prompt and answer_type(prompt) == "yesno":
        found = fact_candidates(text, prompt)
        if found and found[0] in ("yes", "no"):
            return found[0]
    member = _MEMBER.findall(text)
    if member:  # "x ∈ {2, 3}"
        return " ".join(sorted(normalize_answer(v) for v in member[-1].split(",")))
    with_numbers = [s for s in sentences(text) if re.search(_NUM_OR_WORD, s, re.I)]
    if not with_numbers:
        return None
    sentence = with_numbers[-1]
    clauses = [c for c in _CONCLUSION.split(sentence) if re.search(r"\d", c)]
    clause = clauses[-1] if clauses else sentence
    # Variables assigned in the last sentence, each with the value at the end of its chain ("y = 10 - 6 = 4").
    assigned: dict[str, list[str]] = {}
    for part in re.split(r"(?i),\s|;|\band\b|\bor\b|\bthen\b|\bso\b|→|⇒", sentence):
        match = re.match(r"\s*([a-z])\s*=", part, re.I)
        values = _EQUALS.findall(part)
        if match and values:
            assigned.setdefault(match.group(1).lower(), []).append(normalize_answer(values[-1]))
    if len(assigned) > 1:
        return " ".join(sorted(values[-1] for values in assigned.values()))
    if len(assigned) == 1:
        values = next(iter(assigned.values()))
        in_clause = [v for v in values if v in numbers(clause)]
        if len(in_clause) > 1 and re.search(r"(?i)\bor\b|\band\b", clause):
            return " ".join(sorted(set(in_clause)))
    equals = _EQUALS.findall(clause)
    if equals:
        return normalize_answer(equals[-1])
    after = _AFTER_VERB.findall(clause)
    if after:
        values = [normalize_answer(v) for v in after]
        if re.search(r"(?i)\bor\b", clause) and len(values) > 1:  # "x is 2 or 3"; "is 0.15, and ... is 12" is one
            return " ".join(sorted(set(values)))
        return values[-1]
    found = numbers(clause)
    return found[-1] if found else None


def concludes_with(text: str, value: str) -> bool:
    """Whether a worked solution's closing sentences state `value` (a final answer the extractor missed)."""
    closing = " ".join(sentences(plain(text))[-2:])
    wanted = value.split()
    return bool(wanted) and all(any(answers_match(w, n) for n in numbers(closing)) for w in wanted)


def pick_candidates(text: str, prompt: str = "") -> list[str]:
    """B: the item picked ("Kenya", "a strawberry"), primary first.

    A marked or bold answer comes first; then names, numbers and content words
    of the opening sentence in the order they appear.
    """
    text = plain(text)
    marked = marked_answer(text)
    prompt_words, prompt_numbers = _prompt_terms(prompt)
    found: list[str] = []
    if marked:
        found.append(normalize_answer(marked))
    for item in re.findall(r"\*\*([^*]{1,60})\*\*", text)[:1]:
        kept = content_words(item, prompt_words)
        if kept:
            found.append(" ".join(kept))
    for head in sentences(text) or [text]:  # the first sentence that names something ("Let me think... Ethiopia!")
        placed = _placed_items(head, prompt_words, prompt_numbers)
        if placed:
            found += [value for _, value in sorted(placed)]
            break
    return _dedupe(found)[:6]


def _placed_items(head: str, prompt_words: set[str], prompt_numbers: set[str]) -> list[tuple[float, str]]:
    """Names, numbers and content words of one sentence with their positions."""
    placed: list[tuple[float, str]] = []
    for match in re.finditer(r"\b[A-Z][\w'’-]*(?:\s+(?:of|de|la|du|the|and|von|van|da)?\s*[A-Z][\w'’-]*)*", head):
        if not _not_negated(head, match.start()):
            continue
        run = [w for w in words(re.sub(r"['’]s\b", "", match.group(0))) if w not in STOPWORDS and w not in FILLER]
        run = [stem(w) for w in run if stem(w) not in prompt_words]
        if run:
            placed.append((match.start(), " ".join(run)))
    for match in re.finditer(_NUM, head):
        value = normalize_answer(match.group(0))
        if value and value not in prompt_numbers:
            placed.append((match.start(), value))
    for match in re.finditer(r"[A-Za-z][\w'’-]*", head):
        kept = content_words(match.group(0), prompt_words)
        if kept and _not_negated(head, match.start()):
            placed.append((match.start() + 0.5, kept[0]))  # a name at the same spot wins
    return placed


def outcome_candidates(text: str, prompt: str = "") -> list[str]:
    """C: the random outcomes drawn, in order (card "q-h", coin "heads", numbers, letters, names).

    Ranges and die sizes ("between 1 and 100", "1-6", "six-sided") are not outcomes.
    """
    text = plain(text)
    marked = marked_answer(text)
    body = marked if marked else text
    cleaned = _RANGES.sub(" ", body)
    prompt_words, prompt_numbers = _prompt_terms(_RANGES.sub(" ", prompt))
    found: list[str] = []
    for match in _CARD.finditer(cleaned):
        rank = _RANKS.get(match.group(1).lower(), match.group(1).lower())
        found.append(f"{rank}-{_SUITS[match.group(2).lower()]}")
    if found:
        return found
    coins = [m.group(1).lower() for m in _COIN.finditer(cleaned) if _not_negated(cleaned, m.start())]
    if coins:
        return coins
    if re.search(r"(?i)\bletters?\b", prompt):
        letters = re.findall(r"(?<![\w'’])([A-Z])(?![\w'’])", cleaned)
        letters = [c for c in letters if c not in ("I", "A") or len(set(letters)) == 1]  # "I" and "A" are words
        if letters:
            return [c.lower() for c in letters]
    choices = prompt_choices(prompt)
    if choices:  # "rock, paper or scissors?": the choice named, in order
        named = [(m.start(), stem(m.group(0).lower())) for m in re.finditer(r"[A-Za-z]+", cleaned)
                 if stem(m.group(0).lower()) in choices and _not_negated(cleaned, m.start())]
        if named:
            return _dedupe([value for _, value in named])
    nums = [n for n in numbers(cleaned) if n not in prompt_numbers or not prompt_numbers]
    if len(nums) > 1 and re.search(r"(?i)\b(?:a|one) (?:die|dice|number|card)\b", cleaned):
        nums = [n for n in nums if n != "1"]  # "one die" is not a roll of 1
    if nums:
        return nums
    return pick_candidates(body, prompt)


def prompt_choices(prompt: str) -> set[str]:
    """The options a prompt lists ("rock, paper, scissors", "heads or tails"), stemmed; empty when none."""
    found: set[str] = set()
    for match in re.finditer(r"(?i)\b([a-z]+)((?:\s*,\s*[a-z]+)+)(?:\s*,?\s*(?:or|and)\s+([a-z]+))?"
                             r"|\b([a-z]+)\s+or\s+([a-z]+)\b", prompt):
        items = [w for w in re.findall(r"[a-z]+", match.group(0).lower()) if w not in ("or", "and")]
        if len(items) >= 2 and not any(w in STOPWORDS for w in items):
            found |= {stem(w) for w in items}
    return found


def _dedupe(items: list[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        item = item.strip()
        if item and item not in seen:
            seen.append(item)
    return seen


# Units of one dimension as factors to a base unit; temperatures convert apart (an offset, not a factor).
_FACTORS = {"m": ("length", 1.0), "km": ("length", 1000.0), "cm": ("length", 0.01), "mm": ("length", 0.001),
            "mi": ("length", 1609.344), "ft": ("length", 0.3048), "inch": ("length", 0.0254),
            "kg": ("mass", 1.0), "g": ("mass", 0.001), "lb": ("mass", 0.45359), "l": ("volume", 1.0),
            "ml": ("volume", 0.001), "h": ("time", 3600.0), "min": ("time", 60.0), "s": ("time", 1.0),
            "km/h": ("speed", 1 / 3.6), "mph": ("speed", 0.44704), "m/s": ("speed", 1.0), "km/s": ("speed", 1000.0),
            "mi/s": ("speed", 1609.344), "c": ("temperature", 1.0), "f": ("temperature", 1.0)}


def quantity(answer: str) -> tuple[str, float] | None:
    """(dimension, value in the base unit) of a normalised "number unit" answer ("1.5 km" -> length 1500)."""
    match = re.fullmatch(r"(-?[\d.]+) (?:° )?([a-z/]+)(?: [a-z]+)?", answer)
    if not match or match.group(2) not in _FACTORS:
        return None
    try:
        value = float(match.group(1))
    except ValueError:
        return None
    dimension, factor = _FACTORS[match.group(2)]
    if dimension == "temperature":
        return dimension, value if match.group(2) == "c" else (value - 32) * 5 / 9
    return dimension, value * factor


def same_quantity(x: str, y: str) -> bool | None:
    """Two measured answers, unit converted: equal within rounding (3 %); None unless both are quantities
    of one dimension ("6,650 km" / "4,130 miles" equal; "100 °C" / "100 °F" differ)."""
    qx, qy = quantity(x), quantity(y)
    if not qx or not qy or qx[0] != qy[0]:
        return None
    return abs(qx[1] - qy[1]) <= 0.03 * max(abs(qx[1]), abs(qy[1])) + 1e-9


def same_answer(a: list[str], b: list[str]) -> bool | None:
    """Two candidate lists name the same answer: equal primaries, or each primary found in the other list.

    None when either list is empty (nothing to compare).
    """
    if not a or not b:
        return None
    measured = same_quantity(a[0], b[0])
    if measured is not None:
        return measured
    if answers_match(a[0], b[0]):
        return True
    if _namesakes(a[0], b[0]):
        return False
    return any(answers_match(a[0], x) for x in b) and any(answers_match(b[0], x) for x in a)


def _namesakes(x: str, y: str) -> bool:
    """Two names that share a word but each have one of their own: two people or places, not one
    ("marie curie" / "pierre curie", "george washington" / "george w bush")."""
    wx, wy = set(x.split()), set(y.split())
    return bool(wx & wy) and bool(wx - wy) and bool(wy - wx) and not any(w[:1].isdigit() for w in wx | wy)


def answers_match(x: str, y: str) -> bool:
    """Normalised answers match when equal or when one is a whole-word part of the other ("canberra" / "canberra act")."""
    if x == y:
        return True
    xs, ys = [to_number(w) or w for w in x.split()], [to_number(w) or w for w in y.split()]
    if len(xs) == len(ys) == 1 and (xs[0].endswith("%") != ys[0].endswith("%")):  # "51.8%" / "0.518"
        percent, plain_ = (xs[0], ys[0]) if xs[0].endswith("%") else (ys[0], xs[0])
        try:
            return math.isclose(float(percent[:-1]) / 100, float(plain_), rel_tol=0.005)
        except ValueError:
            return False
    if xs == ys or (len(xs) == len(ys) == 1 and _close(xs[0], ys[0])):
        return True
    if not xs or not ys:
        return False
    short, long_ = (xs, ys) if len(xs) <= len(ys) else (ys, xs)
    if all(w.isdigit() or re.fullmatch(r"-?[\d.]+%?", w) for w in short) and len(short) == 1:
        return short[0] in long_ and len(long_) <= 3  # "5" vs "5 apples", not "5" vs "15 minus 5"
    joined = " " + " ".join(long_) + " "
    return (" " + " ".join(short) + " ") in joined


def _close(x: str, y: str) -> bool:
    """Two decimals that agree once rounded ("28.27" / "28.3"): within half a percent."""
    try:
        fx, fy = float(x), float(y)
    except ValueError:
        return False
    return (fx != int(fx) or fy != int(fy)) and abs(fx - fy) <= 0.005 * max(abs(fx), abs(fy))


def outcomes_equal(a: list[str], b: list[str]) -> bool | None:
    """C: the same draw, as a multiset (order of dice or cards does not matter)."""
    if not a or not b:
        return None
    if sorted(a) == sorted(b) or _with_total(a, b) or _with_total(b, a):
        return True
    if len(a) == 1 or len(b) == 1:  # one outcome stated, the other repeated or explained
        return a[0] == b[0]
    return False


def _with_total(longer: list[str], shorter: list[str]) -> bool:
    """The same dice with their total stated once more ("⚂ + ⚃ = 7" / "a 3 and a 4")."""
    if len(longer) != len(shorter) + 1 or len(shorter) < 2:
        return False
    try:
        values = [float(v) for v in shorter]
        total = float(longer[-1])
    except ValueError:
        return False
    return sorted(longer[:-1]) == sorted(shorter) and total == sum(values)
