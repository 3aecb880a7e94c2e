"""The Markdown transcript: the active path, every answer under its turn, category and diversity."""

from __future__ import annotations

import time

from .. import taxonomy
from .tree import Conversation, UserTurn, Variant


def markdown(conv: Conversation) -> str:
    out = [f"# {conv.title}", "",
           f"_Started {_when(conv.created)} · last change {_when(conv.updated)} · {len(conv.turns)} turns"
           + (" · archived" if conv.archived else "") + "_", ""]
    for number, turn in enumerate(conv.turns, 1):
        out += [f"## Turn {number}", "", f"**You** — {_category_line(turn.user)}", "",
                _quote(turn.user.text), ""]
        for i, v in enumerate(turn.variants):
            mark = " (shown)" if i == turn.active_index and len(turn.variants) > 1 else ""
            out += [f"### Answer {i + 1} of {len(turn.variants)}{mark}", "", f"_{_variant_line(v)}_", "",
                    v.text if v.text.strip() else "_(no text)_", ""]
            if v.branches and i != turn.active_index:
                out += [f"_{v.branches} other branch(es) continue from this answer; "
                        f"the JSON export has them._", ""]
        metrics = next((v.metrics for v in reversed(turn.variants) if v.metrics), None)
        if metrics:
            out += ["### Diversity", "", *_metrics_lines(metrics), ""]
    return "\n".join(out).rstrip() + "\n"


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in (text or "").splitlines()) or ">"


def _category_line(user: UserTurn) -> str:
    cat = user.category or {}
    parts = []
    if user.override:
        chosen = taxonomy.get(user.override)
        parts.append(f"category {chosen.letter} · {chosen.name} (set by you)" if chosen
                     else f"category {user.override} (set by you)")
    if cat.get("letter"):
        found = taxonomy.get(cat["letter"])
        label = f"{found.letter} · {found.name}" if found else str(cat["letter"])
        how = ", ".join(str(x) for x in (cat.get("method"),
                                         f"confidence {cat['confidence']:.2f}"
                                         if isinstance(cat.get("confidence"), (int, float)) else None) if x)
        parts.append(("classified as " if user.override else "category ") + label + (f" ({how})" if how else ""))
    return "; ".join(parts) or "not classified"


def _variant_line(v: Variant) -> str:
    bits = [b for b in (v.strategy, v.backend, v.model) if b]
    if v.status == "done":
        bits.append("finished")
    else:
        bits.append(f"{v.status} ({v.finish_reason})" if v.finish_reason else v.status)
    if v.error:
        bits.append(f"error: {v.error}")
    tokens = (v.usage or {}).get("completion_tokens")
    if tokens:
        bits.append(f"{tokens} tokens")
    total = (v.timings or {}).get("total_s")
    if isinstance(total, (int, float)):
        bits.append(f"{total:.1f} s")
    return " · ".join(bits)


def _metrics_lines(metrics: dict, prefix: str = "") -> list[str]:
    """Scalars of the diversity report as a list (nested sections flattened, lists counted)."""
    lines = []
    for key, value in metrics.items():
        name = f"{prefix}{key}".replace("_", " ")
        if isinstance(value, dict):
            lines += _metrics_lines(value, f"{prefix}{key}.")
        elif isinstance(value, float):
            lines.append(f"- {name}: {value:.3g}")
        elif isinstance(value, (int, str, bool)) or value is None:
            lines.append(f"- {name}: {value}")
        elif isinstance(value, list):
            lines.append(f"- {name}: {len(value)} item(s)")
    return lines
