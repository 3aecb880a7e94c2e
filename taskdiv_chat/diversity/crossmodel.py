"""The cross-model view of one judged set of answers: which models said the same thing.

A comparison sends one turn to several backends; the judge groups all the
answers together (report.analyze). This module names each group's models,
phrases the badge ("3 models · 2 functionally distinct", coloured by what the
category wants: for A, models disagreeing is the warning) and counts, over
pairs of answers from different models, how many were functionally the same:
the models' overlap that the homogenization view and score/bench add up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..taxonomy import Category
from .report import DiversityReport, verdict


@dataclass(frozen=True)
class CrossModel:
    models: list[str]  # "backend (model)", in the order the answers came
    groups: list[list[str]]  # per functional group, the label of each answer in it
    distinct: int  # functionally distinct answers across all models
    same_pairs: int  # pairs of answers from different models judged functionally the same
    pairs: int  # pairs of answers from different models
    status: str  # good | warning | bad, by what the category wants
    reason: str
    badge_text: str

    def to_dict(self) -> dict:
        return asdict(self)


def model_label(backend: str | None, model: str | None) -> str:
    return f"{backend} ({model})" if model and model != backend else (backend or model or "?")


def cross_model(report: DiversityReport, labels: list[str], category: Category | None) -> CrossModel:
    """labels[i]: the model label of the report's answer i."""
    models = list(dict.fromkeys(labels))
    same = pairs = 0
    for i in range(report.n):
        for j in range(i + 1, report.n):
            if labels[i] != labels[j]:
                pairs += 1
                same += bool(report.pairwise[i][j])
    status, reason, _ = verdict(category, report.n, report.unique, report.answers_agree)
    count = len(models)
    badge = f"{count} model{'s' if count != 1 else ''} · {report.unique} functionally distinct"
    return CrossModel(models=models, groups=[[labels[i] for i in group] for group in report.groups],
                      distinct=report.unique, same_pairs=same, pairs=pairs, status=status, reason=reason,
                      badge_text=badge)


def overlap(rows: list[tuple[str | None, dict]]) -> dict[str, dict]:
    """Per category letter ("other" for none): comparisons, pairs of answers from different models, and
    how many of those pairs were functionally the same. rows: (letter, CrossModel dict) per comparison."""
    totals: dict[str, dict] = {}
    for letter, data in rows:
        stats = totals.setdefault(letter or "other", {"comparisons": 0, "pairs": 0, "same": 0})
        stats["comparisons"] += 1
        stats["pairs"] += int(data.get("pairs", 0))
        stats["same"] += int(data.get("same_pairs", 0))
    return totals


def overlap_table(totals: dict[str, dict]) -> str:
    """The cross-model overlap per category as a Markdown section (score's report)."""
    from .. import taxonomy

    lines = ["## Cross-model overlap", "",
             "How often two answers from different models to the same prompt were functionally the same.", "",
             "| category | prompts | model pairs | functionally same | overlap |", "|---|---|---|---|---|"]
    for letter, stats in sorted(totals.items()):
        category = taxonomy.get(letter)
        name = f"{category.letter} {category.short}" if category else "other"
        share = f"{stats['same'] / stats['pairs']:.0%}" if stats["pairs"] else "—"
        lines.append(f"| {name} | {stats['comparisons']} | {stats['pairs']} | {stats['same']} | {share} |")
    return "\n".join(lines) + "\n"
