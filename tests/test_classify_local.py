"""The local classifier: loads offline and lazily, runs a head trained ahead of time (in sync with its
training data), and holds its accuracy on the held-out set (tests/data/classify_heldout.jsonl, never used
for training or tuning)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from taskdiv_chat import taxonomy
from taskdiv_chat.classify import LocalClassifier, get_local_classifier
from taskdiv_chat.classify.head import Head, ngrams, tfidf
from taskdiv_chat.classify.train import SETTINGS, Corpus, fit, load_labelled, real_prompts
from tests.support import python_output

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
    assert python_output(code) == "[] False"


def test_the_head_runs_on_numpy_alone():
    """Reading the request and applying the head import neither scikit-learn nor scipy (the embedding is
    embeddings.embed()'s business)."""
    code = ("import sys, numpy as np\nfrom taskdiv_chat.classify.head import Head\n"
            "from taskdiv_chat.classify.request import extract_request\n"
            "head = Head.load()\ntext = extract_request('Act as a pirate, flip a coin.').text\n"
            "p = head.probabilities([text], np.full((1, head.dims), head.dims ** -0.5))\n"
            "print(p.shape, round(float(p.sum()), 6), sorted(m for m in ('sklearn', 'scipy', 'torch') if m in sys.modules))")
    assert python_output(code) == "(1, 9) 1.0 []"


def test_loads_the_shipped_head_and_trains_nothing(monkeypatch):
    import taskdiv_chat.classify.train as train

    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("the classifier trained at run time"))
    classifier = LocalClassifier()
    thread = classifier.warm_up()
    assert classifier.warm_up() is thread  # one loader, however often it is asked
    thread.join()
    assert classifier.is_ready()
    result = classifier.classify("Draw a card from a shuffled deck.")
    assert (result.letter, result.method) == ("C", "local")


def test_shipped_head_is_in_sync_with_its_training_data():
    """Retrain with `python -m taskdiv_chat.classify.train` when this fails (exemplars, real prompts,
    request.py or the settings changed since the head was written)."""
    corpus = Corpus.build(SETTINGS)
    head = Head.load()
    assert head.trained_on == corpus.fingerprint(SETTINGS)
    assert head.other_below == SETTINGS.other_below and head.word_scale == SETTINGS.word_scale
    assert sorted(head.classes) == sorted(CLASSES)


def test_numpy_head_gives_what_the_trained_model_gives(tmp_path):
    """The run-time head (numpy) reproduces scikit-learn's probabilities, also after a save and a load."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.linear_model import LogisticRegression

    pairs = load_labelled()[::6]
    texts, labels = [p for p, _ in pairs], [g for _, g in pairs]
    vectors = np.random.default_rng(0).normal(size=(len(texts), 8))
    settings = SETTINGS
    head = fit(texts, labels, np.ones(len(texts)), vectors, settings)
    head.save(tmp_path / "head.npz")
    loaded = Head.load(tmp_path / "head.npz")
    # scikit-learn's own prediction from the same features
    words = np.zeros((len(texts), len(head.vocabulary)))
    for row, text in enumerate(texts):
        index, values = tfidf(ngrams(text), head.vocabulary, head.idf)
        words[row, index] = values * settings.word_scale
    model = LogisticRegression(C=settings.C, max_iter=5000).fit(hstack([csr_matrix(vectors), csr_matrix(words)]), labels)
    expected = model.predict_proba(np.hstack([vectors, words]))
    assert model.classes_.tolist() == head.classes
    np.testing.assert_allclose(head.probabilities(texts, vectors), expected, atol=1e-6)
    np.testing.assert_allclose(loaded.probabilities(texts, vectors), expected, atol=1e-4)


def test_test_split_of_the_real_prompts_is_never_trained_on():
    trained = {" ".join(p.lower().split()) for p, _ in [*load_labelled(), *real_prompts("train")]}
    tested = {" ".join(p.lower().split()) for p, _ in real_prompts("test")}
    assert len(tested) >= 200 and not trained & tested


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
    unsure = LocalClassifier._decide(classes, np.array([0.29, 0.27, 0.2, 0.14, 0.1]), 0.3)
    assert unsure.letter == "other" and "best A" in unsure.detail
    sure = LocalClassifier._decide(classes, np.array([0.05, 0.8, 0.05, 0.05, 0.05]), 0.3)
    assert (sure.letter, sure.confidence) == ("B", 0.8)


def test_exemplars_cover_every_class_and_never_overlap_the_held_out_set():
    exemplars = load_labelled()
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
        load_labelled(path)
