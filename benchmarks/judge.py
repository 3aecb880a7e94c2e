"""Judge agreement with labeled pairs (hard and realistic, per category) and local judge speed.

    python benchmarks/judge.py [--data FILE ...] [--backend NAME] [--speed-prompts 100] [--answers 10]

--data: JSON-lines pairs (category, prompt, response_1, response_2, equivalent, and
optionally "set": "hard" | "realistic"); a file without "set" counts under its own
name. Default: tests/data/judge_pairs.jsonl (written by the team, realistic style).
For each file the local judge, the LLM judge (only when the backend is capable:
--backend, else [judge] backend, else the default) and the embedding baseline (cosine
against the per-category threshold fitted on the calibration pairs) are scored.

Speed: --speed-prompts prompts x --answers answers each, grouped as the app groups
them (report.judge_groups: pairs already in one group are skipped), warm (model
loaded, one warm-up prompt first); prints pairs judged per second and the total,
against the target of 100 x 10 in <= 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from taskdiv_chat.diversity.calibrate import CALIBRATION_FILES, read_pairs  # noqa: E402
from taskdiv_chat.diversity.judge import MODEL_FILE, LocalJudge  # noqa: E402
from taskdiv_chat.taxonomy import LETTERS  # noqa: E402


async def run_judge(judge, rows: list[dict]) -> list[bool | None]:
    by_prompt: dict[tuple, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_prompt[(r["category"], r["prompt"])].append(i)
    out: list[bool | None] = [None] * len(rows)
    for (letter, prompt), indices in by_prompt.items():
        verdicts = await judge.judge_pairs(prompt, letter, [(rows[i]["response_1"], rows[i]["response_2"])
                                                            for i in indices])
        for i, v in zip(indices, verdicts):
            out[i] = v
    return out


def baseline(rows: list[dict]) -> list[bool]:
    from taskdiv_chat.diversity.metrics import similarity_matrix

    thresholds = json.loads(MODEL_FILE.read_text(encoding="utf-8"))["baseline_thresholds"]
    out = []
    for r in rows:
        cos = float(similarity_matrix([r["response_1"], r["response_2"]])[0, 1])
        out.append(cos >= thresholds.get(r["category"], thresholds["*"]))
    return out


def agreement(rows: list[dict], predicted: list[bool | None]) -> dict[str, tuple[int, int]]:
    """(right, total) per category, per set and overall; an unknown verdict counts as wrong."""
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r, p in zip(rows, predicted):
        for key in (r["category"], f"set:{r['set']}", "all"):
            table[key][0] += int(p == bool(r["equivalent"]))
            table[key][1] += 1
    return {k: (v[0], v[1]) for k, v in table.items()}


def print_table(title: str, rows: list[dict], results: dict[str, dict | str]) -> None:
    letters = [c for c in LETTERS if any(r["category"] == c for r in rows)]
    sets = sorted({r["set"] for r in rows})
    print(f"\n{title}: {len(rows)} labeled pairs")
    print(f"{'judge':<22}" + "".join(f"{c:>6}" for c in letters) + "".join(f"{s:>16}" for s in sets) + f"{'all':>16}")
    for name, table in results.items():
        if isinstance(table, str):
            print(f"{name:<22}{table}")
            continue
        cells = "".join(f"{table[c][0] / table[c][1]:>6.0%}" if c in table else f"{'-':>6}" for c in letters)
        for key in [f"set:{s}" for s in sets] + ["all"]:
            right, total = table[key]
            cells += f"{right / total:>8.1%} {f'({right}/{total})':>7}"
        print(f"{name:<22}{cells}")


def speed(prompts: int, answers: int, seed: int = 7) -> None:
    """Group `answers` answers for each of `prompts` prompts with the local judge, warm."""
    from taskdiv_chat.diversity.features import _vector_cache
    from taskdiv_chat.diversity.metrics import similarity_matrix
    from taskdiv_chat.diversity.report import UnionFind, judge_groups

    pool: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    for path in CALIBRATION_FILES:
        by_prompt: dict[tuple, set[str]] = defaultdict(set)
        for r in read_pairs(path):
            by_prompt[(r["category"], r["prompt"])] |= {r["response_1"], r["response_2"]}
        for (letter, prompt), texts in by_prompt.items():
            pool[letter].append((prompt, sorted(texts)))
    rng = random.Random(seed)
    everything = {letter: [t for _, texts in items for t in texts] for letter, items in pool.items()}
    work = []
    for i in range(prompts + 1):  # the first one warms up
        letter = LETTERS[i % len(LETTERS)]
        prompt, own = rng.choice(pool[letter])
        texts = list(own) + rng.sample(everything[letter], min(answers, len(everything[letter])))
        work.append((prompt, letter, (texts + texts)[:answers]))  # some repeats, as real regenerations have
    judge = LocalJudge()

    class Counting:
        asked = 0

        async def judge_pairs_detailed(self, prompt, category, pairs):
            Counting.asked += len(pairs)
            return await judge.judge_pairs_detailed(prompt, category, pairs)

    async def group(items):
        for prompt, letter, texts in items:
            await judge_groups(Counting(), prompt, letter, texts, UnionFind(len(texts)))

    asyncio.run(group(work[:1]))
    Counting.asked = 0
    _vector_cache.clear()  # no answer starts out embedded
    started = time.perf_counter()
    asyncio.run(group(work[1:]))
    seconds = time.perf_counter() - started
    started = time.perf_counter()  # the baseline: embed each prompt's answers once, cosine of every pair
    for _, _, texts in work[1:]:
        similarity_matrix(texts)
    base = time.perf_counter() - started
    every_pair = prompts * answers * (answers - 1) // 2
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nspeed (local judge, warm, {os.cpu_count()} cores, load average {load:.1f}): {prompts} prompts x "
          f"{answers} answers grouped in {seconds:.1f} s (target <= 60 s); {Counting.asked} pairs judged of "
          f"{every_pair} ({every_pair - Counting.asked} skipped: already in one group); "
          f"{Counting.asked / seconds:.1f} pairs/s")
    print(f"embedding baseline on the same answers: {base:.1f} s; the judge takes {seconds / base:.2f}x its time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=[str(ROOT / "tests" / "data" / "judge_pairs.jsonl")],
                        metavar="FILE", help="labeled pairs (JSON lines)")
    parser.add_argument("--backend", help="backend for the LLM judge (must be capable)")
    parser.add_argument("--config", help="config file")
    parser.add_argument("--no-baseline", action="store_true", help="skip the embedding baseline")
    parser.add_argument("--speed-prompts", type=int, default=100, help="prompts for the speed run (0: no speed run)")
    parser.add_argument("--answers", type=int, default=10, help="answers per prompt in the speed run")
    args = parser.parse_args()

    from taskdiv_chat.embeddings import get_model

    get_model()  # load once, outside the timings
    for path in args.data:
        rows = [{**r, "set": r["set"] or Path(path).stem} for r in read_pairs(path)]
        results: dict[str, dict | str] = {}
        started = time.perf_counter()
        results["local"] = agreement(rows, asyncio.run(run_judge(LocalJudge(), rows)))
        local_s = time.perf_counter() - started
        llm = _llm(args, rows)
        if llm is not None:
            results[llm[0]] = llm[1]
        if not args.no_baseline:
            results["embedding baseline"] = agreement(rows, baseline(rows))
        print_table(path, rows, results)
        print(f"local judge: {len(rows) / local_s:.1f} pairs/s one pair at a time ({local_s:.1f} s)")
    if args.speed_prompts:
        speed(args.speed_prompts, args.answers)
    return 0


def _llm(args, rows: list[dict]) -> tuple[str, dict | str] | None:
    from taskdiv_chat.capability import cached
    from taskdiv_chat.config import load_settings
    from taskdiv_chat.diversity.judge import make_judge

    settings = load_settings(args.config)
    name, config = settings.backend(args.backend or settings.judge.backend)
    if config.kind != "openai":
        return None
    if not cached(config).judge:
        return f"llm ({name})", f"not used: {cached(config).summary}"

    async def run() -> list[bool | None]:
        judge = make_judge(settings, "llm", name)
        try:
            return await run_judge(judge, rows)
        finally:
            await judge.aclose()
    try:
        return f"llm ({name})", agreement(rows, asyncio.run(run()))
    except Exception as exc:  # a server that is down is a figure too
        return f"llm ({name})", f"failed: {exc}"


if __name__ == "__main__":
    raise SystemExit(main())
