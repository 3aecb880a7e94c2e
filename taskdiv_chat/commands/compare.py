"""`compare`: one prompt to several backends at once, the answers judged together across models."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from pathlib import Path

from ..config import METHODS, STRATEGIES, check_api_keys, load_settings
from .common import add_raw_arg, fail, read_text, shown, to_terminal
from .diversity import _positive


def register(subparsers) -> None:
    p = subparsers.add_parser("compare", help="send one prompt to several backends and group the answers across models")
    p.add_argument("prompt", nargs="?", help="the user prompt (read from stdin when omitted)")
    p.add_argument("--backends", type=_names, metavar="A,B,C", help="backends to compare (default: [compare] backends)")
    p.add_argument("-n", type=_positive, help="answers per backend (default: [compare] n)")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="with -n above 1, how each backend's answers are made different (default: independent answers)")
    p.add_argument("--judge", choices=METHODS, help="functional-equivalence judge (default: [judge] method)")
    p.add_argument("--max-tokens", type=_positive, help="cap each answer at this many tokens")
    p.add_argument("--json", action="store_true", help="print one JSON object: answers, groups, verdict")
    p.add_argument("--no-save", action="store_true", help="do not record the comparison in the conversation store")
    add_raw_arg(p)
    p.set_defaults(func=compare)


def _names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give backend names separated by commas, e.g. local,ollama")
    return list(dict.fromkeys(names))


def compare(args) -> int:
    settings = load_settings(args.config)
    names = args.backends or settings.compare.backends
    if not names:
        return fail("no backends to compare: pass --backends a,b or set [compare] backends in the config", 2)
    for name in names:
        settings.backend(name)  # an unknown name: a ConfigError (exit 2) naming the configured ones
    check_api_keys(settings, args.config, names)
    prompt = read_text(args.prompt)
    if prompt is None:
        return 2
    if not prompt.strip():
        return fail("nothing to compare: give a prompt or pipe one on stdin")
    return asyncio.run(_compare(args, settings, names, prompt, sys.stdout))


@contextlib.contextmanager
def _history(settings, throwaway: bool):
    """The conversation store; with `throwaway` (--no-save) an empty one in a temporary folder."""
    from ..store import Store

    if not throwaway:
        with Store(secrets=settings.secret_values()) as store:
            yield store
        return
    with tempfile.TemporaryDirectory(prefix="taskdiv-") as folder, Store(Path(folder) / "history.db") as store:
        yield store


class _Lines:
    """Interleaved streams made readable: each answer's text goes out a whole line at a time,
    behind its label, as soon as the line is complete."""

    def __init__(self, out, show) -> None:
        self.out, self.show = out, show
        self.labels: dict[int, str] = {}
        self.pending: dict[int, str] = {}

    def start(self, index: int, label: str) -> None:
        self.labels[index] = label
        self.pending[index] = ""

    def add(self, index: int, text: str) -> None:
        *lines, self.pending[index] = (self.pending.get(index, "") + text).split("\n")
        for line in lines:
            self._write(index, line)

    def end(self, index: int, note: str = "") -> None:
        rest = self.pending.pop(index, "")
        if rest:
            self._write(index, rest)
        if note:
            self._write(index, note)

    def _write(self, index: int, line: str) -> None:
        self.out.write(f"{self.labels.get(index, '?')} │ {self.show(line)}\n")
        self.out.flush()


async def _compare(args, settings, names: list[str], prompt: str, out) -> int:
    from .. import taxonomy
    from ..conversation import ConversationService, Delta, Failed, NotSent, Started, TurnAdded, VariantSaved, judged

    n = args.n or settings.compare.n
    terminal = to_terminal(args, out)

    def show(text: str) -> str:  # a terminal gets no escape sequence from a server
        return shown(text, terminal)

    lines = _Lines(out, show)
    sampling = {"max_tokens": args.max_tokens} if args.max_tokens else {}
    answers: dict[int, dict] = {}
    turn_id = None
    with _history(settings, args.no_save) as store:
        # the default backend (or --backend) classifies and judges, as in the chat
        service = ConversationService(store, settings, getattr(args, "backend", None), judge_method=args.judge)
        try:
            async for event in service.compare_turn(prompt, names, n, args.strategy, **sampling):
                if isinstance(event, NotSent):
                    return fail(f"the prompt is about {event.tokens:,} tokens, more than the {event.window:,}-token "
                                f"context window of {event.backend}")
                if isinstance(event, TurnAdded):
                    turn_id = event.turn_id
                elif isinstance(event, Started):
                    label = event.backend + (f"#{event.index % n + 1}" if n > 1 else "")
                    answers[event.index] = {"index": event.index, "backend": event.backend, "model": event.model,
                                            "label": label}
                    if not args.json:
                        lines.start(event.index, label)
                elif isinstance(event, Delta) and not args.json:
                    lines.add(event.index, event.text)
                elif isinstance(event, (VariantSaved, Failed)):
                    _record(answers, event, names, n)
                    if not args.json:
                        lines.end(event.index, f"✗ {event.error}" if isinstance(event, Failed) else "")
            letter = await service.category(turn_id)
            category = service.turn(turn_id).user.category or {"letter": letter}
            ids = [answers[i]["variant_id"] for i in sorted(answers) if answers[i].get("variant_id") is not None]
            order = judged(service.turn(turn_id), ids)  # the report's order (measure re-reads the tree after)
            report = await service.measure(turn_id, ids)
        finally:
            await service.aclose()
    by_variant = {a.get("variant_id"): a for a in answers.values()}
    groups = sorted((sorted((by_variant[order[i].id] for i in group), key=lambda a: a["index"])
                     for group in report.groups), key=lambda g: g[0]["index"]) if report else []
    # one model (or one backend answered): the report's own verdict; several: the cross-model one
    verdict = (report.cross_model or {"status": report.status, "reason": report.reason,
                                      "badge_text": report.badge_text, "distinct": report.unique}) if report else None
    ok = [a for a in answers.values() if not a.get("error")]
    if args.json:
        out.write(json.dumps({
            "prompt": prompt, "category": category, "backends": names, "n": n, "strategy": args.strategy,
            "answers": [{k: v for k, v in a.items() if k != "label"} for _, a in sorted(answers.items())],
            "groups": [[{"index": a["index"], "backend": a["backend"], "model": a["model"]} for a in g] for g in groups],
            "verdict": verdict,
            "report": report.to_dict() if report else None,
        }, ensure_ascii=False, indent=2) + "\n")
        return 0 if ok else 1
    found = taxonomy.get(letter)
    out.write(f"\ncategory: {found.letter} {found.name}" if found else "\ncategory: other")
    out.write(f" ({category.get('method', '?')})\n")
    for number, group in enumerate(groups, 1):
        who = ", ".join(show(a["label"]) + f" ({show(a['model'] or '?')})" for a in group)
        excerpt = " ".join(group[0]["text"].split())[:80]
        out.write(f"  group {number}: {who}\n           “{show(excerpt)}”\n")
    for a in answers.values():
        if a.get("error"):
            out.write(f"  failed: {show(a['label'])} ({show(a['model'] or '?')}): {show(a['error'])}\n")
    if verdict:
        out.write(f"verdict: {verdict['status'].upper()}  {verdict['badge_text']}: {verdict['reason']}\n")
    if not ok:
        return fail("every backend failed")
    return 0


def _record(answers: dict[int, dict], event, names: list[str], n: int) -> None:
    """What the answer ended as: its text, its stored variant and the error, if any."""
    variant = event.variant
    answer = answers.setdefault(event.index, {"index": event.index, "backend": names[event.index // n],
                                              "model": None, "label": names[event.index // n]})
    answer.update(text=variant.text if variant else "", variant_id=variant.id if variant else None,
                  finish_reason=variant.finish_reason if variant else None,
                  error=getattr(event, "error", None))
    if variant is not None:
        answer["model"] = variant.model
