"""The offline classifier: sentence embeddings plus word n-grams, logistic regression on top.

Trained at first use from the labelled exemplars shipped in
taskdiv_chat/data/classify_exemplars.jsonl (nine classes: A-H and "other"). Choices
made by cross-validation on those exemplars only (`benchmarks/classify.py --cv`):
- logistic regression beat nearest centroid and kNN on the embeddings (SVMs did no better);
- adding TF-IDF word 1-2-grams to the embeddings added ~5 points: the embedding
  sees the topic, the words see the request form ("name a", "pick a random", "should I");
- an "other" class of exemplars, plus "other" when no class reaches OTHER_BELOW.

Embedding the exemplars takes 2-5 s, so their vectors are cached
in the cache dir, keyed by a hash of the exemplars and the model.
"""

from __future__ import annotations

import hashlib
import json
import threading
from importlib import resources
from pathlib import Path

import numpy as np

from .. import embeddings, taxonomy
from ..backends.base import Message
from .followup import follow_up_source
from .result import Classification

EXEMPLARS = "classify_exemplars.jsonl"
C = 20.0  # inverse regularisation, by cross-validation
OTHER_BELOW = 0.30  # top probability under this -> "other" (cross-validated: safer than a wrong anchor)
TOKENS = r"(?u)\b\w+\b|[^\w\s]"  # keep "x", "+", "^", "?": they tell maths and questions apart


def load_exemplars(path: str | Path | None = None) -> list[tuple[str, str]]:
    """(prompt, label) pairs from a JSON-lines file with "prompt" and "category" fields."""
    if path is None:
        text = resources.files("taskdiv_chat.data").joinpath(EXEMPLARS).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        label = row["category"]
        if label != taxonomy.OTHER and label not in taxonomy.LETTERS:
            raise ValueError(f"{path or EXEMPLARS}:{number}: unknown category {label!r}")
        pairs.append((row["prompt"], label))
    return pairs


def _cached_embeddings(texts: list[str]) -> np.ndarray:
    from ..config import cache_dir

    key = hashlib.sha256("\n".join([Path(embeddings.model_path()).name, *texts]).encode()).hexdigest()[:16]
    file = cache_dir() / f"classify_exemplars-{key}.npy"
    try:
        vectors = np.load(file)
        if vectors.shape[0] == len(texts):
            return vectors
    except (OSError, ValueError):
        pass
    vectors = embeddings.embed(texts)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(file)
    except OSError:
        pass  # a read-only cache only costs the embedding time again
    return vectors


class _Head:
    """TF-IDF + logistic regression over [embedding | word n-grams]."""

    def __init__(self, texts: list[str], labels: list[str], vectors: np.ndarray):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=TOKENS)
        features = self._features(vectors, self.words.fit_transform(texts))
        self.model = LogisticRegression(C=C, max_iter=5000).fit(features, labels)
        self.classes = list(self.model.classes_)

    @staticmethod
    def _features(vectors, words):
        from scipy.sparse import csr_matrix, hstack

        return hstack([csr_matrix(vectors), words]).tocsr()

    def probabilities(self, texts: list[str], vectors: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(self._features(vectors, self.words.transform(texts)))


class LocalClassifier:
    def __init__(self, exemplars: list[tuple[str, str]] | None = None):
        self._exemplars = exemplars
        self._head: _Head | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- loading -------------------------------------------------------------------------

    def _ensure_head(self) -> _Head:
        with self._lock:
            if self._head is None:
                pairs = self._exemplars or load_exemplars()
                texts = [p for p, _ in pairs]
                self._head = _Head(texts, [label for _, label in pairs], _cached_embeddings(texts))
            return self._head

    def warm_up(self) -> threading.Thread:
        """Load the embedding model and train the head in a background thread (idempotent)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._warm, name="classify-warm-up", daemon=True)
                self._thread.start()
            return self._thread

    def _warm(self) -> None:
        embeddings.get_model()  # the head may come from cache without touching the model
        self._ensure_head()

    def is_ready(self) -> bool:
        return self._head is not None and embeddings.is_ready()

    # --- classifying -----------------------------------------------------------------------

    def classify(self, text: str, context: list[Message] | None = None) -> Classification:
        """Blocks until the model is loaded (seconds, the first time); call from a worker thread."""
        source = follow_up_source(text, context)
        result = self.classify_many([source or text])[0]
        if source:
            result.detail = f"follow-up: classified the turn it continues; {result.detail}"
        return result

    def classify_many(self, texts: list[str]) -> list[Classification]:
        results: list[Classification | None] = [None] * len(texts)
        todo = [i for i, t in enumerate(texts) if t.strip()]
        for i in set(range(len(texts))) - set(todo):
            results[i] = Classification(taxonomy.OTHER, 1.0, "local", "empty prompt")
        if todo:
            head = self._ensure_head()
            batch = [texts[i] for i in todo]
            vectors = embeddings.embed(batch)
            for i, row in zip(todo, head.probabilities(batch, vectors)):
                results[i] = self._decide(head.classes, row)
        return results  # type: ignore[return-value]

    @staticmethod
    def _decide(classes: list[str], row: np.ndarray) -> Classification:
        order = np.argsort(row)[::-1]
        best, runner_up = str(classes[order[0]]), str(classes[order[1]])
        confidence = float(row[order[0]])
        detail = f"{best} {confidence:.2f}, then {runner_up} {row[order[1]]:.2f}"
        if confidence < OTHER_BELOW:
            return Classification(taxonomy.OTHER, confidence, "local", f"no category is likely; best {detail}")
        return Classification(best, confidence, "local", detail)


_shared: LocalClassifier | None = None
_shared_lock = threading.Lock()


def get_local_classifier() -> LocalClassifier:
    """The process-wide classifier (cheap to call: loading starts with warm_up() or first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LocalClassifier()
        return _shared
