"""The offline classifier: the request of a prompt (request.py), embedded, through a trained head (head.py).

The head is trained ahead of time (`python -m taskdiv_chat.classify.train`, on the shipped
exemplars plus labelled real prompts) and shipped as package data: at run time only the
prompt is embedded, and the head is applied with numpy.
"""

from __future__ import annotations

import threading

import numpy as np

from .. import embeddings, taxonomy
from ..backends.base import Message
from .followup import follow_up_source
from .head import Head
from .request import extract_request
from .result import Classification


class LocalClassifier:
    def __init__(self):
        self._head: Head | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- loading -------------------------------------------------------------------------

    def _ensure_head(self) -> Head:
        with self._lock:
            if self._head is None:
                self._head = Head.load()
            return self._head

    def warm_up(self) -> threading.Thread:
        """Load the embedding model and the head in a background thread (idempotent)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._warm, name="classify-warm-up", daemon=True)
                self._thread.start()
            return self._thread

    def _warm(self) -> None:
        self._ensure_head()
        embeddings.embed(["warm up"])  # loads the model and runs it once

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
            requests = [extract_request(texts[i]) for i in todo]
            batch = [r.text for r in requests]
            vectors = embeddings.embed(batch)
            for i, request, row in zip(todo, requests, head.probabilities(batch, vectors)):
                result = self._decide(head.classes, row, head.other_below)
                if request.text != " ".join(texts[i].split()):
                    result.detail += f"; classified the request: {request.text[:80]}"
                results[i] = result
        return results  # type: ignore[return-value]

    @staticmethod
    def _decide(classes: list[str], row: np.ndarray, other_below: float) -> Classification:
        order = np.argsort(row)[::-1]
        best, runner_up = str(classes[order[0]]), str(classes[order[1]])
        confidence = float(row[order[0]])
        detail = f"{best} {confidence:.2f}, then {runner_up} {row[order[1]]:.2f}"
        if confidence < other_below:
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
