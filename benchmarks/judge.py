"""Judge agreement with labeled pairs, per category: local judge, LLM judge, embedding baseline.

    python benchmarks/judge.py [--pairs tests/data/judge_pairs.jsonl] [--backend NAME]

The baseline calls two answers equivalent when their embedding cosine reaches
the per-category threshold fitted on the calibration set (data/judge_model.json),
so it gets the same calibration data as the local judge. The LLM judge runs
only when the chosen backend (--backend, else [judge] backend, else the
default) is a capable one; otherwise it is reported as not available.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from taskdiv_chat.diversity.calibrate import read_pairs  # noqa: E402
from taskdiv_chat.diversity.judge import MODEL_FILE, LocalJudge  # noqa: E402
from taskdiv_chat.taxonomy import LETTERS  # noqa: E402


async def run_judge(judge, rows: list[dict]) -> list[bool]:
    by_prompt: dict[tuple, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_prompt[(r["category"], r["prompt"])].append(i)
    out: list[bool | None] = [None] * len(rows)
    for (letter, prompt), indices in by_prompt.items():
        verdicts = await judge.judge_pairs(prompt, letter, [(rows[i]["response_1"], rows[i]["response_2"]) for i in indices])
        for i, v in zip(indices, verdicts):
            out[i] = v
    return out  # type: ignore[return-value]


def baseline(rows: list[dict]) -> list[bool]:
    from taskdiv_chat.diversity.metrics import similarity_matrix

    thresholds = json.loads(MODEL_FILE.read_text(encoding="utf-8"))["baseline_thresholds"]
    out = []
    for r in rows:
        cos = float(similarity_matrix([r["response_1"], r["response_2"]])[0, 1])
        out.append(cos >= thresholds.get(r["category"], thresholds["*"]))
    return out


def agreement(rows: list[dict], predicted: list[bool]) -> dict[str, tuple[int, int]]:
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r, p in zip(rows, predicted):
        for key in (r["category"], "all"):
            table[key][0] += int(p == bool(r["equivalent"]))
            table[key][1] += 1
    return {k: (v[0], v[1]) for k, v in table.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=str(ROOT / "tests" / "data" / "judge_pairs.jsonl"))
    parser.add_argument("--backend", help="backend for the LLM judge (must be capable)")
    parser.add_argument("--config", help="config file")
    args = parser.parse_args()
    rows = read_pairs(args.pairs)
    results: dict[str, dict | str] = {}

    from taskdiv_chat.embeddings import get_model

    get_model()  # load once, outside the timings
    started = time.perf_counter()
    results["local"] = agreement(rows, asyncio.run(run_judge(LocalJudge(), rows)))
    local_s = time.perf_counter() - started

    from taskdiv_chat.config import load_settings
    from taskdiv_chat.diversity.judge import make_judge, resolve_method

    settings = load_settings(args.config)
    method, name = resolve_method(settings, "auto", args.backend)
    if method == "llm":
        async def llm() -> list[bool]:
            judge = make_judge(settings, "llm", name)
            try:
                return await run_judge(judge, rows)
            finally:
                await judge.aclose()
        try:
            results[f"llm ({name})"] = agreement(rows, asyncio.run(llm()))
        except Exception as exc:  # a server that is down is a figure too
            results[f"llm ({name})"] = f"failed: {exc}"
    else:
        results["llm"] = f"not available (backend {name!r} is not capable; pass --backend NAME of a server)"
    results["embedding baseline"] = agreement(rows, baseline(rows))

    letters = [c for c in LETTERS if any(r["category"] == c for r in rows)]
    print(f"judge agreement with {len(rows)} labeled pairs ({args.pairs})")
    print(f"{'judge':<22}" + "".join(f"{c:>7}" for c in letters) + f"{'all':>10}")
    for judge_name, table in results.items():
        if isinstance(table, str):
            print(f"{judge_name:<22}{table}")
            continue
        cells = "".join(f"{table[c][0] / table[c][1]:>7.0%}" if c in table else f"{'-':>7}" for c in letters)
        right, total = table["all"]
        print(f"{judge_name:<22}{cells}{right / total:>9.1%} ({right}/{total})")
    print(f"local judge time: {local_s:.2f} s for {len(rows)} pairs ({local_s / len(rows) * 1000:.1f} ms/pair, model preloaded)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
