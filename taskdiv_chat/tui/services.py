"""What the screens show of the core: badge texts, exports, background model loading.

The flows themselves run in taskdiv_chat.conversation.ConversationService. Heavy
modules (classifier, embeddings, llama.cpp) are imported inside these functions,
called after the first paint.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path


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


def warm_up(backend) -> float:
    """Load what the first classification and the first badge need (runs in a worker thread); seconds taken."""
    started = time.monotonic()
    from ..classify import get_local_classifier

    classifier = get_local_classifier().warm_up()  # the embedding model, then the classifier's head
    if hasattr(backend, "load"):  # the embedded chat model: ~0.3 s, so the first answer starts at once
        backend.load()
    classifier.join()
    return time.monotonic() - started


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
