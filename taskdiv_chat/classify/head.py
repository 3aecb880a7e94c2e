"""The trained head of the local classifier, read from package data and applied with numpy alone.

A multinomial logistic regression over [sentence embedding | TF-IDF of word 1-2-grams] of the
request text (request.py). It is trained once, by `python -m taskdiv_chat.classify.train`,
which writes taskdiv_chat/data/classify_head.npz; at run time nothing is trained or embedded
except the prompt itself. The TF-IDF below is the one the trainer uses, so the two agree.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

HEAD_FILE = "classify_head.npz"
_TOKENS = re.compile(r"\w+|[^\w\s]")  # keep "x", "+", "?", ":": they tell maths, questions and pasted text apart


def ngrams(text: str) -> list[str]:
    """Lower-cased word 1- and 2-grams (punctuation marks count as words)."""
    tokens = _TOKENS.findall(text.lower())
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def tfidf(grams: list[str], vocabulary: dict[str, int], idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(column indices, values) of one text's sublinear TF-IDF vector, unit length."""
    counts = Counter(g for g in grams if g in vocabulary)
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    index = np.fromiter((vocabulary[g] for g in counts), dtype=np.int64, count=len(counts))
    values = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=float, count=len(counts)) * idf[index]
    return index, values / np.linalg.norm(values)


@dataclass
class Head:
    classes: list[str]
    vocabulary: dict[str, int]
    idf: np.ndarray  # (words,)
    coef: np.ndarray  # (classes, dims + words): embedding columns first
    intercept: np.ndarray  # (classes,)
    word_scale: float  # weight of the TF-IDF block against the unit-length embedding
    other_below: float  # a top probability under this means "other" (see train.py for why this value)
    trained_on: str  # hash of the training texts, labels and settings (a test keeps it in sync)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Head":
        source = resources.files("taskdiv_chat.data").joinpath(HEAD_FILE) if path is None else Path(path)
        with source.open("rb") as file, np.load(file, allow_pickle=False) as data:
            words = [str(w) for w in data["words"]]
            return cls(classes=[str(c) for c in data["classes"]], vocabulary={w: i for i, w in enumerate(words)},
                       idf=data["idf"].astype(float), coef=data["coef"].astype(float),
                       intercept=data["intercept"].astype(float), word_scale=float(data["word_scale"]),
                       other_below=float(data["other_below"]), trained_on=str(data["trained_on"]))

    def save(self, path: str | Path) -> None:
        words = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        with open(path, "wb") as file:  # np.savez would append ".npz" to a name without it
            np.savez_compressed(file, classes=np.array(self.classes), words=np.array(words),
                                idf=self.idf.astype(np.float32), coef=self.coef.astype(np.float32),
                                intercept=self.intercept.astype(np.float32), word_scale=np.float64(self.word_scale),
                                other_below=np.float64(self.other_below), trained_on=np.array(self.trained_on))

    @property
    def dims(self) -> int:
        return self.coef.shape[1] - len(self.vocabulary)

    def probabilities(self, texts: list[str], vectors: np.ndarray) -> np.ndarray:
        """(texts, classes) softmax probabilities; `vectors` are the texts' unit-length embeddings."""
        scores = vectors @ self.coef[:, :self.dims].T + self.intercept
        words = self.coef[:, self.dims:]
        for row, text in enumerate(texts):
            index, values = tfidf(ngrams(text), self.vocabulary, self.idf)
            scores[row] += words[:, index] @ (values * self.word_scale)
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)
