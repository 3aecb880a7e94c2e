"""The UI's doorway to the core: thin calls into store, tokens, classify and diversity.

Heavy modules (classifier, embeddings, judge, llama.cpp) are imported inside
these functions, which the screens call from workers after the first paint.
Nothing here decides anything the core decides; it only adapts shapes for the UI.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path

from ..paths import private_dir, write_private


def title_for(text: str) -> str:
    line = " ".join(text.split())
    return line[:60] + ("…" if len(line) > 60 else "") or "New chat"


def count_tokens(messages: list[dict]) -> int:
    from .. import tokens

    return tokens.count_messages(messages) if messages else 0


def fit_context(messages: list[dict], window: int, reserve: int) -> tuple[bool, int, list[dict]]:
    """(fits, tokens of the last message, messages trimmed to the window).

    A huge message is measured cheaply first (4+ characters per token is the
    most any tokenizer packs), so a 1 MB paste is refused without tokenizing it.
    """
    from .. import tokens

    last = messages[-1]["content"]
    if len(last) > (window - reserve) * 12:
        return False, len(last) // 4, messages
    used = tokens.count_text(last)
    if used + reserve > window:
        return False, used, messages
    kept, _dropped = tokens.trim_to_fit(messages, window, reserve)
    return True, used, kept


def find_turn(store, conversation_id: int | None, turn_id: int):
    """The turn on the shown (active) path, fresh from the store, or None."""
    if conversation_id is None:
        return None
    for turn in store.load_conversation(conversation_id).turns:
        if turn.user.id == turn_id:
            return turn
    return None


def usable_variants(variants) -> list:
    """Answers that count for regeneration and diversity: some text and no error."""
    return [v for v in variants if v.text.strip() and not v.error]


def export(store, conversation_id: int, fmt: str, folder: Path) -> Path:
    """Write the conversation to folder/<title>-<id>.md|.json and return the path."""
    conv = store.load_conversation(conversation_id)
    slug = re.sub(r"[^\w-]+", "-", conv.title.lower()).strip("-")[:40] or "conversation"
    private_dir(folder)
    if fmt == "json":
        path = folder / f"{slug}-{conversation_id}.json"
        write_private(path, json.dumps(store.export_json(conversation_id), ensure_ascii=False, indent=1))
    else:
        path = folder / f"{slug}-{conversation_id}.md"
        write_private(path, store.export_markdown(conversation_id))
    return path


# --- background models ------------------------------------------------------------------------


async def warm_up(backend) -> float:
    """Load what the first classification and the first badge need; seconds taken.

    The loading runs on a daemon thread and is awaited without holding one of asyncio's
    executor threads, which asyncio.run joins at exit: quitting never waits for it."""
    started = time.monotonic()
    await in_daemon_thread(_load_models, backend)
    return time.monotonic() - started


def start_loading_models() -> None:
    """Start loading the embedding model and the classifier's head on a daemon thread, at once:
    they need no config, so they load while the config and the chat screen do."""
    def load() -> None:
        try:
            _load_classifier()
        except Exception:  # nothing printed over the UI: warm_up() tries again and reports it there
            pass

    threading.Thread(target=load, name="load-classifier", daemon=True).start()


def _load_classifier():
    from ..classify import get_local_classifier

    return get_local_classifier().warm_up()  # the embedding model and the classifier's head (idempotent)


def _load_models(backend) -> None:
    classifier = _load_classifier()
    if hasattr(backend, "load"):  # the embedded chat model (never a server's): ~0.3 s, the first answer starts at once
        backend.load()
    classifier.join()


async def in_daemon_thread(fn, *args):
    """await fn(*args) run on a new daemon thread (like asyncio.to_thread, but nothing waits for it at exit)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(outcome: str, value) -> None:
        if not future.done():  # else the awaiting worker was cancelled: nobody wants the result
            getattr(future, outcome)(value)

    def run() -> None:
        try:
            outcome = ("set_result", fn(*args))
        except BaseException as exc:  # handed to the awaiting coroutine
            outcome = ("set_exception", exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop is closed: the app has quit meanwhile
            pass

    threading.Thread(target=run, name=getattr(fn, "__name__", "background"), daemon=True).start()
    return await future


def models_ready() -> bool:
    from .. import embeddings

    return embeddings.is_ready()


# --- classification --------------------------------------------------------------------------------


async def classify(text: str, settings, backend_name: str, previous: dict | None = None,
                   context: list[dict] | None = None, on_local=None) -> dict:
    """The turn's category as a dict for the store (classify.classify_turn; its local model runs in a thread).

    previous: the stored category of the turn before (a follow-up inherits it).
    on_local(dict): in auto mode, the fast local answer, before the model's.
    """
    from ..classify import Classification, classify_turn

    before = None
    if previous and previous.get("letter"):
        try:
            before = Classification.from_dict(previous)
        except ValueError:
            before = None
    result = await classify_turn(
        text, settings=settings, backend_name=backend_name, previous=before, context=context,
        on_local=(lambda c: on_local(c.to_dict())) if on_local else None)
    return result.to_dict()


# --- regeneration and diversity ---------------------------------------------------------------------


def regeneration(strategy: str, path: list[dict], earlier: list[str], letter: str | None, backend_config):
    """(messages, note) asking for one more answer to the last user message of `path`."""
    from .. import taxonomy
    from ..diversity.strategies import build_messages

    built = build_messages(strategy, history=path[:-1], prompt=path[-1]["content"], earlier=earlier,
                           category=taxonomy.get(letter), k=1, context_window=backend_config.context_window,
                           reserve=backend_config.max_tokens or 512)
    return built.messages, built.note


def asks_k_at_once(strategy: str) -> bool:
    from ..diversity.strategies import SYSTEM_STRATEGIES

    return strategy in SYSTEM_STRATEGIES


async def brainstorm(backend, strategy: str, path: list[dict], earlier: list[str], letter: str | None, n: int,
                     on_text=None) -> list:
    """n new answers at once (diversity.generate.generate_variants): GeneratedAnswer list."""
    from .. import taxonomy
    from ..diversity.generate import generate_variants

    return await generate_variants(backend, strategy, history=path[:-1], prompt=path[-1]["content"],
                                   earlier=earlier, category=taxonomy.get(letter), n=n, on_text=on_text)


def quick(variants) -> dict:
    """Generic metrics at once (diversity.report.quick_report), before the judge has spoken."""
    from ..diversity.report import quick_report

    return quick_report([v.text for v in variants])


def analyze(turn, variants, settings, backend_name: str):
    """The full DiversityReport: every pair judged (the configured judge), groups, verdict."""
    import asyncio

    from .. import taxonomy
    from ..diversity.judge import close_judge, make_judge
    from ..diversity.report import analyze as analyze_answers

    async def run():
        judge = make_judge(settings, None, backend_name)
        try:
            return await analyze_answers(turn.user.text, taxonomy.get(turn.user.letter),
                                         [v.text for v in variants], judge)
        finally:
            await close_judge(judge)

    return asyncio.run(run())


def report_dict(report) -> dict:
    return report.to_dict()


def report_from_variants(variants):
    """The latest saved DiversityReport of a turn (on its newest measured variant), or None."""
    saved = next((v.metrics for v in reversed(variants) if v.metrics), None)
    if not saved or "badge_text" not in saved:
        return None
    from ..diversity.report import DiversityReport

    try:
        return DiversityReport.from_dict(saved)
    except TypeError:  # saved by an older version with other fields
        return None


def badge_status(report) -> str:
    """The badge's colour class for the report's status (good | warning | bad)."""
    return {"good": "good", "warning": "warn", "bad": "bad"}.get(report.status, "pending")


def badge_label(report) -> str:
    """unique/total, and what the category wants ("answers agree" for A, strategies for D)."""
    if report.wants == "same":
        return f"{report.unique}/{report.n} unique · {report.badge_text}"
    if report.wants == "same-answer-new-strategy":
        return report.badge_text
    if report.n < 2:
        return report.badge_text
    return f"{report.badge_text} · wants variety"


def pending_badge(quick_result: dict) -> str:
    generic = quick_result.get("generic") or {}
    emb = generic.get("embedding_diversity")
    part = f" · embedding diversity {emb:.2f}" if isinstance(emb, float) else ""
    return f"{quick_result.get('n', '?')} answers{part} · judging…"


def novelty_by_category(conversation) -> dict[str, dict]:
    """Per category letter: turns measured, regenerations, and how many of them were functionally new
    (answer j counts as new when the judge found it equivalent to none of the answers before it)."""
    out: dict[str, dict] = {}
    for turn in conversation.turns:
        report = report_from_variants(turn.variants)
        if report is None or report.n < 2:
            continue
        new = sum(1 for j in range(1, report.n) if not any(report.pairwise[i][j] for i in range(j)))
        stats = out.setdefault(report.category or "other", {"turns": 0, "regenerations": 0, "new": 0})
        stats["turns"] += 1
        stats["regenerations"] += report.n - 1
        stats["new"] += new
    return out
