"""Run another benchmark on the reference embeddings: sentence-transformers (torch) instead of the numpy path.

The app embeds with taskdiv_chat/minilm.py; this swaps taskdiv_chat.embeddings.embed for
sentence-transformers on the same model, one torch thread, then runs the given script
unchanged (with no script: classify.py and judge.py). Same figures on both paths = the
numpy path costs no accuracy:

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/classify.py --no-noveltybench
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/reference_embeddings.py benchmarks/classify.py --no-noveltybench
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/judge.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/reference_embeddings.py benchmarks/judge.py
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def use_sentence_transformers() -> None:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from taskdiv_chat import embeddings

    model = SentenceTransformer(embeddings.model_path(), device="cpu")
    torch.set_num_threads(1)  # as the numpy path: one thread per call

    def embed(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, embeddings.DIMENSION), dtype=np.float32)
        return model.encode(list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)

    embeddings.embed = embed
    print("embeddings: sentence-transformers (reference path)", flush=True)


def run(script: str, *args: str) -> int:
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as done:
        return done.code or 0
    return 0


if __name__ == "__main__":
    use_sentence_transformers()
    if len(sys.argv) > 1:
        raise SystemExit(run(*sys.argv[1:]))
    here = Path(__file__).parent  # no script given: the two whose figures depend on the embeddings
    raise SystemExit(run(str(here / "classify.py"), "--no-noveltybench", "--show-mistakes", "0")
                     or run(str(here / "judge.py")))
