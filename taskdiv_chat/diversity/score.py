"""Score generations you already have: `taskdiv-chat score FILE`.

Reads NoveltyBench's generation files (JSONL with id, prompt, generations: a list or a JSON
string of a list; optional category and model) or our own bench output (results.jsonl).
For each prompt: the given category (a letter or a NoveltyBench label) or a classified one,
every pair judged by each judge, equivalent answers grouped; the unique count is averaged
over the judges. Writes DIR/scores.jsonl (id, category, unique, partition: a group index per
generation) and DIR/report.md with the same tables as `bench`. No server is needed with the
local judge. score_set() and make_judges() are what `bench` scores with, too.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .. import taxonomy
from ..config import Settings
from ..taxonomy import Category
from .bench import BenchInputError, Progress, _category, latest, read_lines

SCORES_FILE = "scores.jsonl"


@dataclass
class GenerationSet:
    id: str
    prompt: str
    category: str | None  # a letter, "other", or None (classify it)
    label: str  # the column of the report: the model (NoveltyBench) or the strategy (bench)
    generations: list[str]
    model: str | None = None  # the file's `model` field: sets of one prompt from several models are compared


def read_generations(path: str | Path) -> list[GenerationSet]:
    """NoveltyBench generation files or our results.jsonl; bad lines are named, not skipped."""
    path = Path(path)
    lines = read_lines(path)
    out: list[GenerationSet] = []
    ours: list[dict] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise BenchInputError(f"{where}: invalid JSON: {exc}") from None
        if not isinstance(row, dict):
            raise BenchInputError(f"{where}: not a JSON object")
        if "answers" in row and "prompt_id" in row:  # a bench record
            ours.append(row)
            continue
        prompt, generations = row.get("prompt"), row.get("generations")
        if isinstance(generations, str):
            try:
                generations = json.loads(generations)
            except ValueError:
                raise BenchInputError(f"{where}: 'generations' is a string but not a JSON list") from None
        if not isinstance(prompt, str) or not prompt.strip():
            raise BenchInputError(f"{where}: needs a non-empty 'prompt'")
        if not isinstance(generations, list) or not all(isinstance(g, str) for g in generations):
            raise BenchInputError(f"{where}: 'generations' must be a list of strings (or a JSON string of one)")
        out.append(GenerationSet(str(row.get("id") or f"line-{number}"), prompt, _category(row.get("category")),
                                 str(row.get("model") or path.stem), generations,
                                 str(row["model"]) if row.get("model") else None))
    for (pid, strategy), row in latest(ours).items():
        if row.get("status", "ok") == "ok":  # failed sets were never scored and are not now
            out.append(GenerationSet(pid, row["prompt"], _category(row.get("category")), strategy,
                                     list(row["answers"])))
    if not out:
        raise BenchInputError(f"{path}: no generations")
    return out


# --- judges ----------------------------------------------------------------------------------


def make_judges(settings: Settings, method: str | None, judge_backends: tuple[str, ...] | list[str],
                generator: str | None) -> list:
    """An LLM judge per --judge-backend (the paper averages three), else the one judge `method` asks for."""
    from .judge import make_judge

    if judge_backends:
        for name in judge_backends:
            settings.backend(name)  # an unknown name fails here, before any work
        return [make_judge(settings, "llm", name) for name in dict.fromkeys(judge_backends)]
    return [make_judge(settings, method, settings.judge.backend or generator)]


async def close_judges(judges: list) -> None:
    from .judge import close_judge

    for judge in judges:
        await close_judge(judge)


def partition(groups: list[list[int]], n: int) -> list[int]:
    """A group index per answer, from the groups of equivalent answers."""
    out = [0] * n
    for index, group in enumerate(groups):
        for i in group:
            out[i] = index
    return out


async def score_set(prompt: str, category: Category | None, texts: list[str], judges: list) -> dict:
    """Judge one set with every judge: the unique count averaged over the judges, each judge's
    own count and partition, and the generic metrics."""
    from .report import analyze

    reports = [await analyze(prompt, category, texts, judge) for judge in judges]
    first = reports[0]
    return {
        "unique": sum(r.unique for r in reports) / len(reports),
        "unique_by_judge": {r.judge: r.unique for r in reports},
        "groups": first.groups, "partition": partition(first.groups, len(texts)),
        "partitions": {r.judge: partition(r.groups, len(texts)) for r in reports},
        "answers_agree": first.answers_agree, "final_answers": first.final_answers,
        "vocabulary_diversity": first.generic["vocabulary_diversity"],
        "embedding_diversity": first.generic["embedding_diversity"],
        "compression_ratio": first.generic["compression_ratio"],
        "judge": "; ".join(r.judge for r in reports),
    }


# --- the command -------------------------------------------------------------------------------


async def run_score(settings: Settings, path: str | Path, out_dir: str | Path, *, judge_method: str | None = None,
                    judge_backends: tuple[str, ...] = (), stream: TextIO | None = None) -> Path:
    """Score every set of `path` into out_dir; returns the report's path."""
    from .bench_report import write_report

    sets = read_generations(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    judges = make_judges(settings, judge_method, judge_backends, None)
    names = [j.describe() for j in judges]
    started = time.monotonic()
    progress = Progress(len(sets), stream)
    try:
        letters = await _classify([s for s in sets if s.category is None], settings)
        categorized = [(item, *((item.category, "given") if item.category else (letters[item.prompt], "classified")))
                       for item in sets]
        rows = [await _score_one(item, letter, source, judges, progress) for item, letter, source in categorized]
        cross = await _cross_model(categorized, judges[0])
    finally:
        await close_judges(judges)
    with (out / SCORES_FILE).open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    labels = list(dict.fromkeys(r["strategy"] for r in rows))
    meta = {"source": str(path), "judges": names, "strategies": labels,
            "n": max((r["n"] for r in rows), default=0), "prompts": len({r["id"] for r in rows}),
            "last_run": {"seconds": round(time.monotonic() - started, 1), "sets": len(rows)}, "notes": []}
    if cross:
        meta["cross_model"] = cross
    (out / "score.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    report = write_report(rows, out, meta, title="taskdiv-chat score")
    if cross:
        from .crossmodel import overlap_table

        report.write_text(report.read_text(encoding="utf-8") + "\n" + overlap_table(cross), encoding="utf-8")
    return report


async def _cross_model(categorized: list, judge) -> dict[str, dict]:
    """Per category, over the prompts answered by several models (the `model` field): every answer
    judged against every other, and how many pairs from two different models were the same."""
    from .crossmodel import cross_model, overlap
    from .report import analyze

    by_prompt: dict[str, list] = {}
    for item, letter, _ in categorized:
        if item.model:
            by_prompt.setdefault(item.id, []).append((item, letter))
    results = []
    for items in by_prompt.values():
        if len({item.model for item, _ in items}) < 2:
            continue
        texts = [text for item, _ in items for text in item.generations]
        labels = [item.model for item, _ in items for _ in item.generations]
        category = taxonomy.get(items[0][1])
        report = await analyze(items[0][0].prompt, category, texts, judge)
        results.append((items[0][1], cross_model(report, labels, category).to_dict()))
    return overlap(results)


async def _score_one(item: GenerationSet, letter: str, source: str, judges: list, progress: Progress) -> dict:
    scored = await score_set(item.prompt, taxonomy.get(letter), item.generations, judges)
    progress.step(item.id)
    return {"id": item.id, "prompt_id": item.id, "prompt": item.prompt, "category": letter,
            "category_source": source, "strategy": item.label, "n": len(item.generations), "status": "ok", **scored}


async def _classify(sets: list[GenerationSet], settings: Settings) -> dict[str, str]:
    """prompt -> category letter (or "other"), each distinct prompt classified once."""
    if not sets:
        return {}
    from ..classify import classify_turn

    out: dict[str, str] = {}
    for item in sets:
        if item.prompt not in out:
            result = await classify_turn(item.prompt, settings=settings)
            out[item.prompt] = result.letter or taxonomy.OTHER
    return out
