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
process that no longer runs is marked cut off (reason 'crash') on open.
Secrets (API keys from the environment, header and key fields) are never written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import sqlite3
import stat
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, ValidationError

from . import taxonomy
from .config import data_dir

DB_NAME = "conversations.sqlite3"
FLUSH_INTERVAL = 0.25  # seconds: the most streamed text a crash can lose
BUSY_TIMEOUT_S = 10.0  # how long a write waits for another instance's transaction
EXPORT_FORMAT = "taskdiv-chat/conversation"
EXPORT_VERSION = 1
MARK_START, MARK_END = "\x02", "\x03"  # highlight markers in search snippets (never in chat text)
REDACTED = "[redacted]"


class StoreError(Exception):
    """A store problem phrased for the user (bad file, bad import, unknown id)."""


class NotFound(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else "not found"


# --- schema ------------------------------------------------------------------------------
# MIGRATIONS[i] upgrades a database from user_version i to i + 1. A step is never edited
# once released; a schema change is a new step (and a frozen fixture in tests/test_store_migrations.py).

_V1 = [
    """CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        archived INTEGER NOT NULL DEFAULT 0,
        deleted_by INTEGER  -- pid of the process that soft-deleted it (undo until it exits)
    )""",
    "CREATE INDEX conversations_updated ON conversations(updated)",
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        parent_id INTEGER REFERENCES messages(id),  -- user: the answer it follows; assistant: its user turn
        text TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        updated REAL NOT NULL,
        category TEXT,  -- JSON {letter, confidence, method, detail}; on a variant: as generated
        category_override TEXT,  -- user turns: the letter the user chose
        active_variant_id INTEGER,  -- user turns
        selected INTEGER,  -- user turns: higher = chosen more recently among its siblings
        status TEXT CHECK (status IN ('streaming', 'done', 'cut-off')),  -- variants
        finish_reason TEXT,
        error TEXT,
        strategy TEXT,
        backend TEXT,
        model TEXT,
        params TEXT,  -- JSON
        usage TEXT,  -- JSON
        timings TEXT,  -- JSON
        metrics TEXT,  -- JSON: diversity report and judge verdicts for the set ending here
        writer_pid INTEGER  -- while streaming: the writing process
    )""",
    "CREATE INDEX messages_conversation ON messages(conversation_id, id)",
    "CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming'",
    """CREATE TABLE drafts (
        conversation_id INTEGER PRIMARY KEY,  -- 0: the input of a chat not yet created
        text TEXT NOT NULL,
        updated REAL NOT NULL
    )""",
]

_V2 = [  # full-text search over every message and variant
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
        text, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    """CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",  # index what v1 stored
]

MIGRATIONS: list[list[str]] = [_V1, _V2]
SCHEMA_VERSION = len(MIGRATIONS)


# --- what the store hands out ------------------------------------------------------------


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


# --- secrets -----------------------------------------------------------------------------

_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.I)
_SECRET_FIELDS = {"api_key", "apikey", "authorization", "headers", "extra_headers", "default_headers",
                  "password", "secret", "token", "access_token", "bearer", "cookie"}
_URL_USERINFO = re.compile(r"(://)[^/\s:@]+:[^/\s@]+@")


def _env_secrets() -> set[str]:
    """Values of environment variables that look like keys: never stored, wherever they appear.
    (Not values that are themselves variable names, like api_key_env = "OPENAI_API_KEY".)"""
    return {v for k, v in os.environ.items()
            if _SECRET_ENV.search(k) and len(v.strip()) >= 8 and not re.fullmatch(r"[A-Z][A-Z0-9_]*", v)}


class _Scrubber:
    def __init__(self, extra: tuple[str, ...] = ()):
        secrets = _env_secrets() | {s for s in extra if s and len(s) >= 4}
        self.secrets = sorted(secrets, key=len, reverse=True)  # longest first: no partial leftovers

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return _URL_USERINFO.sub(r"\1" + REDACTED + "@", value) if "@" in value else value

    def value(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {str(k): self.value(v) for k, v in obj.items()
                    if not (str(k).lower() in _SECRET_FIELDS or str(k).lower().endswith("api_key"))}
        if isinstance(obj, (list, tuple)):
            return [self.value(v) for v in obj]
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return self.value(dataclasses.asdict(obj))
        if isinstance(obj, BaseModel):
            return self.value(obj.model_dump(mode="json"))
        return obj

    def json(self, obj: Any) -> str | None:
        if obj is None:
            return None
        try:
            return json.dumps(self.value(obj), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"cannot store {type(obj).__name__} as JSON: {exc}") from None


def _loads(raw: str | None) -> Any:
    return None if raw is None else json.loads(raw)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


# --- streaming ---------------------------------------------------------------------------

_live_writers: "weakref.WeakSet[VariantWriter]" = weakref.WeakSet()  # this process's open streams


class VariantWriter:
    """Writes one streaming answer as it arrives: buffered, flushed at most FLUSH_INTERVAL late.

    Every flush rewrites the variant's text in its own short transaction, so a crash
    keeps everything up to the last flush. finish() records how it ended; the
    partial text is always kept.
    """

    def __init__(self, store: "Store", variant_id: int):
        self.store = store
        self.variant_id = variant_id
        self._parts: list[str] = []
        self._flushed_len = 0
        self._last_flush = time.monotonic()
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.finished = False
        _live_writers.add(self)

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def append(self, text_delta: str) -> None:
        if not text_delta:
            return
        with self._lock:
            if self.finished:
                raise StoreError(f"variant {self.variant_id} is already finished")
            self._parts.append(text_delta)
            wait = FLUSH_INTERVAL - (time.monotonic() - self._last_flush)
            if wait <= 0:
                self._flush_locked()
            elif self._timer is None:  # a stalled stream still reaches the disk in time
                self._timer = threading.Timer(wait, self._flush_from_timer)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            if not self.finished:
                self._flush_locked()

    def _flush_from_timer(self) -> None:
        try:
            self.flush()
        except (sqlite3.Error, StoreError, AttributeError):  # busy or closed: the next append or finish retries
            pass

    def _flush_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        text = self.text
        if len(text) != self._flushed_len:
            self.store._write_stream(self.variant_id, text)
            self._flushed_len = len(text)
        self._last_flush = time.monotonic()

    def finish(self, finish_reason: str | None = "stop", usage: Any = None, timings: dict | None = None,
               error: str | None = None) -> None:
        """Record the end: 'done' for a normal stop, else 'cut-off' with the reason (text kept)."""
        with self._lock:
            if self.finished:
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.store._finish_variant(self.variant_id, self.text, finish_reason, usage, timings, error)
            self.finished = True
        _live_writers.discard(self)

    def __enter__(self) -> "VariantWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.finished:
            return
        if exc_type is None:
            self.finish("stop")
        elif issubclass(exc_type, (KeyboardInterrupt, asyncio.CancelledError)):
            self.finish("cancelled")
        else:
            self.finish("error", error=str(exc) or exc_type.__name__)


# --- the store ---------------------------------------------------------------------------


class _ImportedMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int
    role: str
    parent: int | None = None
    text: str
    created: float
    updated: float
    category: dict | None = None
    category_override: str | None = None
    active_variant: int | None = None
    selected: int | None = None
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


class _ImportedConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    version: int
    title: str
    created: float
    updated: float
    archived: bool = False
    messages: list[_ImportedMessage]


class Store:
    """One SQLite file of conversations; safe to share between threads and app instances."""

    def __init__(self, path: Path | str | None = None, *, secrets: tuple[str, ...] = ()):
        """`secrets`: extra strings never to store (e.g. header values from the config)."""
        self.path = Path(path).expanduser() if path is not None else data_dir() / DB_NAME
        self._scrub = _Scrubber(tuple(secrets))
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._db = self._connect()
        self._real_path = os.path.realpath(self.path)
        try:
            self._migrate()
            self._recover_crashed()
            self._purge(dead_only=True)
        except BaseException:
            self._db.close()
            raise

    # -- opening --

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:  # create it private before SQLite does (its -wal/-shm files copy these permissions)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            if stat.S_IMODE(os.stat(self.path).st_mode) & 0o077:
                os.chmod(self.path, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open {self.path}: {exc.strerror or exc}") from None
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            # Look before changing anything: a newer or foreign file is left exactly as it is.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} was written by a newer taskdiv-chat (schema {version}; this "
                                 f"version knows up to {SCHEMA_VERSION}); upgrade taskdiv-chat to open it")
            if version == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise StoreError(f"{self.path} is an SQLite file of another program; not touching it")
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            db.close()
            if "locked" in str(exc):
                raise StoreError(f"{self.path} is busy: another taskdiv-chat kept it locked for "
                                 f"{BUSY_TIMEOUT_S:g} s; try again") from None
            raise StoreError(f"{self.path} is not a taskdiv-chat database or is damaged ({exc}); "
                             f"move it away to start a new one") from None
        except StoreError:
            db.close()
            raise
        return db

    def _migrate(self) -> None:
        if self._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        version = None
        try:
            with self._tx() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]  # another instance may have migrated
                for step in MIGRATIONS[version:]:
                    for statement in step:
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: upgrading the schema from version {version} to {SCHEMA_VERSION} "
                             f"failed ({exc}); the file is unchanged") from None

    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One logical change = one transaction. Streaming flushes skip the fsync (durable=False):
        a process crash still keeps them; only a power cut can lose the last ones."""
        with self._lock:
            db = self._db
            if not durable:
                db.execute("PRAGMA synchronous=NORMAL")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                if not durable:
                    db.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
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

    def _recover_crashed(self) -> None:
        """Variants still 'streaming' whose writer is gone become cut off, reason 'crash'."""
        with self._lock:
            rows = self._db.execute("SELECT id, writer_pid FROM messages WHERE status = 'streaming'").fetchall()
            if not rows:
                return
            # Listed after reading: a writer is registered before its row is committed (start_variant).
            live = {w.variant_id for w in list(_live_writers)
                    if w.store._real_path == self._real_path and not w.finished}
            # Pid reuse could keep a dead writer's variant 'streaming' a while; it is rare and harmless.
            dead = [vid for vid, pid in rows if vid not in live and not (pid != self._pid and _pid_alive(pid))]
            if dead:
                with self._tx() as db:
                    db.executemany("UPDATE messages SET status = 'cut-off', finish_reason = 'crash', "
                                   "writer_pid = NULL WHERE id = ? AND status = 'streaming'", [(v,) for v in dead])

    def close(self) -> None:
        """Cut off this store's unfinished streams, purge what it deleted, close the file."""
        if self._db is None:
            return
        for writer in [w for w in list(_live_writers) if w.store is self]:
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

    # -- helpers --

    def _check_conversation(self, db: sqlite3.Connection, conversation_id: int) -> None:
        row = db.execute("SELECT deleted_by FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None or row[0] is not None:
            raise NotFound(f"no conversation {conversation_id}")

    def _message(self, db: sqlite3.Connection, message_id: int, role: str) -> tuple[int, int | None]:
        """(conversation_id, parent_id) of a message of the given role, or NotFound."""
        row = db.execute("SELECT conversation_id, parent_id FROM messages WHERE id = ? AND role = ?",
                         (message_id, role)).fetchone()
        if row is None:
            kind = "user turn" if role == "user" else "variant"
            raise NotFound(f"no {kind} {message_id}")
        return row

    def _activate(self, db: sqlite3.Connection, user_turn_id: int) -> None:
        """Make the path from the root down to this user turn the active one."""
        conversation_id, parent = self._message(db, user_turn_id, "user")
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

    def _touch(self, db: sqlite3.Connection, conversation_id: int, now: float) -> None:
        db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))

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
            self._check_conversation(db, conversation_id)
            if parent_variant_id is not None:
                owner, _ = self._message(db, parent_variant_id, "assistant")
                if owner != conversation_id:
                    raise StoreError(f"variant {parent_variant_id} is not in conversation {conversation_id}")
            turn_id = db.execute(
                "INSERT INTO messages (conversation_id, role, parent_id, text, created, updated, category) "
                "VALUES (?, 'user', ?, ?, ?, ?, ?)",
                (conversation_id, parent_variant_id, self._scrub.text(text), now, now, self._scrub.json(category)),
            ).lastrowid
            self._activate(db, turn_id)
            self._touch(db, conversation_id, now)
            return turn_id

    def set_category(self, user_turn_id: int, category: dict) -> None:
        with self._tx() as db:
            self._message(db, user_turn_id, "user")
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
            self._message(db, user_turn_id, "user")
            db.execute("UPDATE messages SET category_override = ? WHERE id = ?", (letter, user_turn_id))

    def start_variant(self, user_turn_id: int, *, strategy: str | None, backend: str | None, model: str | None,
                      params: dict | None, category: dict | None = None) -> VariantWriter:
        """A new answer under a turn; it becomes the active one. Stream into the returned writer."""
        now = time.time()
        with self._tx() as db:
            conversation_id, _ = self._message(db, user_turn_id, "user")
            self._check_conversation(db, conversation_id)
            if category is None:  # record the category the answer was generated under
                cat, override = db.execute("SELECT category, category_override FROM messages WHERE id = ?",
                                           (user_turn_id,)).fetchone()
                category = {**(_loads(cat) or {}), **({"override": override} if override else {})} or None
            variant_id = db.execute(
                "INSERT INTO messages (conversation_id, role, parent_id, created, updated, category, status, "
                "strategy, backend, model, params, writer_pid) VALUES (?, 'assistant', ?, ?, ?, ?, 'streaming', "
                "?, ?, ?, ?, ?)",
                (conversation_id, user_turn_id, now, now, self._scrub.json(category), strategy, backend, model,
                 self._scrub.json(params), self._pid),
            ).lastrowid
            db.execute("UPDATE messages SET active_variant_id = ? WHERE id = ?", (variant_id, user_turn_id))
            self._activate(db, user_turn_id)
            self._touch(db, conversation_id, now)
            return VariantWriter(self, variant_id)  # registered as live before the row is committed

    def _write_stream(self, variant_id: int, text: str) -> None:
        with self._tx(durable=False) as db:
            db.execute("UPDATE messages SET text = ?, updated = ? WHERE id = ?",
                       (self._scrub.text(text), time.time(), variant_id))

    def _finish_variant(self, variant_id: int, text: str, finish_reason: str | None, usage: Any,
                        timings: dict | None, error: str | None) -> None:
        done = finish_reason in (None, "stop") and not error
        status = "done" if done else "cut-off"
        reason = finish_reason or ("error" if error else "stop")
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE messages SET text = ?, status = ?, finish_reason = ?, error = ?, usage = ?, timings = ?, "
                "updated = ?, writer_pid = NULL WHERE id = ?",
                (self._scrub.text(text), status, reason, None if error is None else self._scrub.text(error),
                 self._scrub.json(usage), self._scrub.json(timings), now, variant_id),
            )
            row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (variant_id,)).fetchone()
            if row:
                self._touch(db, row[0], now)

    def set_active_variant(self, user_turn_id: int, variant_id: int) -> None:
        """Show this answer at its turn; what follows it (if anything) becomes the active path."""
        with self._tx() as db:
            self._message(db, user_turn_id, "user")
            _, parent = self._message(db, variant_id, "assistant")
            if parent != user_turn_id:
                raise StoreError(f"variant {variant_id} does not answer turn {user_turn_id}")
            db.execute("UPDATE messages SET active_variant_id = ? WHERE id = ?", (variant_id, user_turn_id))
            self._activate(db, user_turn_id)

    def set_active_turn(self, user_turn_id: int) -> None:
        """Switch to another user turn among those following the same answer (an edited message)."""
        with self._tx() as db:
            self._activate(db, user_turn_id)

    def save_metrics(self, variant_id: int, metrics: dict) -> None:
        """The diversity report (metrics, judge verdicts) for the variant set ending at this variant."""
        with self._tx() as db:
            self._message(db, variant_id, "assistant")
            db.execute("UPDATE messages SET metrics = ? WHERE id = ?", (self._scrub.json(metrics), variant_id))

    # -- reading --

    def _conversation_rows(self, conversation_id: int) -> tuple[tuple, list[tuple]]:
        """The conversation's row (id, title, created, updated, archived) and all its messages."""
        self._recover_crashed()
        with self._read() as db:
            row = db.execute("SELECT id, title, created, updated, archived, deleted_by FROM conversations "
                             "WHERE id = ?", (conversation_id,)).fetchone()
            if row is None or row[5] is not None:
                raise NotFound(f"no conversation {conversation_id}")
            rows = db.execute(f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id",
                              (conversation_id,)).fetchall()
        return row[:5], rows

    def load_conversation(self, conversation_id: int) -> Conversation:
        row, rows = self._conversation_rows(conversation_id)
        conv = Conversation(id=row[0], title=row[1], created=row[2], updated=row[3], archived=bool(row[4]))
        conv.turns = _active_path(rows)
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
            turns = self._path_to(conversation_id, upto_turn_id)
        messages: list[dict] = []
        for i, turn in enumerate(turns):
            messages.append({"role": "user", "content": turn.user.text})
            if upto_turn_id is not None and i == len(turns) - 1:
                break
            if turn.active is not None and turn.active.text:
                messages.append({"role": "assistant", "content": turn.active.text})
        return messages

    def _path_to(self, conversation_id: int, user_turn_id: int) -> list[Turn]:
        with self._read() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id",
                              (conversation_id,)).fetchall()
        turns = _turns_by_id(rows)
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

    def list_conversations(self, limit: int = 50, include_archived: bool = False,
                           offset: int = 0) -> list[ConversationSummary]:
        rows = self._all(
            "SELECT c.id, c.title, c.created, c.updated, c.archived, "
            " (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user'), "
            " (SELECT substr(m.text, 1, 120) FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user' "
            "  ORDER BY m.id LIMIT 1) "
            "FROM conversations c WHERE c.deleted_by IS NULL AND (? OR c.archived = 0) "
            "ORDER BY c.updated DESC, c.id DESC LIMIT ? OFFSET ?",
            (include_archived, limit, offset),
        )
        return [ConversationSummary(id=r[0], title=r[1], created=r[2], updated=r[3], archived=bool(r[4]),
                                    turns=r[5], preview=" ".join((r[6] or "").split())) for r in rows]

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Full-text search over every message and variant, newest first; each word matches as a prefix.

        Newest first rather than by relevance: it is what a writer coming back looks for, and it
        stays fast for common words (ranking must score every match; this stops after `limit`).
        """
        words = re.findall(r"\w+", text)
        if not words:
            return []
        query = " ".join(f'"{w}"*' for w in words)  # quoted: the user's text is never FTS syntax
        rows = self._all(
            "SELECT m.conversation_id, c.title, m.id, m.role, "
            f" snippet(messages_fts, 0, '{MARK_START}', '{MARK_END}', '…', 16) "
            "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
            "JOIN conversations c ON c.id = m.conversation_id "
            "WHERE messages_fts MATCH ? AND c.deleted_by IS NULL ORDER BY messages_fts.rowid DESC LIMIT ?",
            (query, limit),
        )
        return [SearchHit(*r) for r in rows]

    # -- managing --

    def rename(self, conversation_id: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise StoreError("a title cannot be empty")
        with self._tx() as db:
            self._check_conversation(db, conversation_id)
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (self._scrub.text(title), conversation_id))

    def archive(self, conversation_id: int, archived: bool = True) -> None:
        with self._tx() as db:
            self._check_conversation(db, conversation_id)
            db.execute("UPDATE conversations SET archived = ? WHERE id = ?", (int(archived), conversation_id))

    def delete(self, conversation_id: int) -> None:
        """Hide it now; undo_delete() brings it back until this store closes (then it is purged)."""
        with self._tx() as db:
            self._check_conversation(db, conversation_id)
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
               if (pid == self._pid and not dead_only) or (pid != self._pid and not _pid_alive(pid))]
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
        rows = self._all("SELECT text FROM drafts WHERE conversation_id = ?", (conversation_id or 0,))
        return rows[0][0] if rows else ""

    # -- export / import --

    def export_json(self, conversation_id: int) -> dict:
        """Everything about a conversation, every branch, lossless; ids are local (n = 1, 2, ...)."""
        (_, title, created, updated, archived), rows = self._conversation_rows(conversation_id)
        local = {r[0]: n for n, r in enumerate(rows, 1)}
        messages = []
        for r in rows:
            m = dict(zip(_COLUMN_NAMES, r))
            out: dict[str, Any] = {"n": local[m["id"]], "role": m["role"],
                                   "parent": local.get(m["parent_id"]), "text": m["text"],
                                   "created": m["created"], "updated": m["updated"],
                                   "category": _loads(m["category"])}
            if m["role"] == "user":
                out.update(category_override=m["category_override"],
                           active_variant=local.get(m["active_variant_id"]), selected=m["selected"])
            else:
                out.update({k: m[k] for k in ("status", "finish_reason", "error", "strategy", "backend", "model")})
                out.update({k: _loads(m[k]) for k in ("params", "usage", "timings", "metrics")})
            messages.append(out)
        return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "title": title, "created": created,
                "updated": updated, "archived": bool(archived), "messages": messages}

    def import_json(self, data: dict) -> int:
        """Add a conversation from export_json() output; all or nothing. Returns the new id."""
        if isinstance(data, dict) and data.get("format") == EXPORT_FORMAT and \
                isinstance(data.get("version"), int) and data["version"] > EXPORT_VERSION:
            raise StoreError(f"this export is version {data['version']} (from a newer taskdiv-chat); "
                             f"this version reads up to {EXPORT_VERSION}")
        try:
            conv = _ImportedConversation.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise StoreError(f"not a taskdiv-chat conversation export: {where}: {err['msg']}") from None
        if conv.format != EXPORT_FORMAT:
            raise StoreError(f"not a taskdiv-chat conversation export (format {conv.format!r})")
        _check_import(conv.messages)
        scrub = self._scrub
        with self._tx() as db:
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

    def export_markdown(self, conversation_id: int) -> str:
        """A readable transcript: the active path, every answer under its turn, category and diversity."""
        conv = self.load_conversation(conversation_id)
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


# --- building turns from rows ------------------------------------------------------------

_COLUMN_NAMES = ("id", "role", "parent_id", "text", "created", "updated", "category", "category_override",
                 "active_variant_id", "selected", "status", "finish_reason", "error", "strategy", "backend",
                 "model", "params", "usage", "timings", "metrics")
_COLUMNS = ", ".join(_COLUMN_NAMES)


def _turns_by_id(rows: list[tuple]) -> dict[int, Turn]:
    """Every user turn with all its variants (creation order) and its active index."""
    turns: dict[int, Turn] = {}
    active: dict[int, int | None] = {}
    branches: dict[int, int] = {}
    for r in rows:
        (mid, role, parent, text, created, updated, category, override, active_variant, _selected, status,
         reason, error, strategy, backend, model, params, usage, timings, metrics) = r
        if role == "user":
            turns[mid] = Turn(UserTurn(mid, text, _loads(category), override, parent, created), [], None)
            active[mid] = active_variant
            if parent is not None:
                branches[parent] = branches.get(parent, 0) + 1
        elif parent in turns:
            turns[parent].variants.append(Variant(
                id=mid, text=text, status=status, finish_reason=reason, strategy=strategy, backend=backend,
                model=model, params=_loads(params), usage=_loads(usage), timings=_loads(timings),
                metrics=_loads(metrics), created=created, updated=updated, error=error,
                category=_loads(category), user_turn_id=parent))
    for tid, turn in turns.items():
        for i, v in enumerate(turn.variants):
            v.branches = branches.get(v.id, 0)
            if v.id == active[tid]:
                turn.active_index = i
        if turn.active_index is None and turn.variants:
            turn.active_index = len(turn.variants) - 1
    return turns


def _active_path(rows: list[tuple]) -> list[Turn]:
    """Walk from the root: at each answer, the most recently chosen user turn that follows it."""
    turns = _turns_by_id(rows)
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


def _check_import(messages: list[_ImportedMessage]) -> None:
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


# --- markdown pieces ---------------------------------------------------------------------


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
