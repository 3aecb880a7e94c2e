"""`classify`: which task category a prompt (or a JSON-lines file of prompts) belongs to."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from ..config import METHODS
from .common import add_backend_arg, add_raw_arg, fail, note, read_text, shown, to_terminal

ADDED = ("category", "confidence", "method")
BATCH = 64  # local: prompts embedded together
CONCURRENCY = 4  # llm/auto: requests in flight


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("classify", help="print the task category (A-H or other) of a prompt",
                            description="Classify a prompt into one of the eight task categories (or 'other').")
    parser.add_argument("prompt", nargs="?", help="the prompt (read from stdin when omitted and no --jsonl)")
    parser.add_argument("--method", choices=METHODS,
                        help="local: offline embeddings; llm: ask the chat model; auto: local, refined by a capable "
                             "remote model (default: classify.method in the config)")
    parser.add_argument("--jsonl", metavar="FILE",
                        help="classify every line of a JSON-lines file with a 'prompt' field ('-' for stdin); each line "
                             "is written back with category, confidence and method added")
    parser.add_argument("-o", "--output", metavar="FILE", help="with --jsonl: write here instead of stdout")
    parser.add_argument("--json", action="store_true", help="one prompt: print a JSON object")
    add_backend_arg(parser)
    add_raw_arg(parser)
    parser.set_defaults(func=cmd_classify)


def cmd_classify(args) -> int:
    from ..config import check_api_keys, load_settings

    settings = load_settings(getattr(args, "config", None))
    name, config = settings.backend(getattr(args, "backend", None))
    method = args.method or settings.classify.method
    if method == "llm" or (method == "auto" and config.is_capable):
        check_api_keys(settings, getattr(args, "config", None), [name])
    if args.output and not args.jsonl:
        return fail("-o/--output goes with --jsonl FILE")
    if args.jsonl:
        if args.prompt is not None:
            return fail("give either a PROMPT or --jsonl FILE, not both")
        return _classify_file(args, settings, name, method)
    prompt = read_text(args.prompt)
    if prompt is None:
        return 2
    if not prompt.strip():
        return fail("nothing to classify: give a prompt or pipe one on stdin")
    result = asyncio.run(_classify_all([prompt], settings, name, method))[0]
    if args.json:
        print(json.dumps({**result.to_dict(), "name": result.category.name if result.category else None}))
    else:
        name_text = result.category.name if result.category else "outside the taxonomy"
        print(f"{result.letter}  {name_text}  (confidence {result.confidence:.2f}, {result.method})")
        if result.detail:  # may quote the model
            print(f"   {shown(result.detail, to_terminal(args))}")
    return 0


async def _classify_all(prompts: list[str], settings, backend_name: str, method: str) -> list:
    """Classifications in input order: local in batches, llm/auto a few at a time."""
    from ..classify import classify_turn, get_local_classifier

    if method == "local" or (method == "auto" and not settings.backends[backend_name].is_capable):
        classifier = get_local_classifier()
        out = []
        for start in range(0, len(prompts), BATCH):
            out += await asyncio.to_thread(classifier.classify_many, prompts[start:start + BATCH])
        return out

    from ..backends import make_backend

    backend = make_backend(settings, backend_name)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(text: str):
        async with gate:
            return await classify_turn(text, settings=settings, backend_name=backend_name, backend=backend,
                                       method=method)

    try:
        return await asyncio.gather(*(one(p) for p in prompts))
    finally:
        await backend.aclose()


def _classify_file(args, settings, backend_name: str, method: str) -> int:
    try:
        text = sys.stdin.read() if args.jsonl == "-" else Path(args.jsonl).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return fail(f"cannot read {args.jsonl}: {exc}")
    lines = text.splitlines()
    rows: dict[int, dict] = {}  # line index -> parsed row with a prompt
    problems = 0
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            row, why = None, f"not JSON ({exc.msg})"
        except RecursionError:
            row, why = None, "not JSON (nested too deeply)"
        else:
            why = "no 'prompt' text field"
        if isinstance(row, dict) and isinstance(row.get("prompt"), str):
            rows[index] = row
        else:
            problems += 1
            note(f"{args.jsonl}:{index + 1}: {why}; line copied unchanged")

    results = asyncio.run(_classify_all([r["prompt"] for r in rows.values()], settings, backend_name, method))
    out_lines = list(lines)
    for (index, row), result in zip(rows.items(), results):
        for key in ADDED:  # a field we replace is kept, not lost
            if key in row:
                row[f"{key}_input"] = row.pop(key)
        row.update(category=result.letter, confidence=round(result.confidence, 4), method=result.method)
        out_lines[index] = json.dumps(row, ensure_ascii=False)
    output = "".join(line + "\n" for line in out_lines)

    if args.output:
        target = Path(args.output)
        try:  # whole file or nothing: a temp file beside it, then rename
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent or ".", delete=False,
                                             prefix=f".{target.name}.", suffix=".tmp") as tmp:
                tmp.write(output)
            os.replace(tmp.name, target)
        except OSError as exc:
            return fail(f"cannot write {target}: {exc}")
        print(f"classified {len(rows)} prompts -> {target}", file=sys.stderr)
    elif to_terminal(args):
        from ..sanitize import json_for_display

        sys.stdout.write(shown(json_for_display(output), True))  # lines copied unchanged may be anything
    else:
        sys.stdout.write(output)
    return 1 if problems else 0
