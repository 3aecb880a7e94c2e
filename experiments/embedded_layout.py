"""Which message layout makes the embedded 135M model follow task-anchored regeneration best?

For each layout (diversity.strategies.LAYOUTS, plus "before": the layout and request text used
until the faithful prompts, "Can you generate a different answer?" + instruction + additions),
n answers per built-in G (stories) and D (math) prompt with anchored-icr, judged by the local
judge. Prints, per layout: functionally unique stories out of n, how often a regenerated answer
echoes the request (G and D), and whether D's final answers agree.

    PYTHONPATH=. nice python experiments/embedded_layout.py --n 4 --max-tokens 100 --out /tmp/layout.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from taskdiv_chat import taxonomy
from taskdiv_chat.backends.local import LocalBackend
from taskdiv_chat.config import Settings
from taskdiv_chat.diversity import strategies
from taskdiv_chat.diversity.bench import BUILTIN_PROMPTS, read_prompts
from taskdiv_chat.diversity.generate import generate_variants
from taskdiv_chat.diversity.judge import LocalJudge
from taskdiv_chat.diversity.report import analyze

BEFORE = "before"
PROMPTS = {p.id: p.prompt for p in read_prompts(BUILTIN_PROMPTS)}


class _Before:
    """The old request: the general request, then the instruction and the additions."""

    def __enter__(self):
        self.saved = strategies.regen_turn
        strategies.regen_turn = lambda *a, **k: f"{taxonomy.GENERAL_REGEN_PROMPT} {self.saved(*a, **k)}"

    def __exit__(self, *exc):
        strategies.regen_turn = self.saved


async def one(backend, layout: str, prompt, n: int, max_tokens: int) -> dict:
    category = taxonomy.get(prompt.category)
    started = time.monotonic()
    if layout == BEFORE:
        with _Before():
            answers = await generate_variants(backend, "anchored-icr", history=[], prompt=prompt.prompt, earlier=[],
                                              category=category, n=n, layout="turns", additions=True,
                                              max_tokens=max_tokens)
    else:
        answers = await generate_variants(backend, "anchored-icr", history=[], prompt=prompt.prompt, earlier=[],
                                          category=category, n=n, layout=layout, additions=False,
                                          max_tokens=max_tokens)
    texts = [a.text for a in answers]
    report = await analyze(prompt.prompt, category, texts, LocalJudge())
    return {"layout": layout, "id": prompt.id, "category": prompt.category, "prompt": prompt.prompt,
            "unique": report.unique, "agree": report.answers_agree,
            "seconds": round(time.monotonic() - started, 1), "answers": texts}


def echoed(row: dict) -> list[bool]:
    """For each regenerated answer (2..n): does it echo the request (the instruction text, not the
    earlier answers some layouts also put in the request turn)?"""
    category = taxonomy.get(row["category"])
    request = strategies.regen_turn("anchored-icr", category, None, row["layout"] == BEFORE)
    if row["layout"] == BEFORE:
        request = f"{taxonomy.GENERAL_REGEN_PROMPT} {request}"
    prompt = row.get("prompt") or PROMPTS[row["id"]]
    return [strategies.echoes_request(t, request, prompt) for t in row["answers"][1:]]


def summary(rows: list[dict], n: int) -> str:
    lines = [f"| layout | G unique (of {n}) | G echoed | D echoed | D answers agree | sets | s/set |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for layout in [BEFORE, *strategies.LAYOUTS]:
        mine = [r for r in rows if r["layout"] == layout]
        if not mine:
            continue
        g = [r for r in mine if r["category"] == "G"]
        d = [r for r in mine if r["category"] == "D"]

        def rate(rs):
            flags = [flag for r in rs for flag in echoed(r)]
            return f"{sum(flags) / len(flags):.0%} of {len(flags)}" if flags else "-"
        agree = [r["agree"] for r in d if r["agree"] is not None]
        lines.append(f"| {layout} | {sum(r['unique'] for r in g) / max(1, len(g)):.2f} | {rate(g)} | {rate(d)} | "
                     f"{(f'{sum(agree)}/{len(agree)}') if agree else '-'} | {len(mine)} | "
                     f"{sum(r['seconds'] for r in mine) / len(mine):.0f} |")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=100)
    parser.add_argument("--categories", default="GD")
    parser.add_argument("--layouts", nargs="+", default=[BEFORE, *strategies.LAYOUTS])
    parser.add_argument("--out", type=Path, required=True, help="JSONL of every set (resumed if present)")
    parser.add_argument("--summary-only", action="store_true", help="print the table of --out, generate nothing")
    args = parser.parse_args()
    if args.summary_only:
        print(summary([json.loads(line) for line in args.out.read_text().splitlines()], args.n))
        return
    prompts = [p for p in read_prompts(BUILTIN_PROMPTS) if p.category in args.categories]
    name, config = Settings().backend("local")
    backend = LocalBackend(name, config.model_copy(update={"threads": 1}))
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    done = {(r["layout"], r["id"]) for r in rows}
    for prompt in prompts:  # layouts interleaved, so a cut-short run still compares them on the same prompts
        for layout in args.layouts:
            if (layout, prompt.id) in done:
                continue
            row = await one(backend, layout, prompt, args.n, args.max_tokens)
            rows.append(row)
            with args.out.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            print(f"{layout:8} {prompt.id} unique {row['unique']} echoed {sum(echoed(row))} {row['seconds']}s",
                  file=sys.stderr, flush=True)
    print(f"n = {args.n}, max_tokens = {args.max_tokens}, embedded model {backend.model}, local judge")
    print(summary(rows, args.n))


if __name__ == "__main__":
    asyncio.run(main())
