"""Every earlier schema version opens, upgrades in place and keeps its data.

Each fixture below is frozen: the exact SQL a released version wrote, with data.
A new schema version adds a migration step in store.py and a fixture here for the
version it replaces (test_every_earlier_version_has_a_fixture enforces it).
"""

from __future__ import annotations

import sqlite3

import pytest

from taskdiv_chat import store as store_module
from taskdiv_chat.store import SCHEMA_VERSION, Store, StoreError

V1 = """
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    deleted_by INTEGER
);
CREATE INDEX conversations_updated ON conversations(updated);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    parent_id INTEGER REFERENCES messages(id),
    text TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    category TEXT,
    category_override TEXT,
    active_variant_id INTEGER,
    selected INTEGER,
    status TEXT CHECK (status IN ('streaming', 'done', 'cut-off')),
    finish_reason TEXT,
    error TEXT,
    strategy TEXT,
    backend TEXT,
    model TEXT,
    params TEXT,
    usage TEXT,
    timings TEXT,
    metrics TEXT,
    writer_pid INTEGER
);
CREATE INDEX messages_conversation ON messages(conversation_id, id);
CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming';
CREATE TABLE drafts (conversation_id INTEGER PRIMARY KEY, text TEXT NOT NULL, updated REAL NOT NULL);
INSERT INTO conversations VALUES (1, 'Old poems', 1700000000.0, 1700000300.0, 0, NULL);
INSERT INTO conversations VALUES (2, 'Archived trip', 1700001000.0, 1700001000.0, 1, NULL);
INSERT INTO messages (id, conversation_id, role, parent_id, text, created, updated, category, active_variant_id,
    selected) VALUES (1, 1, 'user', NULL, 'Write a poem about a lighthouse', 1700000000.0, 1700000000.0,
    '{"letter": "G", "confidence": 0.9, "method": "llm", "detail": null}', 3, 1);
INSERT INTO messages (id, conversation_id, role, parent_id, text, created, updated, category, status,
    finish_reason, strategy, backend, model, params, usage, timings, metrics) VALUES
    (2, 1, 'assistant', 1, 'The keeper climbs the stair', 1700000010.0, 1700000020.0, '{"letter": "G"}',
     'done', 'stop', 'temperature', 'local', 'SmolLM2', '{"temperature": 0.7}',
     '{"prompt_tokens": 20, "completion_tokens": 6}', '{"total_s": 1.0}', NULL),
    (3, 1, 'assistant', 1, 'A beam sweeps the fog', 1700000030.0, 1700000040.0, '{"letter": "G"}',
     'done', 'stop', 'anchored-icr', 'local', 'SmolLM2', '{}', NULL, NULL,
     '{"mean_pairwise_distance": 0.5}');
INSERT INTO messages (id, conversation_id, role, parent_id, text, created, updated, selected) VALUES
    (4, 2, 'user', NULL, 'Plan a weekend in Porto', 1700001000.0, 1700001000.0, 1);
INSERT INTO drafts VALUES (1, 'and the sea?', 1700000300.0);
PRAGMA user_version = 1;
"""

FIXTURES = {1: V1}  # version -> frozen SQL; version 0 is an empty file


def _make(path, version: int) -> None:
    if version == 0:
        path.touch()
        return
    db = sqlite3.connect(path)
    db.executescript(FIXTURES[version])
    db.close()


def test_every_earlier_version_has_a_fixture():
    assert set(FIXTURES) | {0} == set(range(SCHEMA_VERSION))


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
def test_an_earlier_version_opens_upgraded_with_its_data(tmp_path, version):
    path = tmp_path / f"v{version}.sqlite3"
    _make(path, version)
    with Store(path) as store:
        db = store._db
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        if version >= 1:
            conv = store.load_conversation(1)
            assert conv.title == "Old poems"
            turn = conv.turns[0]
            assert turn.user.letter == "G" and turn.active.text == "A beam sweeps the fog"
            assert [v.strategy for v in turn.variants] == ["temperature", "anchored-icr"]
            assert turn.variants[0].usage == {"prompt_tokens": 20, "completion_tokens": 6}
            assert turn.active.metrics == {"mean_pairwise_distance": 0.5}
            assert store.load_draft(1) == "and the sea?"
            assert [c.id for c in store.list_conversations(include_archived=True)] == [2, 1]
            # What the old version stored is searchable (the index was built from it).
            assert {h.message_id for h in store.search("lighthouse")} == {1}
            assert {h.message_id for h in store.search("fog")} == {3}
            assert {h.message_id for h in store.search("porto")} == {4}
        # And it takes new writes like a fresh file.
        cid = store.create_conversation("after upgrade")
        t = store.add_user_turn(cid, "a fresh albatross", None)
        assert [h.message_id for h in store.search("albatross")] == [t]


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "v1.sqlite3"
    _make(path, 1)
    broken = [*store_module.MIGRATIONS, ["CREATE TABLE extra (x)", "THIS IS NOT SQL"]]
    monkeypatch.setattr(store_module, "MIGRATIONS", broken)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", len(broken))
    with pytest.raises(StoreError, match="from version 1 to 3 failed .*THIS.*; the file is unchanged"):
        Store(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name IN ('extra', 'messages_fts')").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM messages").fetchone() == (4,)
    db.close()


def test_a_newer_file_is_left_untouched(tmp_path):
    path = tmp_path / "future.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE future_things (x)")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=f"schema {SCHEMA_VERSION + 3}"):
        Store(path)
    assert path.read_bytes() == before
