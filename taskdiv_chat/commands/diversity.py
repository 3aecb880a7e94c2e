"""`sample`, `judge`, `bench` and `score`: the diversity engine from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from ..config import METHODS, STRATEGIES
from .common import (
    add_backend_arg,
    add_raw_arg,
    fail,
    note,
    read_text,
    settings_and_backend,
    shown,
    store_errors,
    to_terminal,
)


def register(subparsers) -> None:
    p = subparsers.add_parser("sample", help="generate n answers to a prompt and report how they differ")
    p.add_argument("prompt", help="the user prompt")
    p.add_argument("-n", type=_positive, default=5, help="how many answers (default 5)")
    p.add_argument("--strategy", choices=STRATEGIES, help="regeneration strategy (default: [regenerate] strategy)")
    p.add_argument("--judge", choices=METHODS, help="functional-equivalence judge (default: [judge] method)")
    p.add_argument("--category", metavar="LETTER", help="use this category (A-H or other) instead of classifying")
    p.add_argument("--max-tokens", type=_positive, help="cap each answer at this many tokens")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--no-save", action="store_true", help="do not record the answers in the conversation store")
    add_backend_arg(p)
    add_raw_arg(p)
    p.set_defaults(func=sample)

    p = subparsers.add_parser("judge", help="judge pairs of answers: JSON lines in, each with 'equivalent' added")
    p.add_argument("--pairs", required=True, metavar="FILE",
                   help="JSON lines with prompt, category (letter, optional), response_1, response_2 (- for stdin)")
    p.add_argument("--judge", choices=METHODS, help="which judge (default: [judge] method)")
    add_backend_arg(p)
    add_raw_arg(p)
    p.set_defaults(func=judge)

    p = subparsers.add_parser("bench", help="the paper's experiment: every prompt x strategy, n answers, metrics")
    p.add_argument("--prompts", metavar="FILE",
                   help="JSONL with prompt and an optional category (ours or NoveltyBench's); default: the built-in set")
    p.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES), metavar="NAME",
                   help=f"strategies to run (default: all: {' '.join(STRATEGIES)})")
    p.add_argument("-n", type=_positive, default=5, help="answers per prompt and strategy (default 5, the paper's)")
    _add_judge_args(p)
    p.add_argument("--concurrency", type=_positive, default=4,
                   help="prompt/strategy sets in flight at once (default 4; lowered when the server interrupts)")
    p.add_argument("--out", metavar="DIR", help="results directory (default: a folder per run setup under the data dir)")
    p.add_argument("--quality", action="store_true", help="also score checklist quality (by the judge backends)")
    p.add_argument("--max-tokens", type=_positive, default=1024, help="cap per answer (default 1024, the paper's)")
    p.add_argument("--temperature", type=_unit_float(2.0), default=0.5,
                   help="sampling temperature (default 0.5, the paper's for open models; it used 1.0 for GPT)")
    p.add_argument("--top-p", type=_unit_float(1.0), default=0.9, help="nucleus sampling (default 0.9, the paper's)")
    p.add_argument("--additions", action="store_true",
                   help="add our prompt extensions (key elements already used, D's answer line); default: the "
                        "paper's prompts only")
    p.add_argument("--self-classify", action="store_true",
                   help="anchor with the model's own category (judged with the given one); reports its accuracy")
    p.add_argument("--retries", type=_non_negative, default=2, help="extra tries for a failed set (default 2)")
    add_backend_arg(p)
    p.set_defaults(func=bench)

    p = subparsers.add_parser("score", help="score saved generations (NoveltyBench's files or bench output)")
    p.add_argument("file", metavar="FILE", help="JSONL: id, prompt, generations (NoveltyBench), or results.jsonl")
    _add_judge_args(p)
    p.add_argument("--out", metavar="DIR", help="where scores.jsonl and report.md go (default: under the data dir)")
    p.set_defaults(func=score)


def _add_judge_args(p) -> None:
    p.add_argument("--judge", choices=METHODS, help="functional-equivalence judge (default: [judge] method)")
    p.add_argument("--judge-backend", action="append", default=[], metavar="NAME",
                   help="judge with this backend's model (repeatable: unique counts are averaged over the judges)")


def _unit_float(top: float):
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if not 0 <= number <= top:
            raise argparse.ArgumentTypeError(f"must be between 0 and {top:g}: {value}")
        return number
    return parse


def _non_negative(value: str) -> int:
    return 0 if value.strip() == "0" else _positive(value)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return number


# --- sample ---------------------------------------------------------------------------------


async def _classify(prompt: str, settings, backend_name: str, override: str | None):
    from ..classify import classify_turn

    return await classify_turn(prompt, settings=settings, backend_name=backend_name, override=override)


async def _sample(args, out) -> int:
    from .. import taxonomy
    from ..backends import make_backend
    from ..backends.base import BackendError
    from ..diversity.generate import generate_variants
    from ..diversity.judge import close_judge, make_judge
    from ..diversity.report import analyze
    from ..sanitize import DisplayStream, json_for_display

    settings, name = settings_and_backend(args)
    if read_text(args.prompt) is None:
        return 2
    terminal = to_terminal(args, out)  # answers on a terminal go through for_display; a pipe gets them exact
    strategy = args.strategy or settings.regenerate.strategy
    try:
        classification = await _classify(args.prompt, settings, name, args.category)
    except ValueError as exc:
        return fail(str(exc), 2)
    category = taxonomy.get(classification.letter)
    backend = make_backend(settings, name)
    judge = make_judge(settings, args.judge, settings.judge.backend or name)
    show = not args.json
    if show:
        out.write(f"category: {classification.label} ({classification.method}, {classification.confidence:.2f})"
                  f"   strategy: {strategy}   backend: {name} ({backend.model})\n")

    store = writer_turn = None
    variant_ids: list[int] = []
    if not args.no_save:
        from ..store import Store

        try:  # a locked or read-only history costs the saving, not the answers
            store = Store(secrets=settings.secret_values())
            conversation = store.create_conversation(args.prompt[:60])
            writer_turn = store.add_user_turn(conversation, args.prompt, None, category=classification.to_dict())
        except store_errors() as exc:
            note(f"the answers are not saved in the history: {exc}")
            store = _close_quietly(store)

    system = strategy.endswith("-system")
    state = {"current": -1}
    screen = DisplayStream() if terminal else None

    def on_text(index: int, delta: str) -> None:
        if not show:
            return
        if index != state["current"]:
            state["current"] = index
            heading = "k-at-once reply" if system else f"answer {index + 1}"
            out.write(f"{screen.flush() if screen else ''}\n── {heading} ──\n")
        out.write(screen.feed(delta) if screen else delta)
        out.flush()

    def on_answer(index: int, answer) -> None:
        nonlocal store
        if store is None:
            return
        try:
            params = {"max_tokens": args.max_tokens} if args.max_tokens else {}
            writer = store.start_variant(writer_turn, strategy=strategy, backend=name, model=backend.model,
                                         params=params or None)
            writer.append(answer.text)
            usage = answer.completion.usage
            writer.finish(answer.completion.finish_reason or "stop",
                          usage=None if usage is None else {"prompt_tokens": usage.prompt_tokens,
                                                            "completion_tokens": usage.completion_tokens},
                          timings={"first_token_s": answer.completion.first_token_s,
                                   "total_s": answer.completion.total_s})
            variant_ids.append(writer.variant_id)
        except store_errors() as exc:
            note(f"answer {index + 1} and the rest are not saved in the history: {exc}")
            store = _close_quietly(store)

    try:
        answers = await generate_variants(backend, strategy, history=[], prompt=args.prompt, earlier=[],
                                          category=category, n=args.n, on_text=on_text, on_answer=on_answer,
                                          max_tokens=args.max_tokens)
        if show:
            out.write(f"{screen.flush() if screen else ''}\n")
            if system:
                out.write(f"\nsplit into {len(answers)} answers:\n")
                for i, a in enumerate(answers, 1):
                    out.write(f"  {i}. {shown(' '.join(a.text.split())[:90], terminal)}\n")
        texts = [a.text for a in answers]
        report = await analyze(args.prompt, category, texts, judge)
        if store is not None and variant_ids:
            try:
                store.save_metrics(variant_ids[-1], report.to_dict())
            except store_errors() as exc:
                note(f"the report is not saved in the history: {exc}")
    except BackendError as exc:
        saved = f" ({len(variant_ids)} answers were saved)" if variant_ids else ""
        return fail(f"{exc}{saved}")
    finally:
        await close_judge(judge)
        await backend.aclose()
        _close_quietly(store)

    if args.json:
        text = json.dumps({
            "prompt": args.prompt, "category": classification.to_dict(), "strategy": strategy,
            "backend": name, "model": backend.model,
            "answers": [{"text": a.text, "finish_reason": a.completion.finish_reason, "trimmed": a.trimmed,
                         "note": a.note} for a in answers],
            "report": report.to_dict(), "saved_variant_ids": variant_ids,
        }, ensure_ascii=False, indent=2) + "\n"
        out.write(json_for_display(text) if terminal else text)
        return 0
    out.write(shown(_format_report(report), terminal) + "\n")  # final answers and reasons quote the model
    if variant_ids:
        out.write(f"saved: {len(variant_ids)} answers in the conversation store\n")
    return 0


def _close_quietly(store) -> None:
    """Close a store that failed (its error was reported); None, for `store = _close_quietly(store)`."""
    if store is not None:
        try:
            store.close()
        except store_errors():
            pass
    return None


def _format_report(report) -> str:
    g = report.generic
    groups = " ".join("[" + " ".join(str(i + 1) for i in group) + "]" for group in report.groups)
    lines = ["", "report",
             f"  groups: {groups}   functionally unique: {report.unique}/{report.n}"]
    if report.newest_is_new is not None:
        lines.append("  newest answer: " + ("new" if report.newest_is_new
                                            else f"repeats answer {report.newest_duplicates + 1}"))
    if report.n >= 2:
        lines.append(f"  vocabulary diversity {g['vocabulary_diversity']:.3f} · embedding diversity "
                     f"{g['embedding_diversity']:.3f} · compression ratio {g['compression_ratio']:.2f}")
    if report.category in ("A", "D"):
        finals = ", ".join(f or "?" for f in report.final_answers)
        agree = {True: "agree", False: "DIFFER", None: "unknown"}[report.answers_agree]
        lines.append(f"  final answers: {finals} ({agree})")
    lines.append(f"  verdict: {report.status.upper()}  {report.reason}   [{report.badge_text}]")
    lines.append(f"  judge: {report.judge}")
    return "\n".join(lines)


def sample(args) -> int:
    return asyncio.run(_sample(args, sys.stdout))


# --- judge ----------------------------------------------------------------------------------


def _read_pair_lines(source: str) -> list[dict]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source}: cannot read: {exc}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{source}:{number}: invalid JSON: {exc}") from None
        except RecursionError:
            raise ValueError(f"{source}:{number}: invalid JSON: nested too deeply") from None
        if not isinstance(row, dict) or not isinstance(row.get("response_1"), str) \
                or not isinstance(row.get("response_2"), str):
            raise ValueError(f"{source}:{number}: needs string fields response_1 and response_2")
        rows.append(row)
    return rows


async def _judge(args, out) -> int:
    from ..diversity.judge import close_judge, make_judge
    from ..sanitize import json_for_display

    try:
        rows = _read_pair_lines(args.pairs)
    except ValueError as exc:
        return fail(str(exc), 2)
    settings, name = settings_and_backend(args)
    judge = make_judge(settings, args.judge, getattr(args, "backend", None) or settings.judge.backend)
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault((str(row.get("prompt", "")), row.get("category")), []).append(i)
    verdicts: list[bool | None] = [None] * len(rows)
    try:
        for (prompt, category), indices in groups.items():
            results = await judge.judge_pairs(prompt, category, [(rows[i]["response_1"], rows[i]["response_2"])
                                                                 for i in indices])
            for i, value in zip(indices, results):
                verdicts[i] = value
    finally:
        await close_judge(judge)
    terminal = to_terminal(args, out)
    for row, value in zip(rows, verdicts):
        line = json.dumps({**row, "equivalent": value}, ensure_ascii=False) + "\n"
        out.write(json_for_display(line) if terminal else line)
    return 0


def judge(args) -> int:
    from ..backends.base import BackendError

    try:
        return asyncio.run(_judge(args, sys.stdout))
    except BackendError as exc:
        return fail(str(exc))


# --- bench ----------------------------------------------------------------------------------


def bench(args) -> int:
    from ..backends.base import BackendError
    from ..diversity.bench import BUILTIN_PROMPTS, BenchInputError, BenchSettings, read_prompts, run_bench
    from ..diversity.bench_report import NO_CHART
    from ..paths import data_dir, ensure_data_dir

    settings, name = settings_and_backend(args)
    source = Path(args.prompts) if args.prompts else BUILTIN_PROMPTS
    try:
        prompts = read_prompts(source)
    except BenchInputError as exc:
        return fail(str(exc), 2)
    if not args.out:
        ensure_data_dir()  # 0700 when the bench run is what creates it
    out_dir = Path(args.out) if args.out else data_dir() / "bench" / f"{source.stem}-{name}-n{args.n}"
    run = BenchSettings(n=args.n, max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                        additions=args.additions, self_classify=args.self_classify, quality=args.quality,
                        strategies=tuple(args.strategies), retries=args.retries, concurrency=args.concurrency,
                        judge_method=args.judge, judge_backends=tuple(args.judge_backend))
    print(f"bench: {len(prompts)} prompts x {len(args.strategies)} strategies, n={args.n}, "
          f"max_tokens={args.max_tokens}, temperature={args.temperature}, top_p={args.top_p}, "
          f"additions={'on' if args.additions else 'off'}; results in {out_dir}", file=sys.stderr)
    try:
        report, failed = asyncio.run(run_bench(settings, prompts, out_dir, run, backend_name=name,
                                               prompt_source=str(source)))
    except BackendError as exc:
        return fail(f"{exc} (finished sets are kept in {out_dir}; rerun to resume)")
    except ValueError as exc:  # BenchInputError too
        return fail(str(exc), 2)
    chart = report.parent / "chart.png"
    print(f"report: {report}\nchart: {chart if chart.exists() else NO_CHART}")
    if failed:
        return fail(f"{failed} sets failed after their retries and were not scored (see {report}); rerun to retry")
    return 0


def score(args) -> int:
    from ..backends.base import BackendError
    from ..diversity.score import run_score
    from ..paths import data_dir, ensure_data_dir

    settings, _ = settings_and_backend(args)
    if not args.out:
        ensure_data_dir()  # 0700 when the score run is what creates it
    out_dir = Path(args.out) if args.out else data_dir() / "score" / Path(args.file).stem
    try:
        report = asyncio.run(run_score(settings, args.file, out_dir, judge_method=args.judge,
                                       judge_backends=tuple(args.judge_backend)))
    except BackendError as exc:
        return fail(str(exc))
    except ValueError as exc:  # BenchInputError, an unknown judge
        return fail(str(exc), 2)
    print(f"scores: {report.parent / 'scores.jsonl'}\nreport: {report}")
    return 0
