"""Features of a pair of answers for the local judge: how alike the two are in
meaning (whole, and in the words only one of them uses), and for advice and
problems the stance, option, recommendation or solution strategy each takes.
"""

from __future__ import annotations

import re

import numpy as np

from .elements import chosen_option, prompt_options, recommendations, stance
from .text import content_words, plain, sentences, stem, words

# D: solution strategies, each a set of signal patterns. Two solutions that use
# disjoint strategies are different even when they reach the same answer.
STRATEGY_SIGNALS: dict[str, str] = {
    "isolate": r"both sides|each side|isolat|subtract\w* \S+ from|take \S+ away|divide both|halve both|move the",
    "guess and check": r"\bguess|\btry\w*\b|trial and error|\btest\w* (?:x|values|numbers)|plug\w* in|"
                       r"check\w* (?:x|values)",
    "work backwards": r"backward|\bundo|revers|inverse operation",
    "graph": r"\bgraph|\bplot|intersect|number line",
    "factor": r"\bfactor(?:ing|ise|ize|ed|s)?\b(?! of)|\(x ?[-−+] ?\d+\) ?\(x|prime factori",
    "quadratic formula": r"quadratic formula|discriminant|± ?√|\+/-",
    "complete the square": r"complet\w* the square",
    "substitution": r"substitut|plug\w*(?: (?!back)\S+)? into|put (?:that|this|it) into",
    "elimination": r"eliminat|(?:add|sum)\w* (?:both|the two|the) equations|subtract\w* the (?:two )?equations|"
                   r"\bcancel|subtract\w* (?:it|this|that|them) from the (?:first|second|other)|"
                   r"multiply (?:the )?(?:first|second|other) equation",
    "formula": r"\bformula\b|n ?\( ?n ?[-−+] ?\d+ ?\)|½ ?×|1/2 ?×|area =|speed =|half of base|over time|/ ?time",
    "counting principle": r"\bn!|\d!|factorial|choices for|\d+ (?:choices|options|ways) for|"
                          r"for each (?:seat|position|spot|place)",
    "enumerate": r"\blist\w*|enumerat|write (?:them )?(?:all )?out|count (?:them|each)|\bABC\b|\btable\b",
    "complement": r"complement|total minus|subtract the (?:ones|cases|ways) that",
    "recursion": r"recurs|build\w* (?:it )?up|insert\w* (?:in|into)|pattern grows|each new",
    "pairing": r"\bpair\w*\b|gauss",
    "double and halve": r"doubl\w*\b.{0,20}\bhalv|halv\w*\b.{0,20}\bdoubl",
    "regroup": r"regroup|rearrang|associat|make (?:a |it )?(?:10|100|1000)\b|= ?100 ?[×x*]",
    "round and adjust": r"round\w* (?:\S+ )?(?:up|down|to)|compensat|adjust\w* (?:for|by)|(?:add|subtract) the extra",
    "split": r"× ?\d+ ?\+ ?\d+ ?×|distribut|partial product|\bsplit|break\w* (?:it )?(?:into|down)|half of that|"
             r"\b10% (?:of \d+ )?is|\b1% is|decompos",
    "decimal": r"convert\w*|decimal|0\.\d+ ?[×x*·]|[×x*·] ?0\.\d+|multiply (?:\S+ )?by 0\.",
    "fraction": r"\b(?:quarter|third|fifth|tenth)s?\b|as a fraction|\d+/100\b",
    "proportion": r"proportion|ratio|cross[- ]multipl|unit rate|per (?:hour|unit)|in (?:an|one) hour|in \d+ minutes|scale",
    "modular": r"\bmod\b|modul|cycle|period|≡",
    "standard algorithm": r"\bcarry|digit by digit|column method|standard algorithm|long multiplication",
    "direct computation": r"\bcompute|calculat|long division|multiply it out|work it out directly",
    "trial division": r"trial division|divisible by|testing divisors|test\w* divisors|(?:up to|≤) ?√\d+",
    "euclid": r"euclid|(?:larger|bigger) (?:number )?by (?:its|the) remainder",
    "heron": r"\bheron",
    "shoelace": r"shoelace|determinant",
    "difference of squares": r"difference of (?:two )?squares|\d+² ?[-−] ?\d+²",
    "combinations": r"\bC\(\s*\d+\s*,\s*\d+\s*\)|\d+ choose \d+|\bcombinations?\b|binomial coefficient|\bnCr\b",
    "series": r"arithmetic (?:series|sequence|progression)|geometric (?:series|sequence)|1 ?\+ ?2 ?\+ ?(?:3|…|\.\.\.)",
    "pattern": r"\bpattern\b|\bin general\b|\balways (?:equals|is)\b",
    "chain rule": r"chain rule|composition|outer function|inner function|derivative of the inside",
    "expand": r"\bexpand|multiply (?:it )?out|binomial theorem",
    "pythagoras": r"pythagor|a² ?\+ ?b²|a\^2 ?\+ ?b\^2|\d+² ?\+ ?\d+² ?= ?\d+²",
    "trigonometry": r"trigonometr|\b(?:sin|cos|tan)\b|soh ?cah",
    "geometry": r"rectangle|half of a|triangle is half|\bdraw|diagram|picture|visuali|right triangle|"
                r"base (?:of )?\d+ and (?:a )?height|along the axes",
    "venn or inclusion-exclusion": r"\bvenn|inclusion[- ]exclusion",
    "proof": r"induction|contradiction|suppose not|contrapositive",
    "symmetry": r"symmetr",
    "code": r"\bcode\b|python|program\b|\bloop\b",
    "estimation": r"estimat|approximat",
    "equation": r"let \w+ be|\blet (?:the )?\w+ (?:cost|be|equal)|\bcall (?:the|it)\b|set up an? equation|write an? equation|\bequation\b|\bsolve for|\b\d*\.\d+[a-z] ?=",
}
_STRATEGY_RE = {name: re.compile(pattern, re.I) for name, pattern in STRATEGY_SIGNALS.items()}


# Signals most solutions show whatever their method ("area = ...", "the equation"): compared only
# when neither solution names a more specific strategy.
GENERIC_STRATEGIES = frozenset({"formula", "equation", "direct computation"})


def strategies(text: str) -> set[str]:
    return {name for name, pattern in _STRATEGY_RE.items() if pattern.search(text)}


def strategy_overlap(a: str, b: str) -> float | None:
    """Jaccard of the strategies two solutions use (specific ones when both name some); None when one names none."""
    ta, tb = strategies(a), strategies(b)
    if ta - GENERIC_STRATEGIES and tb - GENERIC_STRATEGIES:
        ta, tb = ta - GENERIC_STRATEGIES, tb - GENERIC_STRATEGIES
    return _jaccard(ta, tb) if ta and tb else None


DISTINCT_LETTERS = ("E", "F", "H")  # short core texts: what is left beyond the shared words is compared too
ALIGN_LETTERS = ("E", "F", "G", "H")  # long answers: each point is matched with the other answer's closest point
_ALIGN_UNITS, _ALIGN_WORDS = 6, 40


def aligned_units(text: str) -> list[str]:
    """The points of an answer to match one by one: its first sentences or list items of three words or more
    (a heading or "Sure!" is no point), each cut to 40 words."""
    found = [" ".join(s.split()[:_ALIGN_WORDS]) for s in sentences(plain(text)) if len(s.split()) >= 3]
    return found[:_ALIGN_UNITS]


def alignment(units_a: list[str], units_b: list[str], vec, p: np.ndarray | None) -> float | None:
    """How well the points of two answers pair up, prompt discounted: the mean of each point's best match
    in the other answer, both ways. Two answers that make the same points in another order, format or
    wording align; two that share the topic's words but make different points do not."""
    if not units_a or not units_b:
        return None

    def rows(units: list[str]) -> np.ndarray:
        m = np.stack([vec(u) for u in units]).astype(np.float64)
        if p is not None:
            m = m - np.outer(m @ p, p)
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)

    sim = rows(units_a) @ rows(units_b).T
    return float(0.5 * (sim.max(axis=1).mean() + sim.max(axis=0).mean()))
_CACHE_LIMIT = 20000
_vector_cache: dict[str, np.ndarray] = {}  # text -> unit embedding, shared by every batch


class Embedder:
    """Embeds every text a batch of pairs needs in one call and hands out vectors by text.

    Vectors are kept across batches (up to _CACHE_LIMIT texts), so an answer met again
    in the next pair, wave or report is not embedded twice.
    """

    def __init__(self, texts: list[str]):
        missing = list(dict.fromkeys(t for t in texts if t and t not in _vector_cache))
        if missing:
            self._add(missing)

    @staticmethod
    def _add(texts: list[str]) -> None:
        from .metrics import embed_texts as embed

        if len(_vector_cache) + len(texts) > _CACHE_LIMIT:
            _vector_cache.clear()
        for text, vector in zip(texts, embed(texts)):
            _vector_cache[text] = vector

    def __call__(self, text: str) -> np.ndarray:
        if text not in _vector_cache:  # a text the batch did not foresee (an extracted answer)
            self._add([text])
        return _vector_cache[text]


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    return float(u @ v / (nu * nv)) if nu > 1e-9 and nv > 1e-9 else 0.0


def _jaccard(x: set, y: set) -> float:
    return len(x & y) / len(x | y) if x | y else 0.0


def discounted_cos(u: np.ndarray, v: np.ndarray, p: np.ndarray | None) -> float:
    """Cosine of two answers once the direction of the prompt is taken out of both.

    Two answers to "Tell me about the Silk Road" are alike already because both talk
    about the Silk Road; what is left after removing the prompt's direction is what
    each answer adds.
    """
    if p is None:
        return _cos(u, v)
    return _cos(u - (u @ p) * p, v - (v @ p) * p)


def _token_overlap(x: list[str], y: list[str]) -> float | None:
    tx = {stem(w) for n in x for w in n.split()}
    ty = {stem(w) for n in y for w in n.split()}
    return float(bool(tx & ty)) if tx and ty else None


def lexical_overlap(a: str, b: str, prompt: str) -> float:
    """Jaccard of the content words each answer adds to the prompt's."""
    exclude = {stem(w) for w in words(prompt)}
    return _jaccard(set(content_words(a, exclude)), set(content_words(b, exclude)))


def distinctive_texts(a: str, b: str, prompt: str = "") -> tuple[str, str]:
    """Each text without the words both use (or the prompt uses): where two answers on one template differ."""
    wa, wb = words(a), words(b)
    shared = ({stem(w) for w in wa} & {stem(w) for w in wb}) | {stem(w) for w in words(prompt)}
    return " ".join(w for w in wa if stem(w) not in shared), " ".join(w for w in wb if stem(w) not in shared)


_SHARED_RUN = 4  # words in a row two answers share before the run counts as common ground
_REST_WORDS = 80  # where two answers part ways shows early; the rest is left out to keep the judge fast


def unshared_texts(a: str, b: str) -> tuple[str, str] | None:
    """Each answer without the runs of words both share ("Pip was the smallest mouse in the barn. ..."):
    where two answers that open alike part ways. None when they share no run."""
    from difflib import SequenceMatcher

    wa, wb = words(a), words(b)
    blocks = [m for m in SequenceMatcher(None, wa, wb, autojunk=False).get_matching_blocks() if m.size >= _SHARED_RUN]
    shared = sum(m.size for m in blocks)
    if shared < 0.1 * min(len(wa), len(wb)):  # a phrase or two in common: the whole answers already say it
        return None
    keep_a, keep_b = [True] * len(wa), [True] * len(wb)
    for m in blocks:
        keep_a[m.a:m.a + m.size] = [False] * m.size
        keep_b[m.b:m.b + m.size] = [False] * m.size
    return tuple(" ".join([w for w, k in zip(ws, keep) if k][:_REST_WORDS]) for ws, keep in ((wa, keep_a), (wb, keep_b)))


def pair_features(letter: str | None, prompt: str, a: str, b: str, vec, core_a: str = "", core_b: str = "",
                  ) -> dict[str, float | None]:
    """Similarity features of a pair, all in [0, 1] or None when they cannot be judged.

    cos: whole answers; resid: whole answers with the prompt's direction taken out;
    core: what the category compares (see judge.core_text), prompt discounted; lex:
    shared content words beyond the prompt's; for E-H align (points matched one by one) and
    rest (what follows the runs of words both share); for H stance/option/recommendation,
    for D strategy (the solution methods named).
    """
    p = vec(prompt) if prompt else None
    va, vb = vec(a), vec(b)
    feats: dict[str, float | None] = {"cos": _cos(va, vb), "resid": discounted_cos(va, vb, p),
                                      "lex": lexical_overlap(a, b, prompt)}
    feats["core"] = discounted_cos(vec(core_a), vec(core_b), p) if core_a and core_b else feats["resid"]
    if letter in DISTINCT_LETTERS:  # answers on one template ("Avoid screens ..." / "Avoid caffeine ...")
        ra, rb = distinctive_texts(core_a or a, core_b or b, prompt)
        feats["distinct"] = _cos(vec(ra), vec(rb)) if ra and rb else (1.0 if not ra and not rb else 0.5)
    if letter in ALIGN_LETTERS:
        feats["align"] = alignment(aligned_units(a), aligned_units(b), vec, p)
        rest = unshared_texts(a, b)  # shared openings: compare where the answers go after them
        feats["rest"] = (discounted_cos(vec(rest[0]), vec(rest[1]), p) if rest and rest[0] and rest[1]
                         else feats["resid"])
    if letter == "H":
        sa, sb = stance(a), stance(b)
        options = prompt_options(prompt)
        oa, ob = (chosen_option(a, options), chosen_option(b, options)) if options else (None, None)
        feats["stance"] = None if not (sa and sb) else float(sa == sb)
        feats["option"] = None if not (oa and ob) else float(oa == ob)
        feats["recommendation"] = _token_overlap(recommendations(a, prompt, b), recommendations(b, prompt, a))
    if letter == "D":
        feats["strategy"] = strategy_overlap(a, b)
    return feats
