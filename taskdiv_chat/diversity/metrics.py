"""Generic diversity metrics (the paper's baselines) and final-answer extraction.

- vocabulary diversity: 1 - Jaccard similarity of the two answers' word sets
- embedding diversity: 1 - cosine similarity of their sentence embeddings
- compression ratio: raw bytes / gzip bytes of all answers joined (higher = more repetitive)
Pairwise figures are averaged over all pairs of a set.
"""

from __future__ import annotations

import gzip
import threading
from itertools import combinations

import numpy as np

from ..taxonomy import Category
from . import answers as _answers
from .text import words


def vocabulary_diversity(a: str, b: str) -> float:
    wa, wb = set(words(a)), set(words(b))
    if not wa and not wb:
        return 0.0
    return 1.0 - len(wa & wb) / len(wa | wb)


def vocabulary_diversity_matrix(texts: list[str]) -> np.ndarray:
    n = len(texts)
    out = np.zeros((n, n))
    for i, j in combinations(range(n), 2):
        out[i, j] = out[j, i] = vocabulary_diversity(texts[i], texts[j])
    return out


_embed_lock = threading.Lock()


def embed_texts(texts: list[str]) -> np.ndarray:
    """Unit embeddings, one call at a time: the fast tokenizer fails ("Already borrowed") when
    worker threads share it concurrently, as judges running side by side would."""
    from ..embeddings import embed

    with _embed_lock:
        return embed(list(texts))


def similarity_matrix(texts: list[str]) -> np.ndarray:
    """Cosine similarity of every pair of texts (unit embeddings, so a dot product)."""
    if not texts:
        return np.zeros((0, 0))
    vectors = embed_texts(texts)
    return np.clip(vectors @ vectors.T, -1.0, 1.0)


def embedding_diversity(a: str, b: str) -> float:
    return float(1.0 - similarity_matrix([a, b])[0, 1])


def embedding_diversity_matrix(texts: list[str]) -> np.ndarray:
    return 1.0 - similarity_matrix(texts)


def compression_ratio(texts: list[str]) -> float:
    """gzip compression ratio of the answers joined by newlines; 0 for no text."""
    raw = "\n".join(texts).encode("utf-8")
    if not raw:
        return 0.0
    return len(raw) / len(gzip.compress(raw, compresslevel=9, mtime=0))


def _mean_pairs(matrix: np.ndarray) -> float | None:
    n = len(matrix)
    if n < 2:
        return None
    return float(np.mean([matrix[i, j] for i, j in combinations(range(n), 2)]))


def generic_metrics(answers: list[str], similarity: np.ndarray | None = None) -> dict:
    """Mean pairwise vocabulary and embedding diversity, compression ratio, and the newest answer against the rest.

    `similarity` (the cosine matrix) may be passed in when already computed.
    """
    n = len(answers)
    vocab = vocabulary_diversity_matrix(answers)
    sim = similarity if similarity is not None else similarity_matrix(answers)
    result: dict = {
        "n": n,
        "vocabulary_diversity": _mean_pairs(vocab),
        "embedding_diversity": _mean_pairs(1.0 - sim) if n else None,
        "compression_ratio": compression_ratio(answers) if n else None,
        "newest": None,
    }
    if n >= 2:
        last = n - 1
        nearest = int(np.argmax(sim[last, :last]))
        result["newest"] = {
            "vocabulary_diversity": float(np.mean(vocab[last, :last])),
            "embedding_diversity": float(np.mean(1.0 - sim[last, :last])),
            "nearest": nearest,
            "nearest_similarity": float(sim[last, nearest]),
        }
    return result


def extract_final_answer(text: str, category: Category | str | None, prompt: str = "") -> str | None:
    """The normalised final answer for categories that have one, else None.

    A: the fact given; D: the final answer of the solution; B: the item picked;
    C: the outcome drawn. Passing the prompt helps A/B/C tell the answer from
    words the question already contains.
    """
    letter = category if isinstance(category, str) or category is None else category.letter
    if letter == "A":
        found = _answers.fact_candidates(text, prompt)
        return found[0] if found else None
    if letter == "D":
        return _answers.problem_answer(text)
    if letter == "B":
        found = _answers.pick_candidates(text, prompt)
        return found[0] if found else None
    if letter == "C":
        found = _answers.outcome_candidates(text, prompt)
        return " ".join(found) if found else None
    return None


__all__ = [
    "compression_ratio",
    "embedding_diversity",
    "embedding_diversity_matrix",
    "extract_final_answer",
    "generic_metrics",
    "similarity_matrix",
    "vocabulary_diversity",
    "vocabulary_diversity_matrix",
]
