"""The variant tree: turns and their answers as the store hands them out, built from message rows.

A user turn's parent is the answer it follows (none for the first turn); every answer
generated for a turn is a sibling variant under it. Each turn remembers its active
variant; among user turns that follow the same answer, the most recently chosen one
(highest `selected`) is active.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from .errors import NotFound

COLUMN_NAMES = ("id", "role", "parent_id", "text", "created", "updated", "category", "category_override",
                "active_variant_id", "selected", "status", "finish_reason", "error", "strategy", "backend",
                "model", "params", "usage", "timings", "metrics")
COLUMNS = ", ".join(COLUMN_NAMES)


@dataclass
class UserTurn:
    id: int
    text: str
    category: dict | None  # {letter, confidence, method, detail}
    override: str | None  # the user's letter; wins over category
    parent_variant_id: int | None
    created: float

    @property
    def letter(self) -> str | None:
        return self.override or (self.category or {}).get("letter")


@dataclass
class Variant:
    id: int
    text: str
    status: str  # streaming | done | cut-off
    finish_reason: str | None  # stop | length | cancelled | error | crash | ...
    strategy: str | None
    backend: str | None
    model: str | None
    params: dict | None
    usage: dict | None
    timings: dict | None
    metrics: dict | None
    created: float
    updated: float = 0.0
    error: str | None = None
    category: dict | None = None  # as it was when this answer was generated
    user_turn_id: int = 0
    branches: int = 0  # user turns that continue from this answer


@dataclass
class Turn:
    user: UserTurn
    variants: list[Variant]  # every sibling, in creation order
    active_index: int | None  # None while no answer exists

    @property
    def active(self) -> Variant | None:
        return None if self.active_index is None else self.variants[self.active_index]


@dataclass
class Conversation:
    id: int
    title: str
    created: float
    updated: float
    archived: bool
    turns: list[Turn] = field(default_factory=list)  # along the active path


def loads(raw: str | None) -> Any:
    return None if raw is None else json.loads(raw)


# --- reading: rows (in COLUMNS order, by id) to turns ------------------------------------


def turns_by_id(rows: list[tuple]) -> dict[int, Turn]:
    """Every user turn with all its variants (creation order) and its active index."""
    turns: dict[int, Turn] = {}
    active: dict[int, int | None] = {}
    branches: dict[int, int] = {}
    for r in rows:
        (mid, role, parent, text, created, updated, category, override, active_variant, _selected, status,
         reason, error, strategy, backend, model, params, usage, timings, metrics) = r
        if role == "user":
            turns[mid] = Turn(UserTurn(mid, text, loads(category), override, parent, created), [], None)
            active[mid] = active_variant
            if parent is not None:
                branches[parent] = branches.get(parent, 0) + 1
        elif parent in turns:
            turns[parent].variants.append(Variant(
                id=mid, text=text, status=status, finish_reason=reason, strategy=strategy, backend=backend,
                model=model, params=loads(params), usage=loads(usage), timings=loads(timings),
                metrics=loads(metrics), created=created, updated=updated, error=error,
                category=loads(category), user_turn_id=parent))
    for tid, turn in turns.items():
        for i, v in enumerate(turn.variants):
            v.branches = branches.get(v.id, 0)
            if v.id == active[tid]:
                turn.active_index = i
        if turn.active_index is None and turn.variants:
            turn.active_index = len(turn.variants) - 1
    return turns


def active_path(rows: list[tuple]) -> list[Turn]:
    """Walk from the root: at each answer, the most recently chosen user turn that follows it."""
    turns = turns_by_id(rows)
    selected = {r[0]: r[9] or 0 for r in rows if r[1] == "user"}
    children: dict[int | None, list[int]] = {}
    for tid, turn in turns.items():
        children.setdefault(turn.user.parent_variant_id, []).append(tid)
    path: list[Turn] = []
    parent: int | None = None
    while parent in children:
        choice = max(children[parent], key=lambda t: (selected[t], t))
        turn = turns[choice]
        path.append(turn)
        if turn.active is None:
            break
        parent = turn.active.id
    return path


def path_to(rows: list[tuple], conversation_id: int, user_turn_id: int) -> list[Turn]:
    """The turns from the root down to this one, each showing the answer this path went through."""
    turns = turns_by_id(rows)
    if user_turn_id not in turns:
        raise NotFound(f"no user turn {user_turn_id} in conversation {conversation_id}")
    variant_turn = {v.id: t for t in turns.values() for v in t.variants}
    path = []
    turn: Turn | None = turns[user_turn_id]
    chosen: int | None = None  # the variant the path below went through
    while turn is not None:
        if chosen is not None:  # show the answer this path followed, not necessarily the active one
            turn = dataclasses.replace(turn, active_index=[v.id for v in turn.variants].index(chosen))
        path.append(turn)
        chosen = turn.user.parent_variant_id
        turn = variant_turn.get(chosen) if chosen is not None else None
    return path[::-1]


# --- writing: inside a transaction -------------------------------------------------------


def check_conversation(db: sqlite3.Connection, conversation_id: int) -> None:
    row = db.execute("SELECT deleted_by FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
    if row is None or row[0] is not None:
        raise NotFound(f"no conversation {conversation_id}")


def message(db: sqlite3.Connection, message_id: int, role: str) -> tuple[int, int | None]:
    """(conversation_id, parent_id) of a message of the given role, or NotFound."""
    row = db.execute("SELECT conversation_id, parent_id FROM messages WHERE id = ? AND role = ?",
                     (message_id, role)).fetchone()
    if row is None:
        kind = "user turn" if role == "user" else "variant"
        raise NotFound(f"no {kind} {message_id}")
    return row


def activate(db: sqlite3.Connection, user_turn_id: int) -> None:
    """Make the path from the root down to this user turn the active one."""
    conversation_id, parent = message(db, user_turn_id, "user")
    top = db.execute("SELECT coalesce(max(selected), 0) FROM messages WHERE conversation_id = ?",
                     (conversation_id,)).fetchone()[0]
    turn = user_turn_id
    while True:
        top += 1
        db.execute("UPDATE messages SET selected = ? WHERE id = ?", (top, turn))
        if parent is None:
            return
        turn = db.execute("SELECT parent_id FROM messages WHERE id = ?", (parent,)).fetchone()[0]
        db.execute("UPDATE messages SET active_variant_id = ? WHERE id = ?", (parent, turn))
        parent = db.execute("SELECT parent_id FROM messages WHERE id = ?", (turn,)).fetchone()[0]


def touch(db: sqlite3.Connection, conversation_id: int, now: float) -> None:
    db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))
