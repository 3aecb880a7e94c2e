"""Export and import: one conversation, every branch, as lossless JSON with local ids."""

from __future__ import annotations

import math
import sqlite3
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import rows
from .errors import StoreError
from .scrub import Scrubber
from .tree import COLUMN_NAMES, loads

EXPORT_FORMAT = "taskdiv-chat/conversation"
EXPORT_VERSION = 1


# Strict: an import is hostile until checked. A value the app could not show (a time of 1e20,
# a letter that is a number, an id SQLite cannot hold) is refused here, not met on every start.
_Time = Annotated[float, Field(ge=0, le=rows.MAX_TIME, allow_inf_nan=False)]
_Id = Annotated[int, Field(ge=1, le=rows.MAX_ID)]
_STRICT = ConfigDict(extra="forbid", strict=True)
MAX_DEPTH = 64  # nesting of the JSON fields (params, metrics, ...): real ones are a few levels deep


class _ImportedMessage(BaseModel):
    model_config = _STRICT
    n: _Id
    role: str
    parent: _Id | None = None
    text: str
    created: _Time
    updated: _Time
    category: dict | None = None
    category_override: str | None = None
    active_variant: _Id | None = None
    selected: Annotated[int, Field(ge=0, le=rows.MAX_ID)] | None = None
    status: str | None = None
    finish_reason: str | None = None
    error: str | None = None
    strategy: str | None = None
    backend: str | None = None
    model: str | None = None
    params: dict | None = None
    usage: dict | None = None
    timings: dict | None = None
    metrics: dict | None = None

    @field_validator("category")
    @classmethod
    def _check_category(cls, value: dict | None) -> dict | None:
        if value is not None and (why := rows.category_problem(value)) is not None:
            raise ValueError(f"category {why}")
        return value

    @field_validator("category_override")
    @classmethod
    def _check_override(cls, value: str | None) -> str | None:
        if value is not None and not rows.is_letter(value):
            raise ValueError(f"{value!r} is not one of {', '.join(sorted(rows.LETTERS))}")
        return value


class _ImportedConversation(BaseModel):
    model_config = _STRICT
    format: str
    version: int
    title: str
    created: _Time
    updated: _Time
    archived: bool = False
    messages: list[_ImportedMessage]


def export_json(conversation: tuple, rows: list[tuple]) -> dict:
    """conversation: (id, title, created, updated, archived); rows: its messages in COLUMNS order."""
    _, title, created, updated, archived = conversation
    local = {r[0]: n for n, r in enumerate(rows, 1)}
    messages = []
    for r in rows:
        m = dict(zip(COLUMN_NAMES, r))
        out: dict[str, Any] = {"n": local[m["id"]], "role": m["role"],
                               "parent": local.get(m["parent_id"]), "text": m["text"],
                               "created": m["created"], "updated": m["updated"],
                               "category": loads(m["category"])}
        if m["role"] == "user":
            out.update(category_override=m["category_override"],
                       active_variant=local.get(m["active_variant_id"]), selected=m["selected"])
        else:
            out.update({k: m[k] for k in ("status", "finish_reason", "error", "strategy", "backend", "model")})
            out.update({k: loads(m[k]) for k in ("params", "usage", "timings", "metrics")})
        messages.append(out)
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "title": title, "created": created,
            "updated": updated, "archived": bool(archived), "messages": messages}


def parse(data: dict) -> _ImportedConversation:
    """Validate export_json() output, or StoreError saying what is wrong and where."""
    if isinstance(data, dict) and data.get("format") == EXPORT_FORMAT and \
            isinstance(data.get("version"), int) and data["version"] > EXPORT_VERSION:
        raise StoreError(f"this export is version {data['version']} (from a newer taskdiv-chat); "
                         f"this version reads up to {EXPORT_VERSION}")
    _check_values(data, "")
    try:
        conv = _ImportedConversation.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise StoreError(f"not a taskdiv-chat conversation export: {where}: {err['msg']}") from None
    if conv.format != EXPORT_FORMAT:
        raise StoreError(f"not a taskdiv-chat conversation export (format {conv.format!r})")
    _check_tree(conv.messages)
    return conv


def insert(db: sqlite3.Connection, scrub: Scrubber, conv: _ImportedConversation) -> int:
    """Add a parsed conversation inside the caller's transaction; returns its new id."""
    cid = db.execute("INSERT INTO conversations (title, created, updated, archived) VALUES (?, ?, ?, ?)",
                     (scrub.text(conv.title), conv.created, conv.updated, int(conv.archived))).lastrowid
    new: dict[int, int] = {}
    for m in conv.messages:
        status = "cut-off" if m.status == "streaming" else m.status  # nobody is writing the copy
        reason = "cancelled" if m.status == "streaming" else m.finish_reason
        new[m.n] = db.execute(
            "INSERT INTO messages (conversation_id, role, parent_id, text, created, updated, category, "
            "category_override, selected, status, finish_reason, error, strategy, backend, model, params, "
            "usage, timings, metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cid, m.role, new.get(m.parent), scrub.text(m.text), m.created, m.updated,
             scrub.json(m.category), m.category_override, m.selected, status, reason,
             None if m.error is None else scrub.text(m.error), m.strategy, m.backend, m.model,
             scrub.json(m.params), scrub.json(m.usage), scrub.json(m.timings), scrub.json(m.metrics)),
        ).lastrowid
    db.executemany("UPDATE messages SET active_variant_id = ? WHERE id = ?",
                   [(new[m.active_variant], new[m.n]) for m in conv.messages if m.active_variant])
    return cid


def _check_tree(messages: list[_ImportedMessage]) -> None:
    roles: dict[int, str] = {}
    for m in messages:
        where = f"message {m.n}"
        if m.n in roles:
            raise StoreError(f"not a valid export: {where} appears twice")
        if m.role not in ("user", "assistant"):
            raise StoreError(f"not a valid export: {where}: role must be user or assistant, not {m.role!r}")
        want = "assistant" if m.role == "user" else "user"
        if m.parent is None and m.role == "assistant":
            raise StoreError(f"not a valid export: {where}: an answer needs the user turn it answers")
        if m.parent is not None and roles.get(m.parent) != want:
            raise StoreError(f"not a valid export: {where}: parent {m.parent} is not an earlier {want} message")
        if m.role == "assistant" and m.status not in ("streaming", "done", "cut-off"):
            raise StoreError(f"not a valid export: {where}: status must be done, cut-off or streaming")
        roles[m.n] = m.role
    parents = {m.n: m.parent for m in messages}
    for m in messages:
        if m.active_variant is not None and (roles.get(m.active_variant) != "assistant"
                                             or parents[m.active_variant] != m.n):
            raise StoreError(f"not a valid export: message {m.n}: active_variant {m.active_variant} "
                             f"is not one of its answers")


def _check_values(value: Any, where: str, depth: int = 0) -> None:
    """Everywhere in the import: text SQLite can store (no lone surrogates), finite numbers,
    integers SQLite can hold, nesting a reader can walk."""
    if depth > MAX_DEPTH:
        raise StoreError(f"not a valid export: {where or '(top level)'}: nested more than {MAX_DEPTH} deep")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise StoreError(f"not a valid export: {where or '(top level)'}: text with a lone surrogate") from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise StoreError(f"not a valid export: {where}: {value} is not a number")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > rows.MAX_ID:
        raise StoreError(f"not a valid export: {where}: {value:.3g} is too large a number")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(key, where, depth + 1)
            _check_values(item, f"{where}.{key}" if where else str(key), depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_values(item, f"{where}.{i}", depth + 1)
