"""The runtime embeddings (numpy, no torch) against the reference: sentence-transformers on the same model.

The texts are the shipped classifier exemplars, judge calibration answers (some longer than
the tokenizer file's 128-token cut, to check the 256-token one), and odd inputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest

from taskdiv_chat import embeddings

pytestmark = pytest.mark.slow


def _jsonl(name: str) -> list[dict]:
    text = resources.files("taskdiv_chat.data").joinpath(name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def reference_texts() -> list[str]:
    prompts = [row["prompt"] for row in _jsonl("classify_exemplars.jsonl")][::3]
    answers = [row[k] for row in _jsonl("judge_calibration.jsonl")[::4] for k in ("response_1", "response_2")]
    long = ["The quick brown fox jumps over the lazy dog. " * 40,  # ~400 tokens: cut at 256
            "\n".join(f"{i}. step {i}: add {i} to the total" for i in range(60))]
    odd = ["", "   ", "a", "?", "Ünïcödé façade — naïve café", "汉字和日本語のテキスト", "emoji 🎉🚀 test",
           "def f(x):\n    return x ** 2  # square", "<b>html</b> &amp; entities", "x" * 500]
    return prompts + answers + long + odd


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    texts = reference_texts()
    model = SentenceTransformer(embeddings.model_path(), device="cpu")
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
    return texts, vectors


def test_vectors_match_sentence_transformers(reference):
    texts, expected = reference
    assert len(texts) > 300
    got = embeddings.embed(texts)
    assert got.shape == expected.shape == (len(texts), 384)
    assert got.dtype == np.float32
    cosines = np.sum(got * expected, axis=1)
    assert cosines.min() > 0.99999, texts[int(np.argmin(cosines))]
    assert np.abs(got - expected).max() < 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_a_text_gets_the_same_vector_alone_as_in_a_padded_batch(reference):
    texts, expected = reference
    short, long = texts[0], texts[-12]  # a short prompt batched with a 256-token one pads it a lot
    together = embeddings.embed([long, short, long])
    alone = embeddings.embed([short])[0]
    assert np.abs(together[1] - alone).max() < 1e-5
    assert np.abs(alone - expected[0]).max() < 1e-4
    assert np.abs(together[0] - together[2]).max() < 1e-6


def test_order_is_kept_when_batching_by_length():
    texts = ["a much longer sentence about the weather in spring", "hi", "a medium sentence here"]
    together = embeddings.embed(texts)
    for text, row in zip(texts, together):
        assert np.abs(embeddings.embed([text])[0] - row).max() < 1e-5


def test_no_texts_give_an_empty_matrix():
    assert embeddings.embed([]).shape == (0, 384)


def test_embedding_does_not_import_torch():
    code = ("import sys\nfrom taskdiv_chat import embeddings\n"
            "v = embeddings.embed(['hello world'])\n"
            "print(v.shape, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1, 384) False False"


def test_the_layer_weights_are_cached_once_and_rebuilt_when_damaged(tmp_path):
    from taskdiv_chat.minilm import MiniLM

    texts = ["What is the capital of France?", "Write a haiku about rain"]
    plain = MiniLM(embeddings.model_path()).encode(texts)  # no cache: transposed in memory
    np.save(tmp_path / "minilm-0123456789abcdef.npy", np.zeros(10, np.float32))  # an older model's cache
    first = MiniLM(embeddings.model_path(), cache=tmp_path).encode(texts)
    [cached] = list(tmp_path.glob("minilm-*.npy"))  # the stale one is gone
    made = cached.stat().st_mtime_ns
    second = MiniLM(embeddings.model_path(), cache=tmp_path)
    assert cached.stat().st_mtime_ns == made  # read, not written again
    assert isinstance(second.layers[0].up_w.base, np.memmap) or isinstance(second.layers[0].up_w, np.memmap)
    assert np.array_equal(plain, first) and np.array_equal(first, second.encode(texts))
    cached.write_bytes(cached.read_bytes()[:1000])  # a cut-off file
    third = MiniLM(embeddings.model_path(), cache=tmp_path).encode(texts)
    assert np.array_equal(first, third)
    assert cached.stat().st_size > 40_000_000  # rebuilt whole
