"""The paper's experiment on any OpenAI-compatible server (or the embedded model).

For every prompt and every strategy: n answers, judged into functionally unique
groups, with the generic metrics and, optionally, checklist quality (the model
writes 3-5 criteria per prompt, then scores each answer 1-5). Results go to
OUT/results.jsonl one line per (prompt, strategy); a rerun skips what is there.
At the end OUT/report.md holds the category x strategy tables and OUT/chart.png
the mean unique answers per category and strategy.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .. import taxonomy
from ..backends.base import BackendError
from ..config import STRATEGIES, Settings

BUILTIN_PROMPTS = Path(__file__).resolve().parent.parent / "data" / "bench_prompts.jsonl"
RESULTS_FILE = "results.jsonl"
DEFAULT_MAX_TOKENS = 200  # per answer; keeps a run on the ~55 tokens/s embedded model short

# NoveltyBench's own labels (method.md section 8); "mostly" mappings are the majority.
NOVELTYBENCH_CATEGORIES = {
    "random generation & selection": "C",
    "creativity": "G",
    "subjective rankings & opinions": "H",
    "factual knowledge": "B",
    "character & entity naming": "G",
    "product & purchase recommendations": "H",
}


class BenchInputError(ValueError):
    """A prompt file that cannot be read, phrased for the user (file and line)."""


@dataclass
class BenchPrompt:
    id: str
    prompt: str
    category: str | None  # a letter, "other", or None (classify it)


def read_prompts(path: str | Path) -> list[BenchPrompt]:
    """Our JSONL ({"id", "prompt", "category": "A".."H"}) or NoveltyBench's ({"id", "prompt", "category": "Creativity"}).

    A plain text file (one prompt a line) works too. Lines starting with # are skipped.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchInputError(f"{path}: cannot read: {exc}") from None
    prompts: list[BenchPrompt] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("{"):
            prompts.append(BenchPrompt(f"line-{number}", line, None))
            continue
        try:
            row = json.loads(line)
            text = str(row["prompt"]).strip()
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchInputError(f"{path}:{number}: not a prompt line ({exc})") from None
        if not text:
            raise BenchInputError(f"{path}:{number}: empty prompt")
        prompts.append(BenchPrompt(str(row.get("id") or f"line-{number}"), text, _category(row.get("category"))))
    if not prompts:
        raise BenchInputError(f"{path}: no prompts")
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        raise BenchInputError(f"{path}: duplicate prompt ids: {sorted({i for i in ids if ids.count(i) > 1})[:5]}")
    return prompts


def _category(value) -> str | None:
    if not value:
        return None
    text = str(value).strip()
    if taxonomy.get(text):
        return text.upper()
    if text.lower() == taxonomy.OTHER:
        return taxonomy.OTHER
    return NOVELTYBENCH_CATEGORIES.get(text.lower())


# --- progress ------------------------------------------------------------------------------


class Progress:
    """A plain-text progress line on stderr (redrawn in a terminal, a line every 10% otherwise)."""

    def __init__(self, total: int, stream: TextIO | None = None):
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.started = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_decile = -1

    def step(self, label: str = "") -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else 0
        width = 24
        filled = int(width * self.done / max(1, self.total))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{_clock(elapsed)} elapsed, ~{_clock(left)} left  {label[:40]}")
        decile = self.done * 10 // max(1, self.total)
        if self.tty:
            self.stream.write("\r" + line.ljust(100))
            if self.done == self.total:
                self.stream.write("\n")
        elif decile != self._last_decile or self.done == self.total:
            self.stream.write(line + "\n")
        self._last_decile = decile
        self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


# --- quality -------------------------------------------------------------------------------


async def checklist(backend, prompt: str) -> str:
    completion = await backend.complete([{"role": "user", "content": taxonomy.checklist_prompt(prompt)}],
                                        temperature=0, max_tokens=200)
    return completion.text.strip()


async def score_answer(backend, prompt: str, criteria: str, answer: str) -> int | None:
    completion = await backend.complete(
        [{"role": "user", "content": taxonomy.checklist_score_prompt(prompt, criteria, answer)}],
        temperature=0, max_tokens=8)
    match = re.search(r"[1-5]", completion.text)
    return int(match.group(0)) if match else None


# --- the run -------------------------------------------------------------------------------


def load_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line torn by an interrupted run: redone on the next run
    return out


async def _categorize(prompts: list[BenchPrompt], settings: Settings, backend_name: str | None,
                      known: dict[str, str]) -> dict[str, tuple[str, str]]:
    """prompt id -> (letter or "other", "given" | "classified"); classified once, reused on resume."""
    out: dict[str, tuple[str, str]] = {}
    todo = []
    for p in prompts:
        if p.category:
            out[p.id] = (p.category, "given")
        elif p.id in known:
            out[p.id] = (known[p.id], "classified")
        else:
            todo.append(p)
    if todo:
        from ..classify import classify_turn  # written by the classification work; imported only when needed

        for p in todo:
            result = await classify_turn(p.prompt, settings=settings, backend_name=backend_name)
            out[p.id] = (result.letter or taxonomy.OTHER, "classified")
    return out


async def run_bench(settings: Settings, prompts: list[BenchPrompt], out_dir: str | Path, *,
                    strategies: tuple[str, ...] = STRATEGIES, n: int = 5, judge_method: str | None = None,
                    backend_name: str | None = None, concurrency: int = 4, quality: bool = False,
                    max_tokens: int | None = DEFAULT_MAX_TOKENS, temperature: float | None = None,
                    stream: TextIO | None = None) -> Path:
    """Run (or resume) the benchmark; returns the path of the Markdown report."""
    from ..backends import make_backend
    from .generate import generate_variants
    from .judge import close_judge, make_judge
    from .report import analyze

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / RESULTS_FILE
    previous = load_results(results_path)
    done = {(r["prompt_id"], r["strategy"], r["n"]) for r in previous}
    known = {r["prompt_id"]: r["category"] for r in previous if r.get("category_source") == "classified"}

    name, config = settings.backend(backend_name)
    backend = make_backend(settings, name)
    judge = make_judge(settings, judge_method, settings.judge.backend or name)
    categories = await _categorize(prompts, settings, name, known)
    work = [(p, s) for p in prompts for s in strategies if (p.id, s, n) not in done]
    progress = Progress(len(work), stream)
    write_lock = asyncio.Lock()
    if config.kind == "local":  # one llama.cpp worker: interleaved requests would only defeat its prompt cache
        concurrency = 1
    semaphore = asyncio.Semaphore(max(1, concurrency))
    criteria_cache: dict[str, asyncio.Task] = {}
    sampling = {"max_tokens": max_tokens, "temperature": temperature}
    errors: list[str] = []

    async def one(p: BenchPrompt, strategy: str) -> None:
        letter, source = categories[p.id]
        category = taxonomy.get(letter)
        async with semaphore:
            started = time.monotonic()
            try:
                answers = await generate_variants(backend, strategy, history=[], prompt=p.prompt, earlier=[],
                                                  category=category, n=n, **sampling)
                texts = [a.text for a in answers]
                report = await analyze(p.prompt, category, texts, judge)
                scores: list[int | None] = []
                if quality:
                    if p.id not in criteria_cache:
                        criteria_cache[p.id] = asyncio.ensure_future(checklist(backend, p.prompt))
                    criteria = await criteria_cache[p.id]
                    scores = [await score_answer(backend, p.prompt, criteria, t) for t in texts]
            except BackendError as exc:
                errors.append(f"{p.id}/{strategy}: {exc}")
                progress.step(f"{p.id} {strategy} FAILED")
                return
            valid = [s for s in scores if s is not None]
            record = {
                "prompt_id": p.id, "prompt": p.prompt, "category": letter, "category_source": source,
                "strategy": strategy, "n": n, "answers": texts, "got": len(texts),
                "unique": report.unique, "groups": report.groups, "status": report.status,
                "answers_agree": report.answers_agree, "final_answers": report.final_answers,
                "vocabulary_diversity": report.generic["vocabulary_diversity"],
                "embedding_diversity": report.generic["embedding_diversity"],
                "compression_ratio": report.generic["compression_ratio"],
                "quality": (sum(valid) / len(valid)) if valid else None, "quality_scores": scores,
                "completion_tokens": sum(a.completion.usage.completion_tokens for a in _calls(answers)
                                         if a.completion.usage),
                "notes": sorted({a.note for a in answers if a.note}),
                "seconds": round(time.monotonic() - started, 2),
                "backend": name, "model": backend.model, "max_tokens": max_tokens, "judge": report.judge,
            }
        async with write_lock:
            with results_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        progress.step(f"{p.id} {strategy}")

    started = time.monotonic()
    try:
        if work:  # load the embedding model before requests are in flight, not in the middle of them
            from ..embeddings import get_model

            await asyncio.to_thread(get_model)
        await asyncio.gather(*(one(p, s) for p, s in work))
    finally:
        await close_judge(judge)
        await backend.aclose()
    run_seconds = time.monotonic() - started
    meta = {"backend": name, "model": backend.model, "n": n, "max_tokens": max_tokens, "strategies": list(strategies),
            "judge": getattr(judge, "describe", lambda: str(judge))(), "quality": quality,
            "last_run_seconds": round(run_seconds, 1), "last_run_items": len(work), "errors": errors}
    (out / "run.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    rows = [r for r in load_results(results_path) if r["n"] == n and r["strategy"] in strategies
            and r["prompt_id"] in categories]
    report_path = write_report(rows, out, meta)
    for line in errors:
        (stream or sys.stderr).write(f"bench: failed: {line}\n")
    return report_path


def _calls(answers):
    """One entry per request (the k answers of a k-at-once call share one completion)."""
    seen, out = set(), []
    for a in answers:
        if id(a.completion) not in seen:
            seen.add(id(a.completion))
            out.append(a)
    return out


# --- report --------------------------------------------------------------------------------


def aggregate(rows: list[dict], field: str) -> dict[tuple[str, str], float]:
    """Mean of `field` per (category, strategy), ignoring missing values."""
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        value = r.get(field)
        if value is not None:
            cells[(r["category"], r["strategy"])].append(float(value))
    return {k: sum(v) / len(v) for k, v in cells.items()}


def _table(rows: list[dict], field: str, strategies: list[str], fmt: str) -> str:
    means = aggregate(rows, field)
    letters = sorted({r["category"] for r in rows}, key=lambda c: (c == taxonomy.OTHER, c))
    head = "| category | " + " | ".join(strategies) + " |\n|---|" + "---:|" * len(strategies) + "\n"
    body = ""
    for letter in letters:
        cat = taxonomy.get(letter)
        label = f"{letter} {cat.short}" if cat else letter
        cells = [format(means[(letter, s)], fmt) if (letter, s) in means else "-" for s in strategies]
        body += f"| {label} | " + " | ".join(cells) + " |\n"
    overall = aggregate([{**r, "category": "all"} for r in rows], field)
    body += "| **all** | " + " | ".join(format(overall[("all", s)], fmt) if ("all", s) in overall else "-"
                                        for s in strategies) + " |\n"
    return head + body


def write_report(rows: list[dict], out: Path, meta: dict) -> Path:
    strategies = [s for s in meta["strategies"] if any(r["strategy"] == s for r in rows)]
    n = meta["n"]
    prompts = len({r["prompt_id"] for r in rows})
    cap = (f"answers capped at {meta['max_tokens']} tokens each (a k-at-once request gets k x {meta['max_tokens']})"
           if meta.get("max_tokens") else "no max_tokens cap")
    lines = [
        "# taskdiv-chat bench",
        "",
        f"- backend: {meta['backend']} (model {meta['model']}); judge: {meta['judge']}",
        f"- {prompts} prompts x {len(strategies)} strategies, n = {n} answers each; {cap}",
        f"- last run: {meta['last_run_items']} prompt/strategy sets in {meta['last_run_seconds']:.0f} s"
        + (f"; {len(meta['errors'])} failed (rerun to retry)" if meta.get("errors") else ""),
        f"- {sum(r.get('completion_tokens') or 0 for r in rows)} tokens generated in all",
        "",
        f"## Mean functionally unique answers (out of {n})",
        "",
        "A wants 1 (one correct answer); D wants the same final answer with different strategies; "
        "every other category wants as many as possible.",
        "",
        _table(rows, "unique", strategies, ".2f"),
        "## Vocabulary diversity (1 - Jaccard, mean over pairs)",
        "",
        _table(rows, "vocabulary_diversity", strategies, ".3f"),
        "## Embedding diversity (1 - cosine, mean over pairs)",
        "",
        _table(rows, "embedding_diversity", strategies, ".3f"),
        "## Compression ratio (gzip of the n answers; higher = more repetitive)",
        "",
        _table(rows, "compression_ratio", strategies, ".2f"),
    ]
    agree_rows = [{**r, "agree": None if r.get("answers_agree") is None else float(r["answers_agree"])}
                  for r in rows if r["category"] in ("A", "D")]
    if agree_rows:
        lines += ["## Final answers agree (share of sets, A and D)", "", _table(agree_rows, "agree", strategies, ".0%")]
    if any(r.get("quality") is not None for r in rows):
        lines += ["## Checklist quality (1-5, mean)", "", _table(rows, "quality", strategies, ".2f")]
    chart = write_chart(rows, out / "chart.png", strategies, n)
    lines += ["## Chart", "", f"![mean unique answers]({chart.name})" if chart else f"_{NO_CHART}_", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


NO_CHART = "no chart: matplotlib is not installed (pip install 'taskdiv-chat[bench]')"


def write_chart(rows: list[dict], path: Path, strategies: list[str], n: int) -> Path | None:
    """The bar chart of mean unique answers; None when matplotlib (the `bench` extra) is missing."""
    try:
        import matplotlib
    except ImportError:
        path.unlink(missing_ok=True)  # a chart of an earlier run would not match this report
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = aggregate(rows, "unique")
    letters = sorted({r["category"] for r in rows}, key=lambda c: (c == taxonomy.OTHER, c))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(letters) + 2), 4), dpi=110)
    width = 0.8 / max(1, len(strategies))
    for k, strategy in enumerate(strategies):
        xs = [i + (k - (len(strategies) - 1) / 2) * width for i in range(len(letters))]
        ax.bar(xs, [means.get((c, strategy), 0) for c in letters], width, label=strategy)
    ax.set_xticks(range(len(letters)))
    ax.set_xticklabels([f"{c}\n{taxonomy.get(c).short}" if taxonomy.get(c) else c for c in letters])
    ax.set_ylim(0, n + 0.3)
    ax.set_ylabel(f"mean unique answers (of {n})")
    ax.set_title("Functionally unique answers per category and strategy")
    ax.legend(fontsize=8, ncol=min(5, len(strategies)), loc="upper center", bbox_to_anchor=(0.5, -0.18))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
