"""The local classifier: loads offline and lazily, caches exemplar vectors, and holds its accuracy
on the held-out set (tests/data/classify_heldout.jsonl, never used for training or tuning)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from taskdiv_chat import embeddings, taxonomy
from taskdiv_chat.classify import LocalClassifier, get_local_classifier
from taskdiv_chat.classify.local import OTHER_BELOW, load_exemplars

HELD_OUT = Path(__file__).parent / "data" / "classify_heldout.jsonl"
CLASSES = [*taxonomy.LETTERS, taxonomy.OTHER]


def read_held_out() -> list[tuple[str, str]]:
    return [(r["prompt"], r["category"]) for r in map(json.loads, HELD_OUT.read_text().splitlines()) if r]


@pytest.fixture(scope="module")
def classifier():
    shared = get_local_classifier()
    shared.warm_up().join()
    return shared


def test_importing_the_classifier_loads_no_model_or_heavy_library():
    code = ("import sys\nfrom taskdiv_chat.classify import get_local_classifier, classify_turn\n"
            "c = get_local_classifier()\n"
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'sklearn') if m in sys.modules), c.is_ready())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] False"


def test_loads_offline_and_caches_the_exemplar_vectors(isolated_dirs, monkeypatch):
    # Sockets beyond loopback are blocked for the whole test session (conftest) and HF_HUB_OFFLINE is set.
    calls = []
    real_embed = embeddings.embed
    monkeypatch.setattr(embeddings, "embed", lambda texts: calls.append(len(texts)) or real_embed(texts))

    few = load_exemplars()[::8]  # every class, at a fraction of the embedding time
    assert {label for _, label in few} == set(CLASSES)
    first = LocalClassifier(few)
    thread = first.warm_up()
    assert first.warm_up() is thread  # one loader, however often it is asked
    thread.join()
    assert first.is_ready()
    cached = list((isolated_dirs / "cache").glob("classify_exemplars-*.npy"))
    assert len(cached) == 1
    assert calls == [len(few)]

    second = LocalClassifier(few)  # a new process would do the same: vectors come from the cache
    second.warm_up().join()
    assert calls == [len(few)]
    text = "Draw a card from a shuffled deck."
    assert first.classify(text) == second.classify(text)


def test_held_out_accuracy_meets_the_target(classifier):
    rows = read_held_out()
    predicted = [c.letter for c in classifier.classify_many([p for p, _ in rows])]
    accuracy = np.mean([p == g for p, (_, g) in zip(predicted, rows)])
    assert accuracy >= 0.85, f"held-out accuracy {accuracy:.1%}"
    assert set(predicted) <= set(CLASSES)


@pytest.mark.parametrize("text", ["Good afternoon!", "Translate 'see you soon' into Dutch.",
                                  "Summarize this for me: the meeting is moved to 3 pm and lunch is provided."])
def test_prompts_outside_the_taxonomy_are_other(classifier, text):
    result = classifier.classify(text)
    assert (result.letter, result.method) == ("other", "local")
    assert result.category is None


def test_empty_prompt_is_other_without_loading_anything():
    result = LocalClassifier().classify("   ")
    assert (result.letter, result.detail) == ("other", "empty prompt")


def test_no_likely_category_means_other():
    classes = ["A", "B", "C", "D", "other"]
    unsure = LocalClassifier._decide(classes, np.array([OTHER_BELOW - 0.01, 0.27, 0.2, 0.14, 0.1]))
    assert unsure.letter == "other" and "best A" in unsure.detail
    sure = LocalClassifier._decide(classes, np.array([0.05, 0.8, 0.05, 0.05, 0.05]))
    assert (sure.letter, sure.confidence) == ("B", 0.8)


def test_exemplars_cover_every_class_and_never_overlap_the_held_out_set():
    exemplars = load_exemplars()
    counts = Counter(label for _, label in exemplars)
    assert set(counts) == set(CLASSES)
    assert min(counts.values()) >= 40, counts
    prompts = [p.strip().lower() for p, _ in exemplars]
    assert len(prompts) == len(set(prompts))
    held_out = read_held_out()
    assert min(Counter(g for _, g in held_out).values()) >= 15
    assert not set(prompts) & {p.strip().lower() for p, _ in held_out}


def test_bad_exemplar_file_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "hi", "category": "other"}\n{"prompt": "x", "category": "Q"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: unknown category 'Q'"):
        load_exemplars(path)
