"""The conversation store: every turn and every regenerated answer, in one SQLite file.

A conversation is a tree. Each user turn follows one assistant answer (its
parent; none for the first turn), and every answer generated for a turn is a
sibling variant under it. Nothing is overwritten: regenerating adds a variant,
picking variant 3 and writing on continues from variant 3, and the other
branches stay in the file. Each turn remembers its active variant; among user
turns that follow the same answer, the most recently chosen one is active.

User turns and variants share one `messages` table (role 'user'/'assistant'),
so one full-text index covers both and ids are unique across them.

Safety: WAL, one transaction per logical change, BEGIN IMMEDIATE with a busy
timeout so two app instances can share the file. A streaming answer is written
as it arrives (at most FLUSH_INTERVAL late); a variant left 'streaming' by a
process that no longer runs is marked cut off (reason 'crash') when the file opens.
Secrets (API keys from the environment, header and key fields) are never written.

One module per concern: schema (file, migrations, transactions), scrub (secrets),
writer (streaming answers, crash recovery), tree (turns and variants), queries
(reading), exchange (JSON export/import), transcript (Markdown). Store below ties
them to one connection and lock; everything callers need is importable from here.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .. import taxonomy
from ..config import data_dir
from . import exchange, queries, rows, schema, transcript, tree
from .errors import NotFound, StoreError
from .exchange import EXPORT_FORMAT, EXPORT_VERSION
from .queries import MARK_END, MARK_START, ConversationSummary, SearchHit
from .schema import BUSY_TIMEOUT_S, MIGRATIONS, SCHEMA_VERSION
from .scrub import REDACTED, Scrubber
from .tree import Conversation, Turn, UserTurn, Variant
from .writer import FLUSH_INTERVAL, VariantWriter, pid_alive, recover_crashed, writers_of

__all__ = ["BUSY_TIMEOUT_S", "DB_NAME", "EXPORT_FORMAT", "EXPORT_VERSION", "FLUSH_INTERVAL", "MARK_END",
           "MARK_START", "MIGRATIONS", "REDACTED", "SCHEMA_VERSION", "Conversation", "ConversationSummary",
           "NotFound", "SearchHit", "Store", "StoreError", "Turn", "UserTurn", "Variant", "VariantWriter",
           "data_dir"]

DB_NAME = "conversations.sqlite3"


class Store:
    """One SQLite file of conversations; safe to share between threads and app instances."""

    def __init__(self, path: Path | str | None = None, *, secrets: tuple[str, ...] = ()):
        """`secrets`: extra strings never to store (e.g. header values from the config)."""
        self.path = Path(path).expanduser() if path is not None else data_dir() / DB_NAME
        self._scrub = Scrubber(tuple(secrets))
        self._lock = threading.RLock()
        self._pid = os.getpid()
        # Looked up here, not in schema: a test swaps in a failing migration list on this package.
        self._db = schema.connect(self.path, SCHEMA_VERSION)
        self._real_path = os.path.realpath(self.path)
        self.conversation_reads = 0  # full reads of one conversation's messages: a cheap cost counter
        # Bad values met while reading (see rows): replaced or skipped, never fatal; a UI may show them.
        self.problems: list[str] = []
        try:
            schema.migrate(self._db, self.path, MIGRATIONS)
            recover_crashed(self._db, self._real_path, self._pid)  # once: later streams are this file's own
            self._purge(dead_only=True)
        except BaseException:
            self._db.close()
            raise

    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator:
        """One logical change = one transaction (see schema.transaction)."""
        with self._lock, schema.transaction(self._db, durable) as db:
            yield db

    @contextmanager
    def _read(self) -> Iterator:
        """A consistent snapshot for reads spanning several queries."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    def _all(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def can_write(self) -> bool:
        """Whether a write can start now, without waiting for another instance's transaction
        (a quick probe before retrying kept writes: a locked file must not hold the store's lock)."""
        with self._lock:
            if self._db is None:
                return False
            wait = self._db.execute("PRAGMA busy_timeout").fetchone()[0]
            self._db.execute("PRAGMA busy_timeout = 0")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("ROLLBACK")
                return True
            except sqlite3.Error:
                return False
            finally:
                self._db.execute(f"PRAGMA busy_timeout = {int(wait)}")

    def close(self) -> None:
        """Cut off this store's unfinished streams, purge what it deleted, close the file."""
        if self._db is None:
            return
        for writer in writers_of(self):
            writer.finish("cancelled")  # before taking the store lock: a flush timer may hold the writer's
        with self._lock:
            if self._db is None:
                return
            self.purge_deleted()
            self._db.close()
            self._db = None  # type: ignore[assignment]

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing --

    def create_conversation(self, title: str = "New chat") -> int:
        now = time.time()
        with self._tx() as db:
            return db.execute("INSERT INTO conversations (title, created, updated) VALUES (?, ?, ?)",
                              (self._scrub.text(" ".join(title.split()) or "New chat"), now, now)).lastrowid

    def add_user_turn(self, conversation_id: int, text: str, parent_variant_id: int | None,
                      category: dict | None = None) -> int:
        """Store what the user typed (committed before any answer starts); it becomes the active path."""
        now = time.time()
        with self._tx() as db:
            tree.check_conversation(db, conversation_id)
            if parent_variant_id is not None:
                owner, _ = tree.message(db, parent_variant_id, "assistant")
                if owner != conversation_id:
                    raise StoreError(f"variant {parent_variant_id} is not in conversation {conversation_id}")
            turn_id = db.execute(
                "INSERT INTO messages (conversation_id, role, parent_id, text, created, updated, category) "
                "VALUES (?, 'user', ?, ?, ?, ?, ?)",
                (conversation_id, parent_variant_id, self._scrub.text(text), now, now, self._scrub.json(category)),
            ).lastrowid
            tree.activate(db, turn_id)
            tree.touch(db, conversation_id, now)
            return turn_id

    def set_category(self, user_turn_id: int, category: dict) -> None:
        with self._tx() as db:
            tree.message(db, user_turn_id, "user")
            db.execute("UPDATE messages SET category = ? WHERE id = ?", (self._scrub.json(category), user_turn_id))

    def set_category_override(self, user_turn_id: int, letter: str | None) -> None:
        """The user's own category for a turn (None clears it); it wins over the classifier."""
        if letter is not None:
            cat = taxonomy.get(letter)
            if cat is None and letter.strip().lower() != taxonomy.OTHER:
                raise StoreError(f"unknown category {letter!r}; use one of {', '.join(taxonomy.LETTERS)} "
                                 f"or {taxonomy.OTHER!r}")
            letter = cat.letter if cat else taxonomy.OTHER
        with self._tx() as db:
            tree.message(db, user_turn_id, "user")
            db.execute("UPDATE messages SET category_override = ? WHERE id = ?", (letter, user_turn_id))

    def start_variant(self, user_turn_id: int, *, strategy: str | None, backend: str | None, model: str | None,
                      params: dict | None, category: dict | None = None) -> VariantWriter:
        """A new answer under a turn; it becomes the active one. Stream into the returned writer."""
        now = time.time()
        with self._tx() as db:
            conversation_id, _ = tree.message(db, user_turn_id, "user")
            tree.check_conversation(db, conversation_id)
            if category is None:  # record the category the answer was generated under
                cat, override = db.execute("SELECT category, category_override FROM messages WHERE id = ?",
                                           (user_turn_id,)).fetchone()
                category = {**(tree.loads(cat) or {}), **({"override": override} if override else {})} or None
            variant_id = db.execute(
                "INSERT INTO messages (conversation_id, role, parent_id, created, updated, category, status, "
                "strategy, backend, model, params, writer_pid) VALUES (?, 'assistant', ?, ?, ?, ?, 'streaming', "
                "?, ?, ?, ?, ?)",
                (conversation_id, user_turn_id, now, now, self._scrub.json(category), strategy, backend, model,
                 self._scrub.json(params), self._pid),
            ).lastrowid
            db.execute("UPDATE messages SET active_variant_id = ? WHERE id = ?", (variant_id, user_turn_id))
            tree.activate(db, user_turn_id)
            tree.touch(db, conversation_id, now)
            return VariantWriter(self, variant_id)  # registered as live before the row is committed

    def set_active_variant(self, user_turn_id: int, variant_id: int) -> None:
        """Show this answer at its turn; what follows it (if anything) becomes the active path."""
        with self._tx() as db:
            tree.message(db, user_turn_id, "user")
            _, parent = tree.message(db, variant_id, "assistant")
            if parent != user_turn_id:
                raise StoreError(f"variant {variant_id} does not answer turn {user_turn_id}")
            db.execute("UPDATE messages SET active_variant_id = ? WHERE id = ?", (variant_id, user_turn_id))
            tree.activate(db, user_turn_id)

    def set_active_turn(self, user_turn_id: int) -> None:
        """Switch to another user turn among those following the same answer (an edited message)."""
        with self._tx() as db:
            tree.activate(db, user_turn_id)

    def save_metrics(self, variant_id: int, metrics: dict) -> None:
        """The diversity report (metrics, judge verdicts) for the variant set ending at this variant."""
        with self._tx() as db:
            tree.message(db, variant_id, "assistant")
            db.execute("UPDATE messages SET metrics = ? WHERE id = ?", (self._scrub.json(metrics), variant_id))

    # -- reading --

    def _conversation_rows(self, conversation_id: int) -> tuple[tuple, list[tuple]]:
        with self._read() as db:
            self.conversation_reads += 1
            row, messages = queries.conversation_rows(db, conversation_id)
        return rows.conversation(row, self.problems), rows.messages(messages, self.problems)

    def load_conversation(self, conversation_id: int) -> Conversation:
        row, rows = self._conversation_rows(conversation_id)
        conv = Conversation(id=row[0], title=row[1], created=row[2], updated=row[3], archived=bool(row[4]))
        conv.turns = tree.active_path(rows)
        return conv

    def history_messages(self, conversation_id: int, upto_turn_id: int | None = None) -> list[dict]:
        """The active path as role/content messages for the model.

        With upto_turn_id: the path that leads to that turn, ending with its user message
        (what a regeneration of that turn sends), even if it is not on the active path.
        """
        conv = self.load_conversation(conversation_id)
        if upto_turn_id is None:
            turns = conv.turns
        else:
            with self._read() as db:
                self.conversation_reads += 1
                messages_rows = rows.messages(queries.message_rows(db, conversation_id), self.problems)
            turns = tree.path_to(messages_rows, conversation_id, upto_turn_id)
        messages: list[dict] = []
        for i, turn in enumerate(turns):
            messages.append({"role": "user", "content": turn.user.text})
            if upto_turn_id is not None and i == len(turns) - 1:
                break
            if turn.active is not None and turn.active.text:
                messages.append({"role": "assistant", "content": turn.active.text})
        return messages

    def list_conversations(self, limit: int = 50, include_archived: bool = False,
                           offset: int = 0) -> list[ConversationSummary]:
        with self._lock:
            found = queries.list_conversations(self._db, limit, include_archived, offset)
        for summary in found:  # a title or time that cannot be shown is replaced (and noted), never fatal
            _, summary.title, summary.created, summary.updated, *_ = rows.conversation(
                (summary.id, summary.title, summary.created, summary.updated), self.problems)
        return found

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Full-text search over every message and variant, newest first (see queries.search)."""
        with self._lock:
            return queries.search(self._db, text, limit)

    def cross_model_results(self) -> list[tuple[str | None, dict]]:
        """(category letter, crossmodel.CrossModel dict) of every comparison judged, across the history
        (conversations not deleted): what the homogenization view adds up per category."""
        import json

        found = []
        for (metrics,) in self._all("SELECT m.metrics FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                                    "WHERE c.deleted_by IS NULL AND m.metrics LIKE '%cross_model%'"):
            try:
                data = json.loads(metrics)
            except ValueError:  # a damaged row costs its own figures only
                continue
            if isinstance(data, dict) and isinstance(data.get("cross_model"), dict):
                found.append((data.get("category"), data["cross_model"]))
        return found

    # -- managing --

    def rename(self, conversation_id: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise StoreError("a title cannot be empty")
        with self._tx() as db:
            tree.check_conversation(db, conversation_id)
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (self._scrub.text(title), conversation_id))

    def archive(self, conversation_id: int, archived: bool = True) -> None:
        with self._tx() as db:
            tree.check_conversation(db, conversation_id)
            db.execute("UPDATE conversations SET archived = ? WHERE id = ?", (int(archived), conversation_id))

    def delete(self, conversation_id: int) -> None:
        """Hide it now; undo_delete() brings it back until this store closes (then it is purged)."""
        with self._tx() as db:
            tree.check_conversation(db, conversation_id)
            db.execute("UPDATE conversations SET deleted_by = ? WHERE id = ?", (self._pid, conversation_id))

    def undo_delete(self, conversation_id: int) -> None:
        with self._tx() as db:
            n = db.execute("UPDATE conversations SET deleted_by = NULL WHERE id = ? AND deleted_by IS NOT NULL",
                           (conversation_id,)).rowcount
            if not n:
                raise NotFound(f"conversation {conversation_id} is not deleted (or already purged)")

    def purge_deleted(self) -> int:
        """Remove for good what this process deleted (and what crashed processes left deleted)."""
        return self._purge(dead_only=False)

    def _purge(self, dead_only: bool) -> int:
        rows = self._all("SELECT id, deleted_by FROM conversations WHERE deleted_by IS NOT NULL")
        ids = [cid for cid, pid in rows
               if (pid == self._pid and not dead_only) or (pid != self._pid and not pid_alive(pid))]
        if ids:
            with self._tx() as db:
                for cid in ids:
                    db.execute("DELETE FROM messages WHERE conversation_id = ?", (cid,))
                    db.execute("DELETE FROM drafts WHERE conversation_id = ?", (cid,))
                    db.execute("DELETE FROM conversations WHERE id = ?", (cid,))
        return len(ids)

    def save_draft(self, conversation_id: int | None, text: str) -> None:
        """Keep the unsent input (per conversation; None = a chat not created yet). Empty clears it."""
        with self._tx() as db:
            if text.strip():
                db.execute("INSERT INTO drafts (conversation_id, text, updated) VALUES (?, ?, ?) "
                           "ON CONFLICT (conversation_id) DO UPDATE SET text = excluded.text, "
                           "updated = excluded.updated", (conversation_id or 0, self._scrub.text(text), time.time()))
            else:
                db.execute("DELETE FROM drafts WHERE conversation_id = ?", (conversation_id or 0,))

    def load_draft(self, conversation_id: int | None) -> str:
        with self._lock:
            return queries.load_draft(self._db, conversation_id)

    # -- export / import --

    def export_json(self, conversation_id: int) -> dict:
        """Everything about a conversation, every branch, lossless; ids are local (n = 1, 2, ...)."""
        return exchange.export_json(*self._conversation_rows(conversation_id))

    def import_json(self, data: dict) -> int:
        """Add a conversation from export_json() output; all or nothing. Returns the new id."""
        conv = exchange.parse(data)
        with self._tx() as db:
            return exchange.insert(db, self._scrub, conv)

    def export_markdown(self, conversation_id: int) -> str:
        """A readable transcript: the active path, every answer under its turn, category and diversity."""
        return transcript.markdown(self.load_conversation(conversation_id))
