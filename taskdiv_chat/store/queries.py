"""Reading: one conversation's rows, the conversation list, full-text search, drafts."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from .errors import NotFound
from .tree import COLUMNS

MARK_START, MARK_END = "\x02", "\x03"  # highlight markers in search snippets (never in chat text)


@dataclass
class ConversationSummary:
    id: int
    title: str
    created: float
    updated: float
    archived: bool
    turns: int  # user messages in the whole tree
    preview: str  # start of the first user message


@dataclass
class SearchHit:
    conversation_id: int
    conversation_title: str
    message_id: int
    role: str
    snippet: str  # matches wrapped in MARK_START ... MARK_END

    def parts(self) -> list[tuple[str, bool]]:
        """The snippet as (text, highlighted) pieces, for the UI to style."""
        out = []
        for i, piece in enumerate(re.split(f"[{MARK_START}{MARK_END}]", self.snippet)):
            if piece:
                out.append((piece, i % 2 == 1))
        return out

    def plain(self, start: str = "[", end: str = "]") -> str:
        return self.snippet.replace(MARK_START, start).replace(MARK_END, end)


def message_rows(db: sqlite3.Connection, conversation_id: int) -> list[tuple]:
    """Every message of a conversation, in COLUMNS order, oldest first."""
    return db.execute(f"SELECT {COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id",
                      (conversation_id,)).fetchall()


def conversation_rows(db: sqlite3.Connection, conversation_id: int) -> tuple[tuple, list[tuple]]:
    """The conversation's row (id, title, created, updated, archived) and all its messages.
    Call inside one read transaction so both are from the same moment."""
    row = db.execute("SELECT id, title, created, updated, archived, deleted_by FROM conversations "
                     "WHERE id = ?", (conversation_id,)).fetchone()
    if row is None or row[5] is not None:
        raise NotFound(f"no conversation {conversation_id}")
    return row[:5], message_rows(db, conversation_id)


def list_conversations(db: sqlite3.Connection, limit: int, include_archived: bool,
                       offset: int) -> list[ConversationSummary]:
    rows = db.execute(
        "SELECT c.id, c.title, c.created, c.updated, c.archived, "
        " (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user'), "
        " (SELECT substr(m.text, 1, 120) FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user' "
        "  ORDER BY m.id LIMIT 1) "
        "FROM conversations c WHERE c.deleted_by IS NULL AND (? OR c.archived = 0) "
        "ORDER BY c.updated DESC, c.id DESC LIMIT ? OFFSET ?",
        (include_archived, limit, offset),
    ).fetchall()
    return [ConversationSummary(id=r[0], title=r[1], created=r[2], updated=r[3], archived=bool(r[4]),
                                turns=r[5], preview=" ".join((r[6] or "").split())) for r in rows]


def search(db: sqlite3.Connection, text: str, limit: int) -> list[SearchHit]:
    """Full-text search over every message and variant, newest first; each word matches as a prefix.

    Newest first rather than by relevance: it is what a writer coming back looks for, and it
    stays fast for common words (ranking must score every match; this stops after `limit`).
    """
    words = re.findall(r"\w+", text)
    if not words:
        return []
    query = " ".join(f'"{w}"*' for w in words)  # quoted: the user's text is never FTS syntax
    rows = db.execute(
        "SELECT m.conversation_id, c.title, m.id, m.role, "
        f" snippet(messages_fts, 0, '{MARK_START}', '{MARK_END}', '…', 16) "
        "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
        "JOIN conversations c ON c.id = m.conversation_id "
        "WHERE messages_fts MATCH ? AND c.deleted_by IS NULL ORDER BY messages_fts.rowid DESC LIMIT ?",
        (query, limit),
    ).fetchall()
    return [SearchHit(*r) for r in rows]


def load_draft(db: sqlite3.Connection, conversation_id: int | None) -> str:
    row = db.execute("SELECT text FROM drafts WHERE conversation_id = ?", (conversation_id or 0,)).fetchone()
    return row[0] if row else ""
