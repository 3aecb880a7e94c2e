"""Features of a pair of answers for the local judge: how alike the two are in
meaning (whole, and in the words only one of them uses), and for advice and
problems the stance, option, recommendation or solution strategy each takes.
"""

from __future__ import annotations

import re

import numpy as np

from .elements import chosen_option, prompt_options, recommendations, stance
from .text import stem, words

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
    "substitution": r"substitut|plug \w+ into",
    "elimination": r"eliminat|add\w* the (?:two )?equations|subtract\w* the (?:two )?equations|cancels? (?:out )?\w",
    "formula": r"\bformula\b|n ?\( ?n ?[-−+] ?\d+ ?\)|½ ?×|1/2 ?×|area =|speed =|half of base|over time|/ ?time",
    "counting principle": r"\bn!|\d!|factorial|choices for|\d+ (?:choices|options|ways) for|"
                          r"for each (?:seat|position|spot|place)",
    "enumerate": r"\blist\w*|enumerat|write (?:them )?(?:all )?out|count (?:them|each)|\bABC\b|\btable\b",
    "complement": r"complement|total minus|subtract the (?:ones|cases|ways) that",
    "recursion": r"recurs|build\w* (?:it )?up|insert\w* (?:in|into)|pattern grows|each new",
    "pairing": r"\bpair\w*\b|gauss",
    "double and halve": r"doubl\w* and halv|halv\w* and doubl",
    "round and adjust": r"round\w* (?:\S+ )?(?:up|down|to)|compensat|adjust\w* (?:for|by)|(?:add|subtract) the extra",
    "split": r"× ?\d+ ?\+ ?\d+ ?×|distribut|partial product|\bsplit|break\w* (?:it )?(?:into|down)|half of that|"
             r"\b10% (?:of \d+ )?is|\b1% is|decompos",
    "decimal": r"convert\w*|decimal|0\.\d+ ?[×x*·]|[×x*·] ?0\.\d+|multiply (?:\S+ )?by 0\.",
    "fraction": r"\b(?:quarter|third|fifth|tenth)s?\b|as a fraction|\d+/100\b",
    "proportion": r"proportion|ratio|cross[- ]multipl|unit rate|per (?:hour|unit)",
    "modular": r"\bmod\b|modul|cycle|period|≡",
    "standard algorithm": r"\bcarry|digit by digit|column method|standard algorithm|long multiplication",
    "direct computation": r"\bcompute|calculat|long division|multiply it out|work it out directly",
    "trial division": r"trial division|divisible by|testing divisors|test\w* divisors|√\d+",
    "euclid": r"euclid",
    "pythagoras": r"pythagor|a² ?\+ ?b²|a\^2 ?\+ ?b\^2",
    "trigonometry": r"trigonometr|\b(?:sin|cos|tan)\b|soh ?cah",
    "geometry": r"rectangle|half of a|triangle is half|\bdraw|diagram|picture|visuali",
    "venn or inclusion-exclusion": r"\bvenn|inclusion[- ]exclusion",
    "proof": r"induction|contradiction|suppose not|contrapositive",
    "symmetry": r"symmetr",
    "code": r"\bcode\b|python|program\b|\bloop\b",
    "estimation": r"estimat|approximat",
    "equation": r"let \w+ be|set up an? equation|write an? equation|\bequation\b|\bsolve for|\b\d*\.\d+[a-z] ?=",
}
_STRATEGY_RE = {name: re.compile(pattern, re.I) for name, pattern in STRATEGY_SIGNALS.items()}


def strategies(text: str) -> set[str]:
    return {name for name, pattern in _STRATEGY_RE.items() if pattern.search(text)}


class Embedder:
    """Embeds every text a batch of pairs needs in one call and hands out vectors by text."""

    def __init__(self, texts: list[str]):
        from .metrics import embed_texts as embed

        unique = list(dict.fromkeys(t for t in texts if t))
        self._index = {t: i for i, t in enumerate(unique)}
        self._vectors = embed(unique) if unique else np.zeros((0, 384), dtype=np.float32)

    def __call__(self, text: str) -> np.ndarray:
        if text not in self._index:  # a text the batch did not foresee (an extracted answer)
            from .metrics import embed_texts as embed

            self._index[text] = len(self._vectors)
            self._vectors = np.vstack([self._vectors, embed([text])])
        return self._vectors[self._index[text]]

    @staticmethod
    def texts_for(a: str, b: str) -> list[str]:
        return [a, b, *distinctive_texts(a, b)]


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    return float(u @ v / (nu * nv)) if nu > 1e-9 and nv > 1e-9 else 0.0


def _jaccard(x: set, y: set) -> float:
    return len(x & y) / len(x | y) if x | y else 0.0


def distinctive_texts(a: str, b: str) -> tuple[str, str]:
    """Each answer without the words both answers use."""
    wa, wb = words(a), words(b)
    shared = {stem(w) for w in wa} & {stem(w) for w in wb}
    return " ".join(w for w in wa if stem(w) not in shared), " ".join(w for w in wb if stem(w) not in shared)


def distinctive_similarity(a: str, b: str, vec) -> float:
    """Similarity of what is left of each answer once the words both share are removed.

    Two rewordings keep saying the same thing in their leftover words; two answers
    built on one template ("Use a wicking system: ..." / "Use a watering system: ...")
    differ exactly there.
    """
    ra, rb = distinctive_texts(a, b)
    if not ra or not rb:
        return 1.0 if not ra and not rb else 0.5
    return _cos(vec(ra), vec(rb))


def _token_overlap(x: list[str], y: list[str]) -> float | None:
    tx = {stem(w) for n in x for w in n.split()}
    ty = {stem(w) for n in y for w in n.split()}
    return float(bool(tx & ty)) if tx and ty else None


def pair_features(letter: str | None, prompt: str, a: str, b: str, vec) -> dict[str, float | None]:
    """cos and distinct for every pair; stance/option/recommendation for H; strategy/steps for D.

    A feature is None when it cannot be judged (no stance found, no strategy named).
    """
    feats: dict[str, float | None] = {"cos": _cos(vec(a), vec(b)), "distinct": distinctive_similarity(a, b, vec)}
    if letter == "H":
        sa, sb = stance(a), stance(b)
        options = prompt_options(prompt)
        oa, ob = (chosen_option(a, options), chosen_option(b, options)) if options else (None, None)
        feats["stance"] = None if not (sa and sb) else float(sa == sb)
        feats["option"] = None if not (oa and ob) else float(oa == ob)
        feats["recommendation"] = _token_overlap(recommendations(a, prompt, b), recommendations(b, prompt, a))
    if letter == "D":
        ta, tb = strategies(a), strategies(b)
        feats["strategy"] = _jaccard(ta, tb) if ta and tb else None
    return feats
