"""Fit the local judge's similarity model on the calibration pairs and write data/judge_model.json.

    python -m taskdiv_chat.diversity.calibrate [--pairs FILE ...]

Only pairs the category rules leave undecided train the model, so it learns
exactly the cases it will see. The same run stores, per category, the cosine
threshold that best separates the calibration pairs: the plain embedding
baseline that benchmarks/judge.py compares against.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .features import Embedder
from .judge import FEATURES, MODEL_FILE, LocalJudge, core_text, group_of

CALIBRATION_FILES = [MODEL_FILE.parent / "judge_calibration.jsonl", MODEL_FILE.parent / "judge_hard_pairs.jsonl"]
REGULARISATION = 10.0  # features in [0, 1]: weights need room


def read_pairs(path: str | Path) -> list[dict]:
    """Labeled pairs, one JSON object a line (category, prompt, response_1, response_2, equivalent, optional set)."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append({"category": row.get("category"), "prompt": row.get("prompt", ""),
                         "response_1": row["response_1"], "response_2": row["response_2"],
                         "equivalent": row.get("equivalent"), "set": row.get("set")})
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a pair ({exc})") from None
    return rows


def best_threshold(scores: list[float], labels: list[bool]) -> float:
    """The cut that classifies most pairs right as "equivalent iff score >= cut" (midpoint between scores)."""
    values = sorted(set(scores))
    cuts = [values[0] - 1e-6] + [(x + y) / 2 for x, y in zip(values, values[1:])] + [values[-1] + 1e-6]
    return max(cuts, key=lambda t: (sum((s >= t) == y for s, y in zip(scores, labels)), -abs(t - 0.5)))


def calibrate(rows: list[dict], files: list[str] | None = None) -> dict:
    """One logistic model per category group over FEATURES, fitted on the pairs the rules leave open."""
    from sklearn.linear_model import LogisticRegression

    judge = LocalJudge(model={"*": {"features": FEATURES, "weights": [0.0] * len(FEATURES), "bias": 0.0}})
    by_prompt: dict[tuple, list[dict]] = {}
    for r in rows:
        by_prompt.setdefault((r["category"], r["prompt"]), []).append(r)
    data: dict[str, tuple[list, list]] = {}
    cos_by_cat: dict[str, list] = {}
    for (letter, prompt), group in by_prompt.items():
        answers = list(dict.fromkeys(t for r in group for t in (r["response_1"], r["response_2"])))
        vec = Embedder([prompt, *answers])
        cores = {t: core_text(letter, t, prompt) for t in answers}
        for r in group:
            a, b = r["response_1"], r["response_2"]
            cos_by_cat.setdefault(letter, []).append((float(vec(a) @ vec(b)), bool(r["equivalent"])))
            verdict, feats = judge.rules(prompt, letter, a, b, vec, cores)
            if verdict is None:
                X, y = data.setdefault(group_of(letter), ([], []))
                X.append([feats[f] if feats.get(f) is not None else 0.5 for f in FEATURES])
                y.append(bool(r["equivalent"]))
    groups = {}
    every_X = [x for X, _ in data.values() for x in X]
    every_y = [v for _, Y in data.values() for v in Y]
    for name, (X, y) in [("*", (every_X, every_y)), *sorted(data.items())]:
        if len(y) < 8 or len(set(y)) < 2:
            continue  # too few pairs: the "*" model decides for this group
        model = LogisticRegression(C=REGULARISATION).fit(np.array(X), np.array(y))
        groups[name] = {"features": FEATURES, "weights": [round(float(w), 4) for w in model.coef_[0]],
                        "bias": round(float(model.intercept_[0]), 4), "pairs": len(y)}
    thresholds = {letter: round(best_threshold([c for c, _ in v], [l for _, l in v]), 4)
                  for letter, v in sorted(cos_by_cat.items())}
    every = [item for v in cos_by_cat.values() for item in v]
    return {
        "groups": groups,
        "baseline_thresholds": {**thresholds,
                                "*": round(best_threshold([c for c, _ in every], [l for _, l in every]), 4)},
        "trained_on": {"files": files or [], "pairs": len(rows), "model_pairs": len(every_y)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=[str(f) for f in CALIBRATION_FILES])
    parser.add_argument("--out", default=str(MODEL_FILE))
    args = parser.parse_args(argv)
    rows = [row for path in args.pairs for row in read_pairs(path)]
    result = calibrate(rows, [Path(p).name for p in args.pairs])
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
