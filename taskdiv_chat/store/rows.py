"""Values checked: strictly on import, and forgivingly on every row read back from the file.

A row from an import made before imports were checked, or from a hand-edited file, may
hold a category letter that is a number, a time of 1e20 or Infinity, JSON that does not
parse. The last conversation is reopened on start, so reading must never fail on such a
row: a bad value is replaced by an empty one, a row with no usable role or text is
skipped, and each gets one line in the `problems` list the caller passes (Store.problems),
so the app starts and can say what it found.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from .. import taxonomy
from .tree import COLUMN_NAMES

log = logging.getLogger(__name__)

MAX_TIME = 253402300799.0  # 9999-12-31 23:59:59 UTC: the last second a calendar can show
MAX_ID = 2**62  # ids and counters: far below SQLite's 2**63 limit
LETTERS = frozenset((*taxonomy.LETTERS, taxonomy.OTHER))
STATUSES = ("streaming", "done", "cut-off")
_TEXT_FIELDS = ("finish_reason", "error", "strategy", "backend", "model")
_JSON_FIELDS = ("params", "usage", "timings", "metrics")


def is_time(value: Any) -> bool:
    return _is_number(value) and 0 <= value <= MAX_TIME  # NaN fails both comparisons


def is_letter(value: Any) -> bool:
    return isinstance(value, str) and value in LETTERS


def category_problem(value: Any) -> str | None:
    """What is wrong with a stored category ({letter, confidence, method, detail, override}), or None."""
    if not isinstance(value, dict):
        return "is not an object"
    if not is_letter(value.get("letter")):
        return f"letter {value.get('letter')!r} is not one of {', '.join(sorted(LETTERS))}"
    confidence = value.get("confidence")
    if confidence is not None and not (_is_number(confidence) and 0 <= confidence <= 1):
        return f"confidence {confidence!r} is not a number from 0 to 1"
    for key in ("method", "detail"):
        if value.get(key) is not None and not isinstance(value[key], str):
            return f"{key} is not text"
    if value.get("override") is not None and not is_letter(value["override"]):
        return f"override {value['override']!r} is not a category letter"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- reading: repair and report -------------------------------------------------------------


def conversation(row: tuple, problems: list[str]) -> tuple:
    """(id, title, created, updated, archived, ...) with a usable title and times."""
    cid, title, created, updated, *rest = row
    where = f"conversation {cid}"
    if not isinstance(title, str):
        title = _note(problems, where, "title is not text", "untitled") or "untitled"
    if not is_time(created):
        created = _note(problems, where, f"created time {created!r} is not a time", 0.0)
    if not is_time(updated):
        updated = _note(problems, where, f"updated time {updated!r} is not a time", created)
    return (cid, title, created, updated, *rest)


def messages(rows: list[tuple], problems: list[str]) -> list[tuple]:
    """Message rows (COLUMN_NAMES order) with bad values emptied and unusable rows left out."""
    return [clean for row in rows if (clean := message(row, problems)) is not None]


def message(row: tuple, problems: list[str]) -> tuple | None:
    m = dict(zip(COLUMN_NAMES, row))
    where = f"message {m['id']}"
    if m["role"] not in ("user", "assistant") or not isinstance(m["text"], str):
        _note(problems, where, "has no usable role or text; skipped", None)
        return None
    for key in ("created", "updated"):
        if not is_time(m[key]):
            m[key] = _note(problems, where, f"{key} time {m[key]!r} is not a time", 0.0)
    for key in ("parent_id", "active_variant_id", "selected"):
        if m[key] is not None and not (isinstance(m[key], int) and 0 <= m[key] <= MAX_ID):
            m[key] = _note(problems, where, f"{key} {m[key]!r} is not an id", None)
    if m["category"] is not None:
        value = _json(m["category"])
        if (why := category_problem(value)) is not None:
            m["category"] = _note(problems, where, f"category {why}; dropped", None)
    if m["category_override"] is not None and not is_letter(m["category_override"]):
        m["category_override"] = _note(problems, where, f"category override {m['category_override']!r} "
                                       f"is not a category letter; dropped", None)
    if m["role"] == "assistant" and m["status"] not in STATUSES:
        m["status"] = _note(problems, where, f"status {m['status']!r} is unknown; shown as cut off", "cut-off")
    for key in _TEXT_FIELDS:
        if m[key] is not None and not isinstance(m[key], str):
            m[key] = _note(problems, where, f"{key} is not text; dropped", None)
    for key in _JSON_FIELDS:
        if m[key] is not None and not isinstance(_json(m[key]), dict):
            m[key] = _note(problems, where, f"{key} is not a JSON object; dropped", None)
    return tuple(m[name] for name in COLUMN_NAMES)


def _json(raw: Any) -> Any:
    try:
        return json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError):
        return None


def _note(problems: list[str], where: str, what: str, replacement: Any) -> Any:
    line = f"{where}: {what}"
    if line not in problems:
        problems.append(line)
        log.warning("history database: %s", line)
    return replacement
