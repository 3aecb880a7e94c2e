"""The UI's doorway to the core: thin calls into store, tokens, classify and diversity.

Heavy modules (classifier, embeddings, judge, llama.cpp) are imported inside
these functions, which the screens call from workers after the first paint.
Nothing here decides anything the core decides; it only adapts shapes for the UI.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from .. import tokens


def title_for(text: str) -> str:
    line = " ".join(text.split())
    return line[:60] + ("…" if len(line) > 60 else "") or "New chat"


def count_tokens(messages: list[dict]) -> int:
    return tokens.count_messages(messages) if messages else 0


def fit_context(messages: list[dict], window: int, reserve: int) -> tuple[bool, int, list[dict]]:
    """(fits, tokens of the last message, messages trimmed to the window).

    A huge message is measured cheaply first (4+ characters per token is the
    most any tokenizer packs), so a 1 MB paste is refused without tokenizing it.
    """
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
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        path = folder / f"{slug}-{conversation_id}.json"
        path.write_text(json.dumps(store.export_json(conversation_id), ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        path = folder / f"{slug}-{conversation_id}.md"
        path.write_text(store.export_markdown(conversation_id), encoding="utf-8")
    return path


# --- background models ------------------------------------------------------------------------


def warm_up(backend) -> None:
    """Load what the first classification and the first badge need (runs in a thread)."""
    started = time.monotonic()
    from .. import embeddings

    thread = embeddings.warm_up()
    if hasattr(backend, "load"):  # the embedded model: ~0.3 s, so the first answer starts at once
        backend.load()
    from ..classify import get_local_classifier

    get_local_classifier()
    thread.join()
    return time.monotonic() - started


def models_ready() -> bool:
    from .. import embeddings

    return embeddings.is_ready()


# --- classification --------------------------------------------------------------------------------


def classify(text: str, settings, backend_name: str) -> dict:
    raise NotImplementedError


# --- regeneration and diversity ---------------------------------------------------------------------


def regeneration(strategy: str, path: list[dict], earlier: list[str], letter: str | None, backend_config):
    """(messages, note) asking for one more answer to the last user message of `path`."""
    from .. import taxonomy
    from ..diversity.strategies import build_messages

    built = build_messages(strategy, history=path[:-1], prompt=path[-1]["content"], earlier=earlier,
                           category=taxonomy.get(letter), k=1, context_window=backend_config.context_window,
                           reserve=backend_config.max_tokens or 512)
    return built.messages, built.note


def one_answer(strategy: str, text: str) -> str:
    """A k-at-once strategy asked for one answer: drop the "Response 1:" header it may carry."""
    from ..diversity.strategies import SYSTEM_STRATEGIES, split_k

    if strategy in SYSTEM_STRATEGIES:
        parts = split_k(text, 1)
        return parts[0] if parts else text
    return text


async def brainstorm(backend, strategy: str, path: list[dict], earlier: list[str], letter: str | None, n: int,
                     on_text=None) -> list:
    """n new answers at once (diversity.generate.generate_variants): GeneratedAnswer list."""
    from .. import taxonomy
    from ..diversity.generate import generate_variants

    return await generate_variants(backend, strategy, history=path[:-1], prompt=path[-1]["content"],
                                   earlier=earlier, category=taxonomy.get(letter), n=n, on_text=on_text)


def quick(turn, variants):
    raise NotImplementedError


def analyze(turn, variants, settings, backend_name):
    raise NotImplementedError


def report_dict(report) -> dict:
    raise NotImplementedError


def report_from_variants(variants):
    return None


def badge_status(report) -> str:
    return "pending"


def pending_badge(report) -> str:
    return "judging…"
