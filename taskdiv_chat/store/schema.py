"""The file: its schema, the migrations between versions, opening it, one transaction.

MIGRATIONS[i] upgrades a database from user_version i to i + 1. A step is never edited
once released; a schema change is a new step (and a frozen fixture in tests/test_store_migrations.py).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..paths import private_dir
from .errors import StoreError

BUSY_TIMEOUT_S = 10.0  # how long a write waits for another instance's transaction

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


def connect(path: Path, schema_version: int) -> sqlite3.Connection:
    """Open (or create, private) the file in WAL mode; refuse a newer or foreign file without touching it."""
    try:  # create it private before SQLite does (its -wal/-shm files copy these permissions)
        private_dir(path.parent)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
            os.chmod(path, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc.strerror or exc}") from None
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        # Look before changing anything: a newer or foreign file is left exactly as it is.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > schema_version:
            raise StoreError(f"{path} was written by a newer taskdiv-chat (schema {version}; this "
                             f"version knows up to {schema_version}); upgrade taskdiv-chat to open it")
        if version == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise StoreError(f"{path} is an SQLite file of another program; not touching it")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{path}: cannot switch to WAL mode (got {mode})")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as exc:
        db.close()
        if "locked" in str(exc):
            raise StoreError(f"{path} is busy: another taskdiv-chat kept it locked for "
                             f"{BUSY_TIMEOUT_S:g} s; try again") from None
        raise StoreError(f"{path} is not a taskdiv-chat database or is damaged ({exc}); "
                         f"move it away to start a new one") from None
    except StoreError:
        db.close()
        raise
    return db


@contextmanager
def transaction(db: sqlite3.Connection, durable: bool = True) -> Iterator[sqlite3.Connection]:
    """One logical change = one transaction. Streaming flushes skip the fsync (durable=False):
    a process crash still keeps them; only a power cut can lose the last ones."""
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


def migrate(db: sqlite3.Connection, path: Path, migrations: list[list[str]]) -> None:
    """Bring the file up to len(migrations), all steps in one transaction: a failure changes nothing."""
    target = len(migrations)
    if db.execute("PRAGMA user_version").fetchone()[0] == target:
        return
    version = None
    try:
        with transaction(db) as tx:
            version = tx.execute("PRAGMA user_version").fetchone()[0]  # another instance may have migrated
            for step in migrations[version:]:
                for statement in step:
                    tx.execute(statement)
            tx.execute(f"PRAGMA user_version = {target}")
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: upgrading the schema from version {version} to {target} "
                         f"failed ({exc}); the file is unchanged") from None
