"""The paper's experiment on any OpenAI-compatible server (or the embedded model).

For every prompt and every strategy: n answers (k = 5, temperature 0.5, top-p 0.9, 1024
tokens by default, as the paper ran its open models), judged into functionally unique
groups by every judge (the count averaged over judges, as the paper averages three),
with the generic metrics and, optionally, checklist quality scored by the judge backends.
The anchored prompts are the category's instruction alone unless `additions` is on.

Results go to OUT/results.jsonl, one line per (prompt, strategy). A set whose answers
came back empty, with an error or from an interrupted stream is recorded as failed,
never scored, retried within the run and again on the next run; a rerun skips only the
sets that succeeded. OUT/run.json holds everything needed to reproduce the run; a
rerun with other settings is refused. OUT/report.md and the charts come from bench_report.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from .. import taxonomy
from ..backends.base import BackendError, DisconnectedError
from ..config import STRATEGIES, Settings

BUILTIN_PROMPTS = Path(__file__).resolve().parent.parent / "data" / "bench_prompts.jsonl"
RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"
# The paper's settings: 5 answers, top-p 0.9, 1024 max tokens; temperature 1.0 for GPT and
# Gemini, 0.5 for Claude, Llama and Mistral (the open models a local server runs).
DEFAULT_N = 5
DEFAULT_MAX_TOKENS = 1024
DEFAULT_TEMPERATURE = 0.5
DEFAULT_TOP_P = 0.9
DEFAULT_RETRIES = 2  # extra tries for a failed set within one run
OK_FINISH = ("stop", "length")  # any other finish reason (none at all, "cancelled", "abort") is a failure

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


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchInputError(f"{path}: cannot read: {exc}") from None


def read_prompts(path: str | Path) -> list[BenchPrompt]:
    """Our JSONL ({"id", "prompt", "category": "A".."H"}) or NoveltyBench's ({"id", "prompt", "category": "Creativity"}).

    A plain text file (one prompt a line) works too. Lines starting with # are skipped.
    """
    path = Path(path)
    lines = read_lines(path)
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


def prompt_set_hash(prompts: list[BenchPrompt]) -> str:
    """What identifies a prompt set: ids, texts and categories, in order."""
    data = json.dumps([[p.id, p.prompt, p.category] for p in prompts], ensure_ascii=False)
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]


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


async def quality_scores(backends: list, prompt: str, answers: list[str],
                         criteria: dict[str, str]) -> list[float | None]:
    """Checklist quality of each answer, averaged over the scoring backends; `criteria` caches
    each backend's checklist for the prompt (key: backend name)."""
    per_backend: list[list[int | None]] = []
    for backend in backends:
        if backend.name not in criteria:
            criteria[backend.name] = await checklist(backend, prompt)
        per_backend.append([await score_answer(backend, prompt, criteria[backend.name], a) for a in answers])
    out: list[float | None] = []
    for scores in zip(*per_backend):
        valid = [s for s in scores if s is not None]
        out.append(sum(valid) / len(valid) if valid else None)
    return out


# --- failures ------------------------------------------------------------------------------


class FailedAnswer(BackendError):
    """An answer that cannot be scored: empty, or its stream ended without a finish reason."""

    kind = "failed-answer"

    def __init__(self, message: str, interrupted: bool = False):
        super().__init__(message)
        self.interrupted = interrupted


def answer_failure(text: str, finish_reason: str | None) -> str | None:
    """Why an answer cannot be scored, or None when it can."""
    if finish_reason not in OK_FINISH:
        # llama.cpp's server ends an overlapped stream with [DONE] and no finish reason, status 200
        return f"interrupted stream (finish reason {finish_reason or 'none'})"
    if not text.strip():
        return "empty answer"
    return None


class AdaptiveLimit:
    """At most `limit` sets in flight; halved (down to 1) when a server interrupts a stream
    while others were in flight, as llama.cpp's server does to overlapping requests."""

    def __init__(self, limit: int):
        self.limit = self.start = max(1, limit)
        self.active = 0
        self.interruptions = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> "AdaptiveLimit":
        async with self._changed:
            await self._changed.wait_for(lambda: self.active < self.limit)
            self.active += 1
        return self

    async def __aexit__(self, *exc) -> None:
        async with self._changed:
            self.active -= 1
            self._changed.notify_all()

    def interrupted(self) -> None:
        """Called once the interrupted set has left: `active` counts the sets that overlapped it."""
        self.interruptions += 1
        if self.active >= 1:
            self.limit = max(1, min(self.limit, self.active + 1) // 2)


# --- the run -------------------------------------------------------------------------------


@dataclass
class BenchSettings:
    """What a run measures; stored in run.json and checked on resume."""

    n: int = DEFAULT_N
    max_tokens: int | None = DEFAULT_MAX_TOKENS
    temperature: float | None = DEFAULT_TEMPERATURE
    top_p: float | None = DEFAULT_TOP_P
    additions: bool = False  # our prompt additions (taxonomy.ADDITIONS); off = the paper's prompts
    self_classify: bool = False  # anchor with the model's own category, judge with the given one
    quality: bool = False
    strategies: tuple[str, ...] = STRATEGIES
    retries: int = DEFAULT_RETRIES
    concurrency: int = 4
    judge_method: str | None = None  # with no judge_backends: local | llm | auto
    judge_backends: tuple[str, ...] = ()  # LLM judges, averaged

    def sampling(self) -> dict:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p}


def load_results(path: Path) -> list[dict]:
    """Every record, in file order (a later record of a set replaces an earlier one)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line torn by an interrupted run: redone on the next run
    return out


def latest(records: list[dict]) -> dict[tuple[str, str], dict]:
    """The last record of each (prompt id, strategy)."""
    return {(r["prompt_id"], r["strategy"]): r for r in records}


async def _categorize(prompts: list[BenchPrompt], settings: Settings, backend_name: str,
                      known: dict[str, str], self_classify: bool) -> dict[str, dict]:
    """prompt id -> {"category", "source", "self"}: the given category (or the classified one when none
    is given) and, with self_classify, the model's own label. Classified once, reused on resume."""
    out: dict[str, dict] = {}
    for p in prompts:
        info = {"category": p.category, "source": "given", "self": None}
        need = p.category is None or self_classify
        if need and p.id in known:
            label = known[p.id]
        elif need:
            from ..classify import classify_turn  # imported only when needed

            result = await classify_turn(p.prompt, settings=settings, backend_name=backend_name,
                                         method="llm" if self_classify else None)
            label = result.letter or taxonomy.OTHER
        if p.category is None:
            info.update(category=label, source="classified")
        if self_classify:
            info["self"] = label
        out[p.id] = info
    return out


def _protocol(settings: BenchSettings, backend: str, model: str, judges: list[str]) -> dict:
    """The settings two runs must share for their results to sit in one table."""
    return {"backend": backend, "model": model, "n": settings.n, "max_tokens": settings.max_tokens,
            "temperature": settings.temperature, "top_p": settings.top_p, "additions": settings.additions,
            "self_classify": settings.self_classify, "judges": judges}


def _check_resume(out: Path, protocol: dict) -> None:
    path = out / RUN_FILE
    if not path.exists():
        return
    try:
        before = json.loads(path.read_text(encoding="utf-8")).get("protocol")
    except ValueError:
        return
    if before and before != protocol:
        changed = ", ".join(f"{k} {before.get(k)!r} -> {v!r}" for k, v in protocol.items() if before.get(k) != v)
        raise BenchInputError(f"{out} holds a run with other settings ({changed}); "
                              "choose another --out to start a new run")


async def run_bench(settings: Settings, prompts: list[BenchPrompt], out_dir: str | Path, bench: BenchSettings, *,
                    backend_name: str | None = None, prompt_source: str = "",
                    stream: TextIO | None = None) -> tuple[Path, int]:
    """Run (or resume) the benchmark; returns (report path, sets still failed)."""
    from ..backends import make_backend
    from .bench_report import write_report
    from .generate import generate_variants
    from .score import close_judges, make_judges, score_set

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / RESULTS_FILE
    name, config = settings.backend(backend_name)
    backend = make_backend(settings, name)
    judges = make_judges(settings, bench.judge_method, bench.judge_backends, name)
    try:
        judge_names = [j.describe() for j in judges]
        protocol = _protocol(bench, name, backend.model, judge_names)
        _check_resume(out, protocol)
        previous = latest(load_results(results_path))
        known = {pid: r["self_category"] if bench.self_classify else r["category"]
                 for (pid, _), r in previous.items()
                 if (r.get("self_category") if bench.self_classify else r.get("category_source") == "classified")}
        categories = await _categorize(prompts, settings, name, known, bench.self_classify)
        work = [(p, s) for p in prompts for s in bench.strategies
                if previous.get((p.id, s), {}).get("status") != "ok"]
        scorers = [j.backend for j in judges if hasattr(j, "backend")] or [backend]
        report_notes = _notes(judges, scorers, backend, name, bench)
        progress = Progress(len(work), stream)
        write_lock = asyncio.Lock()
        if config.kind == "local":  # one llama.cpp worker: interleaved requests would only defeat its prompt cache
            bench.concurrency = 1
        limit = AdaptiveLimit(bench.concurrency)
        criteria: dict[str, dict[str, str]] = {}
        still_failed: list[str] = []

        async def attempt(p: BenchPrompt, strategy: str, info: dict) -> dict:
            anchor = taxonomy.get(info["self"] if bench.self_classify else info["category"])
            judged_as = taxonomy.get(info["category"])
            texts: list[str] = []
            finishes: list[str | None] = []

            def check(index: int, answer) -> None:
                reason = answer_failure(answer.text, answer.completion.finish_reason)
                if reason:
                    raise FailedAnswer(f"answer {index + 1}: {reason}", interrupted=reason.startswith("interrupted"))

            async with limit:
                started = time.monotonic()
                answers = await generate_variants(backend, strategy, history=[], prompt=p.prompt, earlier=[],
                                                  category=anchor, n=bench.n, on_answer=check,
                                                  additions=bench.additions, **bench.sampling())
                texts = [a.text for a in answers]
                if len(texts) < bench.n:
                    raise FailedAnswer(f"the k-at-once reply held {len(texts)} of {bench.n} answers")
                finishes = [a.completion.finish_reason for a in answers]
                scored = await score_set(p.prompt, judged_as, texts, judges)
                if bench.quality:
                    per_answer = await quality_scores(scorers, p.prompt, texts, criteria.setdefault(p.id, {}))
                    valid = [q for q in per_answer if q is not None]
                    scored["quality"] = sum(valid) / len(valid) if valid else None
                    scored["quality_scores"] = per_answer
                seconds = time.monotonic() - started
            calls = _calls(answers)
            return {**scored, "answers": texts, "finish_reasons": finishes,
                    "truncated": sum(f == "length" for f in finishes),
                    "completion_tokens": sum(a.completion.usage.completion_tokens for a in calls
                                             if a.completion.usage),
                    "notes": sorted({a.note for a in answers if a.note}), "seconds": round(seconds, 2)}

        async def one(p: BenchPrompt, strategy: str) -> None:
            info = categories[p.id]
            base = {"prompt_id": p.id, "prompt": p.prompt, "category": info["category"],
                    "category_source": info["source"], "self_category": info["self"],
                    "anchored_with": info["self"] if bench.self_classify else info["category"],
                    "strategy": strategy, "n": bench.n}
            errors: list[str] = []
            for _ in range(1 + bench.retries):
                try:
                    record = {**base, "status": "ok", **await attempt(p, strategy, info), "errors": errors}
                    break
                except BackendError as exc:
                    errors.append(str(exc))
                    if getattr(exc, "interrupted", False) or isinstance(exc, DisconnectedError):
                        limit.interrupted()
            else:
                record = {**base, "status": "failed", "errors": errors}
                still_failed.append(f"{p.id}/{strategy}: {errors[-1]}")
            async with write_lock:
                with results_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
            progress.step(f"{p.id} {strategy}" + ("" if record["status"] == "ok" else " FAILED"))

        started = time.monotonic()
        if work:  # load the embedding model before requests are in flight, not in the middle of them
            from ..embeddings import get_model

            await asyncio.to_thread(get_model)
        await asyncio.gather(*(one(p, s) for p, s in work))
    finally:
        await close_judges(judges)
        await backend.aclose()
    meta = {
        "protocol": protocol, "strategies": list(bench.strategies), "n": bench.n, "backend": name, "model": backend.model, "base_url": config.base_url,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(bench).items()},
        "additions": list(taxonomy.ADDITIONS) if bench.additions else [],
        "layout": getattr(backend, "regen_layout", "turns"),
        "prompt_source": prompt_source, "prompt_set_hash": prompt_set_hash(prompts), "prompts": len(prompts),
        "judges": judge_names, "quality_scorers": [f"{b.name}/{b.model}" for b in scorers] if bench.quality else [],
        "notes": report_notes,
        "last_run": {"seconds": round(time.monotonic() - started, 1), "sets": len(work),
                     "concurrency": {"start": limit.start, "end": limit.limit,
                                     "interrupted_streams": limit.interruptions},
                     "still_failed": still_failed},
    }
    (out / RUN_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    ids = {p.id for p in prompts}
    rows = [r for (pid, s), r in latest(load_results(results_path)).items() if pid in ids and s in bench.strategies]
    report_path = write_report(rows, out, meta)
    for line in still_failed:
        (stream or sys.stderr).write(f"bench: failed after {1 + bench.retries} tries: {line}\n")
    return report_path, sum(r["status"] != "ok" for r in rows)


def _notes(judges: list, scorers: list, backend, name: str, bench: BenchSettings) -> list[str]:
    """Warnings the report must carry about who judged what."""
    notes = []
    for judge in judges:
        other = getattr(judge, "backend", None)
        if other is not None and (other.name == name or (other.model == backend.model and
                                                         getattr(other, "base_url", 0) == getattr(backend, "base_url", 1))):
            notes.append(f"the generator judges itself ({judge.describe()}): the paper judges with other models")
    if bench.quality and scorers == [backend]:
        notes.append("checklist quality is scored by the generator itself (no LLM judge backend was given)")
    return notes


def _calls(answers):
    """One entry per request (the k answers of a k-at-once call share one completion)."""
    seen, out = set(), []
    for a in answers:
        if id(a.completion) not in seen:
            seen.add(id(a.completion))
            out.append(a)
    return out
