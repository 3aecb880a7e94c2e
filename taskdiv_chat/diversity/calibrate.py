"""Fit the local judge's similarity model on the calibration pairs and write data/judge_model.json.

    python -m taskdiv_chat.diversity.calibrate [--pairs FILE]

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

from .features import Embedder, pair_features
from .judge import MODEL_FILE, LocalJudge

CALIBRATION_FILE = MODEL_FILE.parent / "judge_calibration.jsonl"
FEATURES = ["cos", "distinct"]


def read_pairs(path: str | Path) -> list[dict]:
    """Labeled pairs, one JSON object a line (category, prompt, response_1, response_2, equivalent)."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append({"category": row.get("category"), "prompt": row.get("prompt", ""),
                         "response_1": row["response_1"], "response_2": row["response_2"],
                         "equivalent": row.get("equivalent")})
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a pair ({exc})") from None
    return rows


def best_threshold(scores: list[float], labels: list[bool]) -> float:
    """The cut that classifies most pairs right as "equivalent iff score >= cut" (midpoint between scores)."""
    values = sorted(set(scores))
    cuts = [values[0] - 1e-6] + [(x + y) / 2 for x, y in zip(values, values[1:])] + [values[-1] + 1e-6]
    return max(cuts, key=lambda t: (sum((s >= t) == y for s, y in zip(scores, labels)), -abs(t - 0.5)))


def calibrate(rows: list[dict]) -> dict:
    from sklearn.linear_model import LogisticRegression

    judge = LocalJudge(model={"features": FEATURES, "weights": [0.0, 0.0], "bias": 0.0})
    vec = Embedder([t for r in rows for t in Embedder.texts_for(r["response_1"], r["response_2"])])
    X, y, cos_by_cat = [], [], {}
    for r in rows:
        a, b, letter = r["response_1"], r["response_2"], r["category"]
        verdict, feats = judge.rules(r["prompt"], letter, a, b, vec)
        cos = feats.get("cos") if feats else pair_features(None, r["prompt"], a, b, vec)["cos"]
        cos_by_cat.setdefault(letter, []).append((cos, bool(r["equivalent"])))
        if verdict is None:
            X.append([feats[f] for f in FEATURES])
            y.append(bool(r["equivalent"]))
    model = LogisticRegression(C=10.0).fit(np.array(X), np.array(y))
    thresholds = {letter: round(best_threshold([c for c, _ in v], [l for _, l in v]), 4)
                  for letter, v in sorted(cos_by_cat.items())}
    every = [item for v in cos_by_cat.values() for item in v]
    return {
        "model": {"features": FEATURES, "weights": [round(float(w), 4) for w in model.coef_[0]],
                  "bias": round(float(model.intercept_[0]), 4)},
        "baseline_thresholds": {**thresholds,
                                "*": round(best_threshold([c for c, _ in every], [l for _, l in every]), 4)},
        "trained_on": {"file": "judge_calibration.jsonl", "pairs": len(rows), "model_pairs": len(y)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=str(CALIBRATION_FILE))
    parser.add_argument("--out", default=str(MODEL_FILE))
    args = parser.parse_args(argv)
    result = calibrate(read_pairs(args.pairs))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
