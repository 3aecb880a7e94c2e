"""The conversation store on real SQLite files: the tree, branching, search, export, secrets."""

from __future__ import annotations

import json
import os
import sqlite3
import stat

import pytest

from taskdiv_chat import taxonomy
from taskdiv_chat.store import (MARK_END, MARK_START, SCHEMA_VERSION, NotFound, Store, StoreError,
                                data_dir)

CAT_G = {"letter": "G", "confidence": 0.91, "method": "llm", "detail": "creative request"}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "chat.sqlite3")
    yield s
    s.close()


def answer(store, turn_id, text, strategy="temperature", reason="stop", **kw):
    writer = store.start_variant(turn_id, strategy=strategy, backend="local", model="SmolLM2",
                                 params={"temperature": 0.7}, category=kw.pop("category", None))
    for word in text.split(" "):
        writer.append(word + " ")
    writer.finish(reason, kw.get("usage"), kw.get("timings"), kw.get("error"))
    return writer.variant_id


def test_default_path_is_in_the_data_dir_and_private(tmp_path):
    with Store() as s:
        assert s.path == data_dir() / "conversations.sqlite3"
        assert s.path.parent == tmp_path / "data"  # TASKDIV_DATA_DIR from conftest
        s.create_conversation()
        assert stat.S_IMODE(os.stat(s.path).st_mode) == 0o600
        for side in ("-wal", "-shm"):
            side_file = s.path.with_name(s.path.name + side)
            assert side_file.exists() and stat.S_IMODE(os.stat(side_file).st_mode) & 0o077 == 0
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_an_existing_readable_file_is_made_private(tmp_path):
    path = tmp_path / "chat.sqlite3"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    Store(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_every_answer_is_kept_and_survives_reopening(tmp_path):
    path = tmp_path / "chat.sqlite3"
    with Store(path) as s:
        cid = s.create_conversation("Stories")
        turn = s.add_user_turn(cid, "Write a two-line poem about rain.", None, CAT_G)
        v1 = answer(s, turn, "Rain on tin roofs", usage={"prompt_tokens": 30, "completion_tokens": 5},
                    timings={"first_token_s": 0.2, "total_s": 1.5})
        v2 = answer(s, turn, "Grey sky weeps softly", strategy="anchored-icr")
        v3 = answer(s, turn, "Puddles hold the", strategy="anchored-icr", reason="length")
        s.save_metrics(v3, {"mean_pairwise_distance": 0.42, "judge": [{"pair": [1, 2], "equivalent": False}]})
    with Store(path) as s:
        conv = s.load_conversation(cid)
    assert conv.title == "Stories" and len(conv.turns) == 1
    turn_ = conv.turns[0]
    assert turn_.user.text == "Write a two-line poem about rain."
    assert turn_.user.category == CAT_G and turn_.user.letter == "G"
    assert [v.id for v in turn_.variants] == [v1, v2, v3]
    assert turn_.active_index == 2  # the newest answer is shown
    first, _, last = turn_.variants
    assert first.text == "Rain on tin roofs " and first.status == "done" and first.finish_reason == "stop"
    assert first.strategy == "temperature" and first.backend == "local" and first.model == "SmolLM2"
    assert first.params == {"temperature": 0.7}
    assert first.usage == {"prompt_tokens": 30, "completion_tokens": 5}
    assert first.timings == {"first_token_s": 0.2, "total_s": 1.5}
    assert first.category == CAT_G  # the category it was generated under
    assert last.status == "cut-off" and last.finish_reason == "length" and last.text == "Puddles hold the "
    assert last.metrics == {"mean_pairwise_distance": 0.42, "judge": [{"pair": [1, 2], "equivalent": False}]}


def test_continuing_after_picking_a_variant_branches_and_keeps_other_branches(store):
    cid = store.create_conversation()
    t1 = store.add_user_turn(cid, "Name a colour.", None)
    red = answer(store, t1, "Red")
    blue = answer(store, t1, "Blue")
    green = answer(store, t1, "Green")
    store.set_active_variant(t1, blue)
    t2_blue = store.add_user_turn(cid, "Why that one?", blue)
    answer(store, t2_blue, "Because of the sea")
    assert store.history_messages(cid) == [
        {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue "},
        {"role": "user", "content": "Why that one?"}, {"role": "assistant", "content": "Because of the sea "}]

    # Pick green and continue there: a second branch.
    store.set_active_variant(t1, green)
    assert [t.user.id for t in store.load_conversation(cid).turns] == [t1]  # nothing follows green yet
    t2_green = store.add_user_turn(cid, "And green?", green)
    answer(store, t2_green, "Leaves")
    conv = store.load_conversation(cid)
    assert [t.user.text for t in conv.turns] == ["Name a colour.", "And green?"]
    assert conv.turns[0].active.id == green
    assert [v.branches for v in conv.turns[0].variants] == [0, 1, 1]

    # Back to blue: its continuation is still there.
    store.set_active_variant(t1, blue)
    conv = store.load_conversation(cid)
    assert [t.user.text for t in conv.turns] == ["Name a colour.", "Why that one?"]
    assert conv.turns[1].active.text == "Because of the sea "
    assert {v.id for v in conv.turns[0].variants} == {red, blue, green}

    # Regenerating a turn that is not on the active path: its own path, with the answer it followed.
    assert store.history_messages(cid, upto_turn_id=t2_green) == [
        {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Green "},
        {"role": "user", "content": "And green?"}]


def test_an_edited_message_is_a_sibling_turn(store):
    cid = store.create_conversation()
    first = store.add_user_turn(cid, "Capital of Australia?", None)
    answer(store, first, "Canberra")
    edited = store.add_user_turn(cid, "Capital of Austria?", None)
    assert store.load_conversation(cid).turns[0].user.id == edited
    store.set_active_turn(first)
    conv = store.load_conversation(cid)
    assert conv.turns[0].user.id == first and conv.turns[0].active.text == "Canberra "


def test_history_messages_ends_with_the_pending_user_turn(store):
    cid = store.create_conversation()
    t1 = store.add_user_turn(cid, "Hi", None)
    v = answer(store, t1, "Hello")
    store.add_user_turn(cid, "How are you?", v)
    assert store.history_messages(cid)[-1] == {"role": "user", "content": "How are you?"}
    assert len(store.history_messages(cid)) == 3


def test_user_turn_is_committed_before_the_answer_starts(tmp_path):
    path = tmp_path / "chat.sqlite3"
    s = Store(path)
    cid = s.create_conversation()
    s.add_user_turn(cid, "Do not lose me", None)
    other = sqlite3.connect(path)  # another reader sees it at once, no close needed
    assert other.execute("SELECT text FROM messages WHERE role = 'user'").fetchall() == [("Do not lose me",)]
    other.close()
    s.close()


def test_category_override_wins_and_persists(tmp_path):
    path = tmp_path / "chat.sqlite3"
    with Store(path) as s:
        cid = s.create_conversation()
        t = s.add_user_turn(cid, "Tell me a joke", None)
        s.set_category(t, {"letter": "A", "confidence": 0.4, "method": "local", "detail": None})
        s.set_category_override(t, "c")
        v = answer(s, t, "Why did the chicken")
    with Store(path) as s:
        turn = s.load_conversation(cid).turns[0]
        assert turn.user.override == "C" and turn.user.letter == "C" and turn.user.category["letter"] == "A"
        assert turn.variants[0].id == v and turn.variants[0].category["override"] == "C"
        s.set_category_override(t, None)
        assert s.load_conversation(cid).turns[0].user.letter == "A"
        s.set_category_override(t, "other")
        assert s.load_conversation(cid).turns[0].user.letter == taxonomy.OTHER
        with pytest.raises(StoreError, match="unknown category 'Z'"):
            s.set_category_override(t, "Z")


def test_wrong_ids_give_clear_errors(store):
    cid = store.create_conversation()
    t = store.add_user_turn(cid, "x", None)
    v = answer(store, t, "y")
    other = store.create_conversation()
    t_other = store.add_user_turn(other, "z", None)
    with pytest.raises(NotFound, match="no conversation 999"):
        store.load_conversation(999)
    with pytest.raises(NotFound, match="no variant 12345"):
        store.add_user_turn(cid, "x", 12345)
    with pytest.raises(StoreError, match=f"variant {v} is not in conversation {other}"):
        store.add_user_turn(other, "x", v)
    with pytest.raises(StoreError, match=f"variant {v} does not answer turn {t_other}"):
        store.set_active_variant(t_other, v)
    with pytest.raises(NotFound, match=f"no user turn {v}"):
        store.start_variant(v, strategy="temperature", backend="b", model="m", params={})
    with pytest.raises(StoreError, match="title cannot be empty"):
        store.rename(cid, "   ")


def test_list_rename_archive(store):
    ids = [store.create_conversation(f"Chat {i}") for i in range(5)]
    store.add_user_turn(ids[1], "most recent\nmessage", None)  # touching a chat moves it to the top
    assert [c.id for c in store.list_conversations()][:2] == [ids[1], ids[4]]
    top = store.list_conversations(limit=1)[0]
    assert top.turns == 1 and top.preview == "most recent message"
    store.rename(ids[2], "  Trip   to Lisbon ")
    store.archive(ids[3])
    listed = store.list_conversations()
    assert ids[3] not in [c.id for c in listed]
    assert {c.id: c.title for c in listed}[ids[2]] == "Trip to Lisbon"
    with_archived = store.list_conversations(include_archived=True)
    assert [c.archived for c in with_archived if c.id == ids[3]] == [True]
    assert [c.id for c in store.list_conversations(limit=2, offset=1)] == [c.id for c in listed[1:3]]
    store.archive(ids[3], archived=False)
    assert ids[3] in [c.id for c in store.list_conversations()]


def test_delete_is_undoable_until_close(tmp_path):
    path = tmp_path / "chat.sqlite3"
    s = Store(path)
    keep, gone = s.create_conversation("keep"), s.create_conversation("gone")
    t = s.add_user_turn(gone, "secret plans about zeppelins", None)
    answer(s, t, "zeppelins are airships")
    s.save_draft(gone, "half typed")
    s.delete(gone)
    assert [c.id for c in s.list_conversations()] == [keep]
    assert s.search("zeppelins") == []
    with pytest.raises(NotFound):
        s.load_conversation(gone)
    s.undo_delete(gone)
    assert len(s.search("zeppelins")) == 2
    s.delete(gone)
    s.close()  # purges
    with Store(path) as s:
        with pytest.raises(NotFound):
            s.undo_delete(gone)
        db = s._db
        assert db.execute("SELECT count(*) FROM messages WHERE conversation_id = ?", (gone,)).fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM drafts").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'zeppelins'").fetchone() == (0,)


def test_a_delete_left_by_a_dead_process_is_purged_on_open(tmp_path):
    path = tmp_path / "chat.sqlite3"
    with Store(path) as s:
        cid = s.create_conversation()
    db = sqlite3.connect(path)
    db.execute("UPDATE conversations SET deleted_by = ? WHERE id = ?", (_dead_pid(), cid))
    db.commit()
    db.close()
    with Store(path) as s:
        assert s._db.execute("SELECT count(*) FROM conversations").fetchone() == (0,)


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_search_finds_messages_and_variants_with_marked_snippets(store):
    a = store.create_conversation("Pets")
    t = store.add_user_turn(a, "Tell me about the axolotl, please", None)
    answer(store, t, "The axolotl is a salamander from Mexico")
    answer(store, t, "Axolotls regrow limbs")
    b = store.create_conversation("Other")
    store.add_user_turn(b, "Nothing to see here", None)
    hits = store.search("axolotl")
    assert len(hits) == 3 and {h.conversation_id for h in hits} == {a}
    assert {h.role for h in hits} == {"user", "assistant"}
    assert hits[0].conversation_title == "Pets"
    user_hit = next(h for h in hits if h.role == "user")
    assert user_hit.snippet == f"Tell me about the {MARK_START}axolotl{MARK_END}, please"
    assert user_hit.parts() == [("Tell me about the ", False), ("axolotl", True), (", please", False)]
    assert user_hit.plain() == "Tell me about the [axolotl], please"
    assert {h.plain() for h in hits if h.role == "assistant"} >= {"[Axolotls] regrow limbs "}
    # Several words must all match; a prefix is enough; diacritics do not matter.
    assert [h.role for h in store.search("salam mexico")] == ["assistant"]
    store.add_user_turn(b, "Un café à Montréal", None)
    assert len(store.search("montreal cafe")) == 1
    # Newest first.
    assert [h.message_id for h in hits] == sorted((h.message_id for h in hits), reverse=True)


@pytest.mark.parametrize("query", ['"', "AND", "a OR", "NEAR(", "*", "col:x", "-", "'; DROP TABLE messages; --"])
def test_search_never_fails_on_user_text(store, query):
    cid = store.create_conversation()
    store.add_user_turn(cid, "AND then NEAR the col: x", None)
    hits = store.search(query)
    assert isinstance(hits, list)
    assert store._db.execute("SELECT count(*) FROM messages").fetchone() == (1,)


def test_search_sees_streaming_text_as_it_is_flushed(store):
    cid = store.create_conversation()
    t = store.add_user_turn(cid, "q", None)
    writer = store.start_variant(t, strategy="temperature", backend="b", model="m", params={})
    writer.append("a quokka appears")
    writer.flush()
    assert [h.message_id for h in store.search("quokka")] == [writer.variant_id]
    writer.append(", then a wombat")
    writer.finish("stop")
    assert [h.message_id for h in store.search("quokka wombat")] == [writer.variant_id]


def test_drafts_per_conversation(tmp_path):
    path = tmp_path / "chat.sqlite3"
    with Store(path) as s:
        cid = s.create_conversation()
        s.save_draft(None, "a new chat's first words")
        s.save_draft(cid, "unsent reply")
    with Store(path) as s:
        assert s.load_draft(None) == "a new chat's first words"
        assert s.load_draft(cid) == "unsent reply"
        s.save_draft(cid, "")
        assert s.load_draft(cid) == ""
        assert s.load_draft(12345) == ""


def build_sample(store) -> int:
    cid = store.create_conversation("Rainy poems")
    t1 = store.add_user_turn(cid, "Write a haiku about rain.", None, CAT_G)
    v1 = answer(store, t1, "Soft rain on the roof", usage={"prompt_tokens": 12, "completion_tokens": 6},
                timings={"first_token_s": 0.1, "total_s": 0.9})
    v2 = answer(store, t1, "Clouds gather, drops fall", strategy="anchored-icr")
    v3 = answer(store, t1, "Umbrellas bloom", strategy="anchored-icr", reason="cancelled")
    store.save_metrics(v3, {"mean_pairwise_distance": 0.53, "functional_diversity": 0.67,
                            "judge": [{"pair": [1, 2], "equivalent": False}], "n": 3})
    store.set_active_variant(t1, v2)
    t2 = store.add_user_turn(cid, "Now one about snow.", v2)
    store.set_category_override(t2, "G")
    answer(store, t2, "White hush", reason="error", error="server went away")
    t2b = store.add_user_turn(cid, "A limerick instead?", v1)  # a branch under the first answer
    answer(store, t2b, "There once was")
    store.set_active_variant(t1, v2)
    return cid


def test_markdown_export_is_readable_with_every_variant(store):
    cid = build_sample(store)
    md = store.export_markdown(cid)
    assert md.startswith("# Rainy poems\n")
    turn1 = md[md.index("## Turn 1"):md.index("## Turn 2")]
    for text in ("> Write a haiku about rain.", "category G · Creative Writing (llm, confidence 0.91)",
                 "### Answer 1 of 3", "Soft rain on the roof", "### Answer 2 of 3 (shown)", "Clouds gather",
                 "### Answer 3 of 3", "cut-off (cancelled)", "anchored-icr · local · SmolLM2", "6 tokens",
                 "0.9 s", "### Diversity", "- mean pairwise distance: 0.53", "- judge: 1 item(s)",
                 "1 other branch(es) continue from this answer"):
        assert text in turn1, text
    turn2 = md[md.index("## Turn 2"):]
    assert "> Now one about snow." in turn2 and "category G · Creative Writing (set by you)" in turn2
    assert "cut-off (error)" in turn2 and "error: server went away" in turn2
    assert "limerick" not in md.split("## Turn 2")[1]


def test_json_export_import_export_is_identical(store):
    cid = build_sample(store)
    first = store.export_json(cid)
    text = json.dumps(first)
    copy = store.import_json(json.loads(text))
    assert copy != cid
    assert store.export_json(copy) == first
    assert json.dumps(store.export_json(copy)) == text
    # Lossless: every branch, including the one not on the active path.
    assert len(first["messages"]) == (1 + 3) + (1 + 1) + (1 + 1)
    assert "A limerick instead?" in [m["text"] for m in first["messages"]]
    assert store.load_conversation(copy).turns[1].user.text == "Now one about snow."
    assert store.history_messages(copy) == store.history_messages(cid)


def test_import_rejects_bad_input_with_a_clear_message_and_adds_nothing(store):
    cid = build_sample(store)
    good = store.export_json(cid)
    before = store._db.execute("SELECT count(*) FROM messages").fetchone()

    def broken(change):
        data = json.loads(json.dumps(good))
        change(data)
        return data

    cases = [
        ([1, 2], "not a taskdiv-chat conversation export"),
        ({"format": "something else"}, "not a taskdiv-chat conversation export"),
        (broken(lambda d: d.update(format="x")), "format 'x'"),
        (broken(lambda d: d.update(version=99)), "version 99 .*newer"),
        (broken(lambda d: d["messages"][1].update(parent=None)), "message 2: an answer needs the user turn"),
        (broken(lambda d: d["messages"][0].update(parent=1)), "message 1: parent 1 is not an earlier assistant"),
        (broken(lambda d: d["messages"][1].update(status="weird")), "status must be"),
        (broken(lambda d: d["messages"][0].update(active_variant=1)), "active_variant 1 is not one of its answers"),
        (broken(lambda d: d["messages"][0].pop("text")), "messages.0.text: Field required"),
        (broken(lambda d: d["messages"][0].update(surprise=1)), "messages.0.surprise"),
        (broken(lambda d: d["messages"][2].update(n=1)), "message 1 appears twice"),
    ]
    for data, message in cases:
        with pytest.raises(StoreError, match=message):
            store.import_json(data)
    assert store._db.execute("SELECT count(*) FROM messages").fetchone() == before


def test_an_imported_half_streamed_answer_is_cut_off(store):
    cid = build_sample(store)
    data = store.export_json(cid)
    data["messages"][1]["status"] = "streaming"
    copy = store.import_json(data)
    variant = store.load_conversation(copy).turns[0].variants[0]
    assert (variant.status, variant.finish_reason) == ("cut-off", "cancelled")


def test_refuses_files_it_does_not_own(tmp_path):
    newer = tmp_path / "newer.sqlite3"
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer taskdiv-chat"):
        Store(newer)
    foreign = tmp_path / "foreign.sqlite3"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE invoices (id INTEGER)")
    db.close()
    with pytest.raises(StoreError, match="another program"):
        Store(foreign)
    assert sqlite3.connect(foreign).execute("SELECT name FROM sqlite_master").fetchall() == [("invoices",)]
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="not a taskdiv-chat database or is damaged"):
        Store(junk)
    assert junk.read_bytes() == b"this is not a database at all" * 100


def test_threads_share_one_store(store):
    import threading

    cid = store.create_conversation()
    errors = []

    def worker(n):
        try:
            for i in range(20):
                t = store.add_user_turn(cid, f"thread {n} turn {i}", None)
                w = store.start_variant(t, strategy="temperature", backend="b", model="m", params={})
                w.append("x" * 10)
                w.flush()
                store.load_conversation(cid)
                w.finish("stop")
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = store._db.execute("SELECT role, count(*) FROM messages GROUP BY role ORDER BY role").fetchall()
    assert rows == [("assistant", 80), ("user", 80)]


def test_a_writer_used_as_a_context_manager_records_how_the_stream_ended(store):
    import asyncio

    cid = store.create_conversation()
    t = store.add_user_turn(cid, "q", None)
    ends = []
    for exc in (None, asyncio.CancelledError(), RuntimeError("socket closed")):
        try:
            with store.start_variant(t, strategy="temperature", backend="b", model="m", params={}) as writer:
                writer.append("partial")
                if exc is not None:
                    raise exc
        except (asyncio.CancelledError, RuntimeError):
            pass
        ends.append(writer.variant_id)
    variants = store.load_conversation(cid).turns[0].variants
    assert [(v.id, v.status, v.finish_reason, v.error) for v in variants] == [
        (ends[0], "done", "stop", None), (ends[1], "cut-off", "cancelled", None),
        (ends[2], "cut-off", "error", "socket closed")]
    assert {v.text for v in variants} == {"partial"}
