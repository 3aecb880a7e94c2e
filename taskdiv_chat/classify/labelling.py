"""Merge two independent labelling passes of real prompts and split the agreed ones into train and test.

    python -m taskdiv_chat.classify.labelling PROMPTS PASS_A PASS_B [--out data/wildchat-labelled.jsonl]

PROMPTS: JSON lines {"id", "prompt"}; PASS_A, PASS_B: JSON lines {"id", "category"}, labelled
by two annotators following docs/labelling-guide.md without seeing each other's labels.
Writes one row per prompt, {"id", "prompt", "pass_a", "pass_b", "category", "split"}:
category is the agreed label (null where the passes disagree) and split is "train" or "test"
for agreed prompts (null otherwise). Prints the agreement figures for docs/labelling.md.

The split is made once, before any training, stratified by category with a fixed seed,
and committed: the test rows are never used for training, feature choice or threshold
tuning (train.py reads only "train"), so the accuracy measured on them is honest.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from .. import taxonomy

LABELS = [*taxonomy.LETTERS, taxonomy.OTHER]
TEST_SHARE = 0.3
SEED = 20261130
ROOT = Path(__file__).resolve().parents[2]
LABELLED = ROOT / "data" / "wildchat-labelled.jsonl"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_pass(path: Path) -> dict[str, str]:
    labels = {}
    for number, row in enumerate(read_jsonl(path), 1):
        if row["category"] not in LABELS:
            raise ValueError(f"{path}:{number}: unknown category {row['category']!r}")
        labels[row["id"]] = row["category"]
    return labels


def cohen_kappa(a: list[str], b: list[str]) -> float:
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in LABELS) / n / n
    return (observed - expected) / (1 - expected)


def split(ids_by_label: dict[str, list[str]]) -> dict[str, str]:
    """id -> "train"/"test": per category, a seeded shuffle, TEST_SHARE of it (at least one if there are two) to test."""
    rng = np.random.default_rng(SEED)
    out = {}
    for label in LABELS:
        ids = sorted(ids_by_label.get(label, []))
        rng.shuffle(ids)
        n_test = max(1, round(TEST_SHARE * len(ids))) if len(ids) >= 2 else 0
        out.update({i: "test" for i in ids[:n_test]})
        out.update({i: "train" for i in ids[n_test:]})
    return out


def merge(prompts: list[dict], a: dict[str, str], b: dict[str, str]) -> list[dict]:
    missing = [p["id"] for p in prompts if p["id"] not in a or p["id"] not in b]
    if missing:
        raise ValueError(f"{len(missing)} prompts lack a label in one pass, e.g. {missing[0]}")
    agreed: dict[str, list[str]] = {}
    for p in prompts:
        if a[p["id"]] == b[p["id"]]:
            agreed.setdefault(a[p["id"]], []).append(p["id"])
    splits = split(agreed)
    return [{"id": p["id"], "prompt": p["prompt"], "pass_a": a[p["id"]], "pass_b": b[p["id"]],
             "category": a[p["id"]] if a[p["id"]] == b[p["id"]] else None, "split": splits.get(p["id"])}
            for p in prompts]


def report(rows: list[dict]) -> str:
    """The agreement figures, as Markdown."""
    a = [r["pass_a"] for r in rows]
    b = [r["pass_b"] for r in rows]
    n = len(rows)
    same = sum(x == y for x, y in zip(a, b))
    lines = [f"- prompts: {n}; both passes agree on {same} ({same / n:.1%}); Cohen's kappa {cohen_kappa(a, b):.3f}",
             "", "Per category (specific agreement = 2 x both / (pass A + pass B); kept = agreed prompts):", "",
             "| category | pass A | pass B | both | specific agreement | kept: train | kept: test |",
             "|---|---|---|---|---|---|---|"]
    for label in LABELS:
        na, nb = a.count(label), b.count(label)
        both = sum(x == y == label for x, y in zip(a, b))
        train = sum(r["category"] == label and r["split"] == "train" for r in rows)
        test = sum(r["category"] == label and r["split"] == "test" for r in rows)
        agreement = f"{2 * both / (na + nb):.1%}" if na + nb else "-"
        lines.append(f"| {label} | {na} | {nb} | {both} | {agreement} | {train} | {test} |")
    kept = [r for r in rows if r["category"]]
    lines += ["", f"Kept: {len(kept)} agreed prompts, {sum(r['split'] == 'train' for r in kept)} train and "
              f"{sum(r['split'] == 'test' for r in kept)} test.", "",
              "Confusion between the passes (rows: pass A, columns: pass B):", "",
              "| A \\ B | " + " | ".join(LABELS) + " |", "|---" * (len(LABELS) + 1) + "|"]
    for x in LABELS:
        lines.append(f"| {x} | " + " | ".join(str(sum(p == x and q == y for p, q in zip(a, b))) for y in LABELS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompts", type=Path)
    parser.add_argument("pass_a", type=Path)
    parser.add_argument("pass_b", type=Path)
    parser.add_argument("--out", type=Path, default=LABELLED)
    args = parser.parse_args(argv)
    try:
        rows = merge(read_jsonl(args.prompts), read_pass(args.pass_a), read_pass(args.pass_b))
    except (OSError, ValueError, KeyError) as exc:
        print(f"labelling: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(report(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
