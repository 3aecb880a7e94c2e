"""Features of a pair of answers for the local judge: how alike two answers are in
meaning (sentence by sentence, and with the prompt's own topic removed), in the
content words and names they use, and in their key elements or solution strategy.

Embeddings come in through an `Embedder`, which embeds every text and sentence of
a batch of pairs in one call.
"""

from __future__ import annotations

import re

import numpy as np

from .elements import chosen_option, key_elements, prompt_options, recommendations, stance
from .text import content_words, fold, names, numbers, sentences, stem, words

# D: solution strategies, each a set of signal patterns. Two solutions that use
# disjoint strategies are different even when they reach the same answer.
STRATEGY_SIGNALS: dict[str, str] = {
    "isolate": r"both sides|each side|isolat|subtract\w* \S+ from|take \S+ away|divide both|halve both|move the",
    "guess and check": r"\bguess|\btry\w*\b|trial and error|\btest\w* (?:x|values|numbers)|plug\w* in|check\w* (?:x|values)",
    "work backwards": r"backward|\bundo|revers|inverse operation",
    "graph": r"\bgraph|\bplot|intersect|number line",
    "factor": r"\bfactor(?:ing|ise|ize|ed|s)?\b(?! of)|\(x ?[-−+] ?\d+\) ?\(x",
    "quadratic formula": r"quadratic formula|discriminant|± ?√|\+/-",
    "complete the square": r"complet\w* the square",
    "substitution": r"substitut|plug \w+ into",
    "elimination": r"eliminat|add\w* the (?:two )?equations|subtract\w* the (?:two )?equations|cancels? (?:out )?\w",
    "formula": r"\bformula\b|n ?\( ?n ?\+ ?1 ?\)|½ ?×|1/2 ?×|area =|speed =|half of base|over time|/ ?time",
    "counting principle": r"\bn!|\d!|factorial|choices for|\d+ (?:choices|options|ways) for|for each (?:seat|position|spot|place)",
    "enumerate": r"\blist\w*|enumerat|write (?:them )?(?:all )?out|count (?:them|each)|\bABC\b",
    "recursion": r"recurs|build\w* (?:it )?up|insert\w* (?:in|into)|pattern grows|each new",
    "pairing": r"\bpair\w*\b|gauss",
    "split": r"\bsplit|break\w* (?:it )?(?:into|down)|half of that|\b10% (?:of \d+ )?is|\b1% is|decompos",
    "decimal": r"convert\w*|decimal|0\.\d+ ?[×x*·]|[×x*·] ?0\.\d+|multiply (?:\S+ )?by 0\.",
    "fraction": r"\b(?:quarter|third|fifth|tenth)s?\b|as a fraction|\d+/100\b",
    "proportion": r"proportion|ratio|cross[- ]multipl|unit rate|per (?:hour|unit)",
    "modular": r"\bmod\b|modul|cycle|period|≡",
    "direct computation": r"compute|calculat|long division|\d+ ?= ?7 ?× ?\d+|1024",
    "trial division": r"trial division|divisible by|testing divisors|test\w* divisors|√\d+",
    "geometry": r"rectangle|half of a|triangle is half|draw|diagram|picture",
    "equation": r"\b0\.8p|\b\w ?= ?\d+ ?/ ?0\.|let \w+ be|equation|\bsolve for",
}
_STRATEGY_RE = {name: re.compile(pattern, re.I) for name, pattern in STRATEGY_SIGNALS.items()}


def strategies(text: str) -> set[str]:
    return {name for name, pattern in _STRATEGY_RE.items() if pattern.search(text)}


class Embedder:
    """Embeds texts once per batch and hands out vectors by text."""

    def __init__(self, texts: list[str]):
        from ..embeddings import embed

        unique = list(dict.fromkeys(t for t in texts if t))
        self._index = {t: i for i, t in enumerate(unique)}
        self._vectors = embed(unique) if unique else np.zeros((0, 384), dtype=np.float32)

    def __call__(self, text: str) -> np.ndarray:
        return self._vectors[self._index[text]]

    @staticmethod
    def texts_for(prompt: str, a: str, b: str) -> list[str]:
        return [prompt, a, b, *sentences(a), *sentences(b), *distinctive_texts(a, b)]


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    return float(u @ v / (nu * nv)) if nu > 1e-9 and nv > 1e-9 else 0.0


def _jaccard(x: set, y: set) -> float:
    return len(x & y) / len(x | y) if x | y else 0.0


def sentence_alignment(a: str, b: str, vec) -> float:
    """Mean best-match cosine of each sentence in one answer to the sentences of the other, both ways."""
    sa, sb = sentences(a) or [a], sentences(b) or [b]
    ea = np.stack([vec(s) for s in sa])
    eb = np.stack([vec(s) for s in sb])
    sim = ea @ eb.T
    return float((sim.max(axis=1).mean() + sim.max(axis=0).mean()) / 2)


def residual_similarity(prompt: str, a: str, b: str, vec) -> float:
    """Cosine of the two answers after removing the direction of the prompt (what they share by topic alone)."""
    p = vec(prompt)
    ra = vec(a) - (vec(a) @ p) * p
    rb = vec(b) - (vec(b) @ p) * p
    return _cos(ra, rb)


def element_agreement(letter: str, prompt: str, a: str, b: str) -> float | None:
    """Share of key elements (both found) on which two answers agree; None when none can be compared."""
    ea, eb = key_elements(letter, a, prompt), key_elements(letter, b, prompt)
    compared = agreed = 0
    for name in ea:
        if name in ("point of view", "structure", "approach", "main tool or material"):
            continue  # too coarse (or too noisy) to tell two pieces apart
        va, vb = set(ea[name]), set(eb.get(name, []))
        if va and vb:
            compared += 1
            agreed += bool(va & vb)
    return agreed / compared if compared else None


def distinctive_similarity(a: str, b: str, vec) -> float:
    """Similarity of what is left of each answer once the words both share are removed.

    Two rewordings keep saying the same thing in their leftover words; two answers
    built on one template ("Use a wicking system: ..." / "Use a watering system: ...")
    differ exactly there.
    """
    wa, wb = words(a), words(b)
    shared = {stem(w) for w in wa} & {stem(w) for w in wb}
    ra = " ".join(w for w in wa if stem(w) not in shared)
    rb = " ".join(w for w in wb if stem(w) not in shared)
    if not ra or not rb:
        return 1.0 if not ra and not rb else 0.5
    return _cos(vec(ra), vec(rb))


def distinctive_texts(a: str, b: str) -> list[str]:
    wa, wb = words(a), words(b)
    shared = {stem(w) for w in wa} & {stem(w) for w in wb}
    return [" ".join(w for w in wa if stem(w) not in shared), " ".join(w for w in wb if stem(w) not in shared)]


def _token_overlap(x: list[str], y: list[str]) -> float | None:
    tx = {stem(w) for n in x for w in n.split()}
    ty = {stem(w) for n in y for w in n.split()}
    return float(bool(tx & ty)) if tx and ty else None


def pair_features(letter: str | None, prompt: str, a: str, b: str, vec) -> dict[str, float | None]:
    prompt_stems = {stem(w) for w in words(prompt)}
    ca, cb = set(content_words(a, prompt_stems)), set(content_words(b, prompt_stems))
    na = {n for n in names(a, b) if stem(n) not in prompt_stems}
    nb = {n for n in names(b, a) if stem(n) not in prompt_stems}
    feats: dict[str, float | None] = {
        "cos": _cos(vec(a), vec(b)),
        "align": sentence_alignment(a, b, vec),
        "resid": residual_similarity(prompt, a, b, vec),
        "distinct": distinctive_similarity(a, b, vec),
        "words": _jaccard(ca, cb),
        "names": _token_overlap(sorted(na), sorted(nb)),
        "elements": element_agreement(letter, prompt, a, b) if letter in ("E", "G", "H") else None,
    }
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
        pa, pb = set(numbers(a)) - set(numbers(prompt)), set(numbers(b)) - set(numbers(prompt))
        feats["steps"] = _jaccard(pa, pb) if pa and pb else None
    return feats
