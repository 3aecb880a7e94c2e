"""Task classification: accuracy, macro-F1, per-category recall, confusion, "other" rates, latency.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/classify.py                 # local: synthetic and real held-out
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/classify.py --data FILE     # also any labelled set
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/classify.py --method llm --backend NAME
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/classify.py --cv            # how the head was chosen

Two held-out sets, side by side, neither ever used for training or tuning:
- synthetic: tests/data/classify_heldout.jsonl (hand-written, 20 per class);
- real: the "test" split of data/wildchat-labelled.jsonl (real WildChat prompts where two
  independent annotators agree; docs/labelling.md).
--data: JSON lines with "prompt" and "category" ("A".."H" or "other"; the field may
also be called "label" or "letter").
Also classifies NoveltyBench's curated prompts (mapped as method.md section 8 says)
and reports accuracy on the clear mappings: Random -> C, Creativity -> G, Subjective -> H.
Targets (local): synthetic >= 85%, real >= 80%, warm median <= 20 ms per prompt on 2 cores.
Latency is per single prompt, as the app classifies, against embed() of the same
prompt alone (the floor) measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HELD_OUT = ROOT / "tests" / "data" / "classify_heldout.jsonl"
REAL = ROOT / "data" / "wildchat-labelled.jsonl"
NOVELTYBENCH = ROOT.parent / "shared" / "data" / "noveltybench-curated.jsonl"
CLEAR = {"Random Generation & Selection": "C", "Creativity": "G", "Subjective Rankings & Opinions": "H"}
MOSTLY = {"Factual Knowledge": "B", "Character & Entity Naming": "G", "Product & Purchase Recommendations": "H"}
LABELS = ["A", "B", "C", "D", "E", "F", "G", "H", "other"]


def load(path: Path) -> list[tuple[str, str]]:
    """(prompt, label) pairs; the label field may be called category, label or letter."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path == REAL:
        return [(r["prompt"], r["category"]) for r in rows if r["split"] == "test" and r["category"]]
    key = next(k for k in ("category", "label", "letter") if k in rows[0])
    return [(r["prompt"], r[key]) for r in rows]


def report(gold: list[str], pred: list[str], title: str) -> dict:
    labels = [label for label in LABELS if label in gold or label in pred]
    n = len(gold)
    accuracy = sum(g == p for g, p in zip(gold, pred)) / n
    f1s, lines = [], []
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, pred))
        support = gold.count(label)
        predicted = pred.count(label)
        recall = tp / support if support else 0.0
        precision = tp / predicted if predicted else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if support:
            f1s.append(f1)
            lines.append(f"  {label:>5}  recall {recall:6.1%}  precision {precision:6.1%}  f1 {f1:.2f}  (n={support})")
    # A wrong "other" loses the anchoring (plain regeneration); a wrong letter anchors to the wrong task.
    wrong_other = sum(p == "other" != g for g, p in zip(gold, pred)) / n
    wrong_letter = sum(p not in ("other", g) for g, p in zip(gold, pred)) / n
    print(f"\n== {title}: {n} prompts")
    print(f"accuracy {accuracy:.1%}   macro-F1 {statistics.mean(f1s):.3f}   predicted other {pred.count('other') / n:.1%}"
          f"   wrong other (a letter was right) {wrong_other:.1%}   wrong letter {wrong_letter:.1%}")
    print("\n".join(lines))
    print("confusion (rows: true, columns: predicted)")
    print("        " + "".join(f"{label:>6}" for label in labels))
    for g in labels:
        if gold.count(g):
            print(f"  {g:>5} " + "".join(f"{sum(x == g and y == p for x, y in zip(gold, pred)):6d}" for p in labels))
    return {"accuracy": accuracy, "macro_f1": statistics.mean(f1s), "wrong_other": wrong_other,
            "wrong_letter": wrong_letter}


def mistakes(prompts, gold, pred, limit: int) -> None:
    wrong = [(g, p, t) for t, g, p in zip(prompts, gold, pred) if g != p]
    if wrong and limit:
        print(f"first {min(limit, len(wrong))} of {len(wrong)} mistakes (true -> predicted):")
        for g, p, t in wrong[:limit]:
            print(f"  {g:>5} -> {p:<5} {t[:90]}")


def run_local(prompts: list[str]) -> tuple[list[str], list[float]]:
    from taskdiv_chat.classify import get_local_classifier

    classifier = get_local_classifier()
    letters, times = [], []
    for text in prompts:
        started = time.perf_counter()
        letters.append(classifier.classify(text).letter)
        times.append(time.perf_counter() - started)
    return letters, times


def run_turns(prompts: list[str], method: str, backend_name: str | None) -> tuple[list[str], list[float], dict]:
    from taskdiv_chat.backends import make_backend
    from taskdiv_chat.classify import classify_turn
    from taskdiv_chat.config import load_settings

    settings = load_settings()

    async def go():
        backend = make_backend(settings, backend_name)
        letters, times, methods = [], [], {}
        try:
            for text in prompts:
                started = time.perf_counter()
                result = await classify_turn(text, settings=settings, backend_name=backend_name, backend=backend,
                                             method=method)
                times.append(time.perf_counter() - started)
                letters.append(result.letter)
                methods[result.method] = methods.get(result.method, 0) + 1
        finally:
            await backend.aclose()
        return letters, times, methods

    return asyncio.run(go())


def ms(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[int(0.9 * (len(values) - 1))]
    return f"median {statistics.median(values) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", default=[],
                        help="another labelled JSON-lines set (prompt, category); repeatable")
    parser.add_argument("--method", choices=("local", "llm", "auto"), default="local")
    parser.add_argument("--backend", help="backend for llm/auto (default: the config's default_backend)")
    parser.add_argument("--cv", action="store_true",
                        help="also cross-validate the head's settings on the real train split (minutes)")
    parser.add_argument("--no-noveltybench", action="store_true")
    parser.add_argument("--show-mistakes", type=int, default=15, metavar="N")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"cores {os.cpu_count()}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, method {args.method}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("TASKDIV_CACHE_DIR", tmp)  # a cold cache unless the caller chose one
        from taskdiv_chat import embeddings
        from taskdiv_chat.classify import get_local_classifier

        started = time.perf_counter()
        get_local_classifier().warm_up().join()
        print(f"cold start: embedding model + trained head loaded in {time.perf_counter() - started:.1f} s "
              "(in the background in the app)")

        sets = [(HELD_OUT, "synthetic held-out"), (REAL, "real held-out (WildChat test split)"),
                *((path, path.name) for path in args.data)]
        summary, prompts = [], []
        for path, title in sets:
            data = load(path)
            texts = [p for p, _ in data]
            gold = [g for _, g in data]
            if args.method == "local":
                pred, times = run_local(texts)
                methods = {"local": len(pred)}
            else:
                pred, times, methods = run_turns(texts, args.method, args.backend)
            summary.append((title, len(data), report(gold, pred, f"{title} ({args.method})")))
            mistakes(texts, gold, pred, args.show_mistakes)
            print("methods used: " + ", ".join(f"{k} {v}" for k, v in methods.items()))
            if args.method != "local":
                print(f"latency per prompt ({args.method}, end to end): {ms(times)}")
            prompts += texts

        print("\n== side by side")
        for title, n, score in summary:
            print(f"  {title:40s} n={n:4d}  accuracy {score['accuracy']:6.1%}  macro-F1 {score['macro_f1']:.3f}  "
                  f"wrong other {score['wrong_other']:5.1%}  wrong letter {score['wrong_letter']:5.1%}")

        # Latency, warm: each prompt alone, interleaved with its floor (embed() alone) so load changes hit both.
        def timed(fn, text) -> float:
            t0 = time.perf_counter()
            fn(text)
            return time.perf_counter() - t0

        classifier = get_local_classifier()
        floor, local_times, cpu_times = [], [], []
        for text in prompts:
            floor.append(timed(lambda t: embeddings.embed([t]), text))  # embed() runs on one thread
            cpu = time.thread_time()
            local_times.append(timed(classifier.classify, text))
            cpu_times.append(time.thread_time() - cpu)
        print(f"\nlatency per prompt (local, warm, {len(prompts)} prompts): {ms(local_times)}")
        print(f"embed() alone on one thread, as classify does (floor): {ms(floor)}; "
              f"ratio of medians {statistics.median(local_times) / statistics.median(floor):.2f}")
        # classify computes on the calling thread only, so its CPU time is what the wall time is on idle cores.
        print(f"CPU time of classify, its thread (= wall time when the cores are idle): {ms(cpu_times)}")

        if not args.no_noveltybench and NOVELTYBENCH.exists():
            rows = load(NOVELTYBENCH)
            nb_prompts = [p for p, _ in rows]
            nb_pred = (run_local(nb_prompts)[0] if args.method == "local"
                       else run_turns(nb_prompts, args.method, args.backend)[0])
            clear = [(p, CLEAR[label], nb) for (p, label), nb in zip(rows, nb_pred) if label in CLEAR]
            report([g for _, g, _ in clear], [x for _, _, x in clear],
                   "NoveltyBench curated, clear mappings (Random->C, Creativity->G, Subjective->H)")
            mistakes([p for p, _, _ in clear], [g for _, g, _ in clear], [x for _, _, x in clear],
                     args.show_mistakes)
            print("looser mappings (method.md: 'mostly'):")
            for label, letter in MOSTLY.items():
                got = [x for (_, lab), x in zip(rows, nb_pred) if lab == label]
                spread = ", ".join(f"{k} {got.count(k)}" for k in LABELS if got.count(k))
                print(f"  {label} -> {letter}: {got.count(letter)}/{len(got)}  ({spread})")
        if args.cv:
            from taskdiv_chat.classify.train import cross_validate

            cross_validate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
