"""Which of the eight task categories (or "other") a user turn belongs to.

`classify_turn` is the one entry point for the app, the sampler and the benchmarks:
a user override wins; a follow-up ("make it shorter") inherits the category of the
turn it follows; otherwise the configured method runs:
- local: embeddings + a trained head, offline, ~20 ms once loaded;
- llm: the paper's method, the chat model answers with one letter at temperature 0;
- auto: local at once, refined by llm when the backend is a capable remote model
  (never the embedded 135M one); settings.classify.trust says which answer to keep.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from ..backends.base import Message
from ..config import METHODS as CONFIG_METHODS
from ..config import Settings
from .followup import follow_up_source, is_follow_up
from .llm import LLMClassifier, parse_letter
from .local import LocalClassifier, get_local_classifier
from .result import METHODS, Classification, normalize_letter

__all__ = ["Classification", "LocalClassifier", "LLMClassifier", "METHODS", "classify_turn", "follow_up_source",
           "get_local_classifier", "is_follow_up", "normalize_letter", "parse_letter"]


async def classify_turn(text: str, *, settings: Settings, backend_name: str | None = None, backend=None,
                        previous: Classification | None = None, override: str | None = None,
                        method: str | None = None, context: list[Message] | None = None,
                        on_local: Callable[[Classification], None] | None = None) -> Classification:
    """Classify one user turn.

    backend: an open backend to ask (else one is made from settings and closed after).
    previous: the classification of the turn this one follows, for follow-ups.
    override: a category the user chose ("G", "creative writing", "other"); raises ValueError if unknown.
    method: "local" | "llm" | "auto" (default: settings.classify.method).
    context: earlier messages; lets a follow-up be classified by its turn when `previous` is unknown.
    on_local: in auto mode, called with the local answer as soon as it is there, if the llm is not faster.
    """
    if override is not None:
        letter = normalize_letter(override)
        if letter is None:
            raise ValueError(f"unknown category {override!r}: use a letter A-H, a category name, or 'other'")
        return Classification(letter, 1.0, "override", "chosen by the user")
    if previous is not None and is_follow_up(text):
        return Classification(previous.letter, previous.confidence, "inherited",
                              f"follow-up of the turn before ({previous.method})")

    method = method or settings.classify.method
    if method not in CONFIG_METHODS:
        raise ValueError(f"unknown classify method {method!r}: use auto, local or llm")
    local = get_local_classifier()
    if method == "local":
        return await asyncio.to_thread(local.classify, text, context)
    if backend_name is None and backend is not None and getattr(backend, "name", None) in settings.backends:
        backend_name = backend.name
    _, config = settings.backend(backend_name)
    if method == "auto" and not config.is_capable:
        return await asyncio.to_thread(local.classify, text, context)

    own = backend is None
    if own:
        from ..backends import make_backend

        backend = make_backend(settings, backend_name)
    try:
        if method == "auto":  # a server classifies only after passing the self-check (cached)
            from ..capability import ensure

            capability = await ensure(settings, backend_name, backend)
            if not capability.classify:
                result = await asyncio.to_thread(local.classify, text, context)
                result.detail = "; ".join(filter(None, [result.detail, f"server {capability.summary}"]))
                return result
        if method == "llm":
            return await LLMClassifier(backend, local).classify(text, context)
        return await _auto(text, context, LLMClassifier(backend, local), local, settings.classify.trust, on_local)
    finally:
        if own:
            await backend.aclose()


async def _auto(text, context, llm: LLMClassifier, local: LocalClassifier, trust: str, on_local) -> Classification:
    """Local and llm side by side; keep the trusted one, note the other when they disagree."""
    local_task = asyncio.ensure_future(asyncio.to_thread(local.classify, text, context))
    llm_task = asyncio.ensure_future(llm.classify(text, context))

    def local_done(task: asyncio.Future) -> None:
        if task.cancelled() or task.exception() is not None:  # retrieving it keeps asyncio quiet
            return
        if on_local and not llm_task.done():
            on_local(task.result())

    local_task.add_done_callback(local_done)
    try:
        by_llm = await llm_task
    except BaseException:
        local_task.cancel()
        raise
    if trust == "llm":
        if by_llm.method == "llm" and local_task.done() and not local_task.exception():
            _note_disagreement(by_llm, local_task.result())
        return by_llm  # a fallback already holds the local answer
    by_local = await local_task
    if by_llm.method == "llm":
        _note_disagreement(by_local, by_llm)
    return by_local


def _note_disagreement(kept: Classification, other: Classification) -> None:
    if other.letter != kept.letter:
        note = f"{other.method} said {other.letter} ({other.confidence:.2f})"
        kept.detail = f"{kept.detail}; {note}" if kept.detail else note
