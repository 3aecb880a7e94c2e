"""What the screens show of the core: badge texts, exports, background model loading.

The flows themselves run in taskdiv_chat.conversation.ConversationService. Heavy
modules (classifier, embeddings, llama.cpp) are imported inside these functions,
called after the first paint.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path

from ..paths import private_dir, write_private

EXPORT_FORMATS = {".md": "markdown", ".json": "json"}


def default_export_path(store, conversation_id: int, fmt: str, folder: Path) -> Path:
    """folder/<title>-<id>.md|.json"""
    conv = store.load_conversation(conversation_id)
    slug = re.sub(r"[^\w-]+", "-", conv.title.lower()).strip("-")[:40] or "conversation"
    return folder / f"{slug}-{conversation_id}{'.json' if fmt == 'json' else '.md'}"


def export(store, conversation_id: int, path: Path, default_folder: Path) -> Path:
    """Write the conversation to `path` (0600), in the format its suffix names; the default
    folder is created when missing, any other folder must exist. Raises ValueError or OSError
    with a message for the user."""
    path = path.expanduser()
    fmt = EXPORT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"the file name must end in {' or '.join(EXPORT_FORMATS)}")
    if path.parent == default_folder:
        private_dir(default_folder)
    elif not path.parent.is_dir():
        raise ValueError(f"no such folder: {path.parent}")
    if fmt == "json":
        write_private(path, json.dumps(store.export_json(conversation_id), ensure_ascii=False, indent=1))
    else:
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


def start_importing_first_answer_modules() -> None:
    """Import on a daemon thread what the first answer would otherwise import on the UI thread while
    its text streams in: the classifier's modules (classifying a turn starts with its send) and the
    code highlighter with its Python lexer (a code block's first highlight). Modules only, no model."""
    def load() -> None:
        try:
            from textual.highlight import highlight

            from .. import classify  # noqa: F401

            highlight("x = 1", language="python")
        except Exception:  # only a head start: the first answer imports whatever is missing itself
            pass

    threading.Thread(target=load, name="import-answer-modules", daemon=True).start()


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


# --- diversity badge ------------------------------------------------------------------------------


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
